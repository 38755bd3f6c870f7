-- The live service base month by month: services active at the start and end of each month,
-- activations, terminations and slams in the month, and churn = (terminations + slams) / active
-- at the start of the month. Months run from the first activation to the last month with events.

with

services as (

    select * from {{ ref('services') }}
    where activated_at is not null

),

bounds as (

    select
        (select min(date_trunc('month', activated_at)) from services) as first_month,
        (select max(date_trunc('month', business_time)) from {{ ref('stg_events') }}) as last_month

),

months as (

    select cast(month_start as date) as month_start
    from bounds,
        {{ series('bounds.first_month', 'bounds.last_month', 'series', 'month_start', step="interval '1 month'") }}

),

base as (

    select
        months.month_start,
        count(case when services.activated_at < months.month_start
            and (services.ended_at is null or services.ended_at >= months.month_start) then 1 end)
            as active_at_month_start,
        count(case when services.activated_at < months.month_start + interval '1 month'
            and (services.ended_at is null or services.ended_at >= months.month_start + interval '1 month')
            then 1 end) as active_at_month_end,
        count(case when services.activated_at >= months.month_start
            and services.activated_at < months.month_start + interval '1 month' then 1 end) as activations,
        count(case when services.status = 'terminated' and services.ended_at >= months.month_start
            and services.ended_at < months.month_start + interval '1 month' then 1 end) as terminations,
        count(case when services.status = 'slammed' and services.ended_at >= months.month_start
            and services.ended_at < months.month_start + interval '1 month' then 1 end) as slams
    from months
    cross join services
    group by months.month_start

)

select
    month_start,
    active_at_month_start,
    activations,
    terminations,
    slams,
    active_at_month_end,
    1.0 * (terminations + slams) / nullif(active_at_month_start, 0) as churn_rate
from base
