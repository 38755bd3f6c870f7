-- The delivery forecast of every order open at each past cutoff, on a calendar grid (Mondays
-- 00:00 UTC) over the last `forecast_backtest_weeks` weeks: each as it could have been made then,
-- from the events that had reached the API by the cutoff (macros/forecast.sql), so that
-- forecast_calibration checks past forecasts against what happened since.
--
-- Each cutoff is computed once, at the first build whose feed is `forecast_settle_hours` past
-- it (events listed late have come in by then), and never again but on a full refresh; cutoffs
-- that leave the window are deleted. A build computes the cutoffs not stored yet: most builds
-- none, one a week. On a lake (no delete) a table, every cutoff recomputed at each build.

{%- set weeks = var('forecast_backtest_weeks') %}

{{ config(
    materialized='table' if covage.is_lake() else 'incremental',
    incremental_strategy='append',
    post_hook="{% if not covage.is_lake() %}delete from {{ this }} where cutoff < (select min(cutoff) from ("
        ~ "{{ covage.backtest_cutoffs() }}) as window_cutoffs){% endif %}",
) }}

{%- set cutoffs %}
    select grid.cutoff, false as is_now
    from ({{ covage.backtest_cutoffs() }}) as grid
    {% if is_incremental() %}
    where grid.cutoff not in (select cutoff from {{ this }})
    {% endif %}
{%- endset %}

{{ covage.order_forecasts(cutoffs) }}
