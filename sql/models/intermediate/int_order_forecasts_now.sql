-- The delivery forecast of every order open now: at the feed's latest creation_date, from
-- everything known then (macros/forecast.sql; open_order_forecast's docs for the method).
-- Rebuilt at every build: what it reads is bounded by the learning window.

{{ covage.order_forecasts("select max(creation_date) as cutoff, true as is_now from " ~ ref('stg_events')) }}
