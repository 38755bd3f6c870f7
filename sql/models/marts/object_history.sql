-- The full story of one order or service, readable: filter on object_uuid (or kosc_order_ref)
-- and sort by step. `summary` carries the key payload fields of each event in words. A view:
-- it is one row per event and is only ever read for a few objects at a time.

{{ config(materialized='view') }}

with

events as (

    select * from {{ ref('stg_events') }}

),

files as (

    select event_uuid, string_agg(file_label, ', ' order by file_label) as file_labels
    from {{ ref('stg_cri_files') }}
    group by event_uuid

),

refs as (

    select order_uuid, kosc_order_ref, service_uuid from {{ ref('orders') }}

),

creators as (

    select service_uuid, created_by_order_uuid from {{ ref('services') }}

)

select
    events.object_type,
    events.object_uuid,
    coalesce(refs.kosc_order_ref, service_refs.kosc_order_ref) as kosc_order_ref,
    case when events.object_type = 'order' then refs.service_uuid else creators.created_by_order_uuid end
        as related_uuid,
    row_number() over (
        partition by events.object_uuid order by events.business_time, events.creation_date, events.event_uuid
    ) as step,
    events.business_time,
    events.creation_date,
    events.event_type,
    case
        when events.event_type = 'order-submitted' then 'order ref ' || events.kosc_order_ref
        when events.event_type = 'order-rejected' then concat_ws(' ',
            'rejected', events.reject_code, events.reject_subcode, '(' || events.reject_reason || ')',
            events.reject_description)
        when events.event_type = 'order-cancelled' then 'cancelled: ' || events.cancel_reason
        when events.event_type = 'order-appointment-agreed' then concat_ws(' ',
            'slot', coalesce(cast(events.appointment_start as varchar), events.appointment_start_raw),
            '-', coalesce(cast(events.appointment_end as varchar), events.appointment_end_raw, 'open end'))
        when events.event_type = 'order-localloop-desaturation-planned' then 'desaturation ' || events.desaturation_type
        when events.event_type = 'order-completed' then concat_ws(' ',
            'service', events.service_alias, '(' || events.service_uuid || ')')
        when events.event_type = 'order-information-from-provider'
            then concat_ws(': ', events.provider_description, events.message)
        when events.event_type = 'order-info' then concat_ws(' ',
            events.message, case when events.stop_deferred then '[ends the deferral]' end)
        when events.event_type = 'order-cri' then 'report files: ' || files.file_labels
        when events.is_unknown_type then 'unknown event type; data: ' || coalesce(cast(events.data as varchar), 'none')
        else events.message
    end as summary,
    events.event_uuid,
    events.is_event_date_fallback,
    events.is_unknown_type
from events
left join refs on events.object_type = 'order' and events.object_uuid = refs.order_uuid
left join creators on events.object_type = 'service' and events.object_uuid = creators.service_uuid
left join refs as service_refs
    on events.object_type = 'service' and creators.created_by_order_uuid = service_refs.order_uuid
left join files on events.event_uuid = files.event_uuid
