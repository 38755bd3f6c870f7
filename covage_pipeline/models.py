"""Runs the dbt project in `sql/` on the warehouse (`covage build`), through dbt's Python runner.

Only reads the raw tables dlt loaded; never writes them. The project and its profiles ship in
the repository (`sql/`); `COVAGE_DBT_PROJECT_DIR` points elsewhere if the package is installed
without it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .locking import duckdb_lock_holder, retry_while_locked, writer_lock
from .settings import DEFAULT_DBT_PROJECT, Settings

SQL_DIR = DEFAULT_DBT_PROJECT  # the shipped project; `Settings.dbt_project` says which one a run uses


@dataclass
class BuildResult:
    success: bool
    statuses: dict[str, str]  # node unique_id -> status (success, pass, error, fail, skipped, ...)
    error: str | None = None

    @property
    def failures(self) -> dict[str, str]:
        return {node: status for node, status in self.statuses.items() if status in ("error", "fail", "runtime error")}


def dbt_env(settings: Settings) -> dict[str, str]:
    """The variables sql/profiles.yml reads: the warehouse, its schemas and connection.

    The password goes in a `DBT_ENV_SECRET_` variable, which dbt scrubs from its logs.
    """
    env = {
        "COVAGE_DUCKDB_PATH": str(settings.duckdb_path.resolve()),
        # not the user's COVAGE_DATASET: this process's settings never read these names back
        "COVAGE_DBT_SOURCE_SCHEMA": settings.dataset,
        "COVAGE_DBT_SCHEMA": settings.dbt_schema,
        "COVAGE_DBT_MEMORY_LIMIT": settings.build_memory_limit,
        "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "1"),
    }
    if settings.destination == "motherduck":
        # dbt-duckdb opens md:<database>; the token comes from MOTHERDUCK_TOKEN, as MotherDuck documents
        env["COVAGE_DUCKDB_PATH"] = f"md:{settings.motherduck_database}"
    if settings.destination == "spark":
        env.update(
            COVAGE_DBT_LAKE_URL=settings.lake_location,
            COVAGE_DBT_SPARK_MASTER=settings.spark_master,
            COVAGE_DBT_SPARK_MEMORY=settings.spark_driver_memory,
            COVAGE_DBT_SPARK_DIR=str(settings.spark_dir),
        )
    if settings.destination == "postgres":
        url = urlsplit(settings.resolved_postgres_url())
        env.update(
            COVAGE_PG_HOST=url.hostname or "127.0.0.1",
            COVAGE_PG_PORT=str(url.port or 5432),
            COVAGE_PG_USER=unquote(url.username or "postgres"),
            COVAGE_PG_DATABASE=url.path.lstrip("/") or "postgres",
            DBT_ENV_SECRET_COVAGE_PG_PASSWORD=unquote(url.password or ""),
        )
    return env


def dbt(settings: Settings, *args: str) -> BuildResult:
    """`dbt <args>` on the warehouse the settings describe (target = the destination)."""
    from dbt.cli.main import dbtRunner

    target = ["--target", settings.destination]
    with _environment(dbt_env(settings)):
        project = str(settings.dbt_project)
        result = dbtRunner().invoke([*args, *target, "--project-dir", project, "--profiles-dir", project])
    statuses = {}
    messages = []
    for node in getattr(result.result, "results", None) or []:
        statuses[node.node.unique_id] = str(node.status)
        if str(node.status) in ("error", "fail", "runtime error") and node.message:
            messages.append(str(node.message))
    error = None
    if not result.success:
        error = str(result.exception) if result.exception else "; ".join(messages[:3]) or "dbt reported failures"
    return BuildResult(bool(result.success), statuses, error)


def dbt_environment(settings: Settings):
    """The variables sql/profiles.yml reads, in os.environ while a dbt process is started (it
    copies them), then gone: a long-lived process never keeps the warehouse's password."""
    return _environment(dbt_env(settings))


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ (where sql/profiles.yml reads them) for a dbt run, then as before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


PROJECT_SOURCES = ("*.sql", "*.yml", "*.yaml", "*.md", "*.csv")


def _newest_source_mtime(project: Path) -> float:
    skip = {"target", "logs", "dbt_packages"}
    return max(
        path.stat().st_mtime
        for pattern in PROJECT_SOURCES
        for path in project.rglob(pattern)
        if not skip.intersection(path.relative_to(project).parts)
    )


def prepare_manifest(settings: Settings) -> Path:
    """`sql/target/manifest.json`, parsed again only when a file of the project is newer.

    Why not dagster-dbt's `prepare_if_dev()`: it parses on every load of the definitions, and
    `dagster dev` loads them in every step's process. Two parses writing `sql/target` at once (or
    one step reading the manifest while another rewrites it) failed runs. Here a parse writes into
    a private folder and the manifest is renamed into place, so a reader sees a whole file.
    """
    manifest = settings.dbt_project / "target" / "manifest.json"
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(settings.dbt_project):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
    try:
        result = dbt(settings, "parse", "--target-path", str(private))
        if not result.success:
            raise RuntimeError(f"dbt parse failed, so the dbt assets cannot be defined: {result.error}")
        os.replace(private / "manifest.json", manifest)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return manifest


# A tick's build is mostly dbt's own work per node: its debug log of every statement and the
# manifest and run results it writes at the end cost about 1.5 s of a 6-s build of 134 nodes.
# The console still shows every node and every error; the manifest Dagster reads comes from
# `prepare_manifest`. COVAGE_DEBUG=1 keeps dbt's full log and files (logs/dbt.log, target/).
def _quiet_build() -> tuple[str, ...]:
    if os.environ.get("COVAGE_DEBUG", "") not in ("", "0"):
        return ()
    return ("--log-level-file", "warn", "--no-write-json")


# Engines whose SQL the models do not speak yet: the dispatch macros in sql/macros/ and a few
# constructs (percentile_cont ... within group, generate_series, date_trunc's argument order,
# string_agg ... order by) need their versions first; docs/warehouses.md lists them.
NOT_PORTED = ("bigquery", "snowflake")


def build(
    settings: Settings,
    select: str | None = None,
    full_refresh: bool = False,
    on_wait: Callable[[str], None] | None = None,
    lock: bool = True,
) -> BuildResult:
    """`dbt build`: every model, then its tests; a failing test fails the build.

    `full_refresh` rebuilds the incremental models from every event, as after an upgrade of the
    models: an incremental build only reads the loads it has not seen. Waits (telling `on_wait`)
    while another process writes the warehouse.
    """
    if settings.destination in NOT_PORTED:
        return BuildResult(
            False,
            {},
            f"the dbt models are not ported to {settings.destination} yet (the raw events load there); "
            "see docs/warehouses.md in covage-pipeline for what remains",
        )
    # with a selection, only the tests whose every model is selected: dbt's default (eager) would
    # also run a relationships test towards a model not built yet, and fail on a fresh warehouse;
    # the seeds (the event catalogue the staging model joins) always come along, they cost nothing
    selection = ["--select", select, "resource_type:seed", "--indirect-selection", "cautious"] if select else []
    args = [*selection, *(["--full-refresh"] if full_refresh else [])]

    def attempt() -> BuildResult:
        result = dbt(settings, "build", *_quiet_build(), *args)
        if not result.success and duckdb_lock_holder(result.error or ""):
            raise _Locked(result.error)
        return result

    if not lock:  # the caller holds the writer lock
        return retry_while_locked(attempt, lambda exc: exc if isinstance(exc, _Locked) else None, settings, on_wait)
    with writer_lock(settings, "covage build", on_wait):
        return retry_while_locked(attempt, lambda exc: exc if isinstance(exc, _Locked) else None, settings, on_wait)


class _Locked(RuntimeError):
    """dbt could not open the warehouse: another process holds DuckDB's lock."""


@dataclass
class BuiltAndPublished:
    build: BuildResult
    build_seconds: float
    published: dict[str, int] | None = None  # mart -> rows in the analysts' copy
    publish_seconds: float = 0.0

    @property
    def counts(self) -> Counter:
        return Counter(self.build.statuses.values())

    @property
    def passed(self) -> int:
        return self.counts.get("pass", 0) + self.counts.get("success", 0)


def build_and_publish(
    settings: Settings,
    select: str | None = None,
    *,
    full_refresh: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> BuiltAndPublished:
    """`dbt build`, then, on DuckDB and for a whole successful build, the analysts' copy."""
    from .publish import publish_marts

    # one writer lock for both: the copy reads the warehouse read-write, and a writer slipping in
    # between would race it
    with writer_lock(settings, "covage build", on_wait):
        started = time.perf_counter()
        result = build(settings, select, full_refresh=full_refresh, on_wait=on_wait, lock=False)
        done = BuiltAndPublished(result, time.perf_counter() - started)
        if result.success and settings.destination == "duckdb" and not select:
            started = time.perf_counter()
            done.published = publish_marts(settings)
            done.publish_seconds = time.perf_counter() - started
    return done
