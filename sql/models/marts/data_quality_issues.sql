-- Every event the data-quality rules flag, one row per (event, issue). Issues:
--   unknown_event_type          a type the reference does not document (kept, not dropped)
--   unreadable_event_date       event_date had no sane reading: business time is creation_date
--   malformed_event_date        event_date was read humanely, not in the normal form (raw kept)
--   unreadable_appointment_date an appointment slot bound with no sane reading
--   event_date_after_creation   event_date later than creation_date (a clock ahead at the source)
--   before_submission           an order event dated before the order's first submission
--   after_final_state           an order event dated after the status event that made it final
--   negative_stage_duration     the event ending a stage of the lifecycle dated before the one
--                               starting it: lifecycle_stats leaves the stage out

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='object_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

events as (

    select
        events.*,
        coalesce(flags.is_before_submission, false) as is_before_submission,
        coalesce(flags.is_after_final, false) as is_after_final
    from {{ ref('stg_events') }} as events
    left join {{ ref('int_order_event_flags') }} as flags on events.event_uuid = flags.event_uuid
    where {{ covage.if_changed('events.object_uuid', 'object') }}

),

negative_stages as (

    {%- for stage, bounds in var('lifecycle_stages').items() %}
    select story.event_uuid
    from {{ ref('orders') }} as orders
    inner join {{ ref('int_object_events') }} as story
        on story.object_uuid = orders.order_uuid
        and story.milestone = '{{ bounds[1] }}'
        and story.business_time = orders.{{ bounds[1] }}
    where orders.{{ bounds[1] }} < orders.{{ bounds[0] }} and {{ covage.if_changed('orders.order_uuid', 'object') }}
    {% if not loop.last %}union{% endif %}
    {%- endfor %}

),

issues as (

    select event_uuid, 'unknown_event_type' as issue from events where is_unknown_type
    union all
    select event_uuid, 'unreadable_event_date' from events where is_event_date_fallback
    union all
    select event_uuid, 'malformed_event_date' from events
    where event_date_raw is not null and not is_event_date_fallback
    union all
    select event_uuid, 'unreadable_appointment_date' from events where is_appointment_date_invalid
    union all
    select event_uuid, 'event_date_after_creation' from events where is_event_date_after_creation
    union all
    select event_uuid, 'before_submission' from events where is_before_submission
    union all
    select event_uuid, 'after_final_state' from events where is_after_final
    union all
    select event_uuid, 'negative_stage_duration' from negative_stages

)

select
    issues.issue,
    events.event_uuid,
    events.object_type,
    events.object_uuid,
    events.event_type,
    events.business_time,
    events.creation_date,
    events.event_date_raw
from issues
inner join events on issues.event_uuid = events.event_uuid
