"""Every setting of covage-pipeline, in one place, with the same defaults for the CLI, Dagster and tests.

Resolved by dlt's own configuration (a `configspec` built from `Settings`, in the section
`sources.covage`): an explicit argument first, then the short environment variables (`COVAGE_*`,
a provider ahead of dlt's), then dlt's usual providers (`SOURCES__COVAGE__*` variables,
`.dlt/secrets.toml`, `.dlt/config.toml`), then the defaults below. Values are typed by dlt, then
checked (`Settings.check`). Secrets lose the whitespace around them (a copy from a file brings a
newline) and are never printed: `repr` hides them.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_API_URL = "http://127.0.0.1:8765"  # `covage emulator serve`'s default address
# the dbt project shipped beside the package (an install without it sets COVAGE_DBT_PROJECT_DIR)
DEFAULT_DBT_PROJECT = Path(__file__).resolve().parents[1] / "sql"
# The emulator shows an event at most `late_window_s` (300 s) after its creation_date; three times
# that leaves room for a slow run and real-world providers.
DEFAULT_LOOKBACK_S = 900.0
MAX_LOOKBACK_S = 366 * 86_400.0  # a lookback (or a horizon) longer than that is a typo

# the short environment variable of each setting (those without one: dlt's config and secrets only)
VARIABLES = {
    "api_url": "COVAGE_API_URL",
    "api_token": "COVAGE_API_TOKEN",
    "auth_type": "COVAGE_API_AUTH",
    "username": "COVAGE_API_USERNAME",
    "auth_header": "COVAGE_API_HEADER",
    "data_dir": "COVAGE_DATA_DIR",
    "page_size": "COVAGE_PAGE_SIZE",
    "max_page_size": "COVAGE_MAX_PAGE_SIZE",
    "lookback_s": "COVAGE_LOOKBACK_SECONDS",
    "cursor_mode": "COVAGE_CURSOR_MODE",
    "start_date": "COVAGE_START_DATE",
    "chunk_pages": "COVAGE_CHUNK_PAGES",
    "max_item_bytes": "COVAGE_MAX_ITEM_BYTES",
    "max_future_s": "COVAGE_MAX_FUTURE_SECONDS",
    "dataset": "COVAGE_DATASET",
    "duckdb_memory_limit": "COVAGE_DUCKDB_MEMORY_LIMIT",
    "build_memory_limit": "COVAGE_BUILD_MEMORY_LIMIT",
    "destination": "COVAGE_DESTINATION",
    "postgres_url": "COVAGE_POSTGRES_URL",
    "models_schema": "COVAGE_MODELS_SCHEMA",
    "reports_url": "COVAGE_REPORTS_URL",
    "request_deadline_s": "COVAGE_REQUEST_DEADLINE_SECONDS",
    "lock_timeout_s": "COVAGE_LOCK_TIMEOUT_SECONDS",
    "retention_days": "COVAGE_RETENTION_DAYS",
    "batch_rows": "COVAGE_BATCH_ROWS",
    "schedules": "COVAGE_SCHEDULES",
    "ingest_cron": "COVAGE_INGEST_CRON",
    "daily_cron": "COVAGE_DAILY_CRON",
    "prune_cron": "COVAGE_PRUNE_CRON",
    "code_server_recycle_minutes": "COVAGE_CODE_SERVER_RECYCLE_MINUTES",
    "freshness_minutes": "COVAGE_FRESHNESS_MINUTES",
    "chart_months": "COVAGE_CHART_MONTHS",
    "alert_webhook_url": "COVAGE_ALERT_WEBHOOK_URL",
    "dbt_project_dir": "COVAGE_DBT_PROJECT_DIR",
    "motherduck_database": "COVAGE_MOTHERDUCK_DATABASE",
    "lake_url": "COVAGE_LAKE_URL",
    "spark_master": "COVAGE_SPARK_MASTER",
    "spark_driver_memory": "COVAGE_SPARK_DRIVER_MEMORY",
}
# never printed, never shown in Dagster's UI: resolved where they are needed
SECRETS = {"api_token", "postgres_url", "alert_webhook_url"}
# duckdb, postgres and spark are tested here; the others go through the same code (dlt destinations,
# dbt targets in sql/profiles.yml) and are documented in docs/warehouses.md, untested on this machine
DESTINATIONS = ("duckdb", "postgres", "spark", "motherduck", "bigquery", "snowflake")
DUCKDB_DIALECT = ("duckdb", "motherduck")


@dataclass(frozen=True)
class Settings:
    api_url: str = DEFAULT_API_URL
    api_token: str | None = field(default=None, repr=False)
    auth_type: str = "bearer"  # bearer | basic (token as password) | header (custom header)
    username: str = ""
    auth_header: str = "X-API-Key"
    data_dir: Path = Path("data")
    dataset: str = "covage_raw"  # schema of the raw tables (not "covage": the DuckDB file is covage.duckdb)
    page_size: int = 1000
    max_page_size: int = 1000  # the API's largest page (the paginator doubles up to it on big ties)
    lookback_s: float = DEFAULT_LOOKBACK_S
    cursor_mode: str = "built"  # built: cursors built from timestamps; opaque: only the API's own
    start_date: str | None = None  # first run starts here (ISO date or datetime); default: the beginning
    # pages per committed load: a crash loses at most this much work; each load costs dlt a fixed
    # few tenths of a second (1M events: 13.6 s at 200 pages, 16.7 s at 100)
    chunk_pages: int = 200
    # rows handed to dlt at once: the stored versions are looked up per batch, and a batch is what a
    # backfill holds in memory (peak 431 MB on 1M events at the defaults)
    batch_rows: int = 50_000
    max_item_bytes: int = 1_000_000  # larger items are quarantined, not loaded (0: no limit)
    # an item created further ahead of the run's start than this is quarantined, not followed: one
    # event dated 9999 would otherwise move the cursor past every event still to come
    max_future_s: float = 86_400.0
    duckdb_memory_limit: str = "128MB"  # the loader's DuckDB connections; DuckDB spills past it
    # dbt's DuckDB (the build): past it, DuckDB spills its sorts to disk instead of growing until
    # the machine runs out (DuckDB's own default, 80 % of the RAM, did: the forecast's windows)
    build_memory_limit: str = "4GB"
    destination: str = "duckdb"  # the warehouse: duckdb (a file under data_dir), postgres, motherduck, ...
    # postgresql://user:password@host:port/database; None: dlt's destination.postgres.credentials
    postgres_url: str | None = field(default=None, repr=False)
    models_schema: str | None = None  # dbt's schema prefix: None = main (DuckDB), covage (PostgreSQL)
    reports_url: str | None = None  # the CRI archive: a folder or any fsspec URL; None = <data_dir>/reports
    request_timeout: float | None = None  # None: dlt's [runtime] request_timeout
    max_attempts: int | None = None  # None: dlt's [runtime] request_max_attempts
    backoff_factor: float | None = None
    max_retry_delay: float | None = None
    request_deadline_s: float = 120.0  # a whole answer, however slowly it drips; then retried
    lock_timeout_s: float = 600.0  # how long ingest and build wait for another process's warehouse lock
    retention_days: float = 21.0  # Dagster's run history, and dlt's record of finished loads, kept this long
    # Dagster
    schedules: bool = False  # the schedules start switched on (else: on in the UI)
    ingest_cron: str = "*/5 * * * *"  # ingest what is new, rebuild, publish (the reference polls every few minutes)
    daily_cron: str = "0 3 * * *"  # every model rebuilt from all events
    prune_cron: str = "30 4 * * *"  # finished runs older than retention_days deleted
    # `covage dagster` starts a fresh code server this often (when no run is queued or running):
    # Dagster's grows about 30 MB an hour at a one-minute cron; 0: never
    code_server_recycle_minutes: float = 30.0
    freshness_minutes: float = 60.0  # the check events_are_fresh warns past this age of the newest event
    chart_months: int = 12  # monthly charts (Dagster, notebooks) show the last this many months
    alert_webhook_url: str | None = field(default=None, repr=False)  # where support alerts are posted
    # where things are
    dbt_project_dir: Path | None = None  # the dbt project; None: sql/ beside the package
    motherduck_database: str = "covage"  # COVAGE_DESTINATION=motherduck: the database (token: MOTHERDUCK_TOKEN)
    # COVAGE_DESTINATION=spark: the raw events land as Parquet files here (a folder, s3://, abfss://,
    # gs://: credentials as dlt's filesystem destination reads them); None = <data_dir>/lake
    lake_url: str | None = None
    spark_master: str = "local[2]"  # the Spark the models build on (and the readers query)
    # the driver's heap (on local[N], all of Spark): Spark's own 1g failed the forecast's windows
    # on 200,000 events
    spark_driver_memory: str = "4g"

    @property
    def dbt_project(self) -> Path:
        return self.dbt_project_dir or DEFAULT_DBT_PROJECT

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "covage.duckdb"

    @property
    def demo_dir(self) -> Path:
        """Where `covage demo` writes its own warehouse (never in the real one)."""
        return self.data_dir / "demo"

    def demo_hint(self) -> str:
        """For a reader that found nothing under the data dir: where the demo's warehouse is, when
        there is one (a newcomer's `make demo` wrote it there, not in the default data dir)."""
        if self.data_dir.name == "demo" or not (self.demo_dir / "covage.duckdb").exists():
            return ""
        return f" The demo's warehouse is in {self.demo_dir}: set COVAGE_DATA_DIR={self.demo_dir} to read it."

    @property
    def pipelines_dir(self) -> Path:
        return self.data_dir / "dlt_pipelines"

    @property
    def lake_location(self) -> str:
        return self.lake_url or str((self.data_dir / "lake").resolve())

    @property
    def spark_dir(self) -> Path:
        """The local Spark's catalogue (its metastore) and its tables, under the data dir."""
        return (self.data_dir / "spark").resolve()

    @property
    def reports_location(self) -> str:
        return self.reports_url or str((self.data_dir / "reports").resolve())

    @property
    def dbt_schema(self) -> str:
        """dbt's target schema: models land in `<it>_staging` and `<it>_marts`."""
        return self.models_schema or ("main" if self.destination in DUCKDB_DIALECT else "covage")

    @property
    def marts_schema(self) -> str:
        return f"{self.dbt_schema}_marts"

    @property
    def warehouse_name(self) -> str:
        """Where the data is, for messages: never the credentials."""
        if self.destination == "duckdb":
            return str(self.duckdb_path)
        if self.destination == "spark":
            return f"the lake at {self.lake_location.split('?')[0]}"
        return f"{self.destination} schema {self.dataset}"

    def prepare_data_dir(self) -> Path:
        """The data dir, created if missing; a ValueError that names the setting if it cannot be."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # a probe of this process's own: two runs started at once each test with theirs
            handle, probe = tempfile.mkstemp(prefix=".covage-write-test-", dir=self.data_dir)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if isinstance(exc, FileExistsError | NotADirectoryError):
                reason = "a file is in the way, not a folder"
            raise ValueError(
                f"COVAGE_DATA_DIR={self.data_dir} is not a folder covage-pipeline can write ({reason}). "
                "Point COVAGE_DATA_DIR at a writable folder."
            ) from None
        return self.data_dir

    def check(self) -> Settings:
        """Every setting checked where it is read: a message naming its variable and its range."""
        if urlsplit(self.api_url).scheme not in ("http", "https") or not urlsplit(self.api_url).netloc:
            raise ValueError(
                f"COVAGE_API_URL must be an http:// or https:// address like https://extranet.kosc-telecom.fr, "
                f"not {self.api_url!r}"
            )
        if self.request_deadline_s <= 0 or self.lock_timeout_s < 0:
            raise ValueError(
                "COVAGE_REQUEST_DEADLINE_SECONDS must be positive and COVAGE_LOCK_TIMEOUT_SECONDS not negative"
            )
        if self.auth_type not in ("bearer", "basic", "header"):
            raise ValueError(f"COVAGE_API_AUTH must be bearer, basic or header, not {self.auth_type!r}")
        if self.cursor_mode not in ("built", "opaque"):
            raise ValueError(f"COVAGE_CURSOR_MODE must be built or opaque, not {self.cursor_mode!r}")
        if self.max_page_size < 1:
            raise ValueError(f"COVAGE_MAX_PAGE_SIZE must be at least 1, not {self.max_page_size}")
        if not 1 <= self.page_size <= self.max_page_size:
            raise ValueError(
                f"COVAGE_PAGE_SIZE must be from 1 to {self.max_page_size} (COVAGE_MAX_PAGE_SIZE), not {self.page_size}"
            )
        _in_range("COVAGE_LOOKBACK_SECONDS", self.lookback_s, 0, MAX_LOOKBACK_S, "seconds (at most a year)")
        _in_range("COVAGE_CHUNK_PAGES", self.chunk_pages, 1, None, "pages a committed load holds")
        _in_range("COVAGE_BATCH_ROWS", self.batch_rows, 1, None, "rows")
        _in_range("COVAGE_MAX_ITEM_BYTES", self.max_item_bytes, 0, None, "bytes (0: no limit)")
        _in_range("COVAGE_MAX_FUTURE_SECONDS", self.max_future_s, 0, MAX_LOOKBACK_S, "seconds")
        _in_range("COVAGE_RETENTION_DAYS", self.retention_days, 0, None, "days")
        _in_range("COVAGE_FRESHNESS_MINUTES", self.freshness_minutes, 0, None, "minutes")
        _in_range("COVAGE_CHART_MONTHS", self.chart_months, 1, None, "months")
        for name, value in (("request_timeout", self.request_timeout), ("backoff_factor", self.backoff_factor),
                            ("max_retry_delay", self.max_retry_delay)):  # fmt: skip
            if value is not None and value < 0:
                raise ValueError(f"RUNTIME__REQUEST_{name.upper()} cannot be negative, not {value}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"RUNTIME__REQUEST_MAX_ATTEMPTS must be at least 1, not {self.max_attempts}")
        from .timestamps import parse_loose  # (pyarrow: not on every path that reads settings)

        if self.start_date is not None and parse_loose(self.start_date) is None:
            raise ValueError(
                f"COVAGE_START_DATE={self.start_date!r} is not a date: give one like 2026-01-31 or 2026-01-31T08:00:00"
            )
        if self.code_server_recycle_minutes < 0:
            raise ValueError("COVAGE_CODE_SERVER_RECYCLE_MINUTES cannot be negative (0: never)")
        if self.destination not in DESTINATIONS:
            raise ValueError(f"COVAGE_DESTINATION must be one of {', '.join(DESTINATIONS)}, not {self.destination!r}")
        return self

    def resolved_postgres_url(self) -> str:
        """The PostgreSQL URL from the settings, else from dlt's own destination credentials."""
        if self.postgres_url:
            return self.postgres_url
        import dlt

        try:
            url = dlt.secrets.get("destination.postgres.credentials")
        except Exception:
            url = None
        if not isinstance(url, str) or not url:
            raise ValueError(
                "COVAGE_DESTINATION=postgres needs a connection: set COVAGE_POSTGRES_URL "
                "(postgresql://user:password@host:5432/database) or DESTINATION__POSTGRES__CREDENTIALS"
            )
        return url


def _in_range(variable: str, value: float, low: float, high: float | None, unit: str) -> None:
    if value < low or (high is not None and value > high):
        bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise ValueError(f"{variable} must be {bounds} {unit}, not {value:g}")


def _secret(name: str, value: str) -> str:
    """A secret as given, without the surrounding whitespace a copy from a file brings (a trailing
    newline); one with a control character inside is refused, and never shown."""
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        where = VARIABLES.get(name, name)
        raise ValueError(
            f"{where} holds a control character (a line break or a tab inside it?), which no HTTP header "
            "or URL can carry; its value is not shown. Set it again from the operator's text."
        )
    return value


def _spec_type(hint: Any) -> Any:
    """The type dlt resolves a field as: paths as text, secrets as secret text."""
    if hint in (Path, Path | None):
        return str | None
    return hint


@cache
def _configuration_spec() -> type:
    """A dlt `configspec` with the fields of `Settings`: dlt resolves and types every value."""
    from dlt.common.configuration import configspec
    from dlt.common.configuration.specs import BaseConfiguration
    from dlt.common.typing import TSecretStrValue

    hints = typing.get_type_hints(Settings)
    spec_fields = []
    for f in fields(Settings):
        hint = TSecretStrValue | None if f.name in SECRETS else _spec_type(hints[f.name])
        default = str(f.default) if isinstance(f.default, Path) else f.default
        spec_fields.append((f.name, hint, dataclasses.field(default=default)))
    return configspec(dataclasses.make_dataclass("CovageConfiguration", spec_fields, bases=(BaseConfiguration,)))


def _variables_provider() -> Any:
    """A dlt config provider for the short `COVAGE_*` variables, read when asked (not once)."""
    from dlt.common.configuration.providers import ConfigProvider

    class CovageVariables(ConfigProvider):
        def get_value(self, key: str, hint: Any, pipeline_name: str | None, *sections: str) -> tuple[Any, str]:
            name = VARIABLES.get(key)
            if name is None or tuple(sections[-2:]) != ("sources", "covage"):
                return None, key
            value = os.environ.get(name) or None
            if hint is bool and value is not None:  # COVAGE_SCHEDULES=on, as a person writes it
                value = {"on": "true", "yes": "true", "off": "false", "no": "false"}.get(value.lower(), value)
            return value, name

        def get_value_location(self, key: str, pipeline_name: str | None, *sections: str) -> str:
            return VARIABLES.get(key, key)

        @property
        def supports_secrets(self) -> bool:
            return True

        @property
        def supports_sections(self) -> bool:
            return True

        @property
        def name(self) -> str:
            return "COVAGE_* environment variables"

    return CovageVariables()


def _with_variables() -> None:
    """Puts the COVAGE_* provider ahead of dlt's own providers, once per run context."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    providers = Container()[PluggableRunContext].providers.providers
    if not any(p.name == "COVAGE_* environment variables" for p in providers):
        providers.insert(0, _variables_provider())


@contextmanager
def untraced() -> Iterator[None]:
    """dlt logs every config value it resolves in a per-thread list that only a pipeline run clears:
    a process that resolves config on every tick (a Dagster code server) kept them all."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.utils import TraceLogContext

    context = TraceLogContext()
    context.logging_enabled = False
    with Container().injectable_context(context):
        yield


def load_settings(**overrides: Any) -> Settings:
    """Settings resolved from arguments, COVAGE_* variables, dlt's config and secrets, then defaults."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

    _with_variables()
    try:
        with untraced():  # about 240 values each time
            resolved = resolve_configuration(_configuration_spec()(), sections=("sources", "covage"))
    except ConfigValueCannotBeCoercedException as exc:
        name = exc.field_name
        where = VARIABLES[name] if os.environ.get(VARIABLES.get(name, "")) else f"sources.covage.{name}"
        shown = "***" if name in SECRETS else repr(exc.field_value)
        hint = typing.get_type_hints(Settings)[name]
        expected = "number" if hint in (int, float, int | None, float | None) else getattr(hint, "__name__", "value")
        raise ValueError(f"{where}={shown} is not a valid {expected}") from None
    values = {f.name: getattr(resolved, f.name) for f in fields(Settings)}
    values.update({name: value for name, value in overrides.items() if value is not None})
    for name in ("data_dir", "dbt_project_dir"):
        if values[name] is not None:
            values[name] = Path(values[name])
    for name in SECRETS:
        if values[name] is not None:
            values[name] = _secret(name, str(values[name])) or None
    return Settings(**values).check()


__all__ = ["DEFAULT_API_URL", "DEFAULT_LOOKBACK_S", "SECRETS", "VARIABLES", "Settings", "load_settings"]
