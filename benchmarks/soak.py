"""Dagster left running: schedules on with a one-minute cron, the emulator's clock sped up so each
tick brings new events, `covage sql` polled as an analyst would. What piles up, what grows?

It reports runs by status, the wait from each scheduled tick to its run's start, each run's wall
time beside the CLI's (`covage ingest` + `covage build`) on a comparable tick, the resident memory
of every Dagster process over time (and its trend), the disk used per run, and whether the
warehouse equals the emulator's ground truth at the end (no duplicate, nothing missing). The
code server is recycled and the daemon restarted as in real use (COVAGE_CODE_SERVER_RECYCLE_MINUTES,
default 30): the memory of each is given summed over its processes, with the highest of each
quarter of the soak.

    .venv/bin/python benchmarks/soak.py [--minutes 15] [--speed 300] [--retention-minutes 10]
                                        [--warm-up-reloads 10] [--keep]

Each reload of the code location adds a little to the webserver until about ten reloads (five
hours at the default period): `--warm-up-reloads` does those first, so the soak measures the level
a long-lived `covage dagster` settles at. A soak longer than 90 minutes also
gives each trend over its last hour.

With `--retention-minutes`, finished runs older than that are deleted every five minutes
(COVAGE_RETENTION_DAYS, COVAGE_PRUNE_CRON), so the disk should stop growing once the first runs
age out: the disk trend is also given for the second half alone. Runs are recorded as they are
seen, so the figures cover the runs the pruning deletes.

Run it from a checkout nobody edits meanwhile: each Dagster run imports the code and reads the
dbt project afresh, so an edit during the soak shows up as failed runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, start, stop, wait_http

from covage_pipeline.code_server import graphql, reload_code_location

BIN = Path(sys.executable).parent
RUNS = """
{ runsOrError(limit: 1000) { ... on Runs { results {
    runId jobName status creationTime startTime endTime tags { key value } } } } }
"""


FAILURES = """
query Failure($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
    __typename ... on MessageEvent { message } ... on ExecutionStepFailureEvent { error { message } }
    ... on RunFailureEvent { message } } } } }
"""


def failure_reasons(url: str, run_id: str) -> list[str]:
    """What the run's failure events say (first line of each)."""
    response = httpx.post(f"{url}/graphql", json={"query": FAILURES, "variables": {"runId": run_id}}, timeout=60)
    try:
        events = response.json()["data"]["logsForRun"].get("events", [])
    except (KeyError, TypeError, ValueError):  # a schema this query does not fit: say so, keep the rest
        return [f"could not read the run's events: {response.text[:200]}"]
    reasons = []
    for event in events:
        if event["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent"):
            text = (event.get("error") or {}).get("message") or event.get("message") or ""
            reasons.append(text.strip().splitlines()[0][:300] if text.strip() else event["__typename"])
    return reasons


def record_runs(url: str, seen: dict[str, dict], failed: dict[str, list[str]]) -> None:
    """Adds the runs the instance holds now to `seen`; the reasons of a failure are read at once."""
    for run in graphql(url, RUNS)["runsOrError"]["results"]:
        seen[run["runId"]] = run
        if run["status"] == "FAILURE" and run["runId"] not in failed:
            failed[run["runId"]] = failure_reasons(url, run["runId"])


def dagster_processes(root_pid: int) -> dict[int, str]:
    """pid -> a short name, for the process `covage dagster` started and its descendants."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(proc.name))
        names[int(proc.name)] = cmd
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            cmd = names.get(child, "")
            if "dagster-webserver" in cmd:
                found[child] = "webserver"
            elif "dagster-daemon" in cmd:
                found[child] = "daemon"  # restarted with each recycle
            elif "code-server" in cmd:
                found[child] = "code-server parent"
            elif "api grpc" in cmd:
                found[child] = "code server"  # the one that loads the definitions; recycled
            elif "api execute_run" in cmd:
                found[child] = "run worker"
            todo.append(child)
    return found


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        return None


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB an hour."""
    if len(samples) < 3:
        return 0.0
    xs, ys = zip(*samples, strict=True)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return 3600 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def cli(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "covage"), *args], env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--speed", type=float, default=300.0, help="emulated seconds per real second")
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--retention-minutes", type=float, help="prune finished runs older than this, every 5 min")
    parser.add_argument("--warm-up-reloads", type=int, default=0, help="reload the code location this often first")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and Dagster's log, to look into")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="covage-soak-"))
    data = tmp / "data"
    api_port, ui_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    ui = f"http://127.0.0.1:{ui_port}"
    emulator = start(
        [str(BIN / "covage"), "emulator", "serve", "--port", str(api_port), "--orders", str(args.orders),
         "--token", TOKEN, "--speed", str(args.speed)],
        env={**os.environ, "COVAGE_API_TOKEN": ""},
    )  # fmt: skip
    env = {
        **os.environ,
        "COVAGE_API_URL": api,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(data),
        "COVAGE_SCHEDULES": "on",
        "COVAGE_INGEST_CRON": "* * * * *",
    }
    if args.retention_minutes:
        env |= {"COVAGE_RETENTION_DAYS": str(args.retention_minutes / 1440), "COVAGE_PRUNE_CRON": "*/5 * * * *"}
    dagster = None
    try:
        wait_http(f"{api}/_emulator/status", emulator)
        dagster = subprocess.Popen(
            [str(BIN / "covage"), "dagster", "--port", str(ui_port)],
            env=env,
            stdout=(tmp / "dagster.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{ui}/server_info", dagster)
        for done in range(args.warm_up_reloads):
            reload_code_location(ui)  # the old code server finishes a run it launched, then exits
            print(f"warm-up reload {done + 1}/{args.warm_up_reloads}", flush=True)
        print(f"Dagster on {ui}, emulator at {api} ({args.speed:g}x), for {args.minutes:g} minutes...", flush=True)
        started = time.monotonic()
        # by role, summed over its processes: a recycled code server overlaps its successor a moment
        memory: dict[str, list[tuple[float, float]]] = {}
        pids: dict[str, set[int]] = {}
        sql_seconds: list[float] = []
        disk: list[tuple[float, float]] = []
        parts: dict[str, list[tuple[float, float]]] = {}  # each entry of the data dir
        seen: dict[str, dict] = {}  # every run as last seen: the pruning deletes the old ones
        failed: dict[str, list[str]] = {}
        while time.monotonic() - started < args.minutes * 60:
            record_runs(ui, seen, failed)
            now = time.monotonic() - started
            roles: dict[str, float] = {}
            for pid, name in dagster_processes(dagster.pid).items():
                if name != "run worker" and (mb := rss_mb(pid)) is not None:
                    roles[name] = roles.get(name, 0.0) + mb
                    pids.setdefault(name, set()).add(pid)
            for name, mb in roles.items():
                memory.setdefault(name, []).append((now, mb))
            if (data / "analysts").exists():
                try:
                    sql_seconds.append(cli(["sql", "select count(*) from marts.orders"], env))
                except subprocess.CalledProcessError:
                    sql_seconds.append(float("nan"))
            disk.append((now, disk_mb(data)))
            # Dagster's instance by folder too: run storage, schedules' ticks, compute logs
            for part in [*data.iterdir(), *(data / "dagster_home").glob("*")]:
                parts.setdefault(str(part.relative_to(data)), []).append(
                    (now, disk_mb(part) if part.is_dir() else part.stat().st_size / 1e6)
                )
            time.sleep(20)
        record_runs(ui, seen, failed)
        runs = list(seen.values())
    finally:
        if dagster is not None:
            os.killpg(dagster.pid, signal.SIGTERM)
            dagster.wait(timeout=120)
    try:
        # the CLI on a tick like the scheduler's (a minute of the emulator's events), then exactness
        cli(["ingest"], env)
        time.sleep(60)
        cli_ingest = cli(["ingest"], env)
        cli_build = cli(["build"], env)
        httpx.post(f"{api}/_emulator/speed?value=0", timeout=30).raise_for_status()  # the clock stops
        httpx.post(f"{api}/_emulator/advance?seconds=3600", timeout=30)  # every late event visible
        truth = {item["event_uuid"] for item in httpx.get(f"{api}/_emulator/ground-truth", timeout=300).json()}
        cli(["ingest"], env)
    finally:
        stop(emulator)
    import duckdb

    con = duckdb.connect(str(data / "covage.duckdb"), read_only=True)
    stored = [row[0] for row in con.execute("select event_uuid from covage_raw.events").fetchall()]
    con.close()

    by_status = Counter(r["status"] for r in runs)
    scheduled = [r for r in runs if {"key": "dagster/schedule_name", "value": "ingest_every_5_minutes"} in r["tags"]]
    waits = [r["startTime"] - r["creationTime"] for r in scheduled if r["startTime"]]
    walls = [r["endTime"] - r["startTime"] for r in scheduled if r["endTime"] and r["startTime"]]
    finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE")]
    print(f"\nruns by status: {dict(by_status)} ({len(scheduled)} from the one-minute schedule)")
    if waits:
        print(f"tick to start: median {statistics.median(waits):.1f} s, max {max(waits):.1f} s")
    if walls:
        cli_total = cli_ingest + cli_build
        print(
            f"run wall time: median {statistics.median(walls):.1f} s, max {max(walls):.1f} s; the CLI on a tick: "
            f"ingest {cli_ingest:.1f} s + build {cli_build:.1f} s = {cli_total:.1f} s "
            f"(ratio {statistics.median(walls) / cli_total:.2f})"
        )
    for run_id, reasons in failed.items():
        print(f"failed run {run_id[:8]}: " + (" | ".join(reasons) or "no failure event"))
    for name, samples in sorted(memory.items()):
        first, last = samples[0][1], samples[-1][1]
        # the trend once warmed up (the code server loads the definitions and dbt's manifest at
        # its first run): from the first quarter of the soak on
        warm = [(t, mb) for t, mb in samples if t >= samples[-1][0] / 4]
        # a recycled process drops back: the highest of each quarter says whether it stays bounded
        end = samples[-1][0]
        highest = [max((mb for t, mb in samples if q * end / 4 <= t <= (q + 1) * end / 4), default=0) for q in range(4)]
        last_hour = [(t, mb) for t, mb in samples if t >= end - 3600]
        hour = f", last hour {slope_per_hour(last_hour):+.1f}" if end >= 90 * 60 else ""
        print(
            f"RSS {name:<18} {first:6.0f} -> {last:6.0f} MB (warm from {warm[0][1]:.0f} MB), "
            f"trend once warm {slope_per_hour(warm):+.1f} MB/h{hour} (whole run {slope_per_hour(samples):+.1f}); "
            f"highest by quarter {' / '.join(f'{mb:.0f}' for mb in highest)} MB; {len(pids[name])} process(es)"
        )
    if finished and len(disk) > 2:
        per_run = (disk[-1][1] - disk[len(disk) // 4][1]) / max(1, len(finished) * 3 // 4)
        half = [(t, mb) for t, mb in disk if t >= disk[-1][0] / 2]
        print(
            f"disk: {disk[-1][1]:.0f} MB in the data dir, about {per_run:.2f} MB a run once warmed up; "
            f"trend over the second half {slope_per_hour(half):+.1f} MB/h"
        )
        for name, samples in sorted(parts.items()):
            half = [(t, mb) for t, mb in samples if t >= disk[-1][0] / 2]
            print(f"  {name:<24} {samples[-1][1]:8.1f} MB, second half {slope_per_hour(half):+7.1f} MB/h")
    if sql_seconds:
        print(f"covage sql: median {statistics.median(sql_seconds):.2f} s, max {max(sql_seconds):.2f} s")
    exact = len(stored) == len(set(stored)) and set(stored) == truth
    print(f"warehouse equals the ground truth: {exact} ({len(stored):,} rows, {len(truth):,} events)")
    failed_soak = not exact or by_status.get("FAILURE")
    if failed_soak or args.keep:
        print(f"kept for a look: {tmp} (dagster.log, the data dir)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if failed_soak:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
