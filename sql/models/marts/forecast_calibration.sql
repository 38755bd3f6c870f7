-- Were past forecasts right? Of the orders forecast at each weekly cutoff whose p90 date has
-- passed (so the answer is known), the share completed by their p50 and by their p90 date; and
-- the mean absolute error in days of the p50 date against a naive forecast (the median lead time
-- of the orders completed by then, as known then, minus the order's age), for the orders that
-- completed. The forecasts were made once, from what had arrived by each cutoff
-- (int_order_forecasts_past); what happened since is what the warehouse knows now.

with

forecasts as (

    select * from {{ ref('int_order_forecasts_past') }}
    where p90_completed_at is not null

),

as_of as (

    select max(creation_date) as as_of from {{ ref('stg_events') }}

),

orders as (

    select * from {{ ref('orders') }}

),

judged as (

    select
        forecasts.cutoff,
        forecasts.order_uuid,
        orders.outcome,
        orders.completed_at,
        orders.completed_at is not null and orders.completed_at <= forecasts.p50_completed_at as by_p50,
        orders.completed_at is not null and orders.completed_at <= forecasts.p90_completed_at as by_p90,
        abs({{ hours_between('forecasts.p50_completed_at', 'orders.completed_at') }}) / 24.0 as error_days,
        abs({{ hours_between(
            "forecasts.cutoff + greatest(forecasts.naive_lead_time_hours - forecasts.age_hours, 0) * interval '1 hour'",
            'orders.completed_at') }}) / 24.0 as naive_error_days
    from forecasts
    cross join as_of
    inner join orders on forecasts.order_uuid = orders.order_uuid
    -- the answer is known: the p90 date has passed, and the order did not end otherwise
    where forecasts.p90_completed_at <= as_of.as_of and orders.outcome in ('completed', 'open')

),

by_cutoff as (

    select
        cast(cutoff as date) as forecast_date,
        count(*) as orders_forecast,
        count(completed_at) as orders_completed,
        1.0 * count(case when by_p50 then 1 end) / nullif(count(*), 0) as share_completed_by_p50,
        1.0 * count(case when by_p90 then 1 end) / nullif(count(*), 0) as share_completed_by_p90,
        avg(error_days) as mean_abs_error_days,
        avg(case when error_days is not null then naive_error_days end) as naive_mean_abs_error_days
    from judged
    group by cutoff

    union all

    select
        null,
        count(*),
        count(completed_at),
        1.0 * count(case when by_p50 then 1 end) / nullif(count(*), 0),
        1.0 * count(case when by_p90 then 1 end) / nullif(count(*), 0),
        avg(error_days),
        avg(case when error_days is not null then naive_error_days end)
    from judged

)

select
    case when forecast_date is null then 'overall' else 'cutoff' end as period,
    *
from by_cutoff
