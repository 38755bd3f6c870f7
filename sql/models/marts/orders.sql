-- One row per order: its milestones, where it stands, its outcome, and what happened on the way.
-- Current status: the latest status event wins (in the story's order, see int_object_events).
-- A completion after a rejection means the order was requalified: it is completed, and
-- `was_requalified` says so. Milestones and counts are one column per entry of the event
-- catalogue (seed event_types: its columns `milestone` and `counted_as`).

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='order_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

-- depends_on: {{ ref('event_types') }}
{%- set milestones = catalogue_columns('milestone') %}
{%- set counts = catalogue_columns('counted_as') %}

with

events as (

    select * from {{ ref('int_object_events') }}
    where object_type = 'order' and {{ covage.if_changed('object_uuid', 'object') }}

),

order_status as (

    select * from {{ ref('int_order_status') }}
    where {{ covage.if_changed('order_uuid', 'object') }}

),

flags as (

    select
        order_uuid,
        max(case when is_before_submission then 1 else 0 end) = 1 as has_events_before_submission,
        max(case when is_after_final then 1 else 0 end) = 1 as has_events_after_final
    from {{ ref('int_order_event_flags') }}
    where {{ covage.if_changed('order_uuid', 'object') }}
    group by order_uuid

),

milestones as (

    select
        object_uuid as order_uuid,
        max(kosc_order_ref) as kosc_order_ref,
        {%- for column, types in milestones.items() %}
        min(case when event_type in ('{{ types | join("', '") }}') then business_time end) as {{ column }},
        {%- endfor %}
        min(business_time) as first_event_at,
        max(business_time) as last_event_at,
        max(case when event_type = 'order-completed' then service_uuid end) as service_uuid,
        {%- for column, types in counts.items() %}
        count(case when event_type in ('{{ types | join("', '") }}') then 1 end) as {{ column }},
        {%- endfor %}
        count(case when is_report then 1 end) as intervention_reports,
        -- the kind its events reveal (the API names none); two kinds revealed: none
        case when min(reveals_kind) = max(reveals_kind) then max(reveals_kind) end as kind,
        case when min(reveals_kind) = max(reveals_kind) then min(case when reveals_kind is not null then business_time end) end
            as kind_known_at,
        max(case when is_unknown_type then 1 else 0 end) = 1 as has_unknown_events,
        max(case when is_event_date_fallback then 1 else 0 end) = 1 as has_unreadable_event_date,
        max(case when is_event_date_after_creation then 1 else 0 end) = 1 as has_event_date_after_creation,
        max(case when is_appointment_date_invalid then 1 else 0 end) = 1 as has_unreadable_appointment_date,
        count(*) as events
    from events
    group by object_uuid

),

final as (

    select
        milestones.order_uuid,
        milestones.kosc_order_ref,
        milestones.kind,
        milestones.kind_known_at,
        cast(date_trunc('month', milestones.submitted_at) as date) as submission_month,
        {%- for column in milestones %}
        milestones.{{ column }},
        {%- endfor %}
        milestones.first_event_at,
        milestones.last_event_at,
        -- the process-mining case duration: first event to last, whatever they are
        {{ hours_between('milestones.first_event_at', 'milestones.last_event_at') }} as case_duration_hours,
        order_status.current_status,
        order_status.status_since,
        coalesce(order_status.is_final, false) as is_final,
        case when order_status.is_final then order_status.current_status else 'open' end as outcome,
        milestones.completed_at is not null and milestones.rejected_at is not null
            and milestones.completed_at >= milestones.rejected_at as was_requalified,
        milestones.service_uuid,
        {%- for column in counts %}
        milestones.{{ column }},
        {%- endfor %}
        milestones.intervention_reports,
        milestones.events,
        milestones.submitted_at is null as is_missing_submission,
        coalesce(flags.has_events_before_submission, false) as has_events_before_submission,
        coalesce(flags.has_events_after_final, false) as has_events_after_final,
        milestones.has_unknown_events,
        milestones.has_unreadable_event_date,
        milestones.has_event_date_after_creation,
        milestones.has_unreadable_appointment_date
    from milestones
    left join order_status on milestones.order_uuid = order_status.order_uuid
    left join flags on milestones.order_uuid = flags.order_uuid

)

select * from final
