"""The same dbt models, unchanged, on the machine's PostgreSQL server: the raw events loaded by
the same pipeline (COVAGE_DESTINATION=postgres), built with their tests, and every mart equal to
the one DuckDB builds from the same emulator data (generated orders plus the hand-written log)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal

from covage_pipeline.models import build, build_and_publish
from covage_pipeline.pipeline import ingest
from covage_pipeline.warehouse import query

from .conftest import POSTGRES_URL
from .eventlog import EVENTS
from .extraction import settings_for

MARTS = [
    ("orders", ("order_uuid",)),
    ("order_lifecycle_durations", ("order_uuid",)),
    ("lifecycle_stats", ("period", "submission_month", "stage")),
    ("delivery_stats", ("period", "submission_month")),
    ("rejection_stats", ("period", "submission_month")),
    ("rejection_reasons", ("pareto_rank",)),
    ("saturation_stats", ("period", "submission_month")),
    ("appointment_stats", ("period", "submission_month")),
    ("services", ("service_uuid",)),
    ("service_base_monthly", ("month_start",)),
    ("backlog", ("order_uuid",)),
    ("object_history", ("event_uuid",)),
    ("order_variants", ("order_uuid",)),
    ("process_variants", ("variant_rank",)),
    ("data_quality_issues", ("issue", "event_uuid")),
    ("data_quality_summary", ("issue",)),
    ("provider_lateness", ("grain", "event_type")),
    ("open_order_forecast", ("order_uuid",)),
    ("forecast_calibration", ("period", "forecast_date")),
]
STAGING = [
    ("stg_events", ("event_uuid",)),
    ("stg_order_endpoints", ("event_uuid", "endpoint_position")),
    ("stg_cri_files", ("event_uuid", "file_label")),
]


def _table(settings, schema: str, table: str) -> list[dict]:
    return query(settings, f'select * from "{schema}"."{table}"')


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, dict | list):  # JSON: compare the data, not the engine's spelling
        return value
    return value


def _equal(a, b) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-7)
    return a == b


def _assert_same(duck: list[dict], pg: list[dict], key: tuple[str, ...], table: str) -> None:
    assert duck, f"{table} is empty"
    assert set(duck[0]) == set(pg[0]), (table, set(duck[0]) ^ set(pg[0]))
    d = {tuple(r[k] for k in key): r for r in duck}
    p = {tuple(_plain(r[k]) for k in key): r for r in pg}
    assert set(d) == set(p), (table, sorted(map(str, set(d) ^ set(p)))[:5])
    for k, row in d.items():
        for column, value in row.items():
            if column == "_dlt_load_id":  # each warehouse had its own loads
                continue
            other = p[k][column]
            if column == "summary" and row.get("is_unknown_type"):  # JSON text: jsonb adds spaces
                value, other = value.replace(" ", ""), other.replace(" ", "")
            if column in ("data", "endpoint"):  # JSON: as text on one engine, parsed on another
                value, other = (json.loads(v) if isinstance(v, str) else v for v in (value, other))
            assert _equal(value, other), (table, k, column, value, other)


def test_models_build_on_postgres_and_equal_duckdb(emulator_factory, tmp_path, pg_prefix):
    # the clock after the hand-written log's last event, so all of it is visible
    emu = emulator_factory(orders=600, malformed_share=0.03, unknown_type_share=0.03, start=datetime(2026, 6, 1))
    emu.store.replay(EVENTS)
    duck = settings_for(emu, tmp_path / "duck", page_size=500)
    pg = settings_for(
        emu,
        tmp_path / "pg",
        page_size=500,
        destination="postgres",
        postgres_url=POSTGRES_URL,
        dataset=f"{pg_prefix}_raw",
        models_schema=pg_prefix,
    )
    ingest(duck)
    summary = ingest(pg)
    assert summary.events_in_table == len(emu.store.ground_truth(emu.url))
    assert build_and_publish(duck).build.success  # and the analysts' copy `covage history` reads
    result = build(pg)
    assert result.success, (result.error, result.failures)
    assert sum(1 for node in result.statuses if node.startswith("test.")) > 50  # the tests ran there too

    for table, key in STAGING:
        _assert_same(_table(duck, "main_staging", table), _table(pg, f"{pg_prefix}_staging", table), key, table)
    for table, key in MARTS:
        _assert_same(_table(duck, "main_marts", table), _table(pg, f"{pg_prefix}_marts", table), key, table)

    # `covage history` reads the mart there too, by uuid or by order reference
    from covage_pipeline.warehouse import timeline

    order = _table(pg, f"{pg_prefix}_marts", "orders")[0]
    story = timeline(pg, order["order_uuid"])
    assert [r["step"] for r in story] == list(range(1, len(story) + 1)) and len(story) > 1
    same = timeline(duck, order["order_uuid"])
    assert [{k: _plain(v) for k, v in r.items()} for r in story] == [{k: _plain(v) for k, v in r.items()} for r in same]


# Slot dates as the operator may write them: normal forms, the reference's AM/PM variants, and
# values with no sane reading (out of range, not a date).
SPELLINGS = [
    "2017-05-09T15:59:55.669742",
    "2026-06-22T21:40:53.1",
    "2026-06-22T21:40:53",
    "2026-06-22 21:40:53",
    "2017-05-09T16:1:04 AM.637766",
    "2017-04-22T10:12:00 AM.459593",
    "2017-04-22T12:12:00 AM.459593",
    "2017-04-22T02:12:00 PM",
    "2026-04-05T2:5:00 PM.5",
    "2024-02-29T10:00:00",
    "2026-02-29T10:00:00",
    "2026-13-01T00:00:00",
    "2026-06-22T23:60:00",
    "0000-00-00T00:00:00",
    "yesterday",
    "",
]


def _loose_timestamps(settings, values: list[str]) -> list:
    """The `loose_timestamp` macro, compiled by dbt for the settings' engine, run there."""
    import os

    from dbt.cli.main import dbtRunner

    from covage_pipeline.models import SQL_DIR, dbt_env

    selects = [f"select {i} as i, {{{{ loose_timestamp(\"'{v}'\") }}}} as parsed" for i, v in enumerate(values)]
    os.environ.update(dbt_env(settings))
    args = ["compile", "--quiet", "--inline", " union all ".join(selects), "--target", settings.destination]
    result = dbtRunner().invoke([*args, "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR)])
    assert result.success, result.exception
    compiled = result.result.results[0].node.compiled_code
    if settings.destination == "spark":  # compiled for Spark already: not DuckDB's dialect
        from covage_pipeline.spark import rows as spark_rows

        rows = spark_rows(settings, compiled, dialect="spark")
    else:
        rows = query(settings, compiled)
    return [row["parsed"] for row in sorted(rows, key=lambda row: row["i"])]


def test_slot_dates_read_the_same_on_both_engines_and_in_python(tmp_path, pg_prefix):
    from covage_pipeline.settings import load_settings
    from covage_pipeline.timestamps import parse_loose

    # as a person reads them, worked out by hand (the stray AM ignored, PM adds 12 hours below 12)
    expected = [
        datetime(2017, 5, 9, 15, 59, 55, 669742),
        datetime(2026, 6, 22, 21, 40, 53, 100000),
        datetime(2026, 6, 22, 21, 40, 53),
        datetime(2026, 6, 22, 21, 40, 53),
        datetime(2017, 5, 9, 16, 1, 4, 637766),
        datetime(2017, 4, 22, 10, 12, 0, 459593),
        datetime(2017, 4, 22, 12, 12, 0, 459593),
        datetime(2017, 4, 22, 14, 12),
        datetime(2026, 4, 5, 14, 5, 0, 500000),
        datetime(2024, 2, 29, 10, 0),
        *[None] * 6,
    ]
    assert [parse_loose(v) for v in SPELLINGS] == expected
    duck = load_settings(data_dir=tmp_path)
    pg = load_settings(data_dir=tmp_path, destination="postgres", postgres_url=POSTGRES_URL, models_schema=pg_prefix)
    assert _loose_timestamps(duck, SPELLINGS) == expected
    assert [_plain(v) for v in _loose_timestamps(pg, SPELLINGS)] == expected


def test_a_query_without_parameters_goes_as_written(tmp_path):
    """`%` in a LIKE and `?` in a regex are SQL, not placeholders, when no parameter is given."""
    from covage_pipeline.settings import load_settings

    pg = load_settings(data_dir=tmp_path, destination="postgres", postgres_url=POSTGRES_URL)
    sql = "select 'order-x' like 'order-%' as liked, 'ab' ~ '^ab?$' as matched"
    assert query(pg, sql) == [{"liked": True, "matched": True}]
    assert query(pg, "select ? || '%' as text", ["order"]) == [{"text": "order%"}]
