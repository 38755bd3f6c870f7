-- What this build recomputes: the events loaded since the last propagated load (see
-- macros/changes.sql), and every object and service that any version of them named, before a
-- correction as well as after (an event moved to another order, a completion that now names
-- another service: both sides change). Rebuilt at every build; small but on a full refresh, when it
-- lists everything (so does the analysts' copy, which reads it).
--   key_kind  event    an event loaded since (its own rows: report files, endpoints)
--             object   an order or service with such an event (their per-object rows)
--             service  a service with such an event, or named by one (services)

{{ config(materialized='table', post_hook="{{ covage.record_changed_keys() }}") }}

{%- set since = covage.changed_since() %}

with

changed as (

    select event_uuid from {{ ref('stg_events') }}
    -- (on a lake every model is rebuilt whole: nothing to list)
    where _dlt_load_id > '{{ since }}'{% if covage.is_lake() %} and false{% endif %}

),

named as (

    select versions.object_type, versions.object_uuid, versions.service_uuid, versions.event_uuid
    from {{ ref('stg_event_versions') }} as versions
    where versions.event_uuid in (select event_uuid from changed)

)

select 'event' as key_kind, event_uuid as changed_key from changed
union
select 'object', object_uuid from named
union
select 'service', object_uuid from named where object_type = 'service'
union
select 'service', service_uuid from named where service_uuid is not null
