"""Errors a person can act on: each says what is wrong and which setting to change, no traceback
unless --debug; and two writers of the warehouse wait for each other instead of failing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from covage_pipeline.emulator import FaultConfig
from covage_pipeline.settings import load_settings

from .conftest import TOKEN
from .extraction import assert_equals_ground_truth
from .hostile import HostileAPI, Served, event

COVAGE = str(Path(sys.executable).with_name("covage"))


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("COVAGE_")}
    values.update(
        COVAGE_API_TOKEN=TOKEN,
        COVAGE_DATA_DIR=str(tmp_path / "data"),
        COLUMNS="200",
        RUNTIME__REQUEST_MAX_ATTEMPTS="1",
    )
    return values


def covage(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([COVAGE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("COVAGE_PAGE_SIZE", "abc", "COVAGE_PAGE_SIZE='abc' is not a valid number"),
        ("COVAGE_LOOKBACK_SECONDS", "ten", "COVAGE_LOOKBACK_SECONDS='ten' is not a valid number"),
        ("COVAGE_API_URL", "extranet.kosc-telecom.fr", "COVAGE_API_URL must be an http:// or https:// address"),
        ("COVAGE_API_URL", "ftp://extranet.kosc-telecom.fr", "COVAGE_API_URL must be an http:// or https:// address"),
        ("COVAGE_CODE_SERVER_RECYCLE_MINUTES", "-5", "COVAGE_CODE_SERVER_RECYCLE_MINUTES cannot be negative"),
    ],
)
def test_a_setting_that_does_not_parse_is_named(env, variable, value, named):
    result = covage("ingest", env={**env, variable: value})
    assert result.returncode == 2
    assert named in said(result)
    assert "Traceback" not in said(result)


def test_a_negative_recycle_period_is_refused_before_dagster_starts(env):
    result = covage("dagster", "--recycle-minutes", "-1", env=env, timeout=60)
    assert (
        result.returncode == 2 and "--recycle-minutes" in said(result) and "greater than or equal to 0" in said(result)
    )


def test_a_data_dir_that_is_a_file_says_so(env, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    result = covage("ingest", env=env)
    assert result.returncode == 1
    assert f"COVAGE_DATA_DIR={blocker} is not a folder" in said(result)
    assert "Traceback" not in said(result)
    debug = covage("--debug", "ingest", env=env)
    assert "Traceback" in said(debug)  # on demand


def test_an_unreachable_postgres_says_which_setting(env):
    url = "postgresql://postgres:pg-SECRET-pw@127.0.0.1:9/test"
    result = covage("ingest", env={**env, "COVAGE_DESTINATION": "postgres", "COVAGE_POSTGRES_URL": url})
    assert result.returncode == 1
    assert "PostgreSQL cannot be reached" in said(result) and "COVAGE_POSTGRES_URL" in said(result)
    assert "pg-SECRET-pw" not in said(result) and "Traceback" not in said(result)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_names_the_token_setting(env, status):
    api = HostileAPI(feed=[event(1)], token="the-right-token", refusal=status)
    with Served(api.app()) as server:
        result = covage("ingest", env={**env, "COVAGE_API_URL": server.url, "COVAGE_API_AUTH": "header"})
    assert result.returncode == 1
    text = said(result)
    assert f"The API refused the token ({status})" in text
    assert status == 401 or "may not read these events" in text
    assert "COVAGE_API_TOKEN" in text and "COVAGE_API_AUTH=header" in text and "X-API-Key" in text
    assert "api_token under [sources.covage] in .dlt/secrets.toml" in text  # not eaten as console markup
    assert TOKEN not in text and "Traceback" not in text


def test_connection_refused_says_it_is_the_url(env):
    result = covage("ingest", env={**env, "COVAGE_API_URL": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert "Nothing answers at COVAGE_API_URL=http://127.0.0.1:9" in said(result)
    assert "Run `covage ingest` again" not in said(result)


def _wait_for_lock(data_dir: Path, holder: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    lock = data_dir / ".covage-writer.lock"
    deadline = time.monotonic() + timeout
    while not (lock.exists() and holder in lock.read_text()):
        assert proc.poll() is None, "the first writer ended before the second started"
        assert time.monotonic() < deadline, "the first writer never took the lock"
        time.sleep(0.05)


def test_two_ingests_at_once_wait_for_each_other_and_converge(emulator_factory, env, tmp_path):
    emu = emulator_factory(orders=200, faults=FaultConfig(slow_rate=1.0, slow_s=0.15))
    env = {**env, "COVAGE_API_URL": emu.url, "COVAGE_PAGE_SIZE": "40"}
    first = subprocess.Popen([COVAGE, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_lock(tmp_path / "data", "covage ingest", first)
    second = covage("ingest", env=env)
    out_first, _ = first.communicate(timeout=180)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, said(second)
    assert f"Waiting for PID {first.pid}: covage ingest" in said(second)
    emu.app.faults.configure(FaultConfig())
    assert_equals_ground_truth(load_settings(data_dir=tmp_path / "data"), emu.store.ground_truth(emu.url))


def test_a_build_during_an_ingest_waits_for_it(emulator_factory, env, tmp_path):
    emu = emulator_factory(orders=150)
    env = {**env, "COVAGE_API_URL": emu.url, "COVAGE_PAGE_SIZE": "40"}
    assert covage("ingest", env=env).returncode == 0
    emu.store.advance(3 * 86400)
    # an ingest of a few seconds: every page half a second late
    emu.app.faults.configure(FaultConfig(slow_rate=1.0, slow_s=0.5))
    slow = {**env, "COVAGE_PAGE_SIZE": "200"}
    ingest = subprocess.Popen([COVAGE, "ingest"], env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_lock(tmp_path / "data", "covage ingest", ingest)
    build = covage("build", "--select", "stg_events", env=env)
    ingest.communicate(timeout=180)
    assert ingest.returncode == 0
    assert build.returncode == 0, said(build)
    assert f"Waiting for PID {ingest.pid}: covage ingest" in said(build)


def test_a_reports_fetch_during_an_ingest_waits_for_it_and_both_keep_their_state(emulator_factory, env, tmp_path):
    """`covage reports fetch` runs the same dlt pipeline (state and working folder) as `covage
    ingest`, which holds the ingest cursor: it took no lock, and the two could overwrite each
    other's state. It waits for the writer lock like every writer; after both, the warehouse is
    the API's and the cursor where the ingest left it."""
    from covage_pipeline.pipeline import make_pipeline, resource_state
    from covage_pipeline.reports import list_reports

    emu = emulator_factory(orders=150, share_fiber_pro=0.6)
    env = {**env, "COVAGE_API_URL": emu.url, "COVAGE_PAGE_SIZE": "40"}
    assert covage("ingest", env=env).returncode == 0
    emu.store.advance(3 * 86400)
    # an ingest of a few seconds: every page half a second late
    emu.app.faults.configure(FaultConfig(slow_rate=1.0, slow_s=0.5))
    slow = {**env, "COVAGE_PAGE_SIZE": "200"}
    ingest = subprocess.Popen([COVAGE, "ingest"], env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_lock(tmp_path / "data", "covage ingest", ingest)
    fetch = subprocess.Popen(
        [COVAGE, "reports", "fetch"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    told = []
    reader = threading.Thread(target=lambda: told.extend(fetch.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any("Waiting for PID" in line for line in told):
        assert fetch.poll() is None and ingest.poll() is None, "the fetch did not wait for the ingest: " + "".join(told)
        assert time.monotonic() < deadline, "the fetch never said it waits"
        time.sleep(0.05)
    emu.app.faults.configure(FaultConfig())  # the fetch waits: the rest can go at full speed
    ingest.communicate(timeout=180)
    fetch.wait(timeout=180)
    reader.join(timeout=10)
    fetched = " ".join("".join(told).split())
    assert ingest.returncode == 0 and fetch.returncode == 0, fetched
    assert f"Waiting for PID {ingest.pid}: covage ingest" in fetched
    settings = load_settings(data_dir=tmp_path / "data", api_url=emu.url)
    truth = emu.store.ground_truth(emu.url)
    assert_equals_ground_truth(settings, truth)
    cursor = resource_state(make_pipeline(settings))["cursor"]["creation_date"]
    assert cursor == max(t["creation_date"] for t in truth)
    assert list_reports(settings)  # and the reports of what the first ingest loaded are archived


def test_the_analysts_copy_is_written_under_the_builds_writer_lock(emulator_factory, env, tmp_path, monkeypatch):
    """The copy opens the warehouse read-write: it was written after the build let go of the lock,
    where another writer could slip in. The build holds the lock until the copy is in place."""
    import fcntl

    from covage_pipeline import models, publish
    from covage_pipeline.locking import lock_path
    from covage_pipeline.pipeline import ingest

    emu = emulator_factory(orders=100)
    settings = load_settings(api_url=emu.url, api_token=TOKEN, data_dir=tmp_path / "data")
    ingest(settings)
    held = []
    copy = publish.publish_marts

    def checked(settings):
        with open(lock_path(settings)) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(True)
        return copy(settings)

    monkeypatch.setattr(publish, "publish_marts", checked)
    done = models.build_and_publish(settings)
    assert done.build.success and done.published and held == [True]


def test_a_warehouse_held_by_another_program_is_waited_for_then_named(emulator_factory, env, tmp_path):
    emu = emulator_factory(orders=30)
    env = {**env, "COVAGE_API_URL": emu.url}
    assert covage("ingest", env=env).returncode == 0
    holder_code = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(float(sys.argv[2]))"
    )
    path = str(tmp_path / "data" / "covage.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, path, "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    try:
        refused = covage("ingest", env={**env, "COVAGE_LOCK_TIMEOUT_SECONDS": "2"})
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 1
    assert f"still held by PID {holder.pid}: python" in said(refused) and "COVAGE_LOCK_TIMEOUT_SECONDS" in said(refused)
    assert "Traceback" not in said(refused)
    # a holder that lets go once the ingest says it waits (not after a fixed time: on a loaded
    # machine the ingest's start-up outlasted it): the ingest then runs
    release = tmp_path / "release"
    patient_code = (
        "import duckdb, os, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True)\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.05)"
    )
    holding = [sys.executable, "-c", patient_code, path, str(release)]
    brief = subprocess.Popen(holding, stdout=subprocess.PIPE, text=True)
    log = tmp_path / "waited.log"
    try:
        assert brief.stdout.readline().strip() == "held"
        with log.open("w") as out:
            waited = subprocess.Popen([COVAGE, "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while f"Waiting: PID {brief.pid}: python" not in " ".join(log.read_text().split()):
            assert waited.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        release.touch()
        assert waited.wait(timeout=180) == 0, log.read_text()
    finally:
        brief.kill()
        brief.wait()


@pytest.mark.parametrize("auth", ["bearer", "header"])
def test_a_token_copied_with_its_newline_works_and_one_with_a_line_break_inside_is_refused_unshown(env, auth, tmp_path):
    """`COVAGE_API_TOKEN=$'tok\\n'` ended in `Invalid header value b'Bearer tok\\n'`: the whole
    token on screen and in dlt's trace. The newline around it is dropped; a control character
    inside is refused before any request, and the token is shown nowhere."""
    api = HostileAPI(feed=[event(n) for n in range(1, 6)], token="the-right-token")
    with Served(api.app()) as server:
        variables = {**env, "COVAGE_API_URL": server.url, "COVAGE_API_AUTH": auth}
        ok = covage("ingest", env={**variables, "COVAGE_API_TOKEN": "the-right-token\n"})
        assert ok.returncode == 0, said(ok)
        assert "the-right-token" in api.seen_credentials and not any("\n" in c for c in api.seen_credentials)
        for bad in ("the-right\ntoken", "the-right\rtoken\r\n"):
            refused = covage("ingest", env={**variables, "COVAGE_API_TOKEN": bad})
            assert refused.returncode != 0
            assert "COVAGE_API_TOKEN holds a control character" in said(refused)
            assert "right" not in said(refused).replace("COVAGE_API_TOKEN", "") and "Traceback" not in said(refused)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert b"the-right" not in stored  # not in dlt's trace, state or any file of the data dir


def test_a_full_disk_says_so_without_a_traceback_and_a_rerun_after_freeing_space_converges(emulator_factory, env):
    """On an 8 MB disk the backfill printed a raw Python traceback (No space left on device). It
    now says the data dir's disk is full and what to do; once there is room, a rerun converges to
    exactly the API's events. The disk: a tmpfs of its own (this machine kind runs tests as root)."""
    import tempfile

    emu = emulator_factory(orders=5000, history_days=60)
    disk = Path(tempfile.mkdtemp(prefix="covage-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        variables = {**env, "COVAGE_API_URL": emu.url, "COVAGE_DATA_DIR": str(disk / "data")}
        full = covage("ingest", env=variables)
        assert full.returncode == 1
        assert "is full: free some space there" in said(full) and str(disk / "data") in said(full), said(full)
        assert "Traceback" not in said(full)
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)  # space freed
        again = covage("ingest", env=variables)
        assert again.returncode == 0, said(again)
        assert_equals_ground_truth(load_settings(data_dir=disk / "data"), emu.store.ground_truth(emu.url))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_identifier_from_the_command_line_is_one_path_segment(env):
    """`covage events get` put the identifier into the URL path as typed: `evt?x=1` asked for the
    event `evt` with a query string. Each identifier is now escaped as one path segment."""
    api = HostileAPI(feed=[event(1, event_uuid="evt?x=1&y#z"), event(2, event_uuid="evt")], token=TOKEN)
    with Served(api.app()) as server:
        shown = covage("events", "get", "evt?x=1&y#z", env={**env, "COVAGE_API_URL": server.url})
    assert shown.returncode == 0, said(shown)
    assert '"event_uuid": "evt?x=1&y#z"' in shown.stdout


def test_a_literal_question_mark_or_percent_in_sql_with_parameters_stays_text(pg_prefix):
    """The `?` placeholders became `%s` everywhere in the SQL text, inside a string too."""
    from covage_pipeline.warehouse import query

    from .conftest import POSTGRES_URL

    settings = load_settings(destination="postgres", postgres_url=POSTGRES_URL)
    rows = query(settings, "select '?' as question, '100%' as share, ? as given, 7 % 4 as modulo", [42])
    assert rows == [{"question": "?", "share": "100%", "given": 42, "modulo": 3}]


def test_the_analysts_copy_is_written_in_a_folder_whose_name_holds_a_quote(tmp_path):
    """The copy's path went into DuckDB's ATTACH as SQL text: a `'` in the data dir broke it."""
    import duckdb

    from covage_pipeline.publish import analysts_path, publish_marts

    settings = load_settings(data_dir=tmp_path / "l'entrepot")
    settings.data_dir.mkdir()
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema main_marts; create table main_marts.orders as select 1 as n")
    assert publish_marts(settings) == {"orders": 1}
    with duckdb.connect(str(analysts_path(settings)), read_only=True) as con:
        assert con.execute("select n from marts.orders").fetchall() == [(1,)]
