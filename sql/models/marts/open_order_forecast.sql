-- When will each open order be delivered: the forecast at the feed's own now (see the docs in
-- forecast.yml for the method and its limits).

select
    forecasts.order_uuid,
    orders.kosc_order_ref,
    forecasts.kind,
    forecasts.stage,
    forecasts.stage_since,
    forecasts.hours_in_stage / 24.0 as days_in_stage,
    forecasts.age_hours / 24.0 as age_days,
    forecasts.is_saturated,
    forecasts.cutoff as forecast_at,
    forecasts.p50_completed_at,
    forecasts.p90_completed_at,
    forecasts.appointment_start,
    forecasts.appointment_start is not null as uses_appointment,
    forecasts.probability_not_completed,
    forecasts.compared_with,
    forecasts.comparable_orders,
    forecasts.completed_orders,
    coalesce({{ hours_between('orders.submitted_at', 'forecasts.p50_completed_at') }} / 24.0
        > {{ var('delivery_target_days') }}, false) as is_forecast_late
from {{ ref('int_order_forecasts_now') }} as forecasts
inner join {{ ref('orders') }} as orders on forecasts.order_uuid = orders.order_uuid
