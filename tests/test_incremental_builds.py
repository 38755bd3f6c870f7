"""A warehouse built tick by tick equals a full refresh of the same warehouse, row for row, on
DuckDB and PostgreSQL, whatever the ticks bring: new orders, corrected versions (another type,
another order, another service, fewer report files, another date), events arriving late and dated
in the past, a service created by a completion, a build killed between two models."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from covage_pipeline.models import build
from covage_pipeline.pipeline import ingest
from covage_pipeline.warehouse import query

from .conftest import POSTGRES_URL
from .extraction import settings_for
from .incremental import assert_same_as_full_refresh, build_killed_at, covage_env, late_event, now_text

COVAGE = str(Path(sys.executable).with_name("covage"))
START = datetime(2026, 5, 6)  # a Wednesday: a few Mondays of history are backtest cutoffs


def _built(settings) -> None:
    result = build(settings)
    assert result.success, (result.error, result.failures)


def _built_by_cli(emu, settings) -> None:
    """`covage build` in a process of its own: dbt-duckdb, run in this one, would hold the
    warehouse open, and the build killed midway needs another process."""
    done = subprocess.run([COVAGE, "build"], env=covage_env(emu, settings), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _tick(emu, settings, hours: float) -> None:
    emu.store.advance(hours * 3600)
    ingest(settings)
    _built_by_cli(emu, settings)


def _state(settings, name: str) -> str:
    rows = query(
        settings, f"select load_id from {settings.dbt_schema}_intermediate.covage_build_state where name = '{name}'"
    )
    return rows[0]["load_id"] if rows else ""


def _one(settings, sql: str) -> list[dict]:
    return query(settings, sql.replace("{m}", settings.marts_schema))


def run_ticks(emu, settings) -> None:
    """The sequence of ticks both engines go through (see the module's docstring)."""
    ingest(settings)
    _built_by_cli(emu, settings)
    m = settings.marts_schema
    open_orders = [
        r["order_uuid"] for r in _one(settings, "select order_uuid from {m}.orders where outcome = 'open' order by 1")
    ]
    completed = [
        r["order_uuid"]
        for r in _one(settings, "select order_uuid from {m}.orders where outcome = 'completed' order by 1")
    ]
    assert len(open_orders) >= 4 and len(completed) >= 2
    first, second, third = open_orders[:3]
    new_order, new_service = f"ord-{uuid.uuid4()}", f"svc-{uuid.uuid4()}"
    old_date = _one(settings, f"select submitted_at from {m}.orders where order_uuid = '{completed[0]}'")[0][
        "submitted_at"
    ]
    late_date = old_date.strftime("%Y-%m-%dT%H:%M:%S.%f")

    # tick 1: a completion creating a service, a report, a new order, and a rejection arriving
    # now for an order completed long ago, dated the day of its submission
    emu.store.advance(2 * 3600)
    completion = {
        "endpoints": [
            {"endpoint_uuid": "e-1", "type": "PTO", "reference": "FI-1"},
            {"endpoint_uuid": "e-2", "type": "PTO"},
        ],
        "service_uuid": new_service,
        "service_alias": "KSR-NEW",
    }
    report = {"fichier 1": {"blob": "pvi/x/1.pdf"}, "fichier 2": {"blob": "pvi/x/2.pdf"}}
    fresh = [
        late_event(emu, "inc-completion", "order-completed", first, now_text(emu, 200), completion, ago_s=200),
        late_event(emu, "inc-report", "order-cri", second, now_text(emu, 190), report, ago_s=190),
        late_event(
            emu, "inc-submitted", "order-submitted", new_order, now_text(emu, 180), {"kosc_order_ref": "RNEW"}, 180
        ),
        late_event(emu, "inc-late-rejection", "order-rejected", completed[0], late_date, {"reject_code": "X1"}, 170),
    ]
    emu.store.replay(fresh)
    ingest(settings)
    _built_by_cli(emu, settings)
    assert _one(settings, f"select status from {m}.services where service_uuid = '{new_service}'")

    # tick 2: the operator corrects them (re-read within the lookback): the completion names
    # another service, the report keeps one file, the submission moves to another order, the
    # rejection becomes a message and its date moves; then the build is killed between models
    emu.store.advance(60)
    emu.store.correct("inc-completion", data={**completion, "service_uuid": f"{new_service}-b"})
    emu.store.correct("inc-report", data={"fichier 2": {"blob": "pvi/x/2.pdf"}})
    emu.store.correct("inc-submitted", object_uuid=third)
    earlier = (old_date - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    emu.store.correct("inc-late-rejection", type="order-info", event_date=earlier)
    ingest(settings)
    propagated = _state(settings, "propagated")
    build_killed_at(emu, settings, "orders")
    assert _state(settings, "propagated") == propagated  # a killed build propagates nothing

    # tick 3: the new service goes live; more of the feed
    emu.store.replay([{**late_event(emu, "inc-activated", "service-activated", "", now_text(emu, 30), None, 30),
                       "object_type": "service", "object_uuid": f"{new_service}-b"}])  # fmt: skip
    _tick(emu, settings, 3)
    newest = query(settings, f"select max(_dlt_load_id) as n from {settings.dbt_schema}_staging.stg_events")[0]["n"]
    assert _state(settings, "propagated") == newest

    # what the corrections left: nothing of the versions before them
    assert not _one(settings, f"select * from {m}.services where service_uuid = '{new_service}'")
    assert _one(settings, f"select status from {m}.services where service_uuid = '{new_service}-b'") == [
        {"status": "active"}
    ]
    files = query(
        settings, f"select file_label from {settings.dbt_schema}_staging.stg_cri_files where event_uuid = 'inc-report'"
    )
    assert files == [{"file_label": "fichier 2"}]
    assert not _one(settings, f"select * from {m}.orders where order_uuid = '{new_order}'")
    assert _one(settings, f"select kosc_order_ref from {m}.orders where order_uuid = '{third}'") == [
        {"kosc_order_ref": "RNEW"}
    ]
    assert _one(settings, f"select outcome from {m}.orders where order_uuid = '{completed[0]}'") == [
        {"outcome": "completed"}
    ]


def _assert_a_tick_recomputes_little(settings) -> None:
    """The last tick recomputed a few orders, not all of them: it is incremental."""
    changed = query(
        settings,
        f"select count(*) as n from {settings.dbt_schema}_intermediate.int_changed_keys where key_kind = 'object'",
    )[0]["n"]
    orders = query(settings, f"select count(*) as n from {settings.marts_schema}.orders")[0]["n"]
    assert 0 < changed < orders / 10, (changed, orders)


def test_ticks_on_duckdb_equal_a_full_refresh(emulator_factory, tmp_path):
    emu = emulator_factory(orders=400, history_days=45, start=START, modified_share=0.05, provider_late_share=0.2)
    settings = settings_for(emu, tmp_path, page_size=200)
    run_ticks(emu, settings)
    _assert_a_tick_recomputes_little(settings)
    rows = assert_same_as_full_refresh(settings)
    assert rows['main_intermediate."int_order_forecasts_past"'] > 0


def test_ticks_on_postgres_equal_a_full_refresh(emulator_factory, tmp_path, pg_prefix):
    emu = emulator_factory(orders=300, history_days=45, start=START, modified_share=0.05, provider_late_share=0.2)
    settings = settings_for(
        emu,
        tmp_path,
        page_size=200,
        destination="postgres",
        postgres_url=POSTGRES_URL,
        dataset=f"{pg_prefix}_raw",
        models_schema=pg_prefix,
    )
    run_ticks(emu, settings)
    _assert_a_tick_recomputes_little(settings)
    assert_same_as_full_refresh(settings)


def test_an_incremental_build_tests_the_rows_it_changed_and_the_nightly_build_every_row(emulator_factory, tmp_path):
    """On an incremental build the tests of the raw events and of the models built incrementally
    read the rows of what the build recomputed (with every other row of the same key): a
    duplicate that a new load brings still fails it; one among rows no load touched waits for
    the full refresh (the nightly build), whose tests read every row."""
    import duckdb

    emu = emulator_factory(orders=200, history_days=30, start=START)
    settings = settings_for(emu, tmp_path, page_size=200)
    ingest(settings)
    _built(settings)
    emu.store.advance(3600)
    ingest(settings)
    raw = f"{settings.dataset}.events"
    with duckdb.connect(str(settings.duckdb_path)) as con:
        newest = con.execute(f"select max(_dlt_load_id) from {raw}").fetchone()[0]
        con.execute(f"insert into {raw} select * from {raw} where _dlt_load_id = ? limit 1", [newest])
    result = build(settings)
    assert not result.success and "test.covage.source_unique_covage_events_event_uuid" in str(result.failures)
    with duckdb.connect(str(settings.duckdb_path)) as con:  # mended, then an old row doubled
        con.execute(f"delete from {raw} where _dlt_load_id = ?", [newest])
        oldest = con.execute(f"select min(_dlt_load_id) from {raw}").fetchone()[0]
        con.execute(f"insert into {raw} select * from {raw} where _dlt_load_id = ? limit 1", [oldest])
    emu.store.advance(600)
    ingest(settings)
    assert build(settings).success
    tests = settings.dbt_project / "target" / "run" / "covage" / "models"
    compiled = (tests / "intermediate" / "intermediate.yml" / "unique_int_object_events_event_uuid.sql").read_text()
    assert "int_changed_keys" in compiled  # the rows of the objects the build recomputed
    result = build(settings, full_refresh=True)
    assert not result.success and "test.covage.source_unique_covage_events_event_uuid" in str(result.failures)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(
            f"delete from {raw} where rowid = (select max(rowid) from {raw} where event_uuid = "
            f"(select event_uuid from {raw} group by event_uuid having count(*) > 1))"
        )
    assert build(settings, full_refresh=True).success
    compiled = (tests / "intermediate" / "intermediate.yml" / "unique_int_object_events_event_uuid.sql").read_text()
    assert "int_changed_keys" not in compiled  # every row


def _forecast_rows(settings, table: str, where: str) -> dict[str, dict]:
    rows = query(settings, f"select * from {settings.dbt_schema}_intermediate.{table} where {where}")
    return {r["order_uuid"]: {k: v for k, v in r.items() if k not in ("cutoff", "is_now")} for r in rows}


def _assert_same_forecasts(got: dict[str, dict], want: dict[str, dict]) -> None:
    import math

    assert set(got) == set(want) and len(want) > 10, (len(got), len(want), set(got) ^ set(want))
    for order, row in want.items():
        for column, value in row.items():
            other = got[order][column]
            if isinstance(value, float) and other is not None:
                assert math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-9), (order, column, other, value)
            else:
                assert other == value, (order, column, other, value)


def test_a_past_forecast_is_the_live_forecast_of_a_warehouse_fed_only_what_had_arrived_by_it(
    emulator_factory, tmp_path
):
    """No look-ahead: the forecast frozen at a past cutoff C equals, row for row, the live
    forecast of a warehouse holding only the events created by C (built fresh from them), even
    after events arriving later but dated before C (completions of orders open at C) have come in,
    and after a full refresh recomputes C."""
    import duckdb

    emu = emulator_factory(orders=700, history_days=60, start=START, provider_late_share=0.3)
    settings = settings_for(emu, tmp_path / "full", page_size=500)
    ingest(settings)
    _built_by_cli(emu, settings)
    cutoffs = query(
        settings,
        "select cutoff, count(*) as n from main_intermediate.int_order_forecasts_past group by 1 order by 1 desc",
    )
    assert len(cutoffs) >= 4 and all(c["cutoff"].weekday() == 0 and c["cutoff"].hour == 0 for c in cutoffs)
    cutoff = cutoffs[0]["cutoff"]  # the latest Monday the feed is a day past
    at_cutoff = f"cutoff = '{cutoff}'"
    frozen = _forecast_rows(settings, "int_order_forecasts_past", at_cutoff)
    # completions of orders open at C, dated the day before C, arrive now: a look-ahead by business
    # time would see them ended before C
    dated = (cutoff - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    emu.store.replay(
        [late_event(emu, f"late-{i}", "order-completed", order, dated, None, 100) for i, order in enumerate(frozen)][:8]
    )
    _tick(emu, settings, 2)
    _tick(emu, settings, 30)
    assert _forecast_rows(settings, "int_order_forecasts_past", at_cutoff) == frozen  # never recomputed

    # a warehouse fed only the events created by C, and one at C exactly (its feed's now)
    held = tmp_path / "held"
    held.mkdir()
    raw = settings.dataset
    with duckdb.connect(str(held / "covage.duckdb")) as con:
        con.execute(f"attach '{settings.duckdb_path}' as full_warehouse (read_only)")
        con.execute(f"create schema {raw}")
        con.execute(
            f"create table {raw}.events as select * from full_warehouse.{raw}.events where creation_date <= ?", [cutoff]
        )
        con.execute(
            f"insert into {raw}.events select * replace ('held-out-now' as event_uuid, 'service-info' as type, "
            f"'service' as object_type, 'svc-held-out' as object_uuid, ?::timestamp as creation_date, "
            f"?::timestamp as modification_date, ?::timestamp as event_date, null as data) "
            f"from {raw}.events limit 1",
            [cutoff, cutoff, cutoff],
        )
    held_settings = settings_for(emu, held)
    _built(held_settings)
    live = _forecast_rows(held_settings, "int_order_forecasts_now", "true")
    _assert_same_forecasts(frozen, live)
    # a full refresh computes C again from the events created by it: the late ones stay out
    result = build(settings, full_refresh=True)
    assert result.success, result.error
    _assert_same_forecasts(_forecast_rows(settings, "int_order_forecasts_past", at_cutoff), live)


FRESH = [
    "order-completed",
    "order-cri",
    "order-info",
    "order-rejected",
    "order-submitted",
    "order-localloop-saturation",
]
CORRECTIONS = ["type", "order", "service", "date", "files"]
KILLED_AT = [None, None, "int_object_events", "orders", "services", "int_order_forecasts_now"]


@st.composite
def tick_plans(draw) -> list[dict]:
    """A few ticks: how far the clock moves, the events that arrive (dated anywhere in the past),
    the corrections of the previous tick's events, and whether the build is killed, and where."""
    return [
        {
            "hours": draw(st.sampled_from([0.05, 0.1, 1.0, 6.0, 30.0])),
            "fresh": draw(st.lists(st.sampled_from(FRESH), max_size=3)),
            "corrections": draw(st.lists(st.sampled_from(CORRECTIONS), max_size=3)),
            "days_back": draw(st.floats(0, 40)),
            "kill": draw(st.sampled_from(KILLED_AT)),
            "seed": draw(st.integers(0, 10**6)),
        }
        for _ in range(draw(st.integers(2, 3)))
    ]


def _fresh_event(emu, rng, type_: str, number: int, days_back: float) -> dict:
    orders = [o.order_uuid for o in emu.store.orders()]
    data = {
        "order-completed": {"service_uuid": f"svc-p{number}", "service_alias": f"KSR-P{number}", "endpoints": []},
        "order-cri": {"fichier 1": {"blob": f"pvi/p{number}/1.pdf"}, "fichier 2": {"blob": f"pvi/p{number}/2.pdf"}},
        "order-info": {"message": f"note {number}"},
        "order-rejected": {"reject_code": "P1", "reject_reason": "property"},
        "order-submitted": {"kosc_order_ref": f"RP{number}"},
    }.get(type_)
    dated = now_text(emu, days_back * 86400 + 300)
    return late_event(emu, f"prop-{number}", type_, rng.choice(orders), dated, data, ago_s=120)


def _correct(emu, rng, event_uuid: str, kind: str) -> None:
    ev = emu.store.get(event_uuid)
    if ev is None:
        return
    if kind == "type":
        emu.store.correct(event_uuid, type=rng.choice(FRESH))
    elif kind == "order":
        emu.store.correct(event_uuid, object_uuid=rng.choice([o.order_uuid for o in emu.store.orders()]))
    elif kind == "service":
        emu.store.correct(event_uuid, data={"service_uuid": f"svc-moved-{rng.randint(0, 3)}", "endpoints": []})
    elif kind == "date":
        emu.store.correct(event_uuid, event_date=now_text(emu, rng.uniform(0, 60) * 86400))
    else:
        emu.store.correct(event_uuid, data={"fichier 9": {"blob": "pvi/moved.pdf"}})


@hypothesis_settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=tick_plans())
def test_random_tick_sequences_equal_a_full_refresh(plan, tmp_path_factory):
    """The property: any sequence of ticks, the last build completed, leaves every model equal to a
    full refresh."""
    import random

    from covage_pipeline.emulator import running_emulator

    from .conftest import make_config

    config = make_config(orders=150, history_days=45, start=START, modified_share=0.05, provider_late_share=0.2)
    with running_emulator(config) as emu:
        settings = settings_for(emu, tmp_path_factory.mktemp("property"), page_size=200)
        ingest(settings)
        _built_by_cli(emu, settings)
        previous: list[str] = []
        number = 0
        for tick in plan:
            rng = random.Random(tick["seed"])
            emu.store.advance(tick["hours"] * 3600)
            for kind in tick["corrections"]:
                if previous:
                    _correct(emu, rng, rng.choice(previous), kind)
            fresh = []
            for type_ in tick["fresh"]:
                number += 1
                fresh.append(_fresh_event(emu, rng, type_, number, tick["days_back"]))
            emu.store.replay(fresh)
            previous = [e["event_uuid"] for e in fresh] or previous
            ingest(settings)
            if tick["kill"]:
                build_killed_at(emu, settings, tick["kill"])
            else:
                _built_by_cli(emu, settings)
        if plan[-1]["kill"]:
            _built_by_cli(emu, settings)  # the next tick's build, after a killed one: it converges
        assert_same_as_full_refresh(settings)
