"""What every Dagster module shares about the warehouse: the pool that keeps its writers apart.

DuckDB allows one writer per file: every step that writes it runs in the pool `covage_warehouse`
(limit 1 in the shipped dagster.yaml) and its runs carry the tag that the run queue limits.
"""

from __future__ import annotations

POOL = "covage_warehouse"
WAREHOUSE_TAG = "covage/warehouse"
WAREHOUSE_TAGS = {WAREHOUSE_TAG: "writes"}
