"""Reliability of the extraction: faults on the wire, retries running out, SIGKILL, bad servers."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import orjson
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from covage_pipeline.emulator import FaultConfig, RunningEmulator
from covage_pipeline.emulator.app import EmulatorApp
from covage_pipeline.pipeline import IngestError, ingest, make_pipeline, resource_state
from covage_pipeline.settings import load_settings

from .conftest import make_config
from .extraction import assert_equals_ground_truth, event_ids, kill_at_random_points_then_rerun, settings_for, warehouse
from .hostile import event

FAULTS = {
    "error_bursts": {"error_rate": 0.3, "error_burst": 2},
    "rate_limit": {"rate_limit_rate": 0.3, "retry_after_s": 1},
    "slow": {"slow_rate": 0.3, "slow_s": 1.2},
    "drop": {"drop_rate": 0.3},
    "truncate": {"truncate_rate": 0.3},
    "mix": {
        "error_rate": 0.1,
        "rate_limit_rate": 0.08,
        "retry_after_s": 1,
        "slow_rate": 0.05,
        "slow_s": 1.2,
        "drop_rate": 0.1,
        "truncate_rate": 0.1,
    },
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("COVAGE_API_URL", "COVAGE_API_TOKEN", "COVAGE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("mode", list(FAULTS))
def test_each_fault_mode_still_converges_to_ground_truth(emulator_factory, tmp_path, mode):
    emu = emulator_factory(orders=80, faults=FaultConfig(seed=3, **FAULTS[mode]))
    # pages of 25: about 24 requests, where pages of 50 made 14 and, with this seed, drew no slow
    # answer in the first run, and in a loaded CI none in the second either (the draws after a
    # slow answer interleave with the retry's, so their order depends on timing)
    settings = settings_for(emu, tmp_path, page_size=25, request_timeout=0.6, max_attempts=12, max_retry_delay=1.0)
    ingest(settings)
    emu.store.advance(3 * 3600)
    ingest(settings)
    assert sum(emu.app.faults.injected.values()) > 0, "the faults must actually have been injected"
    emu.app.faults.configure(FaultConfig())
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_retries_running_out_fail_clearly_and_a_rerun_converges(emulator_factory, tmp_path):
    emu = emulator_factory(orders=200)
    settings = settings_for(emu, tmp_path, page_size=50, chunk_pages=3, max_attempts=3)
    chunk_ends: list[dict] = []  # the cursor at the end of each chunk: what a commit can hold

    def break_after_first_chunk(stats) -> None:
        if stats.pages % 3 == 0:
            chunk_ends.append(dict(stats.cursor))
        if stats.pages == 4:  # pages already prefetched still arrive; every request after fails
            emu.app.faults.configure(FaultConfig(error_rate=1.0, error_burst=10_000))

    with pytest.raises(IngestError) as info:
        ingest(settings, on_page=break_after_first_chunk)
    message = str(info.value)
    committed = resource_state(make_pipeline(settings))["cursor"]
    assert committed in chunk_ends  # a whole chunk, never a page past it
    assert committed["creation_date"] in message and committed["sort_value"] in message
    assert "covage ingest" in message
    kept = len(event_ids(settings))
    assert kept >= 100  # the first chunk (3 pages) is committed and stays

    emu.app.faults.configure(FaultConfig())
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def _serve(app) -> RunningEmulator:
    """A real uvicorn server for an arbitrary ASGI app (the emulator's runner reused)."""
    holder = EmulatorApp(make_config(orders=1))
    holder.asgi = app
    return RunningEmulator(holder).start()


class BadServer:
    """Answers each listing with the next scripted body; an empty list once the script is done."""

    def __init__(self, bodies: list[tuple[int, bytes, str]]) -> None:
        self.bodies = bodies
        self.calls = 0
        self.lock = threading.Lock()

        async def listing(request):
            with self.lock:
                i = self.calls
                self.calls += 1
            status, body, ctype = self.bodies[i] if i < len(self.bodies) else (200, b"[]", "application/json")
            return Response(body, status_code=status, media_type=ctype)

        self.app = Starlette(routes=[Route("/api/events/", listing)])


def _bad_settings(server: RunningEmulator, tmp_path: Path, **overrides):
    values = {
        "api_url": server.url,
        "api_token": "tok-SECRET-123",
        "data_dir": tmp_path,
        "page_size": 5,
        "max_attempts": 3,
        "backoff_factor": 0.01,
        "max_retry_delay": 0.05,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.mark.parametrize(
    ("body", "ctype", "says"),
    [
        (b'[{"event_uuid": "a", "creat', "application/json", "cut short"),
        (b"<!DOCTYPE html><html><body>Please log in</body></html>", "text/html", "HTML page"),
        (b'{"results": []}', "application/json", "not the list of events"),
    ],
)
def test_unusable_bodies_fail_with_a_clear_error(tmp_path, body, ctype, says, caplog):
    bad = BadServer([(200, body, ctype)] * 10)
    server = _serve(bad.app)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(IngestError) as info:
            ingest(_bad_settings(server, tmp_path))
    finally:
        server.stop()
    assert says in str(info.value)
    if says != "not the list of events":
        assert bad.calls == 3  # retried up to max_attempts before giving up
    assert "tok-SECRET-123" not in str(info.value)
    assert "tok-SECRET-123" not in caplog.text


def test_bad_items_are_quarantined_never_dropped(tmp_path, caplog):
    page = [
        event(1),
        event(2, event_uuid=None),
        event(3, sort_value=None),  # not the last one: still a good event
        event(4, data="a string"),
        event(5, data=["a", "list"]),
        event(6, data={"message": "x" * 2_000_000}),
        event(7, surprise_field={"kept": True}),
        42,
        event(9, event_date="0000-00-00T00:00:00", type="order-brand-new-type"),
        event(10, creation_date="yesterday"),
        event(11),
    ]
    bad = BadServer([(200, orjson.dumps(page), "application/json")])
    server = _serve(bad.app)
    try:
        with caplog.at_level(logging.DEBUG):
            settings = _bad_settings(server, tmp_path, page_size=100)
            ingest(settings)
            bad.calls = 0  # the same page again: nothing is duplicated
            ingest(settings, since=__import__("datetime").datetime(2025, 1, 1))
    finally:
        server.stop()
    events = {r["event_uuid"]: r for r in warehouse(settings)}
    assert set(events) == {"evt00001", "evt00003", "evt00007", "evt00009", "evt00011"}
    assert orjson.loads(events["evt00007"]["extra_fields"]) == {"surprise_field": {"kept": True}}
    assert events["evt00009"]["event_date"] is None and events["evt00009"]["event_date_invalid"]
    assert events["evt00009"]["type"] == "order-brand-new-type"
    quarantine = warehouse(settings, "events_quarantine")
    reasons = sorted(q["reason"] for q in quarantine)
    assert reasons == sorted(
        [
            "missing event_uuid",
            "data is a JSON str, not an object or null",
            "data is a JSON list, not an object or null",
            "item larger than 1000000 bytes",
            "item is a JSON int, not an object",
            "unreadable creation_date",
        ]
    )
    assert all(q["raw"] for q in quarantine)
    assert "tok-SECRET-123" not in caplog.text


def test_a_full_page_without_any_cursor_stops_clearly(tmp_path):
    page = [event(n, sort_value=None) for n in range(1, 6)]
    bad = BadServer([(200, orjson.dumps(page), "application/json")])
    server = _serve(bad.app)
    try:
        with pytest.raises(IngestError) as info:
            ingest(_bad_settings(server, tmp_path, page_size=5))
    finally:
        server.stop()
    assert "sort_value" in str(info.value)


def test_the_token_is_stored_nowhere(emulator_factory, tmp_path, caplog):
    emu = emulator_factory(orders=60, tokens={"tok-SECRET-456": "admin"}, share_fiber_pro=1.0)
    settings = settings_for(emu, tmp_path, api_token="tok-SECRET-456")
    with caplog.at_level(logging.DEBUG):
        ingest(settings)
    assert "tok-SECRET-456" not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"tok-SECRET-456" not in path.read_bytes(), path
    assert all("se=" not in (r["data"] or "") for r in warehouse(settings))


KILL_TRIALS = 4


def test_sigkill_at_random_points_then_rerun_converges(emulator_factory, tmp_path):
    emu = emulator_factory(orders=700)
    killed = kill_at_random_points_then_rerun(emu, tmp_path, KILL_TRIALS, seed=20261127)
    assert killed == KILL_TRIALS, "each trial kills its run on a page it has not finished"
    settings = load_settings(data_dir=tmp_path)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_a_crashed_runs_pending_load_is_finished_and_replayed_rows_removed(emulator_factory, tmp_path):
    """What a kill between extract and load leaves: a pending package, maybe rows written twice."""
    from covage_pipeline.pipeline import make_pipeline
    from covage_pipeline.source import covage_source

    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    emu.store.advance(6 * 3600)
    pipeline = make_pipeline(settings)
    pipeline.extract(covage_source(settings, max_pages=2))  # extracted, never loaded: "killed"
    assert pipeline.has_pending_data
    con = __import__("duckdb").connect(str(settings.duckdb_path))
    con.execute(f"insert into {settings.dataset}.events select * from {settings.dataset}.events limit 25")
    con.close()
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_a_run_killed_between_normalizing_and_cleaning_up_does_not_block_the_next(emulator_factory, tmp_path):
    """A kill right after dlt committed a normalized package, before it deleted the extracted copy,
    left both: the next run normalized the copy again and failed on every rerun with
    `[Errno 39] Directory not empty` (seen once in twelve SIGKILL trials)."""
    import shutil

    from covage_pipeline.source import covage_source

    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    emu.store.advance(6 * 3600)
    pipeline = make_pipeline(settings)
    pipeline.extract(covage_source(settings, max_pages=2))
    (load_id,) = pipeline.list_extracted_load_packages()
    extracted = Path(pipeline.working_dir) / "normalize" / "extracted" / load_id
    kept = tmp_path / "kept-copy"
    shutil.copytree(extracted, kept)
    pipeline.normalize()
    shutil.copytree(kept, extracted)  # the state a kill leaves between dlt's commit and cleanup
    assert load_id in pipeline.list_normalized_load_packages() and pipeline.list_extracted_load_packages()
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_backfill_stops_it_with_one_line_and_a_rerun_converges(
    emulator_factory, tmp_path, signal_name
):
    """A SIGTERM during a backfill was lost in 2 of 8 trials (dlt noted it during a load and forgot
    it: a full summary, exit 0), and a Ctrl-C to the process group printed a raw traceback from the
    page prefetching and exited 0. Each signal now stops the run: exit 128 + its number, one line
    that says what to do, no traceback; the rerun converges to the API's events."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from .conftest import TOKEN

    emu = emulator_factory(orders=600)
    sig = getattr(signal, signal_name)
    env = {**os.environ, "COVAGE_API_URL": emu.url, "COVAGE_API_TOKEN": TOKEN, "COVAGE_DATA_DIR": str(tmp_path),
           "COVAGE_PAGE_SIZE": "50", "COVAGE_CHUNK_PAGES": "3", "COLUMNS": "200"}  # fmt: skip
    covage = str(Path(sys.executable).with_name("covage"))
    rng = random.Random(int(sig))
    for _ in range(4):
        target = emu.app.listings_served + rng.randint(2, 30)
        proc = subprocess.Popen([covage, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip
        while proc.poll() is None and emu.app.listings_served < target:
            time.sleep(0.002)
        if proc.poll() is not None:
            continue  # it had ended already: nothing to stop
        # Ctrl-C in a terminal reaches the whole process group; a supervisor's SIGTERM the process
        os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, output
        assert f"Stopped by {signal_name}" in output and "Traceback" not in output, output
        assert "Ingestion summary" not in output, output
        emu.store.advance(rng.uniform(0, 3600))
    final = subprocess.run([covage, "ingest"], env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert_equals_ground_truth(settings_for(emu, tmp_path), emu.store.ground_truth(emu.url))


def test_crash_repair_keeps_the_copy_served_last_on_an_equal_modification_date(emulator_factory, tmp_path):
    """Crash repair kept one copy of each event by modification_date alone: two copies of one
    date (the API rewrote the payload without a new date) were kept at random. The rule
    everywhere else: on an equal modification_date, the copy served last (the later load)."""
    import duckdb

    from covage_pipeline.pipeline import keep_one_copy

    emu = emulator_factory(orders=40)
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    table = f"{settings.dataset}.events"
    with duckdb.connect(str(settings.duckdb_path)) as con:
        uuid, load_id = con.execute(f"select event_uuid, _dlt_load_id from {table} limit 1").fetchone()
        later = str(float(load_id) + 1)
        for copy in range(3):  # the older copy once more, then the later one, then the older again
            loaded = later if copy == 1 else load_id
            data = '{"message": "served last"}' if copy == 1 else '{"message": "served first"}'
            con.execute(f"insert into {table} select * replace (?::json as data, ? as _dlt_load_id) from {table} "
                        "where event_uuid = ? limit 1", [data, loaded, uuid])  # fmt: skip
    keep_one_copy(make_pipeline(settings), settings)
    rows = [r for r in warehouse(settings) if r["event_uuid"] == uuid]
    assert len(rows) == 1 and rows[0]["_dlt_load_id"] == later
    assert orjson.loads(rows[0]["data"]) == {"message": "served last"}
