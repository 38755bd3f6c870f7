-- Open orders: where each one stands, how old it is and how long since anything happened. Ages
-- are measured at `as_of`, the latest creation_date in the warehouse (the feed's own "now", so a
-- warehouse that has not been refreshed does not make every order look stuck). An order with no
-- event for `stuck_after_days` (a dbt var, default 14) is stuck.

with

orders as (

    select * from {{ ref('orders') }}
    where outcome = 'open'

),

as_of as (

    select max(creation_date) as as_of from {{ ref('stg_events') }}

),

stages as (

    select order_uuid, latest_step_type as event_type, latest_step_at as business_time
    from {{ ref('int_order_status') }}

)

select
    orders.order_uuid,
    orders.kosc_order_ref,
    orders.current_status,
    replace(stages.event_type, 'order-', '') as current_stage,
    stages.business_time as stage_since,
    orders.submitted_at,
    orders.last_event_at,
    as_of.as_of,
    {{ hours_between('orders.submitted_at', 'as_of.as_of') }} / 24.0 as age_days,
    {{ hours_between('orders.last_event_at', 'as_of.as_of') }} / 24.0 as days_since_last_event,
    coalesce({{ hours_between('orders.last_event_at', 'as_of.as_of') }} / 24.0 > {{ var('stuck_after_days') }}, false)
        as is_stuck
from orders
cross join as_of
left join stages on orders.order_uuid = stages.order_uuid
