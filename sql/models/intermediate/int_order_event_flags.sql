-- Per order event: dated before the order's first submission, or after the status event that
-- made it final. One home for both rules: `orders` counts them, data_quality_issues lists them.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='order_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

select
    events.event_uuid,
    events.object_uuid as order_uuid,
    coalesce(events.business_time < order_status.submitted_at, false) as is_before_submission,
    coalesce(order_status.is_final and events.business_time > order_status.status_since, false) as is_after_final
from {{ ref('int_object_events') }} as events
inner join {{ ref('int_order_status') }} as order_status on events.object_uuid = order_status.order_uuid
where events.object_type = 'order' and {{ covage.if_changed('events.object_uuid', 'object') }}
