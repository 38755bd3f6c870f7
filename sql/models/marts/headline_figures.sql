-- The few numbers an operations lead asks for first, one per row, read from the other marts
-- (`covage headlines`, the Dagster analysts' copy and the demo print them; nothing computes them
-- elsewhere). `unit` says how to read `value`: count, share (0-1), days, events; `detail` names
-- what a figure is about (the top reject code).

with

orders as (

    select
        count(*) as orders,
        count(case when outcome = 'open' then 1 end) as open_orders,
        count(case when outcome = 'completed' then 1 end) as completed,
        count(case when outcome = 'rejected' then 1 end) as rejected,
        count(case when outcome in ('cancelled', 'dropped') then 1 end) as cancelled
    from {{ ref('orders') }}

),

delivery as (select * from {{ ref('delivery_stats') }} where period = 'overall'),
rejection as (select * from {{ ref('rejection_stats') }} where period = 'overall'),
saturation as (select * from {{ ref('saturation_stats') }} where period = 'overall'),
appointments as (select * from {{ ref('appointment_stats') }} where period = 'overall'),

top_code as (

    select reject_code, code_share from {{ ref('rejection_reasons') }} where code_rank = 1 limit 1

),

service_months as (

    select
        active_at_month_end,
        churn_rate,
        row_number() over (order by month_start desc) as months_back
    from {{ ref('service_base_monthly') }}

),

backlog as (

    select count(*) as open_orders, count(case when is_stuck then 1 end) as stuck, max(age_days) as oldest
    from {{ ref('backlog') }}

),

forecast as (

    select count(case when is_forecast_late then 1 end) as late from {{ ref('open_order_forecast') }}

),

calibration as (select * from {{ ref('forecast_calibration') }} where period = 'overall'),

figures as (

    select 1 as position, 'Orders' as section, 'orders' as figure, cast(orders as {{ type_double() }}) as value,
        'count' as unit, cast(null as {{ dbt.type_string() }}) as detail from orders
    union all select 2, 'Orders', 'open', open_orders, 'count', null from orders
    union all select 3, 'Orders', 'completed', completed, 'count', null from orders
    union all select 4, 'Orders', 'rejected', rejected, 'count', null from orders
    union all select 5, 'Orders', 'cancelled or dropped', cancelled, 'count', null from orders
    union all select 10, 'Delivery', 'median lead time', median_lead_time_days, 'days', null from delivery
    union all select 11, 'Delivery', 'p90 lead time', p90_lead_time_days, 'days', null from delivery
    union all select 12, 'Delivery', 'completed within 7 days', share_completed_within_7_days, 'share', null
        from delivery
    union all select 13, 'Delivery', 'completed within 14 days', share_completed_within_14_days, 'share', null
        from delivery
    union all select 14, 'Delivery', 'completed within 30 days', share_completed_within_30_days, 'share', null
        from delivery
    union all select 20, 'Rejections', 'rejection rate (of submitted)', rejection_rate, 'share', null from rejection
    union all select 21, 'Rejections', 'requalified after a rejection', orders_requalified, 'count', null
        from rejection
    union all select 22, 'Rejections', 'top reject code', code_share, 'share', reject_code from top_code
    union all select 30, 'Saturation', 'local-loop saturated', share_localloop_saturated, 'share', null
        from saturation
    union all select 31, 'Saturation', 'network saturated', share_network_saturated, 'share', null from saturation
    union all select 32, 'Saturation', 'cost (median lead time, saturated - not)', saturation_cost_days, 'days', null
        from saturation
    union all select 40, 'Appointments', 'missed rate', missed_rate, 'share', null from appointments
    union all select 41, 'Appointments', 'intervention success rate', intervention_success_rate, 'share', null
        from appointments
    union all select 50, 'Services', 'active base (latest month end)', active_at_month_end, 'count', null
        from service_months where months_back = 1
    union all select 51, 'Services', 'churn last full month', churn_rate, 'share', null
        from service_months where months_back = 2
    union all select 60, 'Backlog', 'open orders', open_orders, 'count', null from backlog
    union all select 61, 'Backlog', 'stuck', stuck, 'count', null from backlog
    union all select 62, 'Backlog', 'oldest open order', oldest, 'days', null from backlog
    union all select 63, 'Backlog', 'forecast late (p50 past {{ var("delivery_target_days") }} days)', late, 'count', null
        from forecast
    union all select 64, 'Backlog', 'past forecasts met by their p90 date', share_completed_by_p90, 'share', null
        from calibration
    union all select 70 + row_number() over (order by events desc, issue), 'Data quality', replace(issue, '_', ' '),
        events, 'events', null
        from {{ ref('data_quality_summary') }}

)

select * from figures
