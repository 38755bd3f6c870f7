"""`covage dagster` as a user starts it (`make dagster`): the webserver answers on loopback, its
GraphQL API lists every asset, and two runs of the warehouse job launched at once both succeed,
one after the other (the run queue's limit from the shipped dagster.yaml); it stops on a signal,
recycles its code server and daemon between runs, and stops everything if one of them dies."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from covage_pipeline.code_server import graphql, webserver_url

from .conftest import DBT_PROJECT, TOKEN

ROOT = Path(__file__).resolve().parents[1]
COVAGE = Path(sys.executable).parent / "covage"

LAUNCH = """
mutation($job: String!) {
  launchRun(executionParams: {
    selector: {repositoryLocationName: "dagster_defs", repositoryName: "__repository__", jobName: $job}
  }) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
# "Materialize all" in the UI: the implicit asset job, no tag of ours
LAUNCH_ALL = """
mutation {
  launchRun(executionParams: {
    selector: {repositoryLocationName: "dagster_defs", repositoryName: "__repository__", jobName: "__ASSET_JOB"}
  }) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
# the Resources tab: the settings as the code location loaded them
LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }
"""
RESOURCE = """
query($name: String!) {
  topLevelResourceDetailsOrError(resourceSelector: {
    repositoryLocationName: "dagster_defs", repositoryName: "__repository__", resourceName: $name
  }) {
    __typename
    ... on ResourceDetails { configuredValues { key value type } configFields { name description } }
  }
}
"""
STEPS = """
query($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepStartEvent { stepKey timestamp }
        ... on ExecutionStepSuccessEvent { stepKey timestamp }
        ... on ExecutionStepFailureEvent { stepKey timestamp }
      }
    }
  }
}
"""
RUN = """
query($id: ID!) {
  runOrError(runId: $id) { ... on Run { status startTime endTime tags { key value } } }
}
"""
LINEAGE = """
query($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { metadataEntries {
      __typename label
      ... on TableColumnLineageMetadataEntry { lineage { columnName columnDeps { assetKey { path } columnName } } }
    } } }
  }
}
"""
ERRORS = """
query($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message stack } }
        ... on RunFailureEvent { error { message } }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _restore_signals() -> None:
    # a non-interactive parent leaves SIGINT ignored; Dagster's processes map SIGTERM to SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def covage_dagster(emulator_factory, tmp_path):
    emu = emulator_factory(orders=150)
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "COVAGE_DATA_DIR": str(tmp_path / "data"),
        "COVAGE_API_URL": emu.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_PAGE_SIZE": "500",
        "PATH": "/usr/bin:/bin",  # no virtual environment on the PATH: the definitions must not need one
    }
    log = (tmp_path / "dagster.log").open("w")
    cmd = [str(COVAGE), "dagster", "--host", "127.0.0.1", "--port", str(port), "--recycle-minutes", "0"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_restore_signals,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_webserver(url, proc, tmp_path / "dagster.log")
        yield url, tmp_path, emu.url
    finally:
        _stop(proc)
        log.close()


def _wait_for_webserver(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "covage dagster did not answer in 180 s"
        time.sleep(1)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, SIGKILL if it is still there a minute later."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_covage_dagster_serves_every_asset_and_queues_writers(covage_dagster):
    url, _, api_url = covage_dagster
    nodes = graphql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {
        "covage/events",
        "staging/stg_events",
        "marts/orders",
        "marts/rejection_stats",
        "analysts/marts_copy",
    } <= keys
    assert sum(1 for k in keys if k.startswith("marts/")) >= 17
    # the settings, each named by its variable, the token nowhere
    resource = graphql(url, RESOURCE, name="covage")["topLevelResourceDetailsOrError"]
    shown = {value["key"]: value["value"] for value in resource["configuredValues"]}
    assert shown["page_size"] == "500" and shown["api_url"].strip('"') == api_url, shown
    described = {field["name"]: field["description"] for field in resource["configFields"]}
    assert described["page_size"] == "COVAGE_PAGE_SIZE" and "api_token" not in described
    assert TOKEN not in json.dumps(resource)

    # the scheduled job and, at the same moment, "Materialize all" (which carries no tag)
    run_ids = []
    for launched in (
        graphql(url, LAUNCH, job="ingest_and_build")["launchRun"],
        graphql(url, LAUNCH_ALL)["launchRun"],
    ):
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_ids.append(launched["run"]["runId"])
    deadline = time.monotonic() + 400
    while True:
        runs = [graphql(url, RUN, id=run_id)["runOrError"] for run_id in run_ids]
        if all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(2)
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"], _why_runs_failed(url, run_ids, runs)
    assert {"key": "covage/warehouse", "value": "writes"} in runs[0]["tags"]
    # the column lineage the UI lists with the materialization (its graph view is Dagster+'s)
    asset = graphql(url, LINEAGE, path=["marts", "open_order_forecast"])["assetOrError"]
    entries = asset["assetMaterializations"][0]["metadataEntries"]
    lineage = {
        entry["columnName"]: [(dep["assetKey"]["path"], dep["columnName"]) for dep in entry["columnDeps"]]
        for found in entries
        if found["__typename"] == "TableColumnLineageMetadataEntry"
        for entry in found["lineage"]
    }
    assert lineage["order_uuid"] == [(["intermediate", "int_order_forecasts_now"], "order_uuid")], entries
    # the steps that write the warehouse, in either run, never overlap in time
    writes = []
    for run_id in run_ids:
        spans: dict[str, list[float]] = {}
        for event in graphql(url, STEPS, id=run_id)["logsForRun"]["events"]:
            if event.get("stepKey") in WRITERS:
                spans.setdefault(event["stepKey"], []).append(float(event["timestamp"]))
        assert set(spans) == WRITERS, (run_id, spans)
        writes += [(min(times), max(times), run_id, step) for step, times in spans.items()]
    writes.sort()
    for (_, end, run_a, step_a), (start, _, run_b, step_b) in itertools.pairwise(writes):
        assert end <= start, f"{step_a} ({run_a[:8]}) and {step_b} ({run_b[:8]}) wrote the warehouse at the same time"


WRITERS = {"covage_ingestion", "covage_dbt", "analysts__marts_copy"}


def _why_runs_failed(url: str, run_ids: list[str], runs: list[dict]) -> str:
    """The errors of each failed run, from the instance's event log (the process's log holds only a tail)."""
    report = []
    for run_id, run in zip(run_ids, runs, strict=True):
        if run["status"] == "SUCCESS":
            continue
        events = graphql(url, ERRORS, id=run_id)["logsForRun"].get("events", [])
        report.append(f"run {run_id}: {run['status']}")
        for event in events:
            if event.get("level") == "ERROR" or event.get("error"):
                error = event.get("error") or {}
                report.append(f"  {event['__typename']} {event.get('stepKey')}: {event.get('message')}")
                report.append("  " + (error.get("message") or "") + "".join(error.get("stack") or [])[-2000:])
    return "\n".join(report)


@pytest.mark.parametrize("how", ["SIGTERM to make started in the background", "Ctrl-C in a terminal"])
def test_make_dagster_stops_on_a_signal(tmp_path, how):
    """A shell that starts `make dagster &` leaves SIGINT ignored, and Dagster's processes alone
    then survive SIGTERM as well (they map it to SIGINT). Every process it starts must be gone
    soon after the signal: SIGTERM sent to make, or SIGINT to the terminal's foreground process
    group (what Ctrl-C does)."""
    port = _free_port()
    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path / "data")}
    make = ["make", "-s", "dagster", f"DAGSTER_PORT={port}"]
    if how.startswith("SIGTERM"):
        script = f"{' '.join(make)} > {tmp_path}/log 2>&1 & echo $!; wait"
        # as from a user's shell (`&` still leaves make's SIGINT ignored): a Dagster run in this
        # process (an earlier test on the same pytest-xdist worker) maps SIGTERM to SIGINT's
        # handler, ignored here, and make then inherited SIGTERM ignored (seen in CI, two workers)
        shell = subprocess.Popen(
            ["sh", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=_restore_signals
        )
        make_pid = int(shell.stdout.readline())

        def send() -> None:
            os.kill(make_pid, signal.SIGTERM)

        def signals() -> str:  # make's handling of signals, for the message if it fails
            return _signal_masks(make_pid)
    else:
        log = (tmp_path / "log").open("w")
        shell = subprocess.Popen(make, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def send() -> None:
            os.killpg(shell.pid, signal.SIGINT)

        def signals() -> str:
            return _signal_masks(shell.pid)

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert shell.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()[-2000:]
        time.sleep(1)
    assert _processes_of(tmp_path), "no dagster process found"
    before = signals()
    send()
    deadline = time.monotonic() + 60
    while left := _processes_of(tmp_path):
        assert time.monotonic() < deadline, (
            f"still running after {how}: {left}\nthe signalled process before: {before}\n"
            + "\n".join(f"{line[:40]}: {_signal_masks(int(line.split()[0]))}" for line in left)
            + "\n"
            + (tmp_path / "log").read_text()[-1500:]
        )
        time.sleep(1)
    shell.wait(timeout=30)


def _processes_of(tmp_path: Path) -> list[str]:
    """The command lines of live processes whose environment points at this test's data dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(tmp_path).encode() in environ and "dagster" in cmdline:
            found.append(f"{proc.name} {cmdline[:120]}")
    return found


def _signal_masks(pid: int) -> str:
    """Its parent, process group, and ignored, blocked and caught signals (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return f"{pid} gone"
    masks = " ".join(line.replace("\t", "") for line in status if line.startswith(("SigIgn", "SigBlk", "SigCgt")))
    return f"pid {pid} ppid {fields[1]} pgid {fields[2]} {masks}"


def _definitions_servers(tmp_path: Path) -> set[int]:
    """Pids of the code servers that load the definitions (`dagster api grpc`) of this test."""
    return {int(line.split()[0]) for line in _processes_of(tmp_path) if "api grpc" in line}


def _daemons(tmp_path: Path) -> set[int]:
    return {int(line.split()[0]) for line in _processes_of(tmp_path) if "dagster-daemon" in line}


DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def _daemon_healthy(url: str) -> bool:
    """Whether every daemon Dagster requires has sent a recent heartbeat."""
    statuses = graphql(url, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(status["healthy"] for status in statuses if status["required"])


@contextlib.contextmanager
def _recycling_every_12_s(tmp_path: Path, port: int, env: dict) -> Iterator[tuple[Path, Callable]]:
    """`covage dagster` recycling its code server every 12 s (it polls every 6 s), its output in a
    file. Yields the file and `wait_for(what, done, seconds)`, which fails with the output's tail
    if Dagster exits or time runs out; stops every process it started."""
    log_path = tmp_path / "log"
    covage = Path(sys.executable).parent / "covage"
    command = [str(covage), "dagster", "--port", str(port), "--recycle-minutes", "0.2"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def wait_for(what: str, done: Callable, seconds: float = 240):
            deadline = time.monotonic() + seconds
            while not (found := done()):
                assert proc.poll() is None and time.monotonic() < deadline, f"{what}\n{log_path.read_text()[-3000:]}"
                time.sleep(0.5)
            return found

        try:
            yield log_path, wait_for
        finally:
            _stop(proc)


def test_covage_dagster_recycles_its_code_server_between_runs_never_during_one(emulator_factory, tmp_path):
    """Dagster's code server grows with every run it launches, its daemon with every hour:
    `covage dagster` reloads the code location and restarts the daemon on a timer. Fresh
    processes must take over (the new daemon healthy), a run must still succeed, and no recycle
    may happen while a run is queued or running (its code server would be told to stop)."""
    emu = emulator_factory(orders=150)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "COVAGE_DATA_DIR": str(tmp_path / "data"),
        "COVAGE_API_URL": emu.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_PAGE_SIZE": "500",
    }
    with _recycling_every_12_s(tmp_path, port, env) as (log_path, wait_for):

        def recycled() -> int:
            return log_path.read_text().count("Code server recycled")

        first = wait_for("no code server", lambda: _definitions_servers(tmp_path))
        first_daemon = wait_for("no daemon", lambda: _daemons(tmp_path))
        # fresh processes took over and the first ones are gone
        wait_for("never recycled", lambda: recycled() >= 1 and not _definitions_servers(tmp_path) & first)
        assert len(_daemons(tmp_path)) == 1 and not _daemons(tmp_path) & first_daemon, log_path.read_text()[-2000:]
        wait_for("the new daemon is not healthy", lambda: _daemon_healthy(url), 120)
        # launched right after a recycle (the next is due 12 s later): the run is queued by then
        done = recycled()
        wait_for("not recycled again", lambda: recycled() > done)
        # the replaced process may take a moment to exit after the reload answers
        wait_for("the replaced code server did not exit", lambda: len(_definitions_servers(tmp_path)) == 1)
        launched = graphql(url, LAUNCH, job="ingest_and_build")["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        during, recycles = set(), recycled()

        daemons = set()

        def finished() -> dict | None:
            during.update(_definitions_servers(tmp_path))
            daemons.update(_daemons(tmp_path))
            run = graphql(url, RUN, id=run_id)["runOrError"]
            return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

        run = wait_for("the run did not finish", finished, 400)
        assert run["status"] == "SUCCESS", _why_runs_failed(url, [run_id], [run])
        assert recycled() == recycles and len(during) == 1 and len(daemons) == 1, (
            during,
            daemons,
            log_path.read_text()[-2000:],
        )
        # and recycling goes on once the run is over
        wait_for("not recycled after", lambda: recycled() > recycles and not _definitions_servers(tmp_path) & during)


def test_covage_dagster_stops_everything_when_a_dagster_process_dies(tmp_path):
    """A daemon that dies on its own (killed, out of memory) must not leave a UI up that schedules
    nothing: like `dagster dev`, `covage dagster` stops the rest, says which one died, and exits
    non-zero, so that whatever supervises it (systemd, a container) restarts it."""
    port = _free_port()
    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "log"
    command = [str(COVAGE), "dagster", "--port", str(port), "--recycle-minutes", "0"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_webserver(f"http://127.0.0.1:{port}", proc, log)
        (daemon,) = _daemons(tmp_path)
        os.kill(daemon, signal.SIGKILL)
        assert proc.wait(timeout=90) == 1, log.read_text()[-2000:]
        assert f"Dagster's daemon exited with code -{signal.SIGKILL}" in log.read_text(), log.read_text()[-2000:]
        assert not _processes_of(tmp_path), _processes_of(tmp_path)
    finally:
        if proc.poll() is None:
            _stop(proc)


def test_a_recycle_that_finds_the_definitions_broken_says_so_and_takes_the_mended_ones(tmp_path):
    """An edit that breaks the dbt project between two recycles: the reload's new code server
    cannot load the definitions. `covage dagster` must say so and what to do, keep serving, and
    take the mended project at a later period without anyone restarting it."""
    project = tmp_path / "sql"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("logs", "covage_dbt-*", "parse-*"))
    port = _free_port()
    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path / "data"), "COVAGE_DBT_PROJECT_DIR": str(project)}
    broken = project / "models" / "marts" / "broken_by_an_edit.sql"
    with _recycling_every_12_s(tmp_path, port, env) as (log_path, wait_for):

        def said(what: str) -> int:
            return log_path.read_text().count(what)

        wait_for("never recycled", lambda: said("Code server recycled") >= 1)
        broken.write_text("select * from {{ ref('no_such_model') }}\n")
        wait_for("the failed reload was not reported", lambda: said("Code server not recycled"))
        line = next(line for line in log_path.read_text().splitlines() if "Code server not recycled" in line)
        # what failed and why (the dbt error names the missing model), then what to do
        assert "reloading dagster_defs failed" in line and "no_such_model" in line and "Fix the definitions" in line, (
            line
        )
        # the UI still answers and shows the error on the code location, as after its Reload button
        location = graphql(f"http://127.0.0.1:{port}", LOCATION)["workspaceOrError"]["locationEntries"]
        assert [entry["locationOrLoadError"]["__typename"] for entry in location] == ["PythonError"], location
        broken.unlink()
        recycled = said("Code server recycled")
        wait_for("the mended definitions were not taken", lambda: said("Code server recycled") > recycled)
        location = graphql(f"http://127.0.0.1:{port}", LOCATION)["workspaceOrError"]["locationEntries"]
        assert [entry["locationOrLoadError"]["__typename"] for entry in location] == ["RepositoryLocation"], location


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:3000"),
        ("0.0.0.0", "http://127.0.0.1:3000"),  # every interface: reached on loopback
        ("::", "http://[::1]:3000"),
        ("::1", "http://[::1]:3000"),  # an IPv6 address in brackets, or the port would be read as part of it
        ("dagster.internal", "http://dagster.internal:3000"),
    ],
)
def test_the_recycler_reaches_the_webserver_whatever_address_it_listens_on(host, url):
    assert webserver_url(host, 3000) == url
    assert httpx.URL(url).port == 3000
