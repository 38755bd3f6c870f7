"""Assembles the Definitions: assets, checks, jobs, schedules, the alert sensor, resources.

Settings come from the same place as the CLI's (`COVAGE_*` variables, dlt config and secrets,
defaults: the emulator's URL, the DuckDB file under ./data). Schedules are off unless
COVAGE_SCHEDULES=on; the alert sensor is on.
"""

from datetime import timedelta

import dagster as dg
from dagster_dlt import DagsterDltResource

from covage_pipeline import alerts
from covage_pipeline.settings import Settings, load_settings

from .ingestion import EVENTS_KEY, build_ingestion_assets, build_ingestion_checks
from .models import ANALYSTS_COPY_KEY, BuildConfig, build_dbt_assets, build_publish_asset, dbt_project, dbt_resource
from .operations import build_prune_job, single_flight_schedule
from .reports import build_reports_asset
from .warehouse import WAREHOUSE_TAGS

INGEST_JOB = "ingest_and_build"
DAILY_JOB = "daily_full_build"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    project = dbt_project(settings)
    ingestion = build_ingestion_assets(settings)
    dbt_assets = build_dbt_assets(settings, project)
    marts = [key for key in dbt_assets.keys if key.path[0] == "marts"]
    publish = build_publish_asset(settings, marts)
    reports = build_reports_asset(settings)
    freshness = timedelta(minutes=settings.freshness_minutes)

    # everything that depends on new events: the load, the report archive, the models, the copy.
    # In one process, step after step: a step process of its own costs each step the import of
    # dlt, dbt and Dagster (about 5 s) for work that often takes less; the steps share a pool of
    # one writer anyway.
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        # (and what the models read besides the events: the event catalogue)
        selection=dg.AssetSelection.assets(EVENTS_KEY).downstream().upstream(),
        tags=WAREHOUSE_TAGS,
        executor_def=dg.in_process_executor,
        description="Ingest new events, rebuild the models that depend on them, publish the marts.",
    )
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(dbt_assets, publish),
        tags=WAREHOUSE_TAGS,
        executor_def=dg.in_process_executor,
        config=dg.RunConfig(ops={dbt_assets.op.name: BuildConfig(full_refresh=True)}),
        description="Rebuild every model from scratch (incremental ones included), publish the marts.",
    )
    prune_job = build_prune_job(settings.retention_days)
    status = dg.DefaultScheduleStatus.RUNNING if settings.schedules else dg.DefaultScheduleStatus.STOPPED
    schedules = [
        single_flight_schedule(
            "ingest_every_5_minutes",
            ingest_job,
            settings.ingest_cron,
            status,
            "Every five minutes (COVAGE_INGEST_CRON), as the reference recommends polling: ingest what is new, "
            "rebuild the models, publish the marts. Skipped while a run of the job is queued or running.",
        ),
        single_flight_schedule(
            "daily_full_build",
            daily_job,
            settings.daily_cron,
            status,
            "Every night (COVAGE_DAILY_CRON, default 03:00): every model rebuilt from all events, so a fix in "
            "the models reaches the events already built. Skipped while a run of the job is queued or running.",
        ),
        dg.ScheduleDefinition(
            name="prune_history_daily",
            job=prune_job,
            cron_schedule="30 4 * * *",
            default_status=status,
            description="Every night at 04:30: delete finished runs older than COVAGE_RETENTION_DAYS (21).",
        ),
    ]

    @dg.asset_sensor(
        asset_key=ANALYSTS_COPY_KEY,
        name="support_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="After each publication of the marts: one alert per new rejection, saturation, "
        "missed appointment, failed intervention, newly stuck order (COVAGE_ALERT_WEBHOOK_URL).",
    )
    def support_alerts(context: dg.SensorEvaluationContext, asset_event) -> dg.SkipReason:
        new = alerts.record_new(settings, alerts.current_alerts(settings))
        counts = alerts.deliver(settings, alerts.pending(settings), context.log)
        return dg.SkipReason(f"{len(new)} new alerts; delivery: {counts or 'nothing pending'}")

    return dg.Definitions(
        assets=[ingestion, reports, dbt_assets, publish],
        asset_checks=build_ingestion_checks(settings, freshness),
        jobs=[ingest_job, daily_job, prune_job],
        schedules=schedules,
        sensors=[support_alerts],
        resources={"dlt": DagsterDltResource(), "dbt": dbt_resource(settings, project)},
        executor=dg.in_process_executor,  # "Materialize" in the UI as well
    )
