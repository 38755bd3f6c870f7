-- Appointments and on-site interventions by month of submission and overall: missed, declined
-- and deferred rates per agreed appointment, intervention success rate, appointments per
-- completed order.

with

orders as (

    select *
    from {{ ref('orders') }}
    where submitted_at is not null

),

stats as (

    select
        {{ period_and_month() }},
        cast(sum(appointments_agreed) as bigint) as appointments_agreed,
        cast(sum(appointments_confirmed) as bigint) as appointments_confirmed,
        cast(sum(appointments_missed) as bigint) as appointments_missed,
        cast(sum(appointments_declined) as bigint) as appointments_declined,
        cast(sum(appointments_deferred) as bigint) as appointments_deferred,
        cast(sum(interventions_succeeded) as bigint) as interventions_succeeded,
        cast(sum(interventions_failed) as bigint) as interventions_failed,
        count(case when outcome = 'completed' then 1 end) as orders_completed,
        cast(sum(case when outcome = 'completed' then appointments_agreed else 0 end) as bigint)
            as appointments_of_completed_orders
    from orders
    group by grouping sets ((submission_month), ())

)

select
    period,
    submission_month,
    appointments_agreed,
    appointments_confirmed,
    appointments_missed,
    appointments_declined,
    appointments_deferred,
    1.0 * appointments_missed / nullif(appointments_agreed, 0) as missed_rate,
    1.0 * appointments_declined / nullif(appointments_agreed, 0) as declined_rate,
    1.0 * appointments_deferred / nullif(appointments_agreed, 0) as deferred_rate,
    interventions_succeeded,
    interventions_failed,
    1.0 * interventions_succeeded / nullif(interventions_succeeded + interventions_failed, 0)
        as intervention_success_rate,
    orders_completed,
    1.0 * appointments_of_completed_orders / nullif(orders_completed, 0) as appointments_per_completed_order
from stats
