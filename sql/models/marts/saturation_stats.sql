-- Saturation by month of submission and overall: how often local-loop and network saturation
-- strike, how often a desaturation is planned and how long that takes, and what saturation costs:
-- the median delivery lead time of saturated orders minus that of unsaturated ones.

with

durations as (

    select * from {{ ref('order_lifecycle_durations') }}
    where submission_month is not null

),

stats as (

    select
        {{ period_and_month() }},
        count(*) as orders_submitted,
        count(case when is_localloop_saturated then 1 end) as orders_localloop_saturated,
        count(case when is_network_saturated then 1 end) as orders_network_saturated,
        count(case when is_saturated then 1 end) as orders_saturated,
        count(case when saturation_to_desaturation_planned_hours is not null then 1 end)
            as orders_desaturation_planned,
        percentile_cont(0.5) within group (order by saturation_to_desaturation_planned_hours)
            as median_hours_to_desaturation_planned,
        percentile_cont(0.5) within group (order by case when is_saturated then lead_time_hours end)
            as median_lead_time_saturated_hours,
        percentile_cont(0.5) within group (order by case when not is_saturated then lead_time_hours end)
            as median_lead_time_unsaturated_hours,
        count(case when is_saturated and lead_time_hours is not null then 1 end) as saturated_completed,
        count(case when not is_saturated and lead_time_hours is not null then 1 end) as unsaturated_completed
    from durations
    group by grouping sets ((submission_month), ())

)

select
    period,
    submission_month,
    orders_submitted,
    orders_localloop_saturated,
    orders_network_saturated,
    orders_saturated,
    1.0 * orders_localloop_saturated / orders_submitted as share_localloop_saturated,
    1.0 * orders_network_saturated / orders_submitted as share_network_saturated,
    1.0 * orders_saturated / orders_submitted as share_saturated,
    orders_desaturation_planned,
    1.0 * orders_desaturation_planned / nullif(orders_saturated, 0) as share_desaturation_planned,
    median_hours_to_desaturation_planned,
    saturated_completed,
    unsaturated_completed,
    median_lead_time_saturated_hours,
    median_lead_time_unsaturated_hours,
    median_lead_time_saturated_hours - median_lead_time_unsaturated_hours as saturation_cost_hours,
    (median_lead_time_saturated_hours - median_lead_time_unsaturated_hours) / 24.0 as saturation_cost_days
from stats
