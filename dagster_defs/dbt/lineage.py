"""Column lineage of each model (`dagster/column_lineage`), from its compiled SQL, without the warehouse.

dagster-dbt's own path (`stream().fetch_column_metadata()`) reads every column's type from the
warehouse through the dbt adapter, in this process, while the build runs: on DuckDB that is a
second process on a one-writer file. The types are in the manifest already (every column has its
`data_type`, and a test checks each against the built table), so the lineage is computed from
those and the compiled SQL by dagster-dbt's own builder (sqlglot). It costs about 7 s for the
whole project on DuckDB, so each model's result is kept in the target folder, keyed by a hash of
its compiled SQL and its parents' columns: a run pays only for the models whose SQL changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

logger = logging.getLogger(__name__)
CACHE_FILE = "covage_column_lineage.json"
KEEP = 200  # entries kept in it (about two per model: incremental models compile two ways)


def _columns(props: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {name.lower(): {"data_type": column.get("data_type") or ""} for name, column in props["columns"].items()}


def _parents(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    parents = {}
    for unique_id in node["depends_on"]["nodes"]:
        parent = (manifest["sources"] if unique_id.startswith("source") else manifest["nodes"])[unique_id]
        parents[parent["relation_name"]] = _columns(parent)
    return parents


def column_lineage(
    manifest: Mapping[str, Any], unique_id: str, target_path: Path, translator: DagsterDbtTranslator
) -> dg.TableColumnLineage | None:
    """The lineage of one model's columns to its parents' columns; None where it cannot be read."""
    from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata

    node = manifest["nodes"][unique_id]
    compiled = target_path / "compiled" / node["package_name"] / node["original_file_path"]
    if node["resource_type"] != "model" or not compiled.exists():
        return None
    parents = _parents(manifest, node)
    key = hashlib.sha256(
        json.dumps([compiled.read_text(), _columns(node), parents], sort_keys=True).encode()
    ).hexdigest()
    cache_path = target_path.parent / CACHE_FILE
    cache = _read(cache_path)
    if key not in cache:
        try:
            history = EventHistoryMetadata(columns=_columns(node), parents=parents)
            metadata = _build_column_lineage_metadata(history, node, manifest, translator, target_path, None)
            lineage = metadata.get("dagster/column_lineage")
            deps_by_column = lineage.deps_by_column if lineage else {}
            cache[key] = {
                column: [[dep.asset_key.path, dep.column_name] for dep in deps]
                for column, deps in deps_by_column.items()
            } or None
        except Exception as error:  # sqlglot cannot read every statement (a source with undeclared columns)
            logger.warning("no column lineage for %s: %s", node["name"], str(error).splitlines()[0][:200])
            cache[key] = None
        _write(cache_path, {**_read(cache_path), key: cache[key]})
    if cache[key] is None:
        return None
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=dg.AssetKey(path), column_name=name) for path, name in deps]
            for column, deps in cache[key].items()
        }
    )


def _read(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {}


def _write(path: Path, cache: dict) -> None:
    """Atomically: two runs may write it at once, and a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as out:
        json.dump(dict(list(cache.items())[-KEEP:]), out)  # the newest: older SQL is not built any more
    os.replace(tmp, path)
