"""What every Dagster module shares about the warehouse: the pool that keeps its writers apart,
and read queries that work on DuckDB and PostgreSQL.

DuckDB allows one writer per file: every step that writes it runs in the pool `covage_warehouse`
(limit 1 in the shipped dagster.yaml) and its runs carry the tag that the run queue limits.
"""

from __future__ import annotations

from covage_pipeline.headlines import query_rows
from covage_pipeline.settings import Settings

POOL = "covage_warehouse"
WAREHOUSE_TAG = "covage/warehouse"
WAREHOUSE_TAGS = {WAREHOUSE_TAG: "writes"}


def warehouse_rows(settings: Settings, sql: str) -> list[dict]:
    """Rows of a read query on the warehouse (DuckDB file or PostgreSQL)."""
    return query_rows(settings, sql)
