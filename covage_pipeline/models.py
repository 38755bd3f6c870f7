"""Runs the dbt project in `sql/` on the warehouse (`covage build`), through dbt's Python runner.

Only reads the raw tables dlt loaded; never writes them. The project and its profiles ship in
the repository (`sql/`); `COVAGE_DBT_PROJECT_DIR` points elsewhere if the package is installed
without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings

SQL_DIR = Path(os.environ.get("COVAGE_DBT_PROJECT_DIR", Path(__file__).resolve().parents[1] / "sql"))


@dataclass
class BuildResult:
    success: bool
    statuses: dict[str, str]  # node unique_id -> status (success, pass, error, fail, skipped, ...)
    error: str | None = None

    @property
    def failures(self) -> dict[str, str]:
        return {node: status for node, status in self.statuses.items() if status in ("error", "fail", "runtime error")}


def dbt(settings: Settings, *args: str) -> BuildResult:
    """`dbt <args>` on the warehouse the settings describe."""
    from dbt.cli.main import dbtRunner

    os.environ["COVAGE_DUCKDB_PATH"] = str(settings.duckdb_path.resolve())
    os.environ["COVAGE_DATASET"] = settings.dataset
    os.environ.setdefault("DO_NOT_TRACK", "1")
    result = dbtRunner().invoke([*args, "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR)])
    statuses = {}
    for node in getattr(result.result, "results", None) or []:
        statuses[node.node.unique_id] = str(node.status)
    error = None if result.success else str(result.exception or "dbt reported failures")
    return BuildResult(bool(result.success), statuses, error)


def build(settings: Settings, select: str | None = None) -> BuildResult:
    """`dbt build`: every model, then its tests; a failing test fails the build."""
    return dbt(settings, "build", *(["--select", select] if select else []))
