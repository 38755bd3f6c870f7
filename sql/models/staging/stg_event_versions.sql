-- Every version of every event that the builds have seen, one row each: what a past forecast
-- reads to know an event as it stood at its cutoff (a later correction must not leak into it),
-- and where the keys an event named before a correction are found (int_changed_keys).
--
-- Appended to, never rebuilt: the raw table keeps only each event's latest version, so a full
-- refresh could not bring back the earlier ones. It cannot know a version the API replaced
-- before any build read it, nor the versions of a backfill (the API serves only the latest).

{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
) }}

select
    event_uuid,
    _dlt_load_id,
    object_type,
    object_uuid,
    event_type,
    service_uuid,
    business_time,
    creation_date,
    modification_date,
    appointment_start,
    is_report
from {{ ref('stg_events') }}
{% if is_incremental() %}
where _dlt_load_id > (select coalesce(max(_dlt_load_id), '') from {{ this }})
{% endif %}
