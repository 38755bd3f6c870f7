"""The analysts' copy: the marts in a DuckDB file of their own, replaced atomically after a build.

DuckDB allows one writer per file, and a reader holding the warehouse open would make the next
load fail on its lock. Analysts (notebooks, `covage sql`, BI tools) read this copy instead: it is
written beside it under a temporary name and renamed over it, so a reader sees the old file or
the new one, never a half-written one (a reader that has the old file open keeps reading it).
It never touches the warehouse except to read the marts.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from .settings import Settings

COPY_NAME = "covage_marts.duckdb"


def analysts_path(settings: Settings) -> Path:
    return settings.data_dir / "analysts" / COPY_NAME


def publish_marts(settings: Settings) -> dict[str, int]:
    """Copies every mart (tables, and views as tables) into a fresh file, then swaps it in.

    Returns the row count of each copied mart. The copy has one schema, `marts`.
    """
    target = analysts_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    source_schema = settings.marts_schema
    counts: dict[str, int] = {}
    # The warehouse is opened with DuckDB's default configuration and the copy attached to it:
    # this process may hold the warehouse open already (dbt-duckdb, in-process), and DuckDB
    # refuses a second handle on a file with another configuration.
    con = duckdb.connect(str(settings.duckdb_path))
    try:
        con.execute(f"attach '{partial}' as analysts")
        names = [
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = current_database() and table_schema = ? order by table_name",
                [source_schema],
            ).fetchall()
        ]
        if not names:
            raise FileNotFoundError(f"no marts in schema {source_schema} of {settings.duckdb_path}: run `covage build`")
        con.execute("create schema analysts.marts")
        for name in names:
            con.execute(f'create table analysts.marts."{name}" as select * from {source_schema}."{name}"')
            counts[name] = con.execute(f'select count(*) from analysts.marts."{name}"').fetchone()[0]
        con.execute("detach analysts")
    finally:
        con.close()
    os.replace(partial, target)
    return counts
