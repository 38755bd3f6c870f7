"""Every mart on emulator data of several thousand orders agrees with an independent computation
in pandas from the API's own events (tests/marts_pandas.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from covage_pipeline.models import build
from covage_pipeline.pipeline import ingest
from covage_pipeline.warehouse import query

from . import marts_pandas as pdm
from .extraction import settings_for

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from covage_pipeline.emulator import running_emulator

    from .conftest import make_config

    config = make_config(orders=3000, history_days=120.0, malformed_share=0.02, unknown_type_share=0.02)
    with running_emulator(config) as emu:
        settings = settings_for(emu, tmp_path_factory.mktemp("marts"), page_size=1000, chunk_pages=50)
        ingest(settings)
        truth = emu.store.ground_truth(emu.url)
        kinds = {o.order_uuid: o.kind for o in emu.store.orders()}
    result = build(settings)
    assert result.success, (result.error, result.failures)

    def rows(sql: str) -> list[dict]:
        return query(settings, sql)

    ev = pdm.events_frame(truth)
    orders = pdm.orders(ev)
    orders.attrs["true_kind"] = kinds  # what the emulator knows and the API does not say
    assert len(orders) > 3000
    return rows, ev, orders


def _close(got, want) -> bool:
    got, want = pdm.normalise(got), pdm.normalise(want)
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-7)
    return got == want


def assert_same(mart: list[dict], expected: list[dict], key: tuple[str, ...]) -> None:
    """Same keys, and every column of the expectation equal in the mart (the mart may not lack any)."""
    got = {tuple(pdm.normalise(r[k]) for k in key): r for r in mart}
    want = {tuple(pdm.normalise(r[k]) for k in key): r for r in expected}
    assert len(got) == len(mart) and len(want) == len(expected), "duplicate keys"
    extra, missing = set(got) - set(want), set(want) - set(got)
    assert not extra and not missing, (sorted(map(str, extra))[:5], sorted(map(str, missing))[:5])
    columns = set(mart[0]) if mart else set()
    for k, w in want.items():
        assert set(w) <= columns, f"the mart lacks {set(w) - columns}"
        for column, value in w.items():
            assert _close(got[k][column], value), (k, column, got[k][column], value)


def _records(df) -> list[dict]:
    return df.to_dict("records")


def _every_column_compared(query, table: str, expected: list[dict]) -> None:
    mart_columns = {d for d in query(f"select * from {table} limit 1")[0]}
    assert mart_columns == set(expected[0]), mart_columns ^ set(expected[0])


def test_orders(built):
    query, _, orders = built
    expected = _records(orders)
    _every_column_compared(query, "main_marts.orders", expected)
    assert_same(query("select * from main_marts.orders"), expected, ("order_uuid",))
    outcomes = {r["outcome"] for r in expected}
    assert {"completed", "rejected", "cancelled", "dropped", "open"} <= outcomes
    assert orders["was_requalified"].any() and orders["has_events_after_final"].any()
    # a kind read off the events is never wrong, and most orders that got far enough show one
    revealed = {r["order_uuid"]: r["kind"] for r in expected if isinstance(r["kind"], str)}
    true_kind = orders.attrs["true_kind"]  # (the reference's own example orders are not the emulator's)
    wrong = {uuid: (kind, true_kind[uuid]) for uuid, kind in revealed.items() if true_kind.get(uuid, kind) != kind}
    assert not wrong, list(wrong.items())[:5]
    assert sum(uuid in true_kind for uuid in revealed) > 1000, (len(revealed), len(true_kind))
    assert set(revealed.values()) == {"Activate Create", "Activate Activate", "Fiber Pro"}
    generated = [r for r in expected if true_kind.get(r["order_uuid"]) not in (None, "Terminate")]
    completed = [r for r in generated if r["outcome"] == "completed"]
    assert sum(r["order_uuid"] in revealed for r in completed) > 0.5 * len(completed), (len(completed), len(revealed))


def test_durations_and_their_statistics(built):
    query, _, orders = built
    dur = pdm.durations(orders)
    expected = _records(dur)
    _every_column_compared(query, "main_marts.order_lifecycle_durations", expected)
    assert_same(query("select * from main_marts.order_lifecycle_durations"), expected, ("order_uuid",))
    stats = pdm.lifecycle_stats(dur)
    assert len({r["stage"] for r in stats}) == len(pdm.STAGES)
    _every_column_compared(query, "main_marts.lifecycle_stats", stats)
    assert_same(query("select * from main_marts.lifecycle_stats"), stats, ("period", "submission_month", "stage"))
    delivery = pdm.delivery_stats(dur)
    _every_column_compared(query, "main_marts.delivery_stats", delivery)
    assert_same(query("select * from main_marts.delivery_stats"), delivery, ("period", "submission_month"))


def test_rejections(built):
    query, ev, orders = built
    stats = pdm.rejection_stats(orders)
    _every_column_compared(query, "main_marts.rejection_stats", stats)
    assert_same(query("select * from main_marts.rejection_stats"), stats, ("period", "submission_month"))
    reasons = pdm.rejection_reasons(ev, orders)
    assert len(reasons) >= 5
    _every_column_compared(query, "main_marts.rejection_reasons", reasons)
    assert_same(query("select * from main_marts.rejection_reasons"), reasons, ("pareto_rank",))


def test_saturation_and_appointments(built):
    query, _, orders = built
    saturation = pdm.saturation_stats(pdm.durations(orders))
    assert saturation[-1]["orders_saturated"] > 0
    _every_column_compared(query, "main_marts.saturation_stats", saturation)
    assert_same(query("select * from main_marts.saturation_stats"), saturation, ("period", "submission_month"))
    appointments = pdm.appointment_stats(orders)
    _every_column_compared(query, "main_marts.appointment_stats", appointments)
    assert_same(query("select * from main_marts.appointment_stats"), appointments, ("period", "submission_month"))


def test_services_and_the_monthly_base(built):
    query, ev, _ = built
    services = pdm.services(ev)
    assert {"active", "terminated", "slammed"} <= set(services["status"])
    expected = _records(services)
    _every_column_compared(query, "main_marts.services", expected)
    assert_same(query("select * from main_marts.services"), expected, ("service_uuid",))
    monthly = pdm.service_base_monthly(services, ev)
    _every_column_compared(query, "main_marts.service_base_monthly", monthly)
    assert_same(query("select * from main_marts.service_base_monthly"), monthly, ("month_start",))


def test_backlog(built):
    query, ev, orders = built
    expected = _records(pdm.backlog(ev, orders))
    assert any(r["is_stuck"] for r in expected) and not all(r["is_stuck"] for r in expected)
    _every_column_compared(query, "main_marts.backlog", expected)
    assert_same(query("select * from main_marts.backlog"), expected, ("order_uuid",))


def test_variants(built):
    query, ev, orders = built
    variants = pdm.order_variants(ev, orders)
    assert variants["has_rework"].any()
    expected = _records(variants)
    _every_column_compared(query, "main_marts.order_variants", expected)
    assert_same(query("select * from main_marts.order_variants"), expected, ("order_uuid",))
    ranked = pdm.process_variants(variants)
    _every_column_compared(query, "main_marts.process_variants", ranked)
    assert_same(query("select * from main_marts.process_variants"), ranked, ("variant_rank",))


def test_history_orders_every_object_like_the_api(built):
    query, ev, _ = built
    rows = query("select object_uuid, step, event_uuid, event_type from main_marts.object_history")
    got = {(r["object_uuid"], r["step"]): (r["event_uuid"], r["event_type"]) for r in rows}
    ev = ev.copy()
    ev["step"] = ev.groupby("object_uuid").cumcount() + 1
    columns = (ev["object_uuid"], ev["step"], ev["event_uuid"], ev["type"])
    want = {(o, s): (u, t) for o, s, u, t in zip(*columns, strict=True)}
    assert got == want
    # the data holds provider batches where running reached the API before acknowledged: the
    # lifecycle's own order, not the arrival, decides them
    first = ev[ev["type"].isin(["order-acknowledged", "order-running"])].drop_duplicates(["object_uuid", "type"])
    times = first.pivot(index="object_uuid", columns="type", values=["business", "created"])
    batch = times[("business", "order-acknowledged")] == times[("business", "order-running")]
    running_first = times[("created", "order-running")] < times[("created", "order-acknowledged")]
    assert (batch & running_first).sum() > 10


def test_data_quality(built):
    query, ev, orders = built
    expected = pdm.data_quality_issues(ev, orders)
    issues = {issue for issue, _ in expected}
    assert {"unknown_event_type", "malformed_event_date", "unreadable_event_date", "after_final_state"} <= issues
    got = {(r["issue"], r["event_uuid"]) for r in query("select issue, event_uuid from main_marts.data_quality_issues")}
    assert got == expected
    summary = {r["issue"]: r["events"] for r in query("select * from main_marts.data_quality_summary")}
    assert summary == {i: sum(1 for j, _ in expected if j == i) for i in issues}
    lateness = pdm.provider_lateness(ev)
    _every_column_compared(query, "main_marts.provider_lateness", lateness)
    assert_same(query("select * from main_marts.provider_lateness"), lateness, ("grain", "event_type"))


def test_endpoints_and_report_files(built):
    query, ev, _ = built
    got = {
        tuple(r.values())
        for r in query(
            "select event_uuid, endpoint_position, endpoint_uuid, endpoint_type, endpoint_reference "
            "from main_staging.stg_order_endpoints"
        )
    }
    assert got == pdm.endpoints(ev) and got
    files = {
        tuple(r.values())
        for r in query("select event_uuid, order_uuid, file_label, file_url from main_staging.stg_cri_files")
    }
    assert files == pdm.cri_files(ev) and files


def test_open_order_forecast(built):
    """Every open order's forecast (comparison, counts, p50 and p90 dates with the appointment
    floor, lateness) as an independent Kaplan-Meier in plain Python computes it."""
    from datetime import timedelta

    query, ev, orders = built
    dbt_vars = yaml.safe_load((ROOT / "sql" / "dbt_project.yml").read_text())["vars"]
    classes, learning_days = dbt_vars["forecast_time_classes_hours"], dbt_vars["forecast_learning_days"]
    expected = {r["order_uuid"]: r for r in pdm.open_order_forecast(ev, orders, classes, learning_days=learning_days)}
    got = {r["order_uuid"]: r for r in query("select * from main_marts.open_order_forecast")}
    assert set(got) == set(expected) and len(got) > 50
    assert {r["compared_with"] for r in got.values()} >= {"kind, stage and saturation", "all orders"}
    assert {r["kind"] for r in got.values()} >= {None, "Activate Create", "Activate Activate", "Fiber Pro"}
    assert any(r["uses_appointment"] for r in got.values())

    def close(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < timedelta(seconds=1))

    for uuid, want in expected.items():
        row = got[uuid]
        assert (row["kind"], row["stage"], row["is_saturated"], row["compared_with"]) == (
            want["kind"], want["stage"], want["is_saturated"], want["compared_with"]), uuid  # fmt: skip
        assert (row["comparable_orders"], row["completed_orders"]) == (
            want["comparable_orders"], want["completed_orders"]), uuid  # fmt: skip
        assert close(row["p50_completed_at"], want["p50_completed_at"]), (uuid, row, want)
        assert close(row["p90_completed_at"], want["p90_completed_at"]), (uuid, row, want)
        assert row["appointment_start"] == want["appointment_start"], uuid
        assert row["is_forecast_late"] == want["is_forecast_late"], uuid
        p = want.get("probability_not_completed")
        assert (row["probability_not_completed"] is None and p is None) or math.isclose(
            row["probability_not_completed"], p, abs_tol=1e-12
        ), uuid
