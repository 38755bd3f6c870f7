-- One row per service: the order that created it (its first completion naming the service), the
-- order that ended it (a later completion naming it: a Terminate order), and its life dates.
-- Status: pending (never activated), active, terminated or slammed (taken over by another
-- operator); the first of termination and slam ends the service.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='service_uuid',
    changed_kind='service',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

events as (

    select * from {{ ref('stg_events') }}
    -- a service's rows: its own events, and the completions that name it
    where {{ covage.if_changed('object_uuid', 'service') }} or {{ covage.if_changed('service_uuid', 'service') }}

),

completions as (

    select
        service_uuid,
        object_uuid as order_uuid,
        service_alias,
        business_time,
        row_number() over (
            partition by service_uuid order by business_time, creation_date, event_uuid
        ) as completion_rank,
        count(*) over (partition by service_uuid) as completions
    from events
    where event_type = 'order-completed' and service_uuid is not null

),

created as (

    select service_uuid, order_uuid as created_by_order_uuid, service_alias, business_time as created_at
    from completions
    where completion_rank = 1

),

ended_by_order as (

    select service_uuid, order_uuid as ended_by_order_uuid
    from completions
    where completion_rank = completions and completions > 1

),

life as (

    select
        object_uuid as service_uuid,
        min(case when event_type = 'service-activated' then business_time end) as activated_at,
        min(case when event_type = 'service-terminated' then business_time end) as terminated_at,
        min(case when event_type = 'service-slammed' then business_time end) as slammed_at,
        max(case when event_type in ('service-modified', 'service-updated') then business_time end)
            as last_modified_at,
        count(case when event_type in ('service-modified', 'service-updated') then 1 end) as modifications,
        count(case when event_type = 'service-info' then 1 end) as info_messages,
        max(case when is_unknown_type then 1 else 0 end) = 1 as has_unknown_events,
        count(*) as events
    from events
    where object_type = 'service'
    group by object_uuid

),

all_services as (

    select service_uuid from created
    union
    select service_uuid from life

),

final as (

    select
        all_services.service_uuid,
        created.service_alias,
        created.created_by_order_uuid,
        created.created_at,
        ended_by_order.ended_by_order_uuid,
        life.activated_at,
        life.terminated_at,
        life.slammed_at,
        life.last_modified_at,
        case
            when life.terminated_at is null then life.slammed_at
            when life.slammed_at is null then life.terminated_at
            when life.slammed_at < life.terminated_at then life.slammed_at
            else life.terminated_at
        end as ended_at,
        case
            when life.slammed_at is not null and (life.terminated_at is null or life.slammed_at < life.terminated_at)
                then 'slammed'
            when life.terminated_at is not null then 'terminated'
            when life.activated_at is not null then 'active'
            else 'pending'
        end as status,
        coalesce(life.modifications, 0) as modifications,
        coalesce(life.info_messages, 0) as info_messages,
        coalesce(life.has_unknown_events, false) as has_unknown_events,
        coalesce(life.events, 0) as events
    from all_services
    left join created on all_services.service_uuid = created.service_uuid
    left join ended_by_order on all_services.service_uuid = ended_by_order.service_uuid
    left join life on all_services.service_uuid = life.service_uuid

)

select * from final
