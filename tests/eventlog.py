"""A small, hand-written event log: nine orders and three services covering every path.

Times are hours after T0 (Monday 2026-03-02 00:00); an event reaches the API when it happens
unless `created` says otherwise. March orders: A (completed after a missed appointment, with an
intervention report), B (rejected), C (cancelled), D (local-loop saturation, then completed),
E (rejected, requalified, completed), H (malformed and unreadable dates, an event before its
submission, a tie decided by event_uuid, events after its final state, an unknown type, an
event_date after its creation_date). April orders: F (a Terminate order ending E's service),
G (open and stuck: a provider event 30 hours late, an appointment slot half unreadable), I (open,
the latest event of the log). The expected values in test_marts_handwritten.py follow from the
rules in the models' yml, worked out by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

T0 = datetime(2026, 3, 2)
MARCH = datetime(2026, 3, 1)
APRIL = datetime(2026, 4, 1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def iso(hours: float) -> str:
    return at(hours).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _event(uuid, obj, type_, hours, data=None, created=None, event_date=None, object_type="order") -> dict:
    return {
        "event_uuid": uuid,
        "type": type_,
        "object_type": object_type,
        "object_uuid": obj,
        "event_date": event_date if event_date is not None else iso(hours),
        "creation_date": iso(created if created is not None else hours),
        "data": data,
    }


def _service(uuid, svc, type_, hours) -> dict:
    return _event(uuid, svc, type_, hours, object_type="service")


def _ref(ref: str) -> dict:
    return {"kosc_order_ref": ref}


EVENTS: list[dict] = [
    # A: completed after a missed appointment; a CRI with two files
    _event("e-a1", "ord-a", "order-submitted", 0, _ref("RA")),
    _event("e-a2", "ord-a", "order-acknowledged", 2),
    _event("e-a3", "ord-a", "order-running", 10),
    _event("e-a4", "ord-a", "order-appointment-agreed", 24, {"start_date": iso(48), "end_date": iso(50)}),
    _event("e-a5", "ord-a", "order-appointment-missed", 48),
    _event("e-a6", "ord-a", "order-appointment-agreed", 72, {"start_date": iso(96), "end_date": iso(98)}),
    _event(
        "e-a7",
        "ord-a",
        "order-cri",
        96,
        {"fichier 1": {"blob": "pvi/RA/1/Public/a.pdf"}, "fichier 2": {"blob": "pvi/RA/1/Public/b.pdf"}},
    ),
    _event("e-a8", "ord-a", "order-on-site-intervention-succeeded", 97, {"message": "line built"}),
    _event(
        "e-a9",
        "ord-a",
        "order-completed",
        100,
        {
            "endpoints": [{"endpoint_uuid": "ep-a", "type": "PTO", "reference": "FI-0001-0001"}],
            "service_uuid": "svc-a",
            "service_alias": "KA",
        },
    ),
    _service("e-sa1", "svc-a", "service-activated", 101),
    # B: rejected
    _event("e-b1", "ord-b", "order-submitted", 5, _ref("RB")),
    _event("e-b2", "ord-b", "order-acknowledged", 6),
    _event(
        "e-b3",
        "ord-b",
        "order-rejected",
        29,
        {
            "reject_reason": "cr_ko",
            "reject_code": "ADR_INCONNUE",
            "reject_subcode": "ADR002",
            "reject_description": "Adresse introuvable",
        },
    ),
    # C: cancelled
    _event("e-c1", "ord-c", "order-submitted", 10, _ref("RC")),
    _event("e-c2", "ord-c", "order-acknowledged", 12),
    _event("e-c3", "ord-c", "order-cancelled", 40, {"reason": "customer request"}),
    # D: local-loop saturation, desaturation planned, completed; its service slammed in April
    _event("e-d1", "ord-d", "order-submitted", 20, _ref("RD")),
    _event("e-d2", "ord-d", "order-acknowledged", 21),
    _event("e-d3", "ord-d", "order-running", 30),
    _event("e-d4", "ord-d", "order-localloop-saturation", 50),
    _event("e-d5", "ord-d", "order-localloop-desaturation-planned", 80, {"desaturation_type": "LL_FREE_DESAT"}),
    _event("e-d6", "ord-d", "order-appointment-agreed", 300, {"start_date": iso(320), "end_date": None}),
    _event("e-d7", "ord-d", "order-on-site-intervention-succeeded", 320, {"message": "ok"}),
    _event("e-d8", "ord-d", "order-completed", 340, {"endpoints": [], "service_uuid": "svc-d", "service_alias": "KD"}),
    _service("e-sd1", "svc-d", "service-activated", 341),
    _service("e-sd2", "svc-d", "service-slammed", 800),
    # E: rejected, requalified, completed; its service ended by F
    _event("e-e1", "ord-e", "order-submitted", 30, _ref("RE")),
    _event("e-e2", "ord-e", "order-acknowledged", 31),
    _event(
        "e-e3",
        "ord-e",
        "order-rejected",
        40,
        {"reject_reason": "ar_ko", "reject_code": "CDE_ANNUL", "reject_subcode": "CLI003", "reject_description": None},
    ),
    _event("e-e4", "ord-e", "order-requalified", 60),
    _event("e-e5", "ord-e", "order-running", 70),
    _event(
        "e-e6",
        "ord-e",
        "order-completed",
        130,
        {
            "endpoints": [{"endpoint_uuid": "ep-e", "type": "ONT", "reference": "FI-0002-0002"}],
            "service_uuid": "svc-e",
            "service_alias": "KE",
        },
    ),
    _service("e-se1", "svc-e", "service-activated", 131),
    _service("e-se2", "svc-e", "service-terminated", 801),
    # F: a Terminate order for svc-e (April)
    _event("e-f1", "ord-f", "order-submitted", 750, _ref("RF")),
    _event("e-f2", "ord-f", "order-acknowledged", 752),
    _event("e-f3", "ord-f", "order-running", 760),
    _event("e-f4", "ord-f", "order-completed", 800, {"endpoints": [], "service_uuid": "svc-e", "service_alias": "KE"}),
    # G: open and stuck (April); a provider event created 30 hours late; a half-unreadable slot
    _event("e-g1", "ord-g", "order-submitted", 730, _ref("RG")),
    _event("e-g2", "ord-g", "order-acknowledged", 731),
    _event("e-g3", "ord-g", "order-running", 740),
    _event(
        "e-g4",
        "ord-g",
        "order-information-from-provider",
        745,
        {"message": "Waiting for the building manager", "description": "Access Authorisation"},
        created=775,
    ),
    _event(
        "e-g5",
        "ord-g",
        "order-appointment-agreed",
        760,
        {"start_date": "2026-04-05T2:5:00 PM.5", "end_date": "0000-00-00T00:00:00"},
    ),
    # H: every kind of bad date, a tie, events after the final state (March)
    _event("e-h1", "ord-h", "order-submitted", 200, _ref("RH"), event_date="2026-03-10T8:0:00 AM"),
    _event("e-h2", "ord-h", "order-acknowledged", 199, created=201),
    _event("e-h3", "ord-h", "order-running", 210, event_date="0000-00-00T00:00:00"),
    _event("e-h4", "ord-h", "order-cancelled", 220, {"reason": "duplicate order"}, created=220.5),
    _event("e-h5", "ord-h", "order-dropped", 220, created=220.5),
    _event("e-h6", "ord-h", "order-priority-changed", 230, {"priority": "high"}),
    _event("e-h7", "ord-h", "order-info", 240, {"message": "call first", "stop_deferred": True}, created=239),
    # I: open, the latest event of the log (as_of = T0 + 1201 h)
    _event("e-i1", "ord-i", "order-submitted", 1200, _ref("RI")),
    _event("e-i2", "ord-i", "order-acknowledged", 1201),
]


# A second, small log for the edges of the rules (kept apart: the log above has its every mart
# worked out by hand). K is completed exactly 7 x 24 h after its submission, L one second later.
# M is acknowledged and running at the same instant (a provider's batch); running reached the API
# first and has the smaller uuid, so only the lifecycle's own order puts acknowledged first.
EDGES = datetime(2026, 5, 4)


def _edge(uuid, obj, type_, seconds, data=None, created=None) -> dict:
    def instant(s: float) -> str:
        return (EDGES + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%f")

    return {
        "event_uuid": uuid,
        "type": type_,
        "object_type": "order",
        "object_uuid": obj,
        "event_date": instant(seconds),
        "creation_date": instant(seconds if created is None else created),
        "data": data,
    }


WEEK = 7 * 24 * 3600
EDGE_EVENTS: list[dict] = [
    _edge("x-k1", "ord-k", "order-submitted", 0, _ref("RK")),
    _edge("x-k2", "ord-k", "order-completed", WEEK, {"endpoints": [], "service_uuid": "svc-k", "service_alias": "KK"}),
    _edge("x-l1", "ord-l", "order-submitted", 10, _ref("RL")),
    _edge("x-l2", "ord-l", "order-completed", 10 + WEEK + 1, {"endpoints": [], "service_uuid": "svc-l"}),
    _edge("x-m1", "ord-m", "order-submitted", 20, _ref("RM")),
    _edge("x-m3", "ord-m", "order-acknowledged", 3600, created=3602),
    _edge("x-m2", "ord-m", "order-running", 3600, created=3601),
]


# A third log, for the delivery forecast (kept apart, its expected forecasts worked out by hand in
# test_marts_handwritten.py). Hours after FORECAST_T0; the latest event, at AS_OF = 400 h, is the
# feed's now. Twenty finished orders teach: T01..T20, submitted at hour k, acknowledged 1 h and
# running 2 h later, completed 10 x k hours after running began (10, 20, ..., 200 h running).
# T20 shows itself an Activate Activate order (a sensitive access) 100 h into its running.
# Open at AS_OF: O1 running for 5 h; O2 running for 155 h (stuck); O3 running for 5 h and
# saturated since 3 h (an Activate Create order, then); O4 acknowledged for 9 h with an
# appointment agreed at 800 h after AS_OF.
FORECAST_T0 = datetime(2026, 7, 6)
AS_OF = 400


def _f(uuid, obj, type_, hours, data=None) -> dict:
    instant = (FORECAST_T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {
        "event_uuid": uuid,
        "type": type_,
        "object_type": "order",
        "object_uuid": obj,
        "event_date": instant,
        "creation_date": instant,
        "data": data,
    }


def _teacher(k: int) -> list[dict]:
    order = f"ord-t{k:02d}"
    return [
        _f(f"f-t{k:02d}-1", order, "order-submitted", k, _ref(f"RT{k:02d}")),
        _f(f"f-t{k:02d}-2", order, "order-acknowledged", k + 1),
        _f(f"f-t{k:02d}-3", order, "order-running", k + 2),
        _f(f"f-t{k:02d}-4", order, "order-completed", k + 2 + 10 * k, {"endpoints": [], "service_uuid": f"svc-t{k}"}),
    ]


def _open(name: str, submitted: float, running: float | None) -> list[dict]:
    order = f"ord-{name}"
    events = [
        _f(f"f-{name}-1", order, "order-submitted", AS_OF - submitted, _ref(f"R{name.upper()}")),
        _f(f"f-{name}-2", order, "order-acknowledged", AS_OF - submitted + 1),
    ]
    if running is not None:
        events.append(_f(f"f-{name}-3", order, "order-running", AS_OF - running))
    return events


FORECAST_EVENTS: list[dict] = [
    *[event for k in range(1, 21) for event in _teacher(k)],
    _f("f-t20-5", "ord-t20", "order-sensibleaccess", 22 + 100),
    *_open("o1", 7, 5),
    _f("f-o1-4", "ord-o1", "order-info", AS_OF, {"message": "the latest event: the feed's now"}),
    *_open("o2", 157, 155),
    *_open("o3", 7, 5),
    _f("f-o3-4", "ord-o3", "order-localloop-saturation", AS_OF - 3),
    *_open("o4", 10, None),
    _f(
        "f-o4-3",
        "ord-o4",
        "order-appointment-agreed",
        AS_OF - 8,
        {"start_date": (FORECAST_T0 + timedelta(hours=AS_OF + 800)).isoformat(), "end_date": None},
    ),
]
