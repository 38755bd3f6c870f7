"""The analysts' copy: the marts in a DuckDB file of their own, replaced atomically after a build.

DuckDB allows one writer per file, and a reader holding the warehouse open would make the next
load fail on its lock. Analysts (notebooks, `covage sql`, BI tools) read this copy instead: it is
written beside it under a temporary name and renamed over it, so a reader sees the old file or
the new one, never a half-written one (a reader that has the old file open keeps reading it).
It never touches the warehouse except to read the marts.

A build recomputes only the rows of the orders, services and events its new loads touched
(int_changed_keys), and so does the copy: the previous copy is copied as a file, and in it the
per-order and per-service marts have those keys' rows replaced, the small ones (statistics,
forecasts) are replaced whole. The copy records the last load it reflects; when that is not
within what int_changed_keys covers (the first copy, a build that failed, a full refresh), every
mart is copied whole.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .settings import Settings, load_settings

COPY_NAME = "covage_marts.duckdb"
STATE_TABLE = "_covage_copy"  # in the copy: the load it reflects
# a view of the marts, copied by key like the incremental marts: a service's rows also carry the
# order reference of the order that created it
HISTORY = "object_history"


def analysts_path(settings: Settings) -> Path:
    return settings.data_dir / "analysts" / COPY_NAME


def copy_to_read(settings: Settings | None = None) -> Path:
    """The copy a reader opens (the notebooks): `COVAGE_MARTS_DB` when set, else the one under
    `COVAGE_DATA_DIR`, as `covage sql` reads it. None there: an error saying what to run, and where
    the demo's copy is when there is one."""
    if os.environ.get("COVAGE_MARTS_DB"):
        return Path(os.environ["COVAGE_MARTS_DB"])
    settings = settings or load_settings()
    path = analysts_path(settings)
    if not path.exists():
        raise FileNotFoundError(
            f"No analysts' copy of the marts at {path.resolve()}: run `covage build` (or the Dagster job) "
            f"first, or set COVAGE_DATA_DIR to the data dir that holds one.{settings.demo_hint()}"
        )
    return path


@dataclass(frozen=True)
class ByKey:
    """A mart whose rows the build replaces by key: `column` holds keys of `kind`."""

    column: str
    kind: str


def marts_by_key(settings: Settings) -> dict[str, ByKey]:
    """The marts dbt builds by changed key, read off the project's manifest (their config)."""
    from .models import prepare_manifest

    manifest = json.loads(prepare_manifest(settings).read_text())
    found = {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        in_marts = node["resource_type"] == "model" and node["fqn"][1] == "marts"
        incremental = config.get("materialized") == "incremental"
        if in_marts and incremental and config.get("incremental_strategy") == "replace_changed":
            found[node["alias"]] = ByKey(config["changed_column"], config["changed_kind"])
    return found


def publish_marts(settings: Settings) -> dict[str, int]:
    """Brings the copy up to the warehouse's marts (by key where it can), then swaps it in.

    Returns the row count of each mart in the copy. The copy has one schema, `marts`.
    """
    target = analysts_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    if target.exists():
        shutil.copyfile(target, partial)  # a reader of the old file is never disturbed
    source_schema = settings.marts_schema
    counts: dict[str, int] = {}
    # The warehouse is opened with DuckDB's default configuration and the copy attached to it:
    # this process may hold the warehouse open already (dbt-duckdb, in-process), and DuckDB
    # refuses a second handle on a file with another configuration.
    con = duckdb.connect(str(settings.duckdb_path))
    try:
        con.execute(f"attach {sql_text(str(partial))} as analysts")  # a path is a value, not SQL
        names = _tables(con, "current_database()", source_schema)
        if not names:
            raise FileNotFoundError(f"no marts in schema {source_schema} of {settings.duckdb_path}: run `covage build`")
        window = _changed_window(con, settings)
        copied = _copy_state(con)
        # keys only when int_changed_keys holds every change since the copy (none listed on a full
        # refresh, whose every row may differ)
        by_key = marts_by_key(settings) if window and window[0] and copied and window[0] <= copied <= window[1] else {}
        if by_key:
            by_key[HISTORY] = ByKey("object_uuid", "object")
        con.execute("create schema if not exists analysts.marts")
        existing = set(_tables(con, "'analysts'", "marts"))
        for name in existing - set(names):
            con.execute(f'drop table analysts.marts."{name}"')
        changed = f"{settings.dbt_schema}_intermediate.int_changed_keys"
        for name in names:
            key = by_key.get(name)
            source = f'{source_schema}."{name}"'
            copy = f'analysts.marts."{name}"'
            if key and name in existing and _columns(con, source) == _columns(con, copy):
                keys = f"select changed_key from {changed} where key_kind = '{key.kind}'"
                if name == HISTORY:  # a service's history shows its creating order's reference
                    keys += (
                        f" union select service_uuid from {source_schema}.services where created_by_order_uuid in "
                        f"(select changed_key from {changed} where key_kind = 'object') "
                        f"union select changed_key from {changed} where key_kind = 'service'"
                    )
                con.execute(f"delete from {copy} where {key.column} in ({keys})")
                con.execute(f"insert into {copy} select * from {source} where {key.column} in ({keys})")
            else:
                con.execute(f"create or replace table {copy} as select * from {source}")
            counts[name] = con.execute(f"select count(*) from {copy}").fetchone()[0]
        reflected = window[1] if window else ""
        con.execute(f"create or replace table analysts.{STATE_TABLE} as select ? as load_id", [reflected])
        con.execute("detach analysts")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(partial, target)
    return counts


def sql_text(value: str) -> str:
    """A string literal for DuckDB (ATTACH takes no parameter): its quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _tables(con: duckdb.DuckDBPyConnection, catalog_sql: str, schema: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            f"select table_name from information_schema.tables where table_catalog = {catalog_sql} "
            "and table_schema = ? order by table_name",
            [schema],
        ).fetchall()
    ]


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple]:
    return [(row[0], row[1]) for row in con.execute(f"describe {relation}").fetchall()]


def _changed_window(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[str, str] | None:
    """The loads int_changed_keys covers (after `since`, up to `until`), if the build recorded them."""
    try:
        rows = dict(
            con.execute(
                f"select name, load_id from {settings.dbt_schema}_intermediate.covage_build_state "
                "where name in ('changed_keys_since', 'changed_keys_until')"
            ).fetchall()
        )
    except duckdb.CatalogException:
        return None
    if len(rows) < 2:
        return None
    return rows["changed_keys_since"], rows["changed_keys_until"]


def _copy_state(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        return con.execute(f"select load_id from analysts.{STATE_TABLE}").fetchone()[0]
    except duckdb.CatalogException:
        return None
