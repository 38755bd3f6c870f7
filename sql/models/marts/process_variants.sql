-- Process variants ranked by frequency, with their outcome mix and median delivery lead time:
-- the variant table of a process-mining tool, in SQL.

with

orders as (

    select * from {{ ref('order_variants') }}

),

variants as (

    select
        variant,
        max(steps) as steps,
        count(*) as orders,
        count(case when outcome = 'completed' then 1 end) as orders_completed,
        count(case when has_rework then 1 end) as orders_with_rework,
        percentile_cont(0.5) within group (order by lead_time_hours) as median_lead_time_hours,
        min(order_uuid) as example_order_uuid
    from orders
    group by variant

)

select
    row_number() over (order by orders desc, {{ text_order('variant') }}) as variant_rank,
    variant,
    steps,
    orders,
    1.0 * orders / sum(orders) over () as share_of_orders,
    1.0 * sum(orders) over (order by orders desc, {{ text_order('variant') }}) / sum(orders) over () as cumulative_share,
    orders_completed,
    orders_with_rework,
    median_lead_time_hours,
    median_lead_time_hours / 24.0 as median_lead_time_days,
    example_order_uuid
from variants
