"""Helpers for the incremental-build tests: a warehouse built tick by tick against the same
warehouse rebuilt from scratch, and the feed's own shapes (corrections, late events) made on the
emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb

from covage_pipeline.emulator.timefmt import iso
from covage_pipeline.models import build
from covage_pipeline.settings import Settings
from covage_pipeline.warehouse import query

from .conftest import TOKEN

# rebuilt at every build by design (what that build recomputed), or bookkeeping
NOT_COMPARED = {"int_changed_keys", "covage_build_state"}
LAYERS = ("staging", "intermediate", "marts")


@contextmanager
def _writer(settings: Settings):
    if settings.destination == "postgres":
        import psycopg2

        con = psycopg2.connect(settings.resolved_postgres_url())
        con.autocommit = True
        try:
            yield con.cursor()
        finally:
            con.close()
    else:
        con = duckdb.connect(str(settings.duckdb_path))
        try:
            yield con
        finally:
            con.close()


def model_tables(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """'schema.table' -> [(column, type)] of every table the models built (views left out)."""
    schemas = [f"{settings.dbt_schema}_{layer}" for layer in LAYERS]
    marks = ", ".join(f"'{s}'" for s in schemas)
    rows = query(
        settings,
        "select c.table_schema, c.table_name, c.column_name, c.data_type "
        "from information_schema.columns c join information_schema.tables t "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        f"where c.table_schema in ({marks}) and t.table_type = 'BASE TABLE' "
        "order by c.table_schema, c.table_name, c.ordinal_position",
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        if r["table_name"] not in NOT_COMPARED:
            out.setdefault(f'{r["table_schema"]}."{r["table_name"]}"', []).append((r["column_name"], r["data_type"]))
    return out


def _comparable(settings: Settings, column: str, data_type: str) -> str:
    """A column as compared: a double to 9 significant digits (sums in another order differ in
    the last bits), the rest as it is."""
    q = f'"{column}"'
    if data_type.lower() in ("double", "double precision", "float", "real"):
        if settings.destination == "postgres":
            digits = f"(8 - floor(log(abs({q}))))::int"
            return f"case when {q} is null or {q} = 0 then {q}::numeric else round({q}::numeric, {digits}) end"
        digits = f"8 - cast(floor(log10(abs({q}))) as int)"
        return f"case when {q} is null or {q} = 0 then {q} else round({q}, {digits}) end"
    return q


def assert_same_as_full_refresh(settings: Settings) -> dict[str, int]:
    """Every table the models built, row for row, equals what a full refresh of the same
    warehouse builds. Returns the rows of each table."""
    before = f"{settings.dbt_schema}_before_full_refresh"
    tables = model_tables(settings)
    assert len(tables) > 20, sorted(tables)
    with _writer(settings) as cur:
        cur.execute(f"drop schema if exists {before} cascade")
        cur.execute(f"create schema {before}")
        for i, table in enumerate(tables):
            cur.execute(f"create table {before}.t{i} as select * from {table}")
    result = build(settings, full_refresh=True)
    assert result.success, (result.error, result.failures)
    assert model_tables(settings) == tables, "a full refresh built other tables or columns"
    rows = {}
    for i, (table, columns) in enumerate(tables.items()):
        select = ", ".join(_comparable(settings, c, t) for c, t in columns)
        for first, second in ((f"{before}.t{i}", table), (table, f"{before}.t{i}")):
            extra = query(
                settings,
                f"select * from (select {select} from {first} except all select {select} from {second}) d limit 3",
            )
            assert not extra, f"{table}: rows built tick by tick differ from a full refresh: {extra}"
        rows[table] = query(settings, f"select count(*) as n from {table}")[0]["n"]
    with _writer(settings) as cur:
        cur.execute(f"drop schema {before} cascade")
    return rows


def covage_env(emu, settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "COVAGE_API_URL": emu.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(settings.data_dir),
        "COVAGE_DESTINATION": settings.destination,
        "PYTHONUNBUFFERED": "1",
    }
    if settings.destination == "postgres":
        env["COVAGE_POSTGRES_URL"] = settings.resolved_postgres_url()
        env["COVAGE_DATASET"] = settings.dataset
        env["COVAGE_MODELS_SCHEMA"] = settings.dbt_schema
    return env


def build_killed_at(emu, settings: Settings, model: str) -> None:
    """`covage build` killed (SIGKILL) as dbt starts building `model`: what went before it is
    committed, it and what follows are not, the run-end hook never runs."""
    covage = str(Path(sys.executable).with_name("covage"))
    proc = subprocess.Popen(
        [covage, "build"], env=covage_env(emu, settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "START sql" in line and f".{model} " in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])


def now_text(emu, minus_s: float = 0.0) -> str:
    return iso(emu.store.clock.now_us() - int(minus_s * 1_000_000))


def late_event(emu, uuid: str, type_: str, order_uuid: str, event_date: str, data=None, ago_s: float = 60.0) -> dict:
    """An event reaching the API now (`ago_s` before the clock) but dated `event_date`."""
    created = now_text(emu, ago_s)
    return {
        "event_uuid": uuid,
        "type": type_,
        "object_type": "order",
        "object_uuid": order_uuid,
        "creation_date": created,
        "modification_date": created,
        "event_date": event_date,
        "data": data,
    }
