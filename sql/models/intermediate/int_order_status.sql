-- Per order: when it was first submitted, its current status (the latest status event in the
-- story's order) and whether that status ends it, and its latest step (the backlog's stage).
-- Status events and final statuses come from the event catalogue (seed event_types).

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='order_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

events as (

    select * from {{ ref('int_object_events') }}
    where object_type = 'order' and {{ covage.if_changed('object_uuid', 'object') }}

),

latest_status as (

    select
        object_uuid as order_uuid,
        status as current_status,
        business_time as status_since,
        is_final_status as is_final
    from (
        select *, row_number() over (partition by object_uuid order by step desc) as recency
        from events
        where status is not null
    ) ranked
    where recency = 1

),

-- the latest event that moved the order (messages, reports and unknown types do not): the
-- backlog's stage
latest_step as (

    select object_uuid as order_uuid, event_type, business_time
    from (
        select *, row_number() over (partition by object_uuid order by step desc) as recency
        from events
        where in_lifecycle
    ) ranked
    where recency = 1

),

submissions as (

    select
        object_uuid as order_uuid,
        min(case when event_type = 'order-submitted' then business_time end) as submitted_at,
        max(business_time) as last_event_at
    from events
    group by object_uuid

)

select
    orders.order_uuid,
    submissions.submitted_at,
    latest_status.current_status,
    latest_status.status_since,
    coalesce(latest_status.is_final, false) as is_final,
    latest_step.event_type as latest_step_type,
    latest_step.business_time as latest_step_at,
    submissions.last_event_at
from (select distinct object_uuid as order_uuid from events) orders
left join submissions on orders.order_uuid = submissions.order_uuid
left join latest_status on orders.order_uuid = latest_status.order_uuid
left join latest_step on orders.order_uuid = latest_step.order_uuid
