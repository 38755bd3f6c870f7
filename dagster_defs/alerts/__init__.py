"""Support alerts in Dagster: a sensor that wakes after each publication of the marts, records
the new alert candidates and delivers the pending ones (the logic is covage_pipeline.alerts)."""

import dagster as dg

from covage_pipeline import alerts

from ..dbt import ANALYSTS_COPY_KEY
from ..settings import CovageSettings


def build_alert_sensor() -> dg.SensorDefinition:
    @dg.asset_sensor(
        asset_key=ANALYSTS_COPY_KEY,
        name="support_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="After each publication of the marts: one alert per new rejection, saturation, "
        "missed appointment, failed intervention, newly stuck order (COVAGE_ALERT_WEBHOOK_URL).",
    )
    def support_alerts(context: dg.SensorEvaluationContext, asset_event, covage: CovageSettings) -> dg.SkipReason:
        settings = covage.settings()
        try:
            new = alerts.record_new(settings, alerts.current_alerts(settings))
            counts = alerts.deliver(settings, alerts.pending(settings), context.log)
        finally:
            if settings.destination == "spark":  # this process lives on: let the next build in
                from covage_pipeline.spark import release

                release()
        return dg.SkipReason(f"{len(new)} new alerts; delivery: {counts or 'nothing pending'}")

    return support_alerts
