-- One row per order: its milestones, where it stands, its outcome, and what happened on the way.
-- Current status: the latest status event wins (business time, then creation_date, then
-- event_uuid). A completion after a rejection means the order was requalified: it is completed,
-- and `was_requalified` says so.

with

events as (

    select * from {{ ref('stg_events') }}
    where object_type = 'order'

),

status_events as (

    select
        object_uuid as order_uuid,
        business_time,
        creation_date,
        event_uuid,
        case event_type
            when 'order-submitted' then 'submitted'
            when 'order-acknowledged' then 'acknowledged'
            when 'order-running' then 'running'
            when 'order-requalified' then 'requalified'
            when 'order-rejected' then 'rejected'
            when 'order-completed' then 'completed'
            when 'order-cancelled' then 'cancelled'
            when 'order-dropped' then 'dropped'
        end as status
    from events
    where event_type in (
        'order-submitted', 'order-acknowledged', 'order-running', 'order-requalified',
        'order-rejected', 'order-completed', 'order-cancelled', 'order-dropped'
    )

),

latest_status as (

    select order_uuid, status as current_status, business_time as status_since
    from (
        select
            order_uuid,
            status,
            business_time,
            row_number() over (
                partition by order_uuid order by business_time desc, creation_date desc, event_uuid desc
            ) as recency
        from status_events
    ) ranked
    where recency = 1

),

milestones as (

    select
        object_uuid as order_uuid,
        max(kosc_order_ref) as kosc_order_ref,
        min(case when event_type = 'order-submitted' then business_time end) as submitted_at,
        min(case when event_type = 'order-acknowledged' then business_time end) as acknowledged_at,
        min(case when event_type = 'order-running' then business_time end) as running_at,
        min(case when event_type = 'order-appointment-agreed' then business_time end) as appointment_agreed_at,
        min(case when event_type = 'order-appointment-confirmed' then business_time end)
            as appointment_confirmed_at,
        min(case when event_type = 'order-completed' then business_time end) as completed_at,
        min(case when event_type = 'order-rejected' then business_time end) as rejected_at,
        min(case when event_type = 'order-cancelled' then business_time end) as cancelled_at,
        min(case when event_type = 'order-dropped' then business_time end) as dropped_at,
        min(case when event_type in ('order-localloop-saturation', 'order-network-saturation') then business_time end)
            as saturated_at,
        min(case
            when event_type in ('order-localloop-desaturation-planned', 'order-network-desaturation-planned')
                then business_time
        end) as desaturation_planned_at,
        min(case
            when event_type in ('order-on-site-intervention-succeeded', 'order-on-site-intervention-failed')
                then business_time
        end) as intervention_result_at,
        max(business_time) as last_event_at,
        max(case when event_type = 'order-completed' then service_uuid end) as service_uuid,
        count(case when event_type = 'order-appointment-agreed' then 1 end) as appointments_agreed,
        count(case when event_type = 'order-appointment-confirmed' then 1 end) as appointments_confirmed,
        count(case when event_type = 'order-appointment-declined' then 1 end) as appointments_declined,
        count(case when event_type = 'order-appointment-missed' then 1 end) as appointments_missed,
        count(case when event_type = 'order-appointment-deferred' then 1 end) as appointments_deferred,
        count(case when event_type = 'order-localloop-saturation' then 1 end) as localloop_saturations,
        count(case when event_type = 'order-network-saturation' then 1 end) as network_saturations,
        count(case when event_type = 'order-on-site-intervention-succeeded' then 1 end)
            as interventions_succeeded,
        count(case when event_type = 'order-on-site-intervention-failed' then 1 end) as interventions_failed,
        count(case when event_type = 'order-info' then 1 end) as info_messages,
        count(case when event_type = 'order-information-from-provider' then 1 end) as provider_messages,
        count(case when event_type = 'order-cri' then 1 end) as intervention_reports,
        count(case when event_type = 'order-submitted' then 1 end) as submissions,
        count(case when event_type = 'order-requalified' then 1 end) as requalifications,
        max(case when is_unknown_type then 1 else 0 end) = 1 as has_unknown_events,
        max(case when is_event_date_fallback then 1 else 0 end) = 1 as has_unreadable_event_date,
        max(case when is_event_date_after_creation then 1 else 0 end) = 1 as has_event_date_after_creation,
        max(case when is_appointment_date_invalid then 1 else 0 end) = 1 as has_unreadable_appointment_date,
        count(*) as events
    from events
    group by object_uuid

),

out_of_order as (

    -- events dated before the order's first submission, or after the status event that made it final
    select
        events.object_uuid as order_uuid,
        max(case when events.business_time < milestones.submitted_at then 1 else 0 end) = 1
            as has_events_before_submission,
        max(case
            when latest_status.current_status in ('completed', 'rejected', 'cancelled', 'dropped')
                and events.business_time > latest_status.status_since then 1 else 0
        end) = 1 as has_events_after_final
    from events
    inner join milestones on events.object_uuid = milestones.order_uuid
    left join latest_status on events.object_uuid = latest_status.order_uuid
    group by events.object_uuid

),

final as (

    select
        milestones.order_uuid,
        milestones.kosc_order_ref,
        milestones.submitted_at,
        cast(date_trunc('month', milestones.submitted_at) as date) as submission_month,
        milestones.acknowledged_at,
        milestones.running_at,
        milestones.appointment_agreed_at,
        milestones.appointment_confirmed_at,
        milestones.completed_at,
        milestones.rejected_at,
        milestones.cancelled_at,
        milestones.dropped_at,
        milestones.saturated_at,
        milestones.desaturation_planned_at,
        milestones.intervention_result_at,
        milestones.last_event_at,
        latest_status.current_status,
        latest_status.status_since,
        coalesce(latest_status.current_status in ('completed', 'rejected', 'cancelled', 'dropped'), false)
            as is_final,
        case
            when latest_status.current_status in ('completed', 'rejected', 'cancelled', 'dropped')
                then latest_status.current_status
            else 'open'
        end as outcome,
        milestones.completed_at is not null and milestones.rejected_at is not null
            and milestones.completed_at >= milestones.rejected_at as was_requalified,
        milestones.service_uuid,
        milestones.appointments_agreed,
        milestones.appointments_confirmed,
        milestones.appointments_declined,
        milestones.appointments_missed,
        milestones.appointments_deferred,
        milestones.localloop_saturations,
        milestones.network_saturations,
        milestones.interventions_succeeded,
        milestones.interventions_failed,
        milestones.info_messages,
        milestones.provider_messages,
        milestones.intervention_reports,
        milestones.requalifications,
        milestones.submissions,
        milestones.events,
        milestones.submitted_at is null as is_missing_submission,
        out_of_order.has_events_before_submission,
        out_of_order.has_events_after_final,
        milestones.has_unknown_events,
        milestones.has_unreadable_event_date,
        milestones.has_event_date_after_creation,
        milestones.has_unreadable_appointment_date
    from milestones
    left join latest_status on milestones.order_uuid = latest_status.order_uuid
    left join out_of_order on milestones.order_uuid = out_of_order.order_uuid

)

select * from final
