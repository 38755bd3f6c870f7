"""What one tick costs as the history grows: `covage ingest` + `covage build` (the dbt build and
the analysts' copy) after one emulated hour of new events, and the same tick as the Dagster job
`ingest_and_build`, at several history sizes in one run.

The history grows as a feed does, over time at one pace (`--orders-per-day`): each size is
`--days` days of it, so the new events of an hour are the same at every size and only the past
grows. Per size: an emulator with a frozen clock, the backfill and the first (full) build, one
warm-up tick; then `--rounds` ticks, each: the clock one hour on, `covage ingest`, `covage build`
(each a process of its own, its peak memory read from the kernel); then as many ticks of the
Dagster job (in a process that loaded the definitions once, as the code server does). Ratios
against the smallest size and against the CLI, within this run. Targets: the CLI tick at 1M
events under 15 s; 8x the history at most 1.5x the tick; the Dagster tick at most 2x the CLI's;
the build's peak memory flat.

    .venv/bin/python benchmarks/tick_growth.py [--days 45 90 180 365] [--orders-per-day 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, start, stop, wait_http

BIN = Path(sys.executable).parent
HOUR = 3600.0

DAGSTER_TICKS = """
import json, sys, time
import httpx
t0 = time.perf_counter()
from dagster import DagsterInstance
from dagster_defs.definitions import INGEST_JOB, build_definitions
definitions = build_definitions()
job = definitions.resolve_job_def(INGEST_JOB)
loaded = time.perf_counter() - t0
times = []
with DagsterInstance.ephemeral() as instance:
    for _ in range(int(sys.argv[2])):
        httpx.post(sys.argv[1] + "/_emulator/advance", params={"seconds": 3600}, timeout=60).raise_for_status()
        t = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        times.append(time.perf_counter() - t)
        if not result.success:
            sys.exit("the Dagster job failed")
print(json.dumps({"load": loaded, "ticks": times}))
"""


def timed(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `covage` command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "covage"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status:
        raise SystemExit(f"covage {' '.join(args)} failed:\n{output.decode(errors='replace')[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def one_size(days: float, per_day: float, rounds: int, tmp: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    orders = int(days * per_day)
    data = tmp / f"days-{days:g}"
    env = {
        **os.environ,
        "COVAGE_API_URL": url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(data),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
    }
    cmd = [str(BIN / "covage"), "emulator", "serve", "--port", str(port), "--orders", str(orders)]
    cmd += ["--history-days", str(days), "--token", TOKEN, "--speed", "0", "--start", "2026-01-05T00:00:00"]
    emulator = start(cmd, env={**env, "COVAGE_API_TOKEN": ""})
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        backfill, _ = timed(["ingest"], env)
        full, full_peak = timed(["build"], env)
        with duckdb.connect(str(data / "covage.duckdb"), read_only=True) as con:
            events = con.execute("select count(*) from covage_raw.events").fetchone()[0]
        print(f"  {days:g} days, {orders:,} orders, {events:,} events: backfill {backfill:.0f} s, "
              f"full build {full:.0f} s ({full_peak:,.0f} MB)", flush=True)  # fmt: skip
        ticks = []
        for i in range(rounds + 1):  # the first tick warms up (the first incremental build)
            httpx.post(f"{url}/_emulator/advance", params={"seconds": HOUR}, timeout=60).raise_for_status()
            with duckdb.connect(str(data / "covage.duckdb"), read_only=True) as con:
                before = con.execute("select count(*) from covage_raw.events").fetchone()[0]
            ingest, _ = timed(["ingest"], env)
            build, peak = timed(["build"], env)
            with duckdb.connect(str(data / "covage.duckdb"), read_only=True) as con:
                new = con.execute("select count(*) from covage_raw.events").fetchone()[0] - before
            if i:
                ticks.append((ingest, build, peak, new))
        ran = subprocess.run(
            [sys.executable, "-c", DAGSTER_TICKS, url, str(rounds)],
            env={**env, "DAGSTER_HOME": str(data / "dagster_home_bench")},
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        if ran.returncode:
            raise SystemExit(f"the Dagster ticks failed:\n{ran.stdout[-2000:]}\n{ran.stderr[-4000:]}")
        dagster = json.loads(ran.stdout.strip().splitlines()[-1])
    finally:
        stop(emulator)
    return {
        "days": days,
        "events": events,
        "new": statistics.median(t[3] for t in ticks),
        "ingest": statistics.median(t[0] for t in ticks),
        "build": statistics.median(t[1] for t in ticks),
        "tick": statistics.median(t[0] + t[1] for t in ticks),
        "peak": max(t[2] for t in ticks),
        "dagster": statistics.median(dagster["ticks"]),
        "dagster_load": dagster["load"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, nargs="+", default=[45, 90, 180, 365], help="history sizes, in days")
    parser.add_argument("--orders-per-day", type=float, default=400.0, help="the feed's pace (about 7 events an order)")
    parser.add_argument("--rounds", type=int, default=3, help="measured ticks per size (medians are shown)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="covage-tick-growth-") as tmp:
        for days in sorted(args.days):
            results.append(one_size(days, args.orders_per_day, args.rounds, Path(tmp)))
    base = results[0]
    print(f"\n{'history':>22}{'new':>6}{'ingest':>9}{'build':>9}{'tick':>9}{'x smallest':>12}{'peak':>10}"
          f"{'Dagster':>10}{'x CLI':>7}")  # fmt: skip
    for r in results:
        print(
            f"{r['days']:>6g} d {r['events']:>10,} ev{r['new']:>6.0f}{r['ingest']:>7.1f} s{r['build']:>7.1f} s"
            f"{r['tick']:>7.1f} s{r['tick'] / base['tick']:>11.2f}x{r['peak']:>7,.0f} MB"
            f"{r['dagster']:>8.1f} s{r['dagster'] / r['tick']:>6.2f}x",
            flush=True,
        )
    largest = results[-1]
    print(
        f"\n(tick = covage ingest + covage build, medians of {args.rounds}; Dagster = the ingest_and_build job in a "
        f"process that loaded the definitions once, {largest['dagster_load']:.0f} s to load them)"
    )
    print(f"largest history ({largest['events']:,} events): tick {largest['tick']:.1f} s, "
          f"{largest['events'] / base['events']:.1f}x the history of the smallest costs "
          f"{largest['tick'] / base['tick']:.2f}x its tick")  # fmt: skip


if __name__ == "__main__":
    main()
