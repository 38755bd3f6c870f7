-- Per order: when it was first submitted, its current status (the latest status event in the
-- story's order) and whether that status ends it. Status events and final statuses come from
-- the event catalogue (seed event_types).

with

events as (

    select * from {{ ref('int_object_events') }}
    where object_type = 'order'

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

submissions as (

    select object_uuid as order_uuid, min(business_time) as submitted_at
    from events
    where event_type = 'order-submitted'
    group by object_uuid

)

select
    orders.order_uuid,
    submissions.submitted_at,
    latest_status.current_status,
    latest_status.status_since,
    coalesce(latest_status.is_final, false) as is_final
from (select distinct object_uuid as order_uuid from events) orders
left join submissions on orders.order_uuid = submissions.order_uuid
left join latest_status on orders.order_uuid = latest_status.order_uuid
