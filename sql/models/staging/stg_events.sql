-- One row per event: typed and cleaned, nothing more. Business time is event_date, falling back
-- to creation_date (flagged) where event_date could not be read.
--
-- Incremental: each dlt load writes its rows (new and updated events alike) with a new
-- _dlt_load_id, so a build only reads the loads it has not seen and replaces those events.

-- On a lake (Spark over Parquet) a table, rebuilt whole: plain Parquet tables have no delete+insert
-- nor merge, and the raw files hold every version an event had, which this model settles.
{{ config(
    materialized='table' if covage.is_lake() else 'incremental',
    unique_key='event_uuid',
    incremental_strategy='delete+insert',
) }}

with

source as (

    select * from {{ source('covage', 'events') }}
    {% if covage.is_lake() %}
    -- only the loads dlt finished: a load killed midway may have left some of its files
    where _dlt_load_id in (select load_id from {{ source('covage', '_dlt_loads') }} where status = 0)
    {% endif %}
    {% if is_incremental() %}
    where _dlt_load_id > (select coalesce(max(_dlt_load_id), '') from {{ this }})
    {% endif %}

),

deduplicated as (

    -- dlt merges on event_uuid already (on a lake it appends, a load only the versions newer
    -- than those stored: covage_pipeline/versions.py); the latest version, as there: the latest
    -- modification_date, and on an equal one the later load
    select *
    from (
        select
            *,
            row_number() over (
                partition by event_uuid order by modification_date desc nulls last, _dlt_load_id desc
            ) as version_rank
        from source
    ) ranked
    where version_rank = 1

),

renamed as (

    select
        -- ids
        deduplicated.event_uuid,
        deduplicated.object_type,
        object_uuid,
        type as event_type,

        -- timestamps
        coalesce(event_date, creation_date) as business_time,
        event_date is null as is_event_date_fallback,
        event_date,
        creation_date,
        modification_date,
        event_date_raw,
        coalesce(event_date_invalid, false) as is_event_date_invalid,
        coalesce(event_date > creation_date, false) as is_event_date_after_creation,

        -- flags
        catalogue.event_type is null and not {{ is_report_payload('data') }} as is_unknown_type,
        -- an intervention report (CRI), recognised by its payload whatever its type
        {{ is_report_payload('data') }} as is_report,

        -- payload fields, each under the event type that documents it
        {{ json_text('data', 'kosc_order_ref') }} as kosc_order_ref,
        {{ json_text('data', 'reject_reason') }} as reject_reason,
        {{ json_text('data', 'reject_code') }} as reject_code,
        {{ json_text('data', 'reject_subcode') }} as reject_subcode,
        {{ json_text('data', 'reject_description') }} as reject_description,
        case when type = 'order-cancelled' then {{ json_text('data', 'reason') }} end as cancel_reason,
        {{ json_text('data', 'message') }} as message,
        case
            when type = 'order-information-from-provider' then {{ json_text('data', 'description') }}
        end as provider_description,
        {{ json_text('data', 'start_date') }} as appointment_start_raw,
        {{ json_text('data', 'end_date') }} as appointment_end_raw,
        {{ loose_timestamp(json_text('data', 'start_date')) }} as appointment_start,
        {{ loose_timestamp(json_text('data', 'end_date')) }} as appointment_end,
        ({{ json_text('data', 'start_date') }} is not null
            and {{ loose_timestamp(json_text('data', 'start_date')) }} is null)
            or ({{ json_text('data', 'end_date') }} is not null
                and {{ loose_timestamp(json_text('data', 'end_date')) }} is null) as is_appointment_date_invalid,
        {{ json_text('data', 'desaturation_type') }} as desaturation_type,
        cast({{ json_text('data', 'stop_deferred') }} as boolean) as stop_deferred,
        {{ json_text('data', 'service_uuid') }} as service_uuid,
        {{ json_text('data', 'service_alias') }} as service_alias,
        data,
        _dlt_load_id

    from deduplicated
    -- the catalogue of documented types (seed event_types): any other type is kept, flagged unknown
    left join {{ ref('event_types') }} as catalogue on deduplicated.type = catalogue.event_type

)

select * from renamed
