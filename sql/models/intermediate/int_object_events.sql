-- Every event of every order and service, in the order of its object's story, with what the
-- catalogue says of its type and a one-line summary in words: the one place that orders events
-- and describes them (the marts, object_history and `covage history` read it).
-- Order: business time; at the same instant the lifecycle's own order (the catalogue's
-- lifecycle_rank: a provider's batch of acknowledged and running), then creation_date, then event_uuid.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='object_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

events as (

    select * from {{ ref('stg_events') }}
    where {{ covage.if_changed('object_uuid', 'object') }}

),

catalogue as (

    select * from {{ ref('event_types') }}

),

files as (

    select event_uuid, {{ string_agg("file_label", "', '", "file_label") }} as file_labels
    from {{ ref('stg_cri_files') }}
    where {{ covage.if_changed('order_uuid', 'object') }}
    group by event_uuid

),

described as (

    select
        events.event_uuid,
        events.object_type,
        events.object_uuid,
        events.event_type,
        events.business_time,
        events.creation_date,
        events.kosc_order_ref,
        events.service_uuid,
        events.is_report,
        events.is_unknown_type,
        events.is_event_date_fallback,
        events.is_event_date_after_creation,
        events.is_appointment_date_invalid,
        catalogue.status,
        coalesce(catalogue.is_final, false) as is_final_status,
        catalogue.lifecycle_rank,
        catalogue.milestone,
        coalesce(catalogue.in_lifecycle, false) and not events.is_report as in_lifecycle,
        -- a report is a Fiber Pro event, whatever its type is called
        coalesce(catalogue.reveals_kind, case when events.is_report then 'Fiber Pro' end) as reveals_kind,
        catalogue.description as type_description,
        case
            when events.event_type = 'order-submitted' then 'order ref ' || events.kosc_order_ref
            when events.event_type = 'order-rejected' then concat_ws(' ',
                'rejected', events.reject_code, events.reject_subcode, '(' || events.reject_reason || ')',
                events.reject_description)
            when events.event_type = 'order-cancelled' then 'cancelled: ' || events.cancel_reason
            when events.event_type = 'order-appointment-agreed' then concat_ws(' ',
                'slot', coalesce(cast(events.appointment_start as {{ dbt.type_string() }}), events.appointment_start_raw),
                '-', coalesce(cast(events.appointment_end as {{ dbt.type_string() }}), events.appointment_end_raw, 'open end'))
            when events.event_type = 'order-localloop-desaturation-planned'
                then 'desaturation ' || events.desaturation_type
            when events.event_type = 'order-completed' then concat_ws(' ',
                'service', events.service_alias, '(' || events.service_uuid || ')')
            when events.event_type = 'order-information-from-provider'
                then concat_ws(': ', events.provider_description, events.message)
            when events.event_type = 'order-info' then concat_ws(' ',
                events.message, case when events.stop_deferred then '[ends the deferral]' end)
            when events.is_report then 'report files: ' || files.file_labels
            when events.is_unknown_type
                then 'unknown event type; data: ' || coalesce(cast(events.data as {{ dbt.type_string() }}), 'none')
            else events.message
        end as summary
    from events
    left join catalogue on events.event_type = catalogue.event_type
    left join files on events.event_uuid = files.event_uuid

)

select
    *,
    -- simultaneous events (a provider batch) in the lifecycle's own order, then as they arrived
    row_number() over (
        partition by object_uuid order by business_time, lifecycle_rank nulls last, creation_date, event_uuid
    ) as step
from described
