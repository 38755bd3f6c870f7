-- Every situation that deserves a support alert, as the marts stand now: one row per event whose
-- type raises one (the catalogue's `alert_kind`: rejections, saturations, missed appointments,
-- failed interventions) and per order stuck since its last event. `alert_id` says why an alert
-- is never raised twice: the event, or the order and the start of its silence. Delivery (and
-- remembering what was sent) is covage_pipeline/alerts.py.

with

alerting_events as (

    select
        catalogue.alert_kind || ':' || events.event_uuid as alert_id,
        catalogue.alert_kind as kind,
        events.object_uuid as order_uuid,
        history.kosc_order_ref,
        events.event_uuid,
        events.business_time as occurred_at,
        events.event_type || ' on order ' || coalesce(history.kosc_order_ref, events.object_uuid)
            || coalesce(': ' || events.summary, '') as message
    from {{ ref('int_object_events') }} as events
    inner join {{ ref('event_types') }} as catalogue on events.event_type = catalogue.event_type
    left join {{ ref('orders') }} as history on events.object_uuid = history.order_uuid
    where events.object_type = 'order' and catalogue.alert_kind is not null

),

stuck_orders as (

    select
        -- once per stuck spell: a new event and a new silence make a new alert
        'stuck:' || order_uuid || ':' || cast(last_event_at as {{ dbt.type_string() }}) as alert_id,
        'stuck_order' as kind,
        order_uuid,
        kosc_order_ref,
        cast(null as {{ dbt.type_string() }}) as event_uuid,
        last_event_at as occurred_at,
        'order ' || coalesce(kosc_order_ref, order_uuid) || ' stuck at ' || coalesce(current_stage, 'no stage')
            || ': no event for ' || {{ one_decimal('days_since_last_event') }} || ' days' as message
    from {{ ref('backlog') }}
    where is_stuck

)

select * from alerting_events
union all
select * from stuck_orders
