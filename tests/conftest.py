"""Shared fixtures: real emulators on loopback ports, real HTTP clients."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from covage_pipeline.emulator import EmulatorConfig, RunningEmulator, running_emulator
from covage_pipeline.models import SQL_DIR


def _own_dbt_project(worker: str) -> None:
    """Under pytest-xdist, each worker builds with its own copy of the dbt project: dbt writes its
    target/ (manifest, partial parse, run results, Dagster's invocation folders) beside the project,
    and two workers writing one folder read each other's half-written files."""
    home = Path(tempfile.mkdtemp(prefix=f"covage-{worker}-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    copy = home / "sql"
    shutil.copytree(SQL_DIR, copy, ignore=shutil.ignore_patterns("logs", "covage_dbt-*", "parse-*"))
    os.environ["COVAGE_DBT_PROJECT_DIR"] = str(copy)


if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    _own_dbt_project(worker)
# the dbt project the tests build with (the shipped one, or this worker's copy of it)
DBT_PROJECT = Path(os.environ.get("COVAGE_DBT_PROJECT_DIR", SQL_DIR))

TOKEN = "test-admin-token"
# the machine's PostgreSQL server (trust auth); tests create their own schemas and drop them
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
START = datetime(2026, 3, 1)


def make_config(**overrides) -> EmulatorConfig:
    values = {
        "seed": 7,
        "orders": 300,
        "history_days": 60.0,
        "start": START,
        "tokens": {TOKEN: "admin", "delivery-token": "delivery", "readonly-token": "readonly"},
        "reference_examples": True,  # the reference's malformed forms, in every test that does not say otherwise
    }
    values.update(overrides)
    return EmulatorConfig(**values)


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """A read-only emulator shared by the tests that do not change its state."""
    with running_emulator(make_config()) as running:
        yield running


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., RunningEmulator]]:
    """Starts emulators with custom settings, stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(running_emulator(make_config(**overrides)))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


def page_all(client: httpx.Client, url: str, size: int = 50, max_pages: int = 2000, **params) -> tuple[list[dict], int]:
    """Naive search-after paging, as the reference describes it: (items, number of pages).

    Fails after `max_pages`: an emulator whose `after` stopped moving fails here in seconds."""
    items: list[dict] = []
    after = None
    pages = 0
    while True:
        assert pages < max_pages, f"paging did not end after {max_pages} pages (is `after` strictly later?)"
        query = {"sort": "creation_date", "direction": "asc", "size": size, **params}
        if after is not None:
            query["after"] = after
        page = client.get(f"{url}/api/events/", params=query).raise_for_status().json()
        pages += 1
        if not page:
            return items, pages
        items.extend(page)
        after = page[-1]["sort_value"]


@pytest.fixture
def pg_prefix():
    """A fresh schema prefix on the machine's PostgreSQL; every schema under it is dropped after."""
    import uuid

    import psycopg2

    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    con = psycopg2.connect(POSTGRES_URL)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (f"{prefix}%",))
        for (schema,) in cur.fetchall():
            cur.execute(f'drop schema "{schema}" cascade')
    con.close()


# The longest files first (read off `--durations`): pytest-xdist hands a worker the next file
# when it runs out of tests, so a long file collected last leaves the other worker idle.
LONGEST_FIRST = (
    "test_models_spark.py",
    "test_dagster.py",
    "test_incremental_builds.py",
    "test_exactly_once_property.py",
    "test_dagster_dev.py",
    "test_marts_pandas.py",
    "test_extraction_reliability.py",
    "test_cli_pipeline.py",
    "test_models_postgres.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order
