-- Rejections by month of submission and overall. `orders_rejected` counts orders whose outcome is
-- rejected (a requalified order ends completed and is counted in `orders_requalified` instead;
-- `orders_ever_rejected` counts both). Rates: rejected / submitted and rejected / finished.

with

orders as (

    select
        *,
        {{ hours_between('submitted_at', 'rejected_at') }} as hours_to_rejection
    from {{ ref('orders') }}
    where submitted_at is not null

),

stats as (

    select
        {{ period_and_month() }},
        count(*) as orders_submitted,
        count(case when is_final then 1 end) as orders_finished,
        count(case when outcome = 'rejected' then 1 end) as orders_rejected,
        count(case when rejected_at is not null then 1 end) as orders_ever_rejected,
        count(case when was_requalified then 1 end) as orders_requalified,
        percentile_cont(0.5) within group (order by hours_to_rejection) as median_hours_to_rejection,
        percentile_cont(0.9) within group (order by hours_to_rejection) as p90_hours_to_rejection
    from orders
    group by grouping sets ((submission_month), ())

)

select
    period,
    submission_month,
    orders_submitted,
    orders_finished,
    orders_rejected,
    orders_ever_rejected,
    orders_requalified,
    1.0 * orders_rejected / orders_submitted as rejection_rate,
    1.0 * orders_rejected / nullif(orders_finished, 0) as rejection_rate_of_finished,
    median_hours_to_rejection,
    p90_hours_to_rejection
from stats
