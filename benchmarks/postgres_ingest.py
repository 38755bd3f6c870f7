"""Backfill of ~1,000,000 events into PostgreSQL, next to the same backfill into DuckDB, in one run.

Against one emulator process (frozen clock, warmed up by the first backfill's pages being
serialised once, so the DuckDB run goes second), `covage ingest` as a user runs it, timed:
1. into PostgreSQL (COVAGE_DESTINATION=postgres), in a schema created for the run and dropped after;
2. into the embedded DuckDB file.
Then `covage build` on both, for the models' side of the same comparison.

    .venv/bin/python benchmarks/postgres_ingest.py [--orders 145000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg2

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, page_emulator, start_emulator, stop, wait_http

BIN = Path(sys.executable).parent


def covage(*args: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "covage"), *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=145_000, help="orders in the history (~6.9 events each)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="covage-pg-bench-"))
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    base = {**os.environ, "COVAGE_API_URL": url, "COVAGE_API_TOKEN": TOKEN, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    pg_env = {
        **base,
        "COVAGE_DATA_DIR": str(tmp / "pg"),
        "COVAGE_DESTINATION": "postgres",
        "COVAGE_POSTGRES_URL": args.postgres_url,
        "COVAGE_DATASET": f"{prefix}_raw",
        "COVAGE_MODELS_SCHEMA": prefix,
    }
    duck_env = {**base, "COVAGE_DATA_DIR": str(tmp / "duck")}
    print(f"starting the emulator with {args.orders:,} orders...", flush=True)
    emulator = start_emulator(port, args.orders)
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        page_emulator(url, 1000)  # serialises and caches every event: both runs see a warm server
        events = httpx.get(f"{url}/_emulator/status", timeout=60).json()["events_visible"]
        print(f"{events:,} events served", flush=True)
        pg_s = covage("ingest", env=pg_env)
        duck_s = covage("ingest", env=duck_env)
        pg_build = covage("build", env=pg_env)
        duck_build = covage("build", env=duck_env)
    finally:
        stop(emulator)
        con = psycopg2.connect(args.postgres_url)
        con.autocommit = True
        with con.cursor() as cur:
            for suffix in ("_raw", "_staging", "_marts"):
                cur.execute(f'drop schema if exists "{prefix}{suffix}" cascade')
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'':28}{'backfill':>10}{'events/s':>11}{'covage build':>14}")
    print(f"{'DuckDB (embedded file)':28}{duck_s:>8.1f} s{events / duck_s:>11,.0f}{duck_build:>12.1f} s")
    print(f"{'PostgreSQL 127.0.0.1':28}{pg_s:>8.1f} s{events / pg_s:>11,.0f}{pg_build:>12.1f} s")
    print(f"\nPostgreSQL / DuckDB backfill throughput: {duck_s / pg_s:.2f}")


if __name__ == "__main__":
    main()
