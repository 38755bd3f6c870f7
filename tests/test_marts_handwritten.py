"""Every mart column on a hand-written event log (tests/eventlog.py), against values worked out
by hand from the rules in the models' yml. The log goes the real way: served by the emulator over
HTTP, ingested by dlt, built by dbt."""

from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from covage_pipeline.models import build
from covage_pipeline.pipeline import ingest
from covage_pipeline.warehouse import query

from .conftest import make_config
from .eventlog import APRIL, AS_OF, EDGE_EVENTS, EDGES, EVENTS, FORECAST_EVENTS, FORECAST_T0, MARCH, at
from .extraction import settings_for

D = 24.0  # hours in a day


@contextmanager
def built_from(log: list[dict], folder: Path, start: datetime = datetime(2026, 6, 1)):
    """A hand-written log served by the emulator (clock after its last event), ingested and
    built the real way; yields a query function carrying its settings, and the API's URL."""
    from covage_pipeline.emulator import running_emulator

    with running_emulator(make_config(orders=0, reference_examples=False, start=start)) as emu:
        assert emu.store.replay(log) == len(log)
        settings = settings_for(emu, folder)
        ingest(settings)
        result = build(settings)
        assert result.success, (result.error, result.failures)

        def rows(sql: str) -> list[dict]:
            return query(settings, sql)

        rows.settings = settings
        yield rows, emu.url


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    with built_from(EVENTS, tmp_path_factory.mktemp("handwritten")) as built:
        yield built


def _same(got, want) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want


def assert_rows(rows: list[dict], key: str | tuple, expected: dict, defaults: dict | None = None) -> None:
    """Every row, every column: `expected[key]` overrides `defaults`; both together name all columns."""

    def key_of(row):
        return tuple(row[k] for k in key) if isinstance(key, tuple) else row[key]

    by_key = {key_of(r): r for r in rows}
    assert set(by_key) == set(expected), (sorted(map(str, by_key)), sorted(map(str, expected)))
    for k, overrides in expected.items():
        want = {**(defaults or {}), **overrides}
        got = by_key[k]
        columns = set(got) - ({key} if isinstance(key, str) else set(key))
        assert columns == set(want), f"{k}: columns {sorted(columns ^ set(want))} not both in mart and expectation"
        for column, value in want.items():
            assert _same(got[column], value), (k, column, got[column], value)


ORDER_DEFAULTS = {
    **dict.fromkeys(
        [
            "kosc_order_ref", "kind", "kind_known_at", "submitted_at", "acknowledged_at", "running_at",
            "appointment_agreed_at",
            "appointment_confirmed_at", "completed_at", "rejected_at", "cancelled_at", "dropped_at",
            "saturated_at", "desaturation_planned_at", "intervention_result_at", "service_uuid",
        ]
    ),
    **dict.fromkeys(
        [
            "appointments_agreed", "appointments_confirmed", "appointments_declined", "appointments_missed",
            "appointments_deferred", "localloop_saturations", "network_saturations", "interventions_succeeded",
            "interventions_failed", "info_messages", "provider_messages", "intervention_reports",
            "requalifications",
        ],
        0,
    ),
    "submissions": 1,
    "is_final": True,
    "was_requalified": False,
    **dict.fromkeys(
        [
            "is_missing_submission", "has_events_before_submission", "has_events_after_final", "has_unknown_events",
            "has_unreadable_event_date", "has_event_date_after_creation", "has_unreadable_appointment_date",
        ],
        False,
    ),
}  # fmt: skip


def completed(h: float) -> dict:
    return {"completed_at": at(h), "current_status": "completed", "status_since": at(h), "outcome": "completed"}


def test_orders(marts):
    query, _ = marts
    expected = {
        "ord-a": {
            "kosc_order_ref": "RA", "submitted_at": at(0), "acknowledged_at": at(2), "running_at": at(10),
            "appointment_agreed_at": at(24), "intervention_result_at": at(97), "last_event_at": at(100),
            **completed(100), "service_uuid": "svc-a", "appointments_agreed": 2, "appointments_missed": 1,
            "interventions_succeeded": 1, "intervention_reports": 1, "events": 9,
            "kind": "Fiber Pro", "kind_known_at": at(96),  # its report; the intervention says it again
        },
        "ord-b": {
            "kosc_order_ref": "RB", "submitted_at": at(5), "acknowledged_at": at(6), "rejected_at": at(29),
            "last_event_at": at(29), "current_status": "rejected", "status_since": at(29), "outcome": "rejected",
            "events": 3,
        },
        "ord-c": {
            "kosc_order_ref": "RC", "submitted_at": at(10), "acknowledged_at": at(12), "cancelled_at": at(40),
            "last_event_at": at(40), "current_status": "cancelled", "status_since": at(40), "outcome": "cancelled",
            "events": 3,
        },
        "ord-d": {
            "kosc_order_ref": "RD", "submitted_at": at(20), "acknowledged_at": at(21), "running_at": at(30),
            "appointment_agreed_at": at(300), "saturated_at": at(50), "desaturation_planned_at": at(80),
            "intervention_result_at": at(320), "last_event_at": at(340), **completed(340), "service_uuid": "svc-d",
            "appointments_agreed": 1, "localloop_saturations": 1, "interventions_succeeded": 1, "events": 8,
            # a saturation (Activate Create) and an on-site intervention (Fiber Pro): no kind
        },
        "ord-e": {
            "kosc_order_ref": "RE", "submitted_at": at(30), "acknowledged_at": at(31), "running_at": at(70),
            "rejected_at": at(40), "last_event_at": at(130), **completed(130), "was_requalified": True,
            "service_uuid": "svc-e", "requalifications": 1, "events": 6,
            "kind": "Activate Create", "kind_known_at": at(60),  # requalified
        },
        "ord-f": {
            "kosc_order_ref": "RF", "submitted_at": at(750), "acknowledged_at": at(752), "running_at": at(760),
            "last_event_at": at(800), **completed(800), "service_uuid": "svc-e", "events": 4,
        },
        "ord-g": {
            "kosc_order_ref": "RG", "submitted_at": at(730), "acknowledged_at": at(731), "running_at": at(740),
            "appointment_agreed_at": at(760), "last_event_at": at(760), "current_status": "running",
            "status_since": at(740), "is_final": False, "outcome": "open", "appointments_agreed": 1,
            "provider_messages": 1, "events": 5, "has_unreadable_appointment_date": True,
        },
        "ord-h": {
            # submitted read from "8:0:00 AM"; running's unreadable date falls back to its creation;
            # cancelled and dropped tie on both times: e-h5 > e-h4, so dropped is the latest
            "kosc_order_ref": "RH", "submitted_at": at(200), "acknowledged_at": at(199), "running_at": at(210),
            "cancelled_at": at(220), "dropped_at": at(220), "last_event_at": at(240), "current_status": "dropped",
            "status_since": at(220), "outcome": "dropped", "info_messages": 1, "events": 7,
            "has_events_before_submission": True, "has_events_after_final": True, "has_unknown_events": True,
            "has_unreadable_event_date": True, "has_event_date_after_creation": True,
        },
        "ord-i": {
            "kosc_order_ref": "RI", "submitted_at": at(1200), "acknowledged_at": at(1201), "last_event_at": at(1201),
            "current_status": "acknowledged", "status_since": at(1201), "is_final": False, "outcome": "open",
            "events": 2,
        },
    }  # fmt: skip
    april = {"ord-f", "ord-g", "ord-i"}
    # first event (H's acknowledged, dated 1 h before its submission) and the case duration to the last
    first = {"ord-a": 0, "ord-b": 5, "ord-c": 10, "ord-d": 20, "ord-e": 30, "ord-f": 750, "ord-g": 730,
             "ord-h": 199, "ord-i": 1200}  # fmt: skip
    case_hours = {"ord-a": 100, "ord-b": 24, "ord-c": 30, "ord-d": 320, "ord-e": 100, "ord-f": 50, "ord-g": 30,
                  "ord-h": 41, "ord-i": 1}  # fmt: skip
    for uuid, row in expected.items():
        row["submission_month"] = (APRIL if uuid in april else MARCH).date()
        row["first_event_at"] = at(first[uuid])
        row["case_duration_hours"] = case_hours[uuid]
    assert_rows(query("select * from main_marts.orders"), "order_uuid", expected, ORDER_DEFAULTS)


STAGES = [
    "submitted_to_acknowledged", "acknowledged_to_running", "running_to_completed", "lead_time",
    "submitted_to_rejected", "appointment_to_intervention_result", "saturation_to_desaturation_planned",
    "saturation_to_completed",
]  # fmt: skip


def test_order_lifecycle_durations(marts):
    query, _ = marts
    defaults = {
        **{f"{s}_hours": None for s in STAGES},
        "lead_time_days": None,
        "submission_month": MARCH.date(),
        "is_saturated": False,
        "is_localloop_saturated": False,
        "is_network_saturated": False,
    }

    def row(ref, outcome, **hours):
        out = {"kosc_order_ref": ref, "outcome": outcome, **{f"{k}_hours": float(v) for k, v in hours.items()}}
        if "lead_time" in hours:
            out["lead_time_days"] = hours["lead_time"] / D
        return out

    april = {"submission_month": APRIL.date()}
    expected = {
        "ord-a": row("RA", "completed", submitted_to_acknowledged=2, acknowledged_to_running=8,
                     running_to_completed=90, lead_time=100, appointment_to_intervention_result=73),
        "ord-b": row("RB", "rejected", submitted_to_acknowledged=1, submitted_to_rejected=24),
        "ord-c": row("RC", "cancelled", submitted_to_acknowledged=2),
        "ord-d": {**row("RD", "completed", submitted_to_acknowledged=1, acknowledged_to_running=9,
                        running_to_completed=310, lead_time=320, appointment_to_intervention_result=20,
                        saturation_to_desaturation_planned=30, saturation_to_completed=290),
                  "is_saturated": True, "is_localloop_saturated": True},
        "ord-e": row("RE", "completed", submitted_to_acknowledged=1, acknowledged_to_running=39,
                     running_to_completed=60, lead_time=100, submitted_to_rejected=10),
        "ord-f": {**row("RF", "completed", submitted_to_acknowledged=2, acknowledged_to_running=8,
                        running_to_completed=40, lead_time=50), **april},
        "ord-g": {**row("RG", "open", submitted_to_acknowledged=1, acknowledged_to_running=9), **april},
        "ord-h": row("RH", "dropped", submitted_to_acknowledged=-1, acknowledged_to_running=11),
        "ord-i": {**row("RI", "open", submitted_to_acknowledged=1), **april},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.order_lifecycle_durations"), "order_uuid", expected, defaults)


def test_lifecycle_stats(marts):
    query, _ = marts

    def stats(n, mean, median, p90, p95):
        return {"orders": n, "mean_hours": mean, "median_hours": median, "p90_hours": p90, "p95_hours": p95}

    m, a = MARCH.date(), APRIL.date()
    expected = {
        # March: A 2, B 1, C 2, D 1, E 1 (H's -1 left out) -> sorted 1 1 1 2 2; p90 at 3.6: 2
        ("month", m, "submitted_to_acknowledged"): stats(5, 1.4, 1.0, 2.0, 2.0),
        # A 8, D 9, E 39, H 11 -> 8 9 11 39; p90 at position 2.7: 11 + 0.7 * 28
        ("month", m, "acknowledged_to_running"): stats(4, 16.75, 10.0, 30.6, 34.8),
        ("month", m, "running_to_completed"): stats(3, 460 / 3, 90.0, 266.0, 288.0),
        ("month", m, "lead_time"): stats(3, 520 / 3, 100.0, 276.0, 298.0),
        ("month", m, "submitted_to_rejected"): stats(2, 17.0, 17.0, 22.6, 23.3),
        ("month", m, "appointment_to_intervention_result"): stats(2, 46.5, 46.5, 67.7, 70.35),
        ("month", m, "saturation_to_desaturation_planned"): stats(1, 30.0, 30.0, 30.0, 30.0),
        ("month", m, "saturation_to_completed"): stats(1, 290.0, 290.0, 290.0, 290.0),
        # April: F 2, G 1, I 1
        ("month", a, "submitted_to_acknowledged"): stats(3, 4 / 3, 1.0, 1.8, 1.9),
        ("month", a, "acknowledged_to_running"): stats(2, 8.5, 8.5, 8.9, 8.95),
        ("month", a, "running_to_completed"): stats(1, 40.0, 40.0, 40.0, 40.0),
        ("month", a, "lead_time"): stats(1, 50.0, 50.0, 50.0, 50.0),
        # 1 1 1 1 1 2 2 2 (A, C, F 2; H's -1 left out): median at 3.5: 1; p90 at 6.3: 2
        ("overall", None, "submitted_to_acknowledged"): stats(8, 11 / 8, 1.0, 2.0, 2.0),
        ("overall", None, "acknowledged_to_running"): stats(6, 14.0, 9.0, 25.0, 32.0),
        ("overall", None, "running_to_completed"): stats(4, 125.0, 75.0, 244.0, 277.0),
        ("overall", None, "lead_time"): stats(4, 142.5, 100.0, 254.0, 287.0),
        ("overall", None, "submitted_to_rejected"): stats(2, 17.0, 17.0, 22.6, 23.3),
        ("overall", None, "appointment_to_intervention_result"): stats(2, 46.5, 46.5, 67.7, 70.35),
        ("overall", None, "saturation_to_desaturation_planned"): stats(1, 30.0, 30.0, 30.0, 30.0),
        ("overall", None, "saturation_to_completed"): stats(1, 290.0, 290.0, 290.0, 290.0),
    }
    rows = query("select * from main_marts.lifecycle_stats")
    assert_rows(rows, ("period", "submission_month", "stage"), expected)


def test_delivery_stats(marts):
    query, _ = marts

    def row(submitted, done, w7, w14, w30, median_h, p90_h):
        return {
            "orders_submitted": submitted, "orders_completed": done, "completed_within_7_days": w7,
            "completed_within_14_days": w14, "completed_within_30_days": w30,
            "median_lead_time_days": median_h / D, "p90_lead_time_days": p90_h / D,
            "share_completed_within_7_days": w7 / submitted, "share_completed_within_14_days": w14 / submitted,
            "share_completed_within_30_days": w30 / submitted,
        }  # fmt: skip

    expected = {
        ("month", MARCH.date()): row(6, 3, 2, 3, 3, 100, 276),  # A 100 h, E 100 h, D 320 h
        ("month", APRIL.date()): row(3, 1, 1, 1, 1, 50, 50),  # F 50 h
        ("overall", None): row(9, 4, 3, 4, 4, 100, 254),
    }
    assert_rows(query("select * from main_marts.delivery_stats"), ("period", "submission_month"), expected)


def test_rejection_stats_and_pareto(marts):
    query, _ = marts

    def row(submitted, finished, rejected, ever, requalified, median, p90):
        return {
            "orders_submitted": submitted, "orders_finished": finished, "orders_rejected": rejected,
            "orders_ever_rejected": ever, "orders_requalified": requalified, "rejection_rate": rejected / submitted,
            "rejection_rate_of_finished": rejected / finished, "median_hours_to_rejection": median,
            "p90_hours_to_rejection": p90,
        }  # fmt: skip

    expected = {
        ("month", MARCH.date()): row(6, 6, 1, 2, 1, 17.0, 22.6),  # B 24 h, E 10 h
        ("month", APRIL.date()): row(3, 1, 0, 0, 0, None, None),
        ("overall", None): row(9, 7, 1, 2, 1, 17.0, 22.6),
    }
    assert_rows(query("select * from main_marts.rejection_stats"), ("period", "submission_month"), expected)

    pareto = {
        1: {"reject_code": "ADR_INCONNUE", "reject_subcode": "ADR002", "reject_reason": "cr_ko", "rejections": 1,
            "share_of_rejections": 0.5, "cumulative_share": 0.5, "median_hours_to_rejection": 24.0,
            "code_rejections": 1, "code_share": 0.5, "code_rank": 1},
        2: {"reject_code": "CDE_ANNUL", "reject_subcode": "CLI003", "reject_reason": "ar_ko", "rejections": 1,
            "share_of_rejections": 0.5, "cumulative_share": 1.0, "median_hours_to_rejection": 10.0,
            "code_rejections": 1, "code_share": 0.5, "code_rank": 2},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.rejection_reasons"), "pareto_rank", pareto)


def test_saturation_stats(marts):
    query, _ = marts
    zero = {"orders_localloop_saturated": 0, "orders_network_saturated": 0, "orders_saturated": 0,
            "share_localloop_saturated": 0.0, "share_network_saturated": 0.0, "share_saturated": 0.0,
            "orders_desaturation_planned": 0, "share_desaturation_planned": None,
            "median_hours_to_desaturation_planned": None, "saturated_completed": 0,
            "median_lead_time_saturated_hours": None, "saturation_cost_hours": None,
            "saturation_cost_days": None}  # fmt: skip
    hit = {"orders_localloop_saturated": 1, "orders_network_saturated": 0, "orders_saturated": 1,
           "orders_desaturation_planned": 1, "share_desaturation_planned": 1.0,
           "median_hours_to_desaturation_planned": 30.0, "saturated_completed": 1,
           "median_lead_time_saturated_hours": 320.0, "saturation_cost_hours": 220.0,
           "saturation_cost_days": 220 / D}  # fmt: skip
    expected = {
        ("month", MARCH.date()): {**hit, "orders_submitted": 6, "share_localloop_saturated": 1 / 6,
                                  "share_network_saturated": 0.0, "share_saturated": 1 / 6,
                                  "unsaturated_completed": 2, "median_lead_time_unsaturated_hours": 100.0},
        ("month", APRIL.date()): {**zero, "orders_submitted": 3, "unsaturated_completed": 1,
                                  "median_lead_time_unsaturated_hours": 50.0},
        ("overall", None): {**hit, "orders_submitted": 9, "share_localloop_saturated": 1 / 9,
                            "share_network_saturated": 0.0, "share_saturated": 1 / 9,
                            "unsaturated_completed": 3, "median_lead_time_unsaturated_hours": 100.0},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.saturation_stats"), ("period", "submission_month"), expected)


def test_appointment_stats(marts):
    query, _ = marts

    def row(agreed, missed, succeeded, done, of_done):
        return {
            "appointments_agreed": agreed, "appointments_confirmed": 0, "appointments_missed": missed,
            "appointments_declined": 0, "appointments_deferred": 0, "missed_rate": missed / agreed,
            "declined_rate": 0.0, "deferred_rate": 0.0, "interventions_succeeded": succeeded,
            "interventions_failed": 0, "intervention_success_rate": 1.0 if succeeded else None,
            "orders_completed": done, "appointments_per_completed_order": of_done / done,
        }  # fmt: skip

    expected = {
        ("month", MARCH.date()): row(3, 1, 2, 3, 3),  # A 2 agreed (1 missed), D 1; completed A D E
        ("month", APRIL.date()): row(1, 0, 0, 1, 0),  # G 1 agreed (open); completed F, no appointment
        ("overall", None): row(4, 1, 2, 4, 3),
    }
    assert_rows(query("select * from main_marts.appointment_stats"), ("period", "submission_month"), expected)


def test_services_and_monthly_base(marts):
    query, _ = marts
    defaults = {"ended_by_order_uuid": None, "terminated_at": None, "slammed_at": None, "last_modified_at": None,
                "ended_at": None, "modifications": 0, "info_messages": 0, "has_unknown_events": False}  # fmt: skip
    expected = {
        "svc-a": {"service_alias": "KA", "created_by_order_uuid": "ord-a", "created_at": at(100),
                  "activated_at": at(101), "status": "active", "events": 1},
        "svc-d": {"service_alias": "KD", "created_by_order_uuid": "ord-d", "created_at": at(340),
                  "activated_at": at(341), "slammed_at": at(800), "ended_at": at(800), "status": "slammed",
                  "events": 2},
        "svc-e": {"service_alias": "KE", "created_by_order_uuid": "ord-e", "created_at": at(130),
                  "ended_by_order_uuid": "ord-f", "activated_at": at(131), "terminated_at": at(801),
                  "ended_at": at(801), "status": "terminated", "events": 2},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.services"), "service_uuid", expected, defaults)

    monthly = {
        MARCH.date(): {"active_at_month_start": 0, "activations": 3, "terminations": 0, "slams": 0,
                       "active_at_month_end": 3, "churn_rate": None},
        APRIL.date(): {"active_at_month_start": 3, "activations": 0, "terminations": 1, "slams": 1,
                       "active_at_month_end": 1, "churn_rate": 2 / 3},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.service_base_monthly"), "month_start", monthly)


def test_backlog(marts):
    query, _ = marts
    as_of = at(1201)
    expected = {
        "ord-g": {"kosc_order_ref": "RG", "current_status": "running", "current_stage": "appointment-agreed",
                  "stage_since": at(760), "submitted_at": at(730), "last_event_at": at(760), "as_of": as_of,
                  "age_days": (1201 - 730) / D, "days_since_last_event": (1201 - 760) / D, "is_stuck": True},
        "ord-i": {"kosc_order_ref": "RI", "current_status": "acknowledged", "current_stage": "acknowledged",
                  "stage_since": at(1201), "submitted_at": at(1200), "last_event_at": at(1201), "as_of": as_of,
                  "age_days": 1 / D, "days_since_last_event": 0.0, "is_stuck": False},
    }  # fmt: skip
    assert_rows(query("select * from main_marts.backlog"), "order_uuid", expected)


def test_object_history_tells_each_story_in_order(marts):
    query, _ = marts
    rows = query("select * from main_marts.object_history where object_uuid in ('ord-a', 'ord-h', 'svc-e')")
    defaults = {"is_event_date_fallback": False, "is_unknown_type": False}

    def step(obj, n, h, type_, summary, created=None, ref="RA", related="svc-a", **flags):
        return {
            "object_type": "service" if obj.startswith("svc") else "order", "object_uuid": obj,
            "kosc_order_ref": ref, "related_uuid": related, "step": n, "business_time": at(h),
            "creation_date": at(created if created is not None else h), "event_type": type_, "summary": summary,
            **flags,
        }  # fmt: skip

    a = "ord-a"
    h = {"ref": "RH", "related": None}
    expected = {
        "e-a1": step(a, 1, 0, "order-submitted", "order ref RA"),
        "e-a2": step(a, 2, 2, "order-acknowledged", None),
        "e-a3": step(a, 3, 10, "order-running", None),
        "e-a4": step(a, 4, 24, "order-appointment-agreed", f"slot {at(48)} - {at(50)}"),
        "e-a5": step(a, 5, 48, "order-appointment-missed", None),
        "e-a6": step(a, 6, 72, "order-appointment-agreed", f"slot {at(96)} - {at(98)}"),
        "e-a7": step(a, 7, 96, "order-cri", "report files: fichier 1, fichier 2"),
        "e-a8": step(a, 8, 97, "order-on-site-intervention-succeeded", "line built"),
        "e-a9": step(a, 9, 100, "order-completed", "service KA (svc-a)"),
        "e-h2": step("ord-h", 1, 199, "order-acknowledged", None, created=201, **h),
        "e-h1": step("ord-h", 2, 200, "order-submitted", "order ref RH", **h),
        "e-h3": step("ord-h", 3, 210, "order-running", None, is_event_date_fallback=True, **h),
        "e-h4": step("ord-h", 4, 220, "order-cancelled", "cancelled: duplicate order", created=220.5, **h),
        "e-h5": step("ord-h", 5, 220, "order-dropped", None, created=220.5, **h),
        "e-h6": step("ord-h", 6, 230, "order-priority-changed", 'unknown event type; data: {"priority":"high"}',
                     is_unknown_type=True, **h),
        "e-h7": step("ord-h", 7, 240, "order-info", "call first [ends the deferral]", created=239, **h),
        "e-se1": step("svc-e", 1, 131, "service-activated", None, ref="RE", related="ord-e"),
        "e-se2": step("svc-e", 2, 801, "service-terminated", None, ref="RE", related="ord-e"),
    }  # fmt: skip
    assert_rows(rows, "event_uuid", expected, defaults)

    b = query("select summary from main_marts.object_history where event_uuid in ('e-b3', 'e-e3', 'e-g4', 'e-g5')")
    assert sorted(r["summary"] for r in b) == sorted(
        [
            "rejected ADR_INCONNUE ADR002 (cr_ko) Adresse introuvable",
            "rejected CDE_ANNUL CLI003 (ar_ko)",
            "Access Authorisation: Waiting for the building manager",
            "slot 2026-04-05 14:05:00.5 - 0000-00-00T00:00:00",
        ]
    )


def test_variants_and_rework(marts):
    query, _ = marts
    base = "submitted > acknowledged"
    orders = {
        "ord-a": (f"{base} > running > appointment-agreed > appointment-missed > appointment-agreed"
                  " > on-site-intervention-succeeded > completed", "completed", 100.0),
        "ord-b": (f"{base} > rejected", "rejected", None),
        "ord-c": (f"{base} > cancelled", "cancelled", None),
        "ord-d": (f"{base} > running > localloop-saturation > localloop-desaturation-planned > appointment-agreed"
                  " > on-site-intervention-succeeded > completed", "completed", 320.0),
        "ord-e": (f"{base} > rejected > requalified > running > completed", "completed", 100.0),
        "ord-f": (f"{base} > running > completed", "completed", 50.0),
        "ord-g": (f"{base} > running > appointment-agreed", "open", None),
        "ord-h": ("acknowledged > submitted > running > cancelled > dropped", "dropped", None),
        "ord-i": (base, "open", None),
    }  # fmt: skip
    expected = {
        uuid: {"variant": v, "steps": v.count(" > ") + 1, "outcome": o, "lead_time_hours": lt,
               "repeated_steps": None, "has_rework": False, "was_resubmitted": False,
               "had_several_appointments": False}
        for uuid, (v, o, lt) in orders.items()
    }  # fmt: skip
    expected["ord-a"].update(repeated_steps="appointment-agreed x2", has_rework=True, had_several_appointments=True)
    assert_rows(query("select * from main_marts.order_variants"), "order_uuid", expected)

    # one order per variant: ranked by the variant's text
    ranked = ["ord-h", "ord-i", "ord-c", "ord-b", "ord-e", "ord-g", "ord-a", "ord-f", "ord-d"]
    variants = {
        n: {"variant": orders[u][0], "steps": orders[u][0].count(" > ") + 1, "orders": 1, "share_of_orders": 1 / 9,
            "cumulative_share": n / 9, "orders_completed": int(orders[u][1] == "completed"),
            "orders_with_rework": int(u == "ord-a"), "median_lead_time_hours": orders[u][2],
            "median_lead_time_days": None if orders[u][2] is None else orders[u][2] / D, "example_order_uuid": u}
        for n, u in enumerate(ranked, start=1)
    }  # fmt: skip
    assert_rows(query("select * from main_marts.process_variants"), "variant_rank", variants)


def test_data_quality(marts):
    query, _ = marts
    issues = {
        ("unknown_event_type", "e-h6"): ("order-priority-changed", 230, 230, None),
        ("unreadable_event_date", "e-h3"): ("order-running", 210, 210, "0000-00-00T00:00:00"),
        ("malformed_event_date", "e-h1"): ("order-submitted", 200, 200, "2026-03-10T8:0:00 AM"),
        ("unreadable_appointment_date", "e-g5"): ("order-appointment-agreed", 760, 760, None),
        ("event_date_after_creation", "e-h7"): ("order-info", 240, 239, None),
        ("before_submission", "e-h2"): ("order-acknowledged", 199, 201, None),
        ("after_final_state", "e-h6"): ("order-priority-changed", 230, 230, None),
        ("after_final_state", "e-h7"): ("order-info", 240, 239, None),
        ("negative_stage_duration", "e-h2"): ("order-acknowledged", 199, 201, None),
    }
    expected = {
        key: {"object_type": "order", "object_uuid": "ord-g" if key[1] == "e-g5" else "ord-h", "event_type": t,
              "business_time": at(b), "creation_date": at(c), "event_date_raw": raw}
        for key, (t, b, c, raw) in issues.items()
    }  # fmt: skip
    assert_rows(query("select * from main_marts.data_quality_issues"), ("issue", "event_uuid"), expected)

    total = len(EVENTS)
    summary = {
        issue: {"events": n, "objects": 1, "share_of_events": n / total, "first_seen": at(first), "last_seen": at(last)}
        for issue, n, first, last in [
            ("unknown_event_type", 1, 230, 230),
            ("unreadable_event_date", 1, 210, 210),
            ("malformed_event_date", 1, 200, 200),
            ("unreadable_appointment_date", 1, 760, 760),
            ("event_date_after_creation", 1, 240, 240),
            ("before_submission", 1, 199, 199),
            ("after_final_state", 2, 230, 240),
            ("negative_stage_duration", 1, 199, 199),
        ]
    }
    assert_rows(query("select * from main_marts.data_quality_summary"), "issue", summary)

    # lateness: 46 events on time, e-g4 30 h late, e-h2 2 h late, e-h4 and e-h5 half an hour late,
    # e-h7 1 h early (e-h3 unreadable: left out); sum 32 h over 51 events
    rows = {r["grain"] + ":" + str(r["event_type"]): r for r in query("select * from main_marts.provider_lateness")}
    overall = rows.pop("overall:None")
    want = {"events": 51, "mean_lateness_hours": 32 / 51, "median_lateness_hours": 0.0, "p90_lateness_hours": 0.0,
            "p99_lateness_hours": 16.0, "max_lateness_hours": 30.0, "share_later_than_1_hour": 2 / 51,
            "share_later_than_1_day": 1 / 51}  # fmt: skip
    for column, value in want.items():
        assert _same(overall[column], value), (column, overall[column], value)
    ack = rows.pop("event_type:order-acknowledged")  # nine, one 2 h late
    assert (ack["events"], ack["max_lateness_hours"], ack["share_later_than_1_hour"]) == (9, 2.0, 1 / 9)
    assert _same(ack["p90_lateness_hours"], 0.4) and _same(ack["mean_lateness_hours"], 2 / 9)
    provider = rows.pop("event_type:order-information-from-provider")
    assert (provider["events"], provider["median_lateness_hours"], provider["share_later_than_1_day"]) == (1, 30.0, 1)
    info = rows.pop("event_type:order-info")
    assert info["max_lateness_hours"] == -1.0
    for late in ("order-cancelled", "order-dropped"):
        assert rows.pop(f"event_type:{late}")["max_lateness_hours"] == 0.5
    running = rows.pop("event_type:order-running")
    assert running["events"] == 5  # A, D, E, F, G: H's event_date is unreadable
    assert all(r["max_lateness_hours"] == 0 and r["mean_lateness_hours"] == 0 for r in rows.values())


def test_staging_rows_for_endpoints_files_and_slots(marts):
    query, url = marts
    endpoints = {
        ("e-a9", 0): {"order_uuid": "ord-a", "completed_at": at(100), "endpoint_uuid": "ep-a", "endpoint_type": "PTO",
                      "endpoint_reference": "FI-0001-0001"},
        ("e-e6", 0): {"order_uuid": "ord-e", "completed_at": at(130), "endpoint_uuid": "ep-e", "endpoint_type": "ONT",
                      "endpoint_reference": "FI-0002-0002"},
    }  # fmt: skip
    rows = query("select * exclude (endpoint) from main_staging.stg_order_endpoints")
    assert_rows(rows, ("event_uuid", "endpoint_position"), endpoints)

    files = {
        ("e-a7", f"fichier {n}"): {"order_uuid": "ord-a", "business_time": at(96), "creation_date": at(96),
                                   "file_url": f"{url}/blob/pvi/RA/1/Public/{name}.pdf"}
        for n, name in ((1, "a"), (2, "b"))
    }  # fmt: skip
    assert_rows(query("select * from main_staging.stg_cri_files"), ("event_uuid", "file_label"), files)

    slots = query(
        "select event_uuid, appointment_start, appointment_end, is_appointment_date_invalid "
        "from main_staging.stg_events where event_type = 'order-appointment-agreed'"
    )
    assert_rows(
        slots,
        "event_uuid",
        {
            "e-a4": {"appointment_start": at(48), "appointment_end": at(50), "is_appointment_date_invalid": False},
            "e-a6": {"appointment_start": at(96), "appointment_end": at(98), "is_appointment_date_invalid": False},
            "e-d6": {"appointment_start": at(320), "appointment_end": None, "is_appointment_date_invalid": False},
            # "2:5:00 PM.5" read as 14:05:00.5; "0000-00-00T00:00:00" has no reading
            "e-g5": {"appointment_start": datetime(2026, 4, 5, 14, 5, 0, 500000), "appointment_end": None,
                     "is_appointment_date_invalid": True},
        },
    )  # fmt: skip


def test_headline_figures_read_the_marts(marts):
    from covage_pipeline.headlines import headline_figures

    query, _ = marts
    settings = query.settings
    figures = {(f.section, f.label): f.value for f in headline_figures(settings)}
    assert figures[("Orders", "orders")] == "9"
    opened = [figures[("Orders", k)] for k in ("open", "completed", "rejected", "cancelled or dropped")]
    assert opened == ["2", "4", "1", "2"]
    assert figures[("Delivery", "median lead time")] == "4.2 days"  # 100 h
    within = [figures[("Delivery", f"completed within {n} days")] for n in (7, 14, 30)]
    assert within == ["33.3 %", "44.4 %", "44.4 %"]
    assert figures[("Rejections", "rejection rate (of submitted)")] == "11.1 %"
    assert figures[("Rejections", "top reject code")] == "ADR_INCONNUE (50.0 %)"
    assert figures[("Saturation", "cost (median lead time, saturated - not)")] == "9.2 days"  # 220 h
    assert figures[("Appointments", "missed rate")] == "25.0 %"
    assert figures[("Services", "active base (latest month end)")] == "1"
    assert (figures[("Backlog", "open orders")], figures[("Backlog", "stuck")]) == ("2", "1")
    assert figures[("Data quality", "after final state")] == "2 events"


@pytest.fixture(scope="module")
def edge_marts(tmp_path_factory):
    """The small log of rule edges (tests/eventlog.py, EDGE_EVENTS), the same real way."""
    with built_from(EDGE_EVENTS, tmp_path_factory.mktemp("edges")) as (rows, _):
        yield rows


def test_a_delivery_window_includes_its_last_instant(edge_marts):
    """Completed exactly 7 x 24 h after submission is within 7 days; one second more is not."""
    overall = edge_marts("select * from main_marts.delivery_stats where period = 'overall'")[0]
    assert overall["orders_completed"] == 2
    assert overall["completed_within_7_days"] == 1 and overall["completed_within_14_days"] == 2
    durations = {
        r["order_uuid"]: r["lead_time_hours"]
        for r in edge_marts("select order_uuid, lead_time_hours from main_marts.order_lifecycle_durations")
        if r["lead_time_hours"] is not None
    }
    assert durations == {"ord-k": 168.0, "ord-l": 168.0 + 1 / 3600}


def test_simultaneous_events_follow_the_lifecycle_not_their_arrival(edge_marts):
    """M's acknowledged and running share an instant; running arrived first: the story, the
    variant and the current status follow the lifecycle (acknowledged, then running)."""
    story = edge_marts("select event_uuid, step from main_marts.object_history where object_uuid = 'ord-m'")
    assert sorted((r["step"], r["event_uuid"]) for r in story) == [(1, "x-m1"), (2, "x-m3"), (3, "x-m2")]
    variant = edge_marts("select variant from main_marts.order_variants where order_uuid = 'ord-m'")
    assert variant == [{"variant": "submitted > acknowledged > running"}]
    order = edge_marts("select current_status, status_since from main_marts.orders where order_uuid = 'ord-m'")
    assert order == [{"current_status": "running", "status_since": EDGES + timedelta(hours=1)}]


@pytest.fixture(scope="module")
def forecast_marts(tmp_path_factory):
    """The forecast log (tests/eventlog.py, FORECAST_EVENTS), the same real way."""
    start = FORECAST_T0 + timedelta(hours=AS_OF + 1)
    with built_from(FORECAST_EVENTS, tmp_path_factory.mktemp("forecast"), start) as (rows, _):
        yield rows


def test_the_delivery_forecast_worked_out_by_hand(forecast_marts):
    """Kaplan-Meier over the comparable orders, censored where still open, narrowest comparison
    with 20 completions, else the widest; an appointment ahead is a floor."""
    now = FORECAST_T0 + timedelta(hours=AS_OF)

    def hours(h: float) -> datetime:
        return now + timedelta(hours=h)

    # Classes of time start at 0, 6, 12, 24, 48, 72, 120, 168 h (forecast_time_classes_hours).
    # O1 (running 5 h, kind not known; class 0, d = 5 h): the stretches that were running at 0 h,
    # their kind and saturation as at 0 h: the 20 teachers (completed 10k h after; T20's kind was
    # not known yet), O2 (censored at 155 h), O3 (not saturated yet at 0 h; censored at 5 h) and O1
    # itself (censored at 5 h, not counted): 22. Nobody completed before 5 h; share still waiting
    # after the j-th completion: (21 - j) / 21 up to j = 15; 10/21 <= 1/2 at j = 11 (110 h, 105 h
    # from now). After O2 leaves: 6/21 x 4/5 x 3/4 x 2/3 x 1/2 = 0.057 <= 1/10 at j = 19 (185 h).
    # O3 (saturated, Activate Create): nobody of that kind and saturated at 0 h: by stage, the
    # same 22 and the same dates.
    # O2 (running 155 h, stuck; class 120 h, d = 35 h): still running at 120 h and not completed
    # 35 h later: T16..T20 (T20 an Activate Activate order by 120 h), 4 of its kind, 5 by stage,
    # too few: the widest, every order as old, from class 120 h with d = 37 h (its age is 157 h):
    # T12..T20 and O2 at 120 h; completions at 2, 12, 22, 32 h leave 9/10 x 8/9 x 7/8 x 6/7 = 0.6
    # waiting at 37 h; then T16..T20 at 42, 52, 62, 72, 82 h: 0.48, 0.36, 0.24 <= 0.5 x 0.6 at
    # 62 h (25 h from now), 0.12, 0 <= 0.1 x 0.6 at 82 h (45 h from now).
    # O4 (acknowledged 9 h, class 6 h: nobody else stayed acknowledged 6 h): every order as old
    # (age 10 h, class 6 h, d = 4 h): the teachers, completed 10k - 8 h from now, and O2 (censored
    # at 147 h): 21; p50 102 h and p90 182 h, both before its appointment at +800 h, the floor;
    # that is 810 h after its submission, more than the 30 days of delivery_target_days: late.
    expected = {
        "ord-o1": ("running", False, "kind, stage and saturation", 22, 20, hours(105), hours(185), None),
        "ord-o2": ("running", False, "all orders", 5, 5, hours(25), hours(45), None),
        "ord-o3": ("running", True, "stage", 22, 20, hours(105), hours(185), None),
        "ord-o4": ("acknowledged", False, "all orders", 21, 20, hours(800), hours(800), hours(800)),
    }
    rows = forecast_marts("select * from main_marts.open_order_forecast")
    assert {r["order_uuid"] for r in rows} == set(expected)
    for row in rows:
        stage, saturated, compared, n, completed, p50, p90, appointment = expected[row["order_uuid"]]
        assert (row["stage"], row["is_saturated"], row["compared_with"]) == (stage, saturated, compared), row
        assert (row["comparable_orders"], row["completed_orders"]) == (n, completed), row
        assert abs((row["p50_completed_at"] - p50).total_seconds()) < 1, row
        assert abs((row["p90_completed_at"] - p90).total_seconds()) < 1, row
        assert row["appointment_start"] == appointment and row["uses_appointment"] == (appointment is not None)
        assert row["probability_not_completed"] == 0.0 and row["forecast_at"] == now
        assert row["is_forecast_late"] == (row["order_uuid"] == "ord-o4")
    kinds = {r["order_uuid"]: r["kind"] for r in rows}
    assert kinds == {"ord-o1": None, "ord-o2": None, "ord-o3": "Activate Create", "ord-o4": None}
    revealed = forecast_marts("select order_uuid, kind, kind_known_at from main_marts.orders where kind is not null")
    assert sorted(revealed, key=lambda r: r["order_uuid"]) == [
        {"order_uuid": "ord-o3", "kind": "Activate Create", "kind_known_at": now - timedelta(hours=3)},
        {"order_uuid": "ord-t20", "kind": "Activate Activate", "kind_known_at": FORECAST_T0 + timedelta(hours=122)},
    ]
    o4 = forecast_marts("select * from main_intermediate.int_order_forecasts_now where order_uuid = 'ord-o4'")
    assert [(round(r["p50_remaining_hours"], 6), round(r["p90_remaining_hours"], 6)) for r in o4] == [(102, 182)]
    from covage_pipeline.headlines import headline_figures

    figures = {(f.section, f.label): f.value for f in headline_figures(forecast_marts.settings)}
    assert figures[("Backlog", "forecast late (p50 past 30 days)")] == "1"
    # `covage history` tells it, for an order open now (by its reference), not for a finished one
    from typer.testing import CliRunner

    from covage_pipeline.cli import app
    from covage_pipeline.publish import publish_marts

    publish_marts(forecast_marts.settings)
    env = {"COVAGE_DATA_DIR": str(forecast_marts.settings.data_dir)}
    told = CliRunner().invoke(app, ["history", "RO4"], env=env, terminal_width=200)
    assert told.exit_code == 0, told.output
    assert (
        "Forecast: delivered by 2026-08-25 (1 in 2), by 2026-08-25 (9 in 10); acknowledged for 0.4 days" in told.output
    )  # AS_OF + 800 h
    assert "all orders, 21 comparable orders; not before its appointment on 2026-08-25" in told.output
    finished = CliRunner().invoke(app, ["history", "RT03"], env=env, terminal_width=200)
    assert finished.exit_code == 0 and "Forecast" not in finished.output
    # no order was open at an earlier weekly cutoff: nothing to judge yet, and no division by zero
    overall = forecast_marts("select * from main_marts.forecast_calibration where period = 'overall'")
    assert overall == [{"period": "overall", "forecast_date": None, "orders_forecast": 0, "orders_completed": 0,
                        "share_completed_by_p50": None, "share_completed_by_p90": None,
                        "mean_abs_error_days": None, "naive_mean_abs_error_days": None}]  # fmt: skip
