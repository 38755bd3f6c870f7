"""The jobs and schedules, and keeping Dagster itself small over months: schedules that never pile
runs up, and history pruned.

A tick never queues behind a run of the same job (it is skipped, with the reason shown in the
UI): a queue of identical runs would only re-read the same new events, one after the other, and
grow whenever a run lasts longer than the cron's period. Run history is pruned by a daily job
(Dagster's own `retention` settings, in the shipped dagster.yaml, only cover ticks).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from covage_pipeline.settings import Settings

from .dbt import BuildConfig
from .dlt import EVENTS_KEY
from .settings import CovageSettings
from .warehouse import WAREHOUSE_TAGS

INGEST_JOB = "ingest_and_build"
DAILY_JOB = "daily_full_build"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
PRUNE_JOB = "prune_history"


def skip_reason(instance: dg.DagsterInstance, job_name: str) -> dg.SkipReason | None:
    """Why a tick of `job_name` should not start a run now (one is queued or running), else None."""
    active = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE), limit=1)
    if not active:
        return None
    run = active[0].dagster_run
    return dg.SkipReason(
        f"Run {run.run_id[:8]} of {job_name} is {run.status.value.lower()}: this tick is skipped, "
        "the next one takes whatever is new by then (a queue of identical runs would only grow)."
    )


def single_flight_schedule(
    name: str, job: dg.UnresolvedAssetJobDefinition, cron: str, status: dg.DefaultScheduleStatus, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, job=job, cron_schedule=cron, default_status=status, description=description)
    def _schedule(context: dg.ScheduleEvaluationContext):
        return skip_reason(context.instance, job.name) or dg.RunRequest()

    return _schedule


def prune_history(instance: dg.DagsterInstance, keep_days: float, current_run_id: str | None = None) -> int:
    """Deletes the finished runs older than `keep_days`, with their event logs and captured output."""
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    deleted = 0
    while True:
        records = instance.get_run_records(filters=dg.RunsFilter(created_before=cutoff), limit=200)
        stale = [r for r in records if r.dagster_run.status in FINISHED and r.dagster_run.run_id != current_run_id]
        for record in stale:
            run_id = record.dagster_run.run_id
            instance.delete_run(run_id)
            _delete_check_executions(instance, run_id)
            # `delete_run` empties the run's rows but leaves its files: the captured stdout/stderr,
            # and on SQLite storage the run's own event-log file (about 130 KB even when empty)
            instance.compute_log_manager.delete_logs(prefix=[run_id])
            if shard := getattr(instance.event_log_storage, "path_for_shard", None):
                for suffix in ("", "-wal", "-shm"):
                    Path(shard(run_id) + suffix).unlink(missing_ok=True)
        deleted += len(stale)
        if len(records) < 200 or not stale:
            return deleted


def prune_tick_logs(instance: dg.DagsterInstance) -> int:
    """Deletes what schedule and sensor evaluations logged once Dagster has purged their tick.

    Dagster's tick retention (`retention` in dagster.yaml) deletes the ticks and leaves the files:
    a sensor that logs (the support alerts) leaves one a tick under the compute logs'
    `<repository>/<sensor>/`, for ever (a one-minute soak: about 60 an hour)."""
    from dagster._core.storage.compute_log_manager import ComputeIOType

    manager = instance.compute_log_manager
    deleted = 0
    for state in instance.all_instigator_state():
        prefix = [state.origin.repository_origin.repository_name, state.name]
        try:
            on_disk = {
                tuple(key) for io in ComputeIOType for key in manager.get_log_keys_for_log_key_prefix(prefix, io)
            }
        except (NotImplementedError, OSError):  # a log manager that cannot list (or nothing logged yet)
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
        kept = {tuple(tick.log_key) for tick in ticks if tick.log_key}
        # the tick being evaluated has its file before its row has the key: the newest is never touched
        newest = max((tick.tick_id for tick in ticks), default=-1)
        for key in on_disk - kept:
            if key[-1].isdigit() and int(key[-1]) < newest:
                manager.delete_logs(log_key=list(key))
                deleted += 1
    return deleted


def _delete_check_executions(instance: dg.DagsterInstance, run_id: str) -> None:
    """`delete_run` keeps the run's asset check executions: with a hundred dbt tests a run (about
    0.4 MB), the event index grew 25 MB an hour in a soak with pruning on. Dagster has no public
    call for it; the table is its SQL storages' own (SQLite, PostgreSQL, MySQL)."""
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    storage = instance.event_log_storage
    if isinstance(storage, SqlEventLogStorage):
        with storage.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id == run_id))


def build_prune_job() -> dg.JobDefinition:
    @dg.op(
        description="Delete finished runs older than COVAGE_RETENTION_DAYS, with their event logs, and the "
        "logs of ticks that Dagster's tick retention purged."
    )
    # context unannotated: under `from __future__ import annotations`, dagster refuses its annotation
    def prune_run_history(context, covage: CovageSettings) -> None:
        keep_days = covage.retention_days
        deleted = prune_history(context.instance, keep_days, context.run_id)
        context.log.info(f"{deleted} runs older than {keep_days:g} days deleted (COVAGE_RETENTION_DAYS)")
        logs = prune_tick_logs(context.instance)
        context.log.info(f"Deleted the logs of {logs} schedule and sensor ticks that Dagster's tick retention purged")

    @dg.job(name=PRUNE_JOB, description="Keeps the run history to COVAGE_RETENTION_DAYS (default 21).")
    def prune() -> None:
        prune_run_history()

    return prune


def build_jobs(dbt_assets: dg.AssetsDefinition, publish: dg.AssetsDefinition) -> list[dg.UnresolvedAssetJobDefinition]:
    """The job a tick runs, and the nightly rebuild. In one process, step after step: a step
    process of its own costs each step the import of dlt, dbt and Dagster (about 5 s) for work
    that often takes less; the steps share a pool of one writer anyway."""
    ingest = dg.define_asset_job(
        INGEST_JOB,
        # everything that depends on new events (the load, the report archive, the models, the
        # copy), and what the models read besides the events: the event catalogue
        selection=dg.AssetSelection.assets(EVENTS_KEY).downstream().upstream(),
        tags=WAREHOUSE_TAGS,
        executor_def=dg.in_process_executor,
        description="Ingest new events, rebuild the models that depend on them, publish the marts.",
    )
    daily = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(dbt_assets, publish),
        tags=WAREHOUSE_TAGS,
        executor_def=dg.in_process_executor,
        config=dg.RunConfig(ops={dbt_assets.op.name: BuildConfig(full_refresh=True)}),
        description="Rebuild every model from scratch (incremental ones included), publish the marts.",
    )
    return [ingest, daily]


def build_schedules(
    settings: Settings, jobs: list[dg.UnresolvedAssetJobDefinition], prune: dg.JobDefinition
) -> list[dg.ScheduleDefinition]:
    """Off unless COVAGE_SCHEDULES=on when Dagster starts (or switched on in the UI)."""
    ingest, daily = jobs
    status = dg.DefaultScheduleStatus.RUNNING if settings.schedules else dg.DefaultScheduleStatus.STOPPED
    return [
        single_flight_schedule(
            "ingest_every_5_minutes",
            ingest,
            settings.ingest_cron,
            status,
            f"Ingest what is new, rebuild the models, publish the marts: on cron `{settings.ingest_cron}` "
            "(COVAGE_INGEST_CRON; default every five minutes, the polling the reference recommends). "
            "Skipped while a run of the job is queued or running.",
        ),
        single_flight_schedule(
            "daily_full_build",
            daily,
            settings.daily_cron,
            status,
            f"Every model rebuilt from all events, so a fix in the models reaches the events already built: on "
            f"cron `{settings.daily_cron}` (COVAGE_DAILY_CRON; default 03:00 every night). "
            "Skipped while a run of the job is queued or running.",
        ),
        dg.ScheduleDefinition(
            name="prune_history_daily",
            job=prune,
            cron_schedule=settings.prune_cron,
            default_status=status,
            description=f"Delete finished runs older than COVAGE_RETENTION_DAYS ({settings.retention_days:g} days): on "
            f"cron `{settings.prune_cron}` (COVAGE_PRUNE_CRON; default 04:30 every night).",
        ),
    ]
