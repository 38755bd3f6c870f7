"""Read-only questions to the warehouse and the marts (an object's timeline, the last message on an
order), on DuckDB, PostgreSQL or Spark. Opens DuckDB files read-only and briefly: never holds the
writer's lock.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime

import duckdb

from .settings import Settings


class WarehouseMissing(RuntimeError):
    pass


@contextmanager
def connect(settings: Settings):
    path = settings.duckdb_path
    if not path.exists():
        raise WarehouseMissing(
            f"No warehouse at {path} yet: run `covage ingest` first (or set COVAGE_DATA_DIR).{settings.demo_hint()}"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.ConnectionException:
        # this process already holds the file (dbt-duckdb after an in-process build): DuckDB only
        # shares it with a connection of the same configuration, the default one
        con = duckdb.connect(str(path))
    try:
        yield con
    finally:
        con.close()


def _events(settings: Settings) -> str:
    return f'"{settings.dataset}"."events"'


def query(settings: Settings, sql: str, params: list | None = None) -> list[dict]:
    """Rows of one read query on the warehouse, whatever the engine; `?` placeholders.

    A `%` is always SQL; without params a `?` is too (in a regex, say).
    """
    params = params or []
    if settings.destination == "spark":
        from .spark import rows

        return rows(settings, sql, params)
    # the DB-API drivers of the other engines use %s, and interpolate only when given parameters
    statement = pyformat(sql) if params else sql
    if settings.destination not in ("duckdb", "postgres"):
        # the other engines through dlt's own SQL client (their credentials are dlt's)
        return _dlt_rows(settings, statement, params)
    if settings.destination == "postgres":
        import psycopg2

        con = psycopg2.connect(settings.resolved_postgres_url())
        try:
            with con.cursor() as cur:
                cur.execute(statement, params or None)  # None: no interpolation at all
                return _dicts(cur)
        finally:
            con.close()
    with connect(settings) as con:
        return _dicts(con.execute(sql, params))


# a quoted string or identifier, or a placeholder
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


def pyformat(sql: str) -> str:
    """`?` placeholders as the DB-API's `%s`, and `%` doubled, outside quoted text only: a literal
    `?` (a regex, a question in a message) stays what it is."""

    def swap(match: re.Match) -> str:
        token = match.group()
        return "%s" if token == "?" else "%%" if token == "%" else token.replace("%", "%%")

    return _TOKENS.sub(swap, sql)


def raw_query(settings: Settings, sql: str, params: list | None = None) -> list[dict]:
    """Rows of a read query on the tables dlt loads (the dataset): on a lake, through dlt's own
    SQL client over its files (DuckDB's), which needs no Spark and no build first; on the
    others, `query`."""
    if settings.destination != "spark":
        return query(settings, sql, params)
    statement = pyformat(sql) if params else sql
    try:
        return _dlt_rows(settings, statement, params or [])
    except Exception as exc:
        if "does not exist" in str(exc) or type(exc).__name__ in ("DatabaseUndefinedRelation", "CatalogException"):
            where = settings.lake_location
            raise WarehouseMissing(f"Nothing in the lake at {where} yet: run `covage ingest` first.") from None
        raise


def _dlt_rows(settings: Settings, statement: str, params: list) -> list[dict]:
    """Rows through the SQL client of the pipeline's destination (`%s` placeholders)."""
    from .destinations import make_pipeline

    with make_pipeline(settings).sql_client() as client, client.execute_query(statement, *params) as cur:
        return _dicts(cur)


def _dicts(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_only_rows(path, sql: str, params: list | None = None) -> list[dict]:
    """Rows of one query on a DuckDB file opened read-only for the query alone (the analysts' copy)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return _dicts(con.execute(sql, params or []))
    finally:
        con.close()


def marts_rows(settings: Settings, sql_on_marts: str, params: list | None = None) -> list[dict]:
    """Rows of a query on the marts (`{marts}` in the SQL): the analysts' copy on DuckDB (a reader
    never waits for the pipeline's writer lock), the marts schema elsewhere."""
    if settings.destination == "duckdb":
        from .publish import analysts_path

        path = analysts_path(settings)
        if not path.exists():
            raise WarehouseMissing(
                f"No analysts' copy of the marts at {path} yet: run `covage build` first.{settings.demo_hint()}"
            )
        return read_only_rows(path, sql_on_marts.replace("{marts}", "marts"), params)
    return query(settings, sql_on_marts.replace("{marts}", settings.marts_schema), params)


def timeline(settings: Settings, key: str) -> list[dict]:
    """The story of one order or service, by its uuid or its order reference (`kosc_order_ref`),
    step by step, from the mart object_history (where events are ordered and described)."""
    return marts_rows(
        settings,
        "select object_type, object_uuid, kosc_order_ref, step, business_time, event_type, summary, event_uuid, "
        "is_event_date_fallback from {marts}.object_history where object_uuid = ? or kosc_order_ref = ? "
        "order by object_uuid, step",
        [key, key],
    )


def forecasts(settings: Settings, order_uuids: list[str]) -> list[dict]:
    """The delivery forecast of those of the orders still open (the mart open_order_forecast)."""
    if not order_uuids:
        return []
    marks = ", ".join("?" for _ in order_uuids)
    sql = f"select * from {{marts}}.open_order_forecast where order_uuid in ({marks}) order by order_uuid"
    return marts_rows(settings, sql, order_uuids)


def last_info_message(settings: Settings, order_uuid: str) -> datetime | None:
    """creation_date of the newest order-info on this order, as the warehouse knows it."""
    sql = f"select max(creation_date) as newest from {_events(settings)} where object_uuid = ? and type = 'order-info'"
    try:
        rows = raw_query(settings, sql, [order_uuid])
    except (WarehouseMissing, duckdb.CatalogException):
        return None
    except Exception as exc:  # PostgreSQL: no table yet
        if type(exc).__name__ == "UndefinedTable":
            return None
        raise
    return rows[0]["newest"] if rows else None
