"""The Dagster definitions, materialized in-process against the emulator over real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import duckdb
import pytest

from covage_pipeline import alerts as alerts_module
from covage_pipeline.publish import analysts_path
from covage_pipeline.warehouse import query
from dagster_defs import build_definitions
from dagster_defs.dbt import ANALYSTS_COPY_KEY, KEEP_TARGET_FOLDERS
from dagster_defs.definitions import DAILY_JOB, INGEST_JOB
from dagster_defs.dlt import EVENTS_KEY
from dagster_defs.operations import PRUNE_JOB

from .conftest import TOKEN
from .extraction import settings_for, warehouse


@pytest.fixture
def setup(emulator_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("COVAGE_API_TOKEN", TOKEN)  # each run resolves its secrets, as in production
    emu = emulator_factory(orders=120)
    settings = settings_for(emu, tmp_path / "data")
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        yield emu, settings, defs, instance


def _materializations(result) -> dict[str, dict]:
    return {
        e.materialization.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def _logged(instance: dg.DagsterInstance, run_id: str) -> str:
    """What a run's steps logged, as the UI's log view shows it."""
    return "\n".join(entry.user_message for entry in instance.all_logs(run_id))


def test_definitions_load_as_one_connected_lineage(setup):
    _, _, defs, _ = setup
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    marts = {k for k in keys if k.path[0] == "marts"}
    assert len(marts) >= 17 and EVENTS_KEY in keys
    downstream = dg.AssetSelection.assets(EVENTS_KEY).downstream().resolve(graph)
    catalogue = dg.AssetKey(["staging", "event_types"])  # the seed: the models' other input
    assert keys - downstream == {catalogue}  # the API feeds every other asset, nothing floats apart
    assert graph.get(dg.AssetKey(["staging", "stg_events"])).parent_keys == {EVENTS_KEY, catalogue}
    assert graph.get(EVENTS_KEY).group_name == "ingestion"
    assert {graph.get(k).group_name for k in marts} == {"marts"}
    checks = {key.name for key in graph.asset_check_keys}
    assert {"no_duplicate_event_uuid", "events_are_fresh", "cursor_never_moves_backwards"} <= checks
    assert sum(1 for name in checks if name.startswith(("unique_", "not_null_"))) > 20  # dbt tests as checks
    # the dbt source tests check the ingestion's own asset (not observations logged as warnings)
    on_events = {key.name for key in graph.asset_check_keys if key.asset_key == EVENTS_KEY}
    assert {"source_unique_covage_events_event_uuid", "source_not_null_covage_events_event_uuid"} <= on_events
    # the dbt resource knows dbt's version without running `dbt --version` on every run
    printed = subprocess.run([defs.resources["dbt"].dbt_executable, "--version"], capture_output=True, text=True)
    assert f"installed: {defs.resources['dbt']._cli_version}" in printed.stdout.replace("- ", "")


def test_what_the_ui_shows_of_each_asset_and_schedule(setup):
    """Every model column has its type (the UI's Type column), every schedule and job says what it
    does and on which cron."""
    _, settings, defs, _ = setup
    graph = defs.resolve_asset_graph()
    dbt_keys = [k for k in graph.get_all_asset_keys() if k.path[0] in ("staging", "intermediate", "marts")]
    assert len(dbt_keys) > 20
    for key in dbt_keys:
        schema = graph.get(key).metadata["dagster/column_schema"]
        assert schema.columns and all(c.type not in ("", "?") for c in schema.columns), key
        assert all(c.description for c in schema.columns), key
    every = defs.resolve_schedule_def("ingest_every_5_minutes")
    daily = defs.resolve_schedule_def("daily_full_build")
    assert settings.ingest_cron in every.description and settings.daily_cron in daily.description
    for job in (INGEST_JOB, DAILY_JOB):
        assert defs.resolve_job_def(job).description


def test_settings_reach_dagster_as_one_resource_that_a_run_can_set(setup):
    """Every setting but the secrets is a field of the resource `covage` (the UI's Resources tab),
    named by its variable; a run's config sets one for that run and keeps the others as loaded; a
    setting the definitions are made of cannot change per run; a secret set in code is refused."""
    from dataclasses import fields, replace

    from covage_pipeline.settings import SECRETS, Settings

    emu, settings, defs, instance = setup
    resource = defs.resources["covage"]
    loaded = resource.model_dump()
    assert set(loaded) == {f.name for f in fields(Settings)} - SECRETS
    assert loaded["data_dir"] == str(settings.data_dir) and loaded["api_url"] == emu.url
    assert type(resource).model_fields["page_size"].description == "COVAGE_PAGE_SIZE"

    def materialize_events(run_config: dict) -> dg.ExecuteInProcessResult:
        assets = [defs.get_assets_def(EVENTS_KEY)]  # alone: the dbt source tests on it not run
        return dg.materialize(assets, instance=instance, resources=defs.resources, run_config=run_config)

    result = materialize_events({"resources": {"covage": {"config": {"page_size": 40, "chunk_pages": 1000}}}})
    assert result.success
    loaded_events = _materializations(result)["covage/events"]
    truth = emu.store.ground_truth(emu.url)
    assert loaded_events["new_events"] == len(truth) and loaded_events["pages"] >= len(truth) / 40
    assert loaded_events["chunks"] == 1 and settings.page_size > 40 and settings.chunk_pages < 100
    assert len(warehouse(settings)) == len(truth)  # with the loaded API, data dir and token
    assert TOKEN not in json.dumps(instance.get_run_by_id(result.run_id).run_config)

    with pytest.raises(dg.DagsterResourceFunctionError) as refused:
        materialize_events({"resources": {"covage": {"config": {"destination": "postgres"}}}})
    assert "Set COVAGE_DESTINATION and reload the code location" in refused.value.__cause__.description

    with pytest.raises(ValueError, match="COVAGE_API_TOKEN set in code"):
        build_definitions(replace(settings, api_token="a-token-in-code"))


def test_the_whole_graph_then_only_new_events(setup, monkeypatch):
    import fcntl

    import dagster_defs.dbt as dbt_module
    from covage_pipeline.locking import lock_path

    emu, settings, defs, instance = setup
    job = defs.resolve_job_def(INGEST_JOB)
    # the dbt step holds the one writer lock, and its settings reach dbt's process only
    seen = []
    environment = dbt_module.dbt_environment

    def watched(settings):
        with open(lock_path(settings)) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                seen.append("unlocked")
            except BlockingIOError:
                seen.append("locked")
        return environment(settings)

    monkeypatch.setattr(dbt_module, "dbt_environment", watched)
    first = job.execute_in_process(instance=instance)
    assert first.success
    assert seen == ["locked"] and "COVAGE_DUCKDB_PATH" not in os.environ
    meta = _materializations(first)
    truth = emu.store.ground_truth(emu.url)
    assert meta["covage/events"]["new_events"] == len(truth) == meta["covage/events"]["dagster/row_count"]
    assert meta["marts/orders"]["dagster/row_count"] == len(
        {t["object_uuid"] for t in truth if t["object_type"] == "order"}
    )
    assert meta["marts/order_lifecycle_durations"]["chart"].startswith("![")
    assert "data:image/png;base64," in meta["marts/rejection_stats"]["chart"]
    assert "median lead time" in meta["analysts/marts_copy"]["headline_figures"]
    # column lineage, read from the compiled SQL: every intermediate model and mart has it
    lineage = {key: m["dagster/column_lineage"] for key, m in meta.items() if "dagster/column_lineage" in m}
    assert {k for k in meta if k.startswith(("marts/", "intermediate/"))} <= set(lineage)
    order_uuid = lineage["marts/open_order_forecast"].deps_by_column["order_uuid"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in order_uuid] == [
        ("intermediate/int_order_forecasts_now", "order_uuid")
    ]
    cri_files = sum(len(t["data"]) for t in truth if t["type"] == "order-cri")
    assert meta["covage/intervention_reports"]["files_archived"] == cri_files > 0
    checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert checks["no_duplicate_event_uuid"] and checks["cursor_never_moves_backwards"]
    assert checks["events_are_fresh"] is False  # the emulator's clock is frozen in the past

    # the cursor lives in the destination: even without the local dlt folder, only new events come
    shutil.rmtree(settings.pipelines_dir)
    emu.store.advance(2 * 24 * 3600)
    second = job.execute_in_process(instance=instance)
    assert second.success
    new_truth = emu.store.ground_truth(emu.url)
    meta = _materializations(second)
    assert meta["covage/events"]["new_events"] == len(new_truth) - len(truth) > 0
    assert meta["covage/events"]["updated_events"] == 0
    assert len(warehouse(settings)) == len(new_truth)
    assert (
        meta["covage/events"]["cursor_creation_date"]
        > _materializations(first)["covage/events"]["cursor_creation_date"]
    )
    orders = duckdb.connect(str(analysts_path(settings)), read_only=True)
    assert orders.execute("select count(*) from marts.orders").fetchone()[0] == len(
        {t["object_uuid"] for t in new_truth if t["object_type"] == "order"}
    )
    orders.close()
    checks = {e.check_name: e.passed for e in second.get_asset_check_evaluations()}
    assert checks["cursor_never_moves_backwards"]
    # each dbt invocation's folder is pruned: a 5-minute schedule must not fill the disk
    folders = list((settings.dbt_project / "target").glob("covage_dbt-*"))
    assert 2 <= len(folders) <= KEEP_TARGET_FOLDERS
    # the second build starts from the first's parse state: the first parsed everything (this
    # warehouse's profile is new), the second nothing (dagster-dbt never copies the state back)
    by_run = {folder.name.split("-")[1]: folder for folder in folders}  # covage_dbt-<run id>-<uuid>
    first_log, second_log = ((by_run[run.run_id[:7]] / "dbt.log").read_text() for run in (first, second))
    assert "Unable to do partial parsing" in first_log
    assert "Partial parsing enabled, no changes found, skipping parsing" in second_log


def test_only_the_newest_dbt_target_folders_are_kept(tmp_path):
    from dagster_defs.dbt import _prune_target_folders

    for age, name in enumerate(["covage_dbt-a-1", "covage_dbt-b-2", "covage_dbt-c-3", "covage_dbt-d-4", "other-e-5"]):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))  # a is the newest
    _prune_target_folders(tmp_path / "covage_dbt-a-1", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["covage_dbt-a-1", "covage_dbt-b-2", "other-e-5"]


def test_schedules_target_their_jobs_and_are_off_by_default(setup, monkeypatch):
    _, settings, defs, instance = setup
    every = defs.resolve_schedule_def("ingest_every_5_minutes")
    daily = defs.resolve_schedule_def("daily_full_build")
    assert every.job_name == INGEST_JOB and every.cron_schedule == "*/5 * * * *"
    assert daily.job_name == DAILY_JOB
    assert every.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.build_schedule_context(instance=instance) as context:
        requests = every.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].job_name in (None, INGEST_JOB)
    monkeypatch.setenv("COVAGE_SCHEDULES", "on")
    monkeypatch.setenv("COVAGE_INGEST_CRON", "*/10 * * * *")
    monkeypatch.setenv("COVAGE_PRUNE_CRON", "*/15 * * * *")
    from dataclasses import replace

    from covage_pipeline.settings import load_settings

    resolved = load_settings()  # the variables, read the way every setting is
    settings = replace(
        settings, schedules=resolved.schedules, ingest_cron=resolved.ingest_cron, prune_cron=resolved.prune_cron
    )
    turned_on = build_definitions(settings)
    assert turned_on.resolve_schedule_def("ingest_every_5_minutes").default_status == dg.DefaultScheduleStatus.RUNNING
    assert turned_on.resolve_schedule_def("ingest_every_5_minutes").cron_schedule == "*/10 * * * *"
    prune = turned_on.resolve_schedule_def("prune_history_daily")
    assert prune.job_name == PRUNE_JOB and prune.cron_schedule == "*/15 * * * *"
    assert "*/15 * * * *" in prune.description


def test_the_daily_build_rebuilds_incremental_models_from_scratch(setup):
    """A row of the incremental stg_events that no new load touches (as a fix in the models would
    leave it): only a rebuild from every event corrects it, and the daily job does that."""
    _, settings, defs, instance = setup
    assert defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance).success
    con = duckdb.connect(str(settings.duckdb_path))
    con.execute("update main_staging.stg_events set event_type = 'built-by-an-older-version' where event_uuid in "
                "(select event_uuid from main_staging.stg_events order by event_uuid limit 3)")  # fmt: skip
    con.close()
    import subprocess
    import sys

    env = {**os.environ, "COVAGE_DATA_DIR": str(settings.data_dir)}
    covage = str(Path(sys.executable).with_name("covage"))
    built = subprocess.run([covage, "build", "--select", "stg_events"], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout  # an incremental build of it
    stale = "select count(*) as n from main_staging.stg_events where event_type = 'built-by-an-older-version'"
    assert query(settings, stale)[0]["n"] == 3  # an incremental build leaves it
    daily = defs.resolve_job_def(DAILY_JOB).execute_in_process(instance=instance)
    assert daily.success
    assert query(settings, stale)[0]["n"] == 0


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    fail = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).fail:
            self.send_response(500)
        else:
            type(self).received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Receiver.received = []
    _Receiver.fail = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/covage", _Receiver
    server.shutdown()


def _inject(emu, order_uuid: str, ref: str) -> list[dict]:
    """Events of the four alerting kinds on one order, created a second before the emulator's now."""
    from covage_pipeline.timestamps import format_iso

    now = emu.store.clock.now_us()
    from datetime import datetime

    at = format_iso(datetime(1970, 1, 1) + timedelta(microseconds=now - 1_000_000))
    kinds = [
        ("order-rejected", {"reject_code": "ADR_INCONNUE", "reject_subcode": "ADR002", "reject_reason": "cr_ko"}),
        ("order-localloop-saturation", None),
        ("order-appointment-missed", None),
        ("order-on-site-intervention-failed", {"message": "no access"}),
    ]
    events = [
        {"event_uuid": f"alert-{n}", "type": t, "object_type": "order", "object_uuid": order_uuid,
         "event_date": at, "creation_date": at, "data": d}
        for n, (t, d) in enumerate(kinds)
    ]  # fmt: skip
    emu.store.replay(events)
    return events


def test_alerts_are_raised_once_and_posted(setup, webhook, monkeypatch):
    from dataclasses import replace

    emu, settings, _, instance = setup
    url, receiver = webhook
    monkeypatch.setenv("COVAGE_ALERT_WEBHOOK_URL", url)
    settings = replace(settings, alert_webhook_url=url)
    defs = build_definitions(settings)
    job = defs.resolve_job_def(INGEST_JOB)
    sensor = defs.resolve_sensor_def("support_alerts")
    # after the first run, only what the alerts read is rebuilt: the load, the models under
    # alert_candidates, the copy (the rest of the graph tells the alerts nothing)
    candidates = dg.AssetSelection.assets(dg.AssetKey(["marts", "alert_candidates"]))
    alerting = list(
        (candidates.upstream() | dg.AssetSelection.assets(ANALYSTS_COPY_KEY)).resolve(defs.resolve_asset_graph())
    )

    def tick(cursor=None):
        # the daemon gives a sensor the definitions' resources; a test context takes them as given
        with dg.build_sensor_context(instance=instance, resources=defs.resources, cursor=cursor) as context:
            result = sensor.evaluate_tick(context)
            return result.skip_message, result.cursor

    assert job.execute_in_process(instance=instance).success
    message, cursor = tick()
    assert message.startswith("0 new alerts")  # the history is the baseline, not news
    baseline = duckdb.connect(str(alerts_module.alerts_path(settings)), read_only=True)
    assert baseline.execute("select count(*) from alerts where status = 'baseline'").fetchone()[0] > 0
    baseline.close()
    assert receiver.received == []

    order = next(o for o in emu.store.orders() if o.kind)
    injected = _inject(emu, order.order_uuid, order.kosc_order_ref)
    assert job.execute_in_process(instance=instance, asset_selection=alerting).success
    message, cursor = tick(cursor)
    ids = [a["alert_id"] for a in receiver.received]
    assert len(ids) == len(set(ids))
    for event, kind in zip(
        injected, ["rejection", "saturation", "missed_appointment", "failed_intervention"], strict=True
    ):
        assert f"{kind}:{event['event_uuid']}" in ids
    assert message.startswith(f"{len(ids)} new alerts")

    # the same marts published again, and another tick: nothing is raised twice
    assert job.execute_in_process(instance=instance, asset_selection=[ANALYSTS_COPY_KEY]).success
    message, cursor = tick(cursor)
    assert message.startswith("0 new alerts")
    assert len(receiver.received) == len(ids)

    # a webhook that fails: recorded, not raised, and retried on the next tick
    receiver.fail = True
    _inject_more = [{**e, "event_uuid": e["event_uuid"] + "-b"} for e in injected[:1]]
    emu.store.replay(_inject_more)
    assert job.execute_in_process(instance=instance, asset_selection=alerting).success
    message, cursor = tick(cursor)
    store = duckdb.connect(str(alerts_module.alerts_path(settings)), read_only=True)
    failed = store.execute("select status, last_error, attempts from alerts where event_uuid = 'alert-0-b'").fetchone()
    store.close()
    assert failed == ("failed", "HTTP 500", 1)
    receiver.fail = False
    # publishing the marts again is enough to wake the sensor, which retries the failed delivery
    assert job.execute_in_process(instance=instance, asset_selection=[ANALYSTS_COPY_KEY]).success
    tick(cursor)
    assert [a["event_uuid"] for a in receiver.received[len(ids) :]] == ["alert-0-b"]
    assert url not in json.dumps(receiver.received)


def test_analysts_copy_stays_readable_while_a_build_runs(setup):
    emu, settings, defs, instance = setup
    job = defs.resolve_job_def(INGEST_JOB)
    assert job.execute_in_process(instance=instance).success
    reader = duckdb.connect(str(analysts_path(settings)), read_only=True)
    before = reader.execute("select count(*) from marts.orders").fetchone()[0]
    emu.store.advance(3 * 24 * 3600)
    reads: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def keep_reading():
        while not done.is_set():
            try:
                reads.append(reader.execute("select count(*) from marts.orders").fetchone()[0])
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=keep_reading)
    thread.start()
    try:
        result = job.execute_in_process(instance=instance)
    finally:
        done.set()
        thread.join()
    assert result.success  # the open reader did not block the writer
    assert not errors and reads and set(reads) == {before}  # it kept its snapshot while the build ran
    assert reader.execute("select count(*) from marts.orders").fetchone()[0] == before  # and after the swap
    reader.close()
    fresh = duckdb.connect(str(analysts_path(settings)), read_only=True)
    assert fresh.execute("select count(*) from marts.orders").fetchone()[0] > before
    fresh.close()


def test_the_same_definitions_on_postgres(emulator_factory, tmp_path, pg_prefix, monkeypatch):
    import psycopg2

    from .conftest import POSTGRES_URL

    emu = emulator_factory(orders=150)
    settings = settings_for(
        emu,
        tmp_path,
        destination="postgres",
        postgres_url=POSTGRES_URL,
        dataset=f"{pg_prefix}_raw",
        models_schema=pg_prefix,
    )
    monkeypatch.setenv("COVAGE_API_TOKEN", TOKEN)
    monkeypatch.setenv("COVAGE_POSTGRES_URL", POSTGRES_URL)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance)
    assert result.success
    meta = _materializations(result)
    truth = emu.store.ground_truth(emu.url)
    assert meta["covage/events"]["new_events"] == len(truth)
    assert "path" not in meta["analysts/marts_copy"]  # no copy needed: the marts are read in place
    # column lineage read against the relations of this target's compiled SQL
    assert {k for k in meta if k.startswith(("marts/", "intermediate/"))} <= {
        k for k, m in meta.items() if "dagster/column_lineage" in m
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_duplicate_event_uuid"] and all(v for k, v in checks.items() if k != "events_are_fresh")
    con = psycopg2.connect(POSTGRES_URL)
    with con.cursor() as cur:
        cur.execute(f'select count(*) from "{pg_prefix}_marts".orders')
        assert cur.fetchone()[0] == len({t["object_uuid"] for t in truth if t["object_type"] == "order"})
    con.close()
    assert not settings.duckdb_path.exists()


def test_every_writer_of_the_warehouse_is_in_its_pool(setup):
    """DuckDB takes one writer: the steps that write it share a pool of one, whatever run they are
    in (a scheduled tick, "Materialize all"), and their runs carry the tag the run queue limits."""
    from dagster_defs.warehouse import POOL, WAREHOUSE_TAG

    _, _, defs, _ = setup
    graph = defs.resolve_asset_graph()
    writers = [EVENTS_KEY, dg.AssetKey(["staging", "stg_events"]), ANALYSTS_COPY_KEY]
    for key in writers:
        op = defs.get_assets_def(key).op
        assert op.pool == POOL, key
        assert op.tags.get(WAREHOUSE_TAG) == "writes", key
    assert graph.get(EVENTS_KEY).group_name == "ingestion"


def test_the_asset_checks_fail_on_what_they_guard(setup):
    """A cursor that went back, and an event stored twice: each check fails, blocking what follows."""
    from covage_pipeline.pipeline import ingest
    from dagster_defs.dlt import build_ingestion_checks

    _, settings, defs, instance = setup
    ingest(settings)
    for cursor in ("2026-03-01T00:00:00.000000", "2000-01-01T00:00:00.000000"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=EVENTS_KEY, metadata={"cursor_creation_date": cursor})
        )
    con = duckdb.connect(str(settings.duckdb_path))
    table = f"{settings.dataset}.events"
    con.execute(f"insert into {table} select * from {table} limit 1")
    con.close()
    checks = {next(iter(c.check_specs)).name: c for c in build_ingestion_checks(settings)}
    backwards = checks["cursor_never_moves_backwards"](dg.build_asset_check_context(instance=instance))
    duplicated = checks["no_duplicate_event_uuid"](covage=defs.resources["covage"])
    assert backwards.passed is False and backwards.metadata["cursor"].value.startswith("2000-")
    assert duplicated.passed is False and duplicated.metadata["duplicates"].value == 1


def test_a_tick_is_skipped_while_a_run_of_its_job_is_queued_or_running(setup):
    """Ticks never pile up behind a slow run: the schedule says why it skips, and runs again after."""
    _, _, defs, instance = setup
    schedule = defs.resolve_schedule_def("ingest_every_5_minutes")
    job = defs.resolve_job_def(INGEST_JOB)
    with dg.build_schedule_context(instance=instance) as context:
        assert isinstance(schedule.evaluate_tick(context).run_requests[0], dg.RunRequest)
    running = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    with dg.build_schedule_context(instance=instance) as context:
        tick = schedule.evaluate_tick(context)
    assert not tick.run_requests and running.run_id[:8] in tick.skip_message and "started" in tick.skip_message
    instance.report_run_canceled(running)
    with dg.build_schedule_context(instance=instance) as context:
        assert schedule.evaluate_tick(context).run_requests


def test_run_history_is_pruned_after_the_retention(setup):
    from dagster_defs.operations import prune_history

    _, _, defs, instance = setup
    prune = defs.resolve_job_def("prune_history")
    finished = [prune.execute_in_process(instance=instance).run_id for _ in range(3)]

    @dg.asset
    def probe() -> None: ...

    @dg.asset_check(asset=probe)
    def probe_holds() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    # a run with an asset check (every ingest_and_build has a hundred): its executions go with it
    finished.append(dg.materialize([probe, probe_holds], instance=instance).run_id)
    probe_check = dg.AssetCheckKey(dg.AssetKey("probe"), "probe_holds")
    assert len(instance.event_log_storage.get_asset_check_execution_history(probe_check, limit=5)) == 1
    running = instance.create_run_for_job(prune, status=dg.DagsterRunStatus.STARTED)
    assert prune_history(instance, keep_days=30) == 0  # all younger than the retention
    # the job, with the retention set for this run in the launchpad's resource config
    config = {"resources": {"covage": {"config": {"retention_days": 0.0}}}}
    pruning = prune.execute_in_process(instance=instance, run_config=config)
    assert "4 runs older than 0 days deleted" in _logged(instance, pruning.run_id)  # finished ones only, not itself
    left = {r.run_id for r in instance.get_runs()}
    assert running.run_id in left and pruning.run_id in left and not left & set(finished)
    assert instance.event_log_storage.get_asset_check_execution_history(probe_check, limit=5) == []
    # and their files: the captured output, the run's own event-log file (SQLite storage)
    root = Path(instance.root_directory)
    files = {p.name for p in root.rglob("*")}
    assert files, "no instance files found"
    assert not {name for name in files for run_id in finished if run_id in name}, files


def test_the_logs_of_ticks_dagster_purged_go_with_the_prune(setup):
    """Dagster's tick retention deletes a sensor's ticks, not what each evaluation logged (a file
    a tick): the prune job deletes the logs of purged ticks, and only those."""
    import time

    from dagster._core.definitions.instigation_logger import InstigationLogger
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        TickData,
        TickStatus,
    )

    _, _, defs, instance = setup
    repository, sensor = "__repository__", "support_alerts"
    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("dagster_defs"), repository), sensor
    )
    state = instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING))

    def evaluated(days_ago: float, key_stored: bool = True) -> list[str]:
        """A tick as the daemon makes it: the row, then the evaluation's log, then its key on the row."""
        tick = instance.create_tick(
            TickData(
                instigator_origin_id=state.instigator_origin_id,
                instigator_name=sensor,
                instigator_type=InstigatorType.SENSOR,
                status=TickStatus.SKIPPED,
                timestamp=time.time() - days_ago * 86400,
                selector_id=state.selector_id,
            )
        )
        key = [repository, sensor, str(tick.tick_id)]
        with InstigationLogger(key, instance, repository, sensor) as logger:
            logger.info("[covage alert] stuck_order: order O1 stuck")
        if key_stored:
            instance.update_tick(tick.with_log_key(key))
        return key

    old, recent = evaluated(30), evaluated(1)
    live = evaluated(0, key_stored=False)  # still being evaluated

    def logged(key: list[str]) -> bool:
        return Path(instance.compute_log_manager.get_captured_local_path(key, "err")).exists()

    assert logged(old) and logged(recent) and logged(live)
    # what the daemon does with dagster.yaml's `retention` (7 days for skipped sensor ticks)
    instance.purge_ticks(state.instigator_origin_id, state.selector_id, before=time.time() - 7 * 86400)
    assert logged(old), "Dagster now deletes a purged tick's log itself: prune_tick_logs can go"
    pruned = defs.resolve_job_def(PRUNE_JOB).execute_in_process(instance=instance)
    assert "Deleted the logs of 1 schedule and sensor ticks" in _logged(instance, pruned.run_id)
    assert not logged(old) and logged(recent) and logged(live)


def test_the_failure_paths_say_why_and_keep_the_analysts_copy(setup):
    """An ingest that cannot reach the API fails the run with the reason; a failing dbt test
    fails the build and the analysts' copy is not replaced by marts that did not pass."""
    from dataclasses import replace

    emu, settings, defs, instance = setup
    job = defs.resolve_job_def(INGEST_JOB)
    assert job.execute_in_process(instance=instance).success
    copy = analysts_path(settings)
    published = copy.stat().st_mtime_ns

    unreachable = build_definitions(replace(settings, api_url="http://127.0.0.1:9", max_attempts=1))
    failed = unreachable.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Nothing answers at COVAGE_API_URL=http://127.0.0.1:9" in failure.step_failure_data.error.message

    con = duckdb.connect(str(settings.duckdb_path))
    table = f"{settings.dataset}.events"
    # a second copy of a loaded event, as from a load after the last build: the tick's tests read
    # the rows of the new loads, so this breaks the source's unique test in the next build
    con.execute(
        f"insert into {table} select * replace (? as _dlt_load_id) from {table} limit 1", [f"{time.time():.6f}"]
    )
    con.close()
    emu.store.advance(3600)
    blocked = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not blocked.success
    materialized = {e.asset_key for e in blocked.get_asset_materialization_events()}
    assert ANALYSTS_COPY_KEY not in materialized
    assert copy.stat().st_mtime_ns == published  # the analysts still read the last good copy


def test_the_forecast_check_warns_when_past_forecasts_were_off(tmp_path):
    """The check reads forecast_calibration: too few judged forecasts pass (nothing to say yet);
    enough, and a p90 met 60% of the time, fail with a warning."""
    import duckdb

    from covage_pipeline.settings import load_settings
    from dagster_defs.dbt import FORECASTS_TO_JUDGE, build_forecast_check
    from dagster_defs.settings import covage_resource

    settings = load_settings(data_dir=tmp_path)
    check = build_forecast_check()

    def verdict(judged: int, p50: float, p90: float) -> dg.AssetCheckResult:
        with duckdb.connect(str(settings.duckdb_path)) as con:
            con.execute("create schema if not exists main_marts")
            con.execute(
                "create or replace table main_marts.forecast_calibration as select 'overall' as period, "
                "? as orders_forecast, ? as share_completed_by_p50, ? as share_completed_by_p90",
                [judged, p50, p90],
            )
        return check(covage=covage_resource(settings))

    assert verdict(FORECASTS_TO_JUDGE - 1, 0.1, 0.6).passed
    off = verdict(FORECASTS_TO_JUDGE, 0.48, 0.6)
    assert not off.passed and off.severity == dg.AssetCheckSeverity.WARN
    assert off.metadata["verdict"].value == "off"
    assert verdict(FORECASTS_TO_JUDGE * 5, 0.52, 0.88).passed


def test_the_warehouse_password_never_stays_in_the_code_servers_environment(tmp_path, monkeypatch):
    """Loading the definitions copied dbt's settings (the PostgreSQL password among them) into
    os.environ, which every run process inherits: they reach dbt's invocations only."""
    from covage_pipeline.settings import load_settings

    monkeypatch.delenv("DBT_ENV_SECRET_COVAGE_PG_PASSWORD", raising=False)
    monkeypatch.setenv("COVAGE_POSTGRES_URL", "postgresql://postgres:pg-SECRET@127.0.0.1:5432/test")
    build_definitions(load_settings(data_dir=tmp_path, destination="postgres"))
    monkeypatch.delenv("COVAGE_POSTGRES_URL")
    assert not any("pg-SECRET" in value for value in os.environ.values())
    assert "DBT_ENV_SECRET_COVAGE_PG_PASSWORD" not in os.environ
