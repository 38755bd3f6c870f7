"""The same pipeline on Spark `local[2]` beside DuckDB, on the same ~1,000,000 events, in one run.

Against one emulator process with a frozen clock:
1. `covage ingest` into DuckDB, then into the lake (COVAGE_DESTINATION=spark: Parquet files);
2. the full `covage build` on each (every model and test; on Spark, Spark's start-up included,
   as a user pays it);
3. the emulator's clock moves on; `covage ingest` into both; `covage build` on each again (on
   DuckDB stg_events is incremental; on a lake it is rebuilt from the files).
Ratios are Spark / DuckDB for the same step. On one small machine Spark is expected to be slower
(a local Spark is one JVM with per-statement overhead); the point is that the same models run on
an engine that scales out, and by how much one machine pays for it.

    .venv/bin/python benchmarks/spark_build.py [--orders 145000] [--advance-s 3600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, start_emulator, stop, wait_http

BIN = Path(sys.executable).parent


def covage(*args: str, env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([str(BIN / "covage"), *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"covage {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def staged_events(env: dict) -> int:
    """Rows of stg_events, read by the engine the environment names (through the package's reader)."""
    code = (
        "from covage_pipeline.settings import load_settings; from covage_pipeline.warehouse import query; "
        "s = load_settings(); print(query(s, f'select count(*) as n from {s.dbt_schema}_staging.stg_events')[0]['n'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=145_000, help="orders in the history (~6.9 events each)")
    parser.add_argument("--advance-s", type=float, default=3600.0, help="emulated seconds between the two loads")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="covage-spark-bench-"))
    base = {
        **os.environ,
        "COVAGE_API_URL": url,
        "COVAGE_API_TOKEN": TOKEN,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
    }
    engines = {
        "duckdb": {**base, "COVAGE_DATA_DIR": str(tmp / "duckdb")},
        "spark": {**base, "COVAGE_DATA_DIR": str(tmp / "spark"), "COVAGE_DESTINATION": "spark"},
    }
    times: dict[str, dict[str, float]] = {name: {} for name in engines}
    rows: dict[str, dict[str, int]] = {name: {} for name in engines}
    print(f"starting the emulator with {args.orders:,} orders...", flush=True)
    emulator = start_emulator(port, args.orders)
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        for step in ("full", "incremental"):
            if step == "incremental":
                advance = {"seconds": args.advance_s}
                httpx.post(f"{url}/_emulator/advance", params=advance, timeout=60).raise_for_status()
            for name, env in engines.items():
                times[name][f"ingest {step}"] = covage("ingest", env=env)
                times[name][f"build {step}"] = covage("build", env=env)
                rows[name][step] = staged_events(env)
                print(
                    f"{name:7} {step:12} ingest {times[name][f'ingest {step}']:7.1f} s   "
                    f"build {times[name][f'build {step}']:7.1f} s   stg_events {rows[name][step]:,}",
                    flush=True,
                )
    finally:
        stop(emulator)
        lake = sum(f.stat().st_size for f in (tmp / "spark" / "lake").rglob("*") if f.is_file())
        shutil.rmtree(tmp, ignore_errors=True)

    assert rows["duckdb"] == rows["spark"], f"the engines disagree: {rows}"
    print(f"\n{'':26}{'DuckDB':>10}{'Spark':>10}{'ratio':>8}")
    for label in ("ingest full", "build full", "ingest incremental", "build incremental"):
        d, s = times["duckdb"][label], times["spark"][label]
        print(f"{label:26}{d:>8.1f} s{s:>8.1f} s{s / d:>7.1f}x")
    print(f"\nstg_events: {rows['duckdb']['full']:,} then {rows['duckdb']['incremental']:,} rows on both engines")
    print(f"lake: {lake / 1e6:.0f} MB of files")


if __name__ == "__main__":
    main()
