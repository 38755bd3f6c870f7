-- How late events reach the API: lateness = creation_date - event_date, in hours, by event type
-- and overall (event_type null). Events whose event_date was unreadable are left out.

with

events as (

    select event_type, {{ hours_between('event_date', 'creation_date') }} as lateness_hours
    from {{ ref('stg_events') }}
    where event_date is not null

)

select
    case when grouping(event_type) = 1 then 'overall' else 'event_type' end as grain,
    event_type,
    count(*) as events,
    avg(lateness_hours) as mean_lateness_hours,
    percentile_cont(0.5) within group (order by lateness_hours) as median_lateness_hours,
    percentile_cont(0.9) within group (order by lateness_hours) as p90_lateness_hours,
    percentile_cont(0.99) within group (order by lateness_hours) as p99_lateness_hours,
    max(lateness_hours) as max_lateness_hours,
    1.0 * count(case when lateness_hours > 1 then 1 end) / count(*) as share_later_than_1_hour,
    1.0 * count(case when lateness_hours > 24 then 1 end) / count(*) as share_later_than_1_day
from events
group by grouping sets ((event_type), ())
