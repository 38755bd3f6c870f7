"""`dbt build` (every model and every test) on ~1,000,000 events, full and after a small
incremental load, next to DuckDB alone running the same compiled SQL in the same run; and what
`covage build` adds after it, the analysts' copy of the marts.

Steps, against one emulator process with a frozen clock:
1. backfill with `covage ingest`; copy the warehouse;
2. the full build: the `dbt build` command as a user runs it (a subprocess, start-up and parsing
   included) and as dbt reports it, then the analysts' copy (what `covage build` does next); then
   DuckDB alone runs the SQL dbt compiled, node by node in dependency order, on the copy;
3. the emulator's clock moves on (a few hundred new events); `covage ingest`; copy the warehouse;
4. the build again (stg_events is incremental: it reads only the new loads), timed the same way;
   DuckDB alone runs that build's compiled SQL on the copy.
Ratios are the dbt build command / DuckDB alone. Target: the incremental build under 15 s and
within 3x.

    .venv/bin/python benchmarks/dbt_build.py [--orders 145000] [--advance-s 3600]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from covage_pipeline.models import SQL_DIR, dbt_env
from covage_pipeline.publish import publish_marts
from covage_pipeline.settings import load_settings

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, start_emulator, stop, wait_http

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = ROOT / "sql" / "target"


def covage(*args: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "covage"), *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def dbt_build(env: dict) -> float:
    """`dbt build` on the warehouse the environment describes, as `covage build` runs it."""
    settings = load_settings()
    dbt_vars = {**env, **dbt_env(settings)}
    command = [str(BIN / "dbt"), "build", "--target", "duckdb", "--project-dir", str(SQL_DIR)]
    t0 = time.perf_counter()
    subprocess.run([*command, "--profiles-dir", str(SQL_DIR)], env=dbt_vars, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def publish() -> float:
    """The analysts' copy, the step `covage build` runs after dbt."""
    t0 = time.perf_counter()
    publish_marts(load_settings())
    return time.perf_counter() - t0


def dbt_elapsed() -> float:
    return json.loads((TARGET / "run_results.json").read_text())["elapsed_time"]


def _order(manifest: dict, ids: list[str]) -> list[str]:
    """Nodes in dependency order (models before what reads them, tests after their models)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen or node_id not in manifest["nodes"]:
            return
        seen.add(node_id)
        for parent in manifest["nodes"][node_id]["depends_on"]["nodes"]:
            visit(parent)
        done.append(node_id)

    for node_id in ids:
        visit(node_id)
    return done


def duckdb_alone(db: Path, incremental: bool) -> tuple[float, int]:
    """Runs what the last dbt build compiled, on `db`, with DuckDB only; (seconds, statements)."""
    manifest = json.loads((TARGET / "manifest.json").read_text())
    executed = [r["unique_id"] for r in json.loads((TARGET / "run_results.json").read_text())["results"]]
    con = duckdb.connect(str(db))
    for schema in ("main_staging", "main_marts"):
        con.execute(f"create schema if not exists {schema}")
    statements = 0
    t0 = time.perf_counter()
    for node_id in _order(manifest, executed):
        node = manifest["nodes"][node_id]
        compiled = TARGET / "compiled" / "covage" / node["original_file_path"]
        if node["resource_type"] == "test":
            sql = (compiled / node["path"]).read_text()
            con.execute(f"select count(*) from ({sql}) failures").fetchall()
        elif node["resource_type"] == "model":
            sql = compiled.read_text()
            relation = f'{node["schema"]}."{node["alias"]}"'
            kind = node["config"]["materialized"]
            if kind == "incremental" and incremental:
                con.execute(f"create or replace temp table batch as {sql}")
                con.execute(f"delete from {relation} where event_uuid in (select event_uuid from batch)")
                con.execute(f"insert into {relation} select * from batch")
            elif kind == "view":
                con.execute(f"create or replace view {relation} as {sql}")
            else:
                con.execute(f"create or replace table {relation} as {sql}")
        else:
            continue
        statements += 1
    seconds = time.perf_counter() - t0
    con.close()
    return seconds, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=145_000, help="orders in the history (~6.9 events each)")
    parser.add_argument("--advance-s", type=float, default=3600.0, help="emulated seconds between the two loads")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="covage-dbt-bench-"))
    env = {
        **os.environ,
        "COVAGE_API_URL": url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(tmp / "data"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
    }
    os.environ.update(env)  # the settings of the in-process steps (the copy) are the subprocesses'
    print(f"starting the emulator with {args.orders:,} orders...", flush=True)
    emulator = start_emulator(port, args.orders)
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        ingest_s = covage("ingest", env=env)
        db = tmp / "data" / "covage.duckdb"
        events = duckdb.connect(str(db), read_only=True).execute("select count(*) from covage_raw.events").fetchone()
        print(f"backfill: {events[0]:,} events in {ingest_s:.1f} s", flush=True)
        # copies keep the file name: the compiled SQL names the database after it
        (tmp / "full").mkdir()
        (tmp / "incremental").mkdir()
        shutil.copy(db, tmp / "full" / db.name)

        full_s = dbt_build(env)
        full_dbt = dbt_elapsed()
        full_copy = publish()
        full_alone, n_full = duckdb_alone(tmp / "full" / db.name, incremental=False)

        before = events[0]
        httpx.post(f"{url}/_emulator/advance", params={"seconds": args.advance_s}, timeout=60).raise_for_status()
        covage("ingest", env=env)
        con = duckdb.connect(str(db), read_only=True)
        new = con.execute("select count(*) from covage_raw.events").fetchone()[0] - before
        con.close()
        shutil.copy(db, tmp / "incremental" / db.name)
        incr_s = dbt_build(env)
        incr_dbt = dbt_elapsed()
        incr_copy = publish()
        incr_alone, _ = duckdb_alone(tmp / "incremental" / db.name, incremental=True)
    finally:
        stop(emulator)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'':34}{'dbt build':>11}{'dbt elapsed':>13}{'DuckDB alone':>14}{'ratio':>8}{'+ copy':>9}")
    for label, wall, inner, alone, copy in (
        (f"full build ({events[0]:,} events)", full_s, full_dbt, full_alone, full_copy),
        (f"incremental build (+{new:,} events)", incr_s, incr_dbt, incr_alone, incr_copy),
    ):
        print(f"{label:34}{wall:>9.1f} s{inner:>11.1f} s{alone:>12.2f} s{wall / alone:>7.1f}x{copy:>7.1f} s")
    print(
        f"\n(dbt build = the command, start-up and parsing included; ratio = dbt build / DuckDB alone; "
        f"{n_full} compiled statements: models then tests; + copy = the analysts' copy that `covage build` "
        "publishes after dbt)"
    )
    print(f"incremental build: {'under' if incr_s < 15 else 'OVER'} 15 s; {incr_s / incr_alone:.1f}x DuckDB alone")
    print(f"incremental `covage build` (dbt build + copy): {incr_s + incr_copy:.1f} s")


if __name__ == "__main__":
    main()
