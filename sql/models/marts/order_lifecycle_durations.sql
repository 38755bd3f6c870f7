-- Per order, the duration of each stage of its lifecycle, in hours (and lead time in days).
-- Each stage runs from the first time of its start milestone to the first time of its end
-- milestone (see `orders`); a stage an order never went through is null.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='order_uuid',
    changed_kind='object',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

{%- set stages = var('lifecycle_stages') %}

with

orders as (

    select * from {{ ref('orders') }}
    where {{ covage.if_changed('order_uuid', 'object') }}

),

durations as (

    select
        order_uuid,
        kosc_order_ref,
        submission_month,
        outcome,
        saturated_at is not null as is_saturated,
        localloop_saturations > 0 as is_localloop_saturated,
        network_saturations > 0 as is_network_saturated,
        {%- for stage, bounds in stages.items() %}
        {{ hours_between(bounds[0], bounds[1]) }} as {{ stage }}_hours,
        {%- endfor %}
        {{ hours_between('submitted_at', 'completed_at') }} / 24.0 as lead_time_days
    from orders

)

select * from durations
