-- Count, mean, median, p90 and p95 of each stage duration, by month of submission and overall
-- (period = 'overall', submission_month null). Orders without a submission are left out, and so
-- is a negative duration (a stage ending before it started: an event dated before the one it
-- follows), which data_quality_issues counts as negative_stage_duration.

{%- set stages = var('lifecycle_stages') %}

with

durations as (

    select * from {{ ref('order_lifecycle_durations') }}
    where submission_month is not null

),

stage_durations as (

    {%- for stage in stages %}
    select submission_month, '{{ stage }}' as stage, {{ stage }}_hours as hours
    from durations
    where {{ stage }}_hours >= 0
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

stats as (

    select
        {{ period_and_month() }},
        stage,
        count(*) as orders,
        avg(hours) as mean_hours,
        percentile_cont(0.5) within group (order by hours) as median_hours,
        percentile_cont(0.9) within group (order by hours) as p90_hours,
        percentile_cont(0.95) within group (order by hours) as p95_hours
    from stage_durations
    group by grouping sets ((submission_month, stage), (stage))

)

select * from stats
