"""Assembles the Definitions from each integration's folder: dlt (the events), dbt (the models and
the analysts' copy), reports (the CRI archive), alerts (the sensor), operations (jobs, schedules,
history pruning). Nothing is defined here.

Settings come from the same place as the CLI's (`COVAGE_*` variables, dlt config and secrets,
defaults: the emulator's URL, the DuckDB file under ./data), and reach every asset, check, sensor
and job as one resource, `covage` (dagster_defs/settings.py).
"""

import dagster as dg
from dagster_dlt import DagsterDltResource

from covage_pipeline.settings import Settings, load_settings

from .alerts import build_alert_sensor
from .dbt import build_dbt_assets, build_forecast_check, build_publish_asset, dbt_project, dbt_resource
from .dlt import build_ingestion_assets, build_ingestion_checks
from .operations import DAILY_JOB, INGEST_JOB, build_jobs, build_prune_job, build_schedules
from .reports import build_reports_asset
from .settings import covage_resource

__all__ = ["DAILY_JOB", "INGEST_JOB", "build_definitions"]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    project = dbt_project(settings)
    dbt_assets = build_dbt_assets(project)
    publish = build_publish_asset([key for key in dbt_assets.keys if key.path[0] == "marts"])
    jobs = build_jobs(dbt_assets, publish)
    prune = build_prune_job()
    return dg.Definitions(
        assets=[build_ingestion_assets(settings), build_reports_asset(), dbt_assets, publish],
        asset_checks=[*build_ingestion_checks(settings), build_forecast_check()],
        jobs=[*jobs, prune],
        schedules=build_schedules(settings, jobs, prune),
        sensors=[build_alert_sensor()],
        resources={
            "covage": covage_resource(settings),  # every setting, shown in the UI; each run resolves its own
            "dlt": DagsterDltResource(),
            "dbt": dbt_resource(settings, project),
        },
        executor=dg.in_process_executor,  # "Materialize" in the UI as well
    )
