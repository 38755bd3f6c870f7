-- Per order, its process variant as process-mining tools define it: the ordered sequence of its
-- lifecycle event types (message-only events and unknown types left out), and its rework: stages
-- that occurred more than once (several appointments, a re-submission, a second running...).

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='order_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

steps as (

    select
        object_uuid as order_uuid,
        replace(event_type, 'order-', '') as step,
        step as position
    from {{ ref('int_object_events') }}
    where object_type = 'order' and in_lifecycle and {{ covage.if_changed('object_uuid', 'object') }}

),

variants as (

    select
        order_uuid,
        {{ string_agg("step", "' > '", "position") }} as variant,
        count(*) as steps
    from steps
    group by order_uuid

),

repeats as (

    select order_uuid, {{ string_agg("step || ' x' || cast(times as " ~ dbt.type_string() ~ ")", "', '", "step") }} as repeated_steps
    from (
        select order_uuid, step, count(*) as times
        from steps
        group by order_uuid, step
        having count(*) > 1
    ) repeated
    group by order_uuid

)

select
    variants.order_uuid,
    variants.variant,
    variants.steps,
    orders.outcome,
    {{ hours_between('orders.submitted_at', 'orders.completed_at') }} as lead_time_hours,
    repeats.repeated_steps,
    repeats.order_uuid is not null as has_rework,
    orders.submissions > 1 as was_resubmitted,
    orders.appointments_agreed > 1 as had_several_appointments
from variants
inner join {{ ref('orders') }} as orders on variants.order_uuid = orders.order_uuid
left join repeats on variants.order_uuid = repeats.order_uuid
