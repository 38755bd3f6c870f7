-- The full story of one order or service, readable: filter on object_uuid (or kosc_order_ref)
-- and sort by step. `summary` carries the key payload fields of each event in words
-- (int_object_events writes it). A view: it is only ever read for a few objects at a time.

{{ config(materialized='view') }}

with

events as (

    select * from {{ ref('int_object_events') }}

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
    events.step,
    events.business_time,
    events.creation_date,
    events.event_type,
    events.summary,
    events.event_uuid,
    events.is_event_date_fallback,
    events.is_unknown_type
from events
left join refs on events.object_type = 'order' and events.object_uuid = refs.order_uuid
left join creators on events.object_type = 'service' and events.object_uuid = creators.service_uuid
left join refs as service_refs
    on events.object_type = 'service' and creators.created_by_order_uuid = service_refs.order_uuid
