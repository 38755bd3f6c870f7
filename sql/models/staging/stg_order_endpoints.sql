-- The endpoints a completed order delivered (order-completed's `endpoints` list), one row each.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='event_uuid',
    changed_kind='event',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

completions as (

    select event_uuid, object_uuid, business_time, data
    from {{ ref('stg_events') }}
    where event_type = 'order-completed' and data is not null and {{ covage.if_changed('event_uuid', 'event') }}

),

endpoints as (

    select
        completions.event_uuid,
        completions.object_uuid as order_uuid,
        completions.business_time as completed_at,
        cast(endpoint.key as integer) as endpoint_position,
        {{ json_text('endpoint.value', 'endpoint_uuid') }} as endpoint_uuid,
        {{ json_text('endpoint.value', 'type') }} as endpoint_type,
        {{ json_text('endpoint.value', 'reference') }} as endpoint_reference,
        endpoint.value as endpoint
    from completions,
        {{ json_each('completions.data', 'endpoint', key='endpoints', array=true) }}

)

select * from endpoints
