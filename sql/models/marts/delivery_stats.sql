-- Delivery against the usual promises: of the orders submitted in a month (and overall), how
-- many were completed, and within 7, 14 and 30 days of submission.

with

durations as (

    select * from {{ ref('order_lifecycle_durations') }}
    where submission_month is not null

),

stats as (

    select
        {{ period_and_month() }},
        count(*) as orders_submitted,
        count(lead_time_days) as orders_completed,
        {%- for days in [7, 14, 30] %}
        count(case when lead_time_days <= {{ days }} then 1 end) as completed_within_{{ days }}_days,
        {%- endfor %}
        percentile_cont(0.5) within group (order by lead_time_days) as median_lead_time_days,
        percentile_cont(0.9) within group (order by lead_time_days) as p90_lead_time_days
    from durations
    group by grouping sets ((submission_month), ())

)

select
    *,
    {%- for days in [7, 14, 30] %}
    1.0 * completed_within_{{ days }}_days / orders_submitted as share_completed_within_{{ days }}_days
    {%- if not loop.last %},{% endif %}
    {%- endfor %}
from stats
