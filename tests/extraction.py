"""Helpers for the extraction tests: settings pointed at an emulator, and reconciliation."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from covage_pipeline.records import strip_url_tokens
from covage_pipeline.settings import Settings, load_settings
from covage_pipeline.timestamps import format_iso, is_canonical, parse_loose

from .conftest import TOKEN


def settings_for(emu, data_dir: Path, **overrides) -> Settings:
    values = {
        "api_url": emu.url,
        "api_token": TOKEN,
        "data_dir": data_dir,
        "page_size": 100,
        "chunk_pages": 5,
        "backoff_factor": 0.01,
        "max_retry_delay": 0.5,
        "max_attempts": 8,
        "request_timeout": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


def warehouse(settings: Settings, table: str = "events") -> list[dict]:
    if settings.destination == "postgres":
        import psycopg2

        pg = psycopg2.connect(settings.resolved_postgres_url())
        try:
            with pg.cursor() as cur:
                cur.execute(f'select * from "{settings.dataset}"."{table}"')
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            pg.close()
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        cur = con.execute(f'select * from "{settings.dataset}"."{table}"')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def event_ids(settings: Settings) -> list[str]:
    return [r["event_uuid"] for r in warehouse(settings)]


def assert_equals_ground_truth(settings: Settings, truth: list[dict]) -> None:
    """Same set of event_uuid, no duplicate, and every field as the API serves it."""
    rows = warehouse(settings)
    ids = [r["event_uuid"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate event_uuid in the warehouse"
    expected = {t["event_uuid"]: t for t in truth}
    missing = set(expected) - set(ids)
    extra = set(ids) - set(expected)
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    for row in rows:
        t = expected[row["event_uuid"]]
        for name in ("model", "type", "object_type", "object_uuid", "sort_value"):
            assert row[name] == t[name], (name, row, t)
        assert format_iso(row["creation_date"]) == t["creation_date"]
        assert format_iso(row["modification_date"]) == t["modification_date"]
        if is_canonical(t["event_date"]) and parse_loose(t["event_date"]) is not None:
            assert format_iso(row["event_date"]) == t["event_date"]
            assert row["event_date_raw"] is None and not row["event_date_invalid"]
        else:
            assert row["event_date_raw"] == t["event_date"]
            assert row["event_date_invalid"] == (row["event_date"] is None)
        data = row["data"]
        if isinstance(data, str):  # DuckDB hands JSON back as text, psycopg2 as Python objects
            data = orjson.loads(data)
        assert data == strip_url_tokens(t["data"]), (data, t["data"])
