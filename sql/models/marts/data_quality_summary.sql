-- How many events and objects each data-quality issue touches, against all events.

with

issues as (

    select * from {{ ref('data_quality_issues') }}

),

totals as (

    select count(*) as all_events from {{ ref('stg_events') }}

)

select
    issues.issue,
    count(*) as events,
    count(distinct issues.object_uuid) as objects,
    1.0 * count(*) / max(totals.all_events) as share_of_events,
    min(issues.business_time) as first_seen,
    max(issues.business_time) as last_seen
from issues
cross join totals
group by issues.issue
