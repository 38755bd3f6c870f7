"""Read-only questions to the local DuckDB warehouse that the CLI asks (an object's timeline, the
last message on an order). Opens the file read-only and briefly: never holds the writer's lock.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

import duckdb

from .settings import Settings

# One line per event: when, what, and the payload fields an operator looks at first.
_TIMELINE = """
select
    coalesce(event_date, creation_date) as business_time,
    event_date is null as event_date_fallback,
    creation_date,
    type,
    event_uuid,
    coalesce(
        data->>'kosc_order_ref',
        nullif(concat_ws(' / ', data->>'reject_code', data->>'reject_subcode', data->>'reject_reason'), ''),
        data->>'reason',
        nullif(concat_ws(' -> ', data->>'start_date', data->>'end_date'), ''),
        data->>'message',
        data->>'desaturation_type',
        data->>'service_uuid'
    ) as detail
from {table}
where object_uuid = ?
order by business_time, creation_date, event_uuid
"""


class WarehouseMissing(RuntimeError):
    pass


@contextmanager
def connect(settings: Settings):
    path = settings.duckdb_path
    if not path.exists():
        raise WarehouseMissing(f"No warehouse at {path} yet: run `covage ingest` first (or set COVAGE_DATA_DIR).")
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def _events(settings: Settings) -> str:
    return f'"{settings.dataset}"."events"'


def timeline(settings: Settings, object_uuid: str) -> list[dict]:
    with connect(settings) as con:
        cur = con.execute(_TIMELINE.format(table=_events(settings)), [object_uuid])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def last_info_message(settings: Settings, order_uuid: str) -> datetime | None:
    """creation_date of the newest order-info on this order, as the warehouse knows it."""
    try:
        with connect(settings) as con:
            row = con.execute(
                f"select max(creation_date) from {_events(settings)} where object_uuid = ? and type = 'order-info'",
                [order_uuid],
            ).fetchone()
    except (WarehouseMissing, duckdb.CatalogException):
        return None
    return row[0] if row else None
