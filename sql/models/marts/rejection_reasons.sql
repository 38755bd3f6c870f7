-- The Pareto of rejections: every order-rejected event by code, subcode and reason, ranked by
-- count, with its share and the cumulative share; the code-level figures sit beside each row
-- (code_rejections, code_share, code_rank) so one table answers both levels.

with

rejections as (

    select
        events.reject_code,
        events.reject_subcode,
        events.reject_reason,
        {{ hours_between('orders.submitted_at', 'events.business_time') }} as hours_to_rejection
    from {{ ref('stg_events') }} as events
    left join {{ ref('orders') }} as orders on events.object_uuid = orders.order_uuid
    where events.event_type = 'order-rejected'

),

by_reason as (

    select
        reject_code,
        reject_subcode,
        reject_reason,
        count(*) as rejections,
        percentile_cont(0.5) within group (order by hours_to_rejection) as median_hours_to_rejection
    from rejections
    group by reject_code, reject_subcode, reject_reason

),

ranked as (

    select
        *,
        row_number() over (
            order by rejections desc, {{ text_order('reject_code') }} nulls last,
                {{ text_order('reject_subcode') }} nulls last, {{ text_order('reject_reason') }} nulls last
        ) as pareto_rank,
        cast(sum(rejections) over (partition by reject_code) as bigint) as code_rejections,
        sum(rejections) over () as all_rejections
    from by_reason

)

select
    pareto_rank,
    reject_code,
    reject_subcode,
    reject_reason,
    rejections,
    1.0 * rejections / all_rejections as share_of_rejections,
    1.0 * sum(rejections) over (order by pareto_rank) / all_rejections as cumulative_share,
    median_hours_to_rejection,
    code_rejections,
    1.0 * code_rejections / all_rejections as code_share,
    dense_rank() over (order by code_rejections desc, {{ text_order('reject_code') }} nulls last) as code_rank
from ranked
