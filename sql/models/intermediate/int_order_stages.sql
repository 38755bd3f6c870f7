-- Each stretch of an order's life in one status (submitted, acknowledged, running, requalified),
-- from the status event that began it to the next status event, in the story's order
-- (int_object_events); with how and when the order ended, and its first saturation. The
-- forecast learns from these stretches.

with

status_events as (

    select
        object_uuid as order_uuid,
        status,
        is_final_status,
        business_time,
        lead(business_time) over (partition by object_uuid order by step) as next_status_at
    from {{ ref('int_object_events') }}
    where object_type = 'order' and status is not null

),

orders as (

    select * from {{ ref('orders') }}

)

select
    status_events.order_uuid,
    status_events.status as stage,
    status_events.business_time as entered_at,
    status_events.next_status_at as left_at,
    orders.submitted_at,
    orders.saturated_at,
    orders.kind,
    orders.kind_known_at,
    orders.outcome,
    case when orders.is_final then orders.status_since end as ended_at
from status_events
inner join orders on status_events.order_uuid = orders.order_uuid
where not status_events.is_final_status
