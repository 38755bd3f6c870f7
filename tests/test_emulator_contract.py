"""Contract tests of the emulator over real HTTP: it must behave as the reference says."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from covage_pipeline.emulator import EventStore, catalogue
from covage_pipeline.emulator.store import REFERENCE_EXAMPLES

from .conftest import TOKEN, make_config, page_all

FIELDS = {
    "model",
    "event_uuid",
    "type",
    "object_type",
    "object_uuid",
    "event_date",
    "creation_date",
    "modification_date",
    "data",
}


def _decoded(sort_value: str) -> list:
    return orjson.loads(base64.b64decode(sort_value))


# -- paging -------------------------------------------------------------------------------------


def test_paging_without_ties_visits_every_visible_event_once_in_creation_order(emulator_factory, client):
    emu = emulator_factory(tie_share=0.0)
    truth = emu.store.ground_truth(emu.url)
    items, pages = page_all(client, emu.url, size=37)
    assert pages > 10
    assert [i["event_uuid"] for i in items] == [t["event_uuid"] for t in truth]
    assert len({i["event_uuid"] for i in items}) == len(items)
    dates = [i["creation_date"] for i in items]
    assert dates == sorted(dates)
    for item in items:
        assert set(item) == FIELDS | {"sort_value"}
        assert _decoded(item["sort_value"]) == [item["creation_date"]]


def test_ties_at_page_boundaries_are_skipped_by_strictly_later_paging(emulator_factory, client):
    """The reference's `after` is strictly later: events tying with a page's last item are lost."""
    emu = emulator_factory(tie_share=0.6, tie_bucket_s=6 * 3600)
    truth = emu.store.ground_truth(emu.url)
    size = 25
    items, _ = page_all(client, emu.url, size=size)
    # Replay the same paging on the ground truth to predict exactly which events are skipped.
    expected, i = [], 0
    while i < len(truth):
        page = truth[i : i + size]
        expected.extend(page)
        last = page[-1]["creation_date"]
        i += len(page)
        while i < len(truth) and truth[i]["creation_date"] == last:
            i += 1
    skipped = {t["event_uuid"] for t in truth} - {e["event_uuid"] for e in expected}
    assert skipped, "the seed should produce ties at page boundaries"
    assert [e["event_uuid"] for e in items] == [e["event_uuid"] for e in expected]
    counts = Counter(t["creation_date"] for t in truth)
    assert all(counts[next(t for t in truth if t["event_uuid"] == u)["creation_date"]] > 1 for u in skipped)


def test_empty_list_at_the_end_and_desc_direction(emulator, client):
    truth = emulator.store.ground_truth(emulator.url)
    last = truth[-1]["sort_value"]
    url = f"{emulator.url}/api/events/"
    assert client.get(url, params={"sort": "creation_date", "after": last}).json() == []
    desc = client.get(url, params={"sort": "creation_date", "direction": "desc", "size": 5}).json()
    assert [d["event_uuid"] for d in desc] == [t["event_uuid"] for t in truth[::-1][:5]]
    before = client.get(
        url, params={"sort": "creation_date", "direction": "desc", "size": 3, "after": desc[-1]["sort_value"]}
    ).json()
    assert all(b["creation_date"] < desc[-1]["creation_date"] for b in before)


def test_default_order_is_descending_event_date_and_limit_is_an_alias(emulator, client):
    page = client.get(f"{emulator.url}/api/events/", params={"limit": 30}).json()
    assert len(page) == 30
    keys = [_decoded(p["sort_value"])[0] for p in page]
    assert keys == sorted(keys, reverse=True)
    sized = client.get(f"{emulator.url}/api/events/", params={"size": 30}).json()
    assert sized == page


def test_event_date_sort_uses_the_sane_event_date_as_cursor(emulator, client):
    page = client.get(
        f"{emulator.url}/api/events/", params={"sort": "event_date", "direction": "asc", "size": 200}
    ).json()
    keys = [_decoded(p["sort_value"])[0] for p in page]
    assert keys == sorted(keys)
    nxt = client.get(
        f"{emulator.url}/api/events/",
        params={"sort": "event_date", "direction": "asc", "size": 5, "after": page[-1]["sort_value"]},
    ).json()
    assert all(_decoded(n["sort_value"])[0] > keys[-1] for n in nxt)


# -- filters and single events ------------------------------------------------------------------


def test_filters_by_object_type_and_object_uuid(emulator, client):
    truth = emulator.store.ground_truth(emulator.url)
    services, _ = page_all(client, emulator.url, size=200, object_type="service")
    assert services and {s["object_type"] for s in services} == {"service"}
    assert len(services) == sum(1 for t in truth if t["object_type"] == "service")
    order_uuid = next(t["object_uuid"] for t in truth if t["type"] == "order-completed")
    mine, _ = page_all(client, emulator.url, size=3, object_type="order", object_uuid=order_uuid)
    assert [m["event_uuid"] for m in mine] == [t["event_uuid"] for t in truth if t["object_uuid"] == order_uuid]


def test_single_event_and_404(emulator, client):
    truth = emulator.store.ground_truth(emulator.url)
    some = next(t for t in truth if t["type"] == "order-rejected")
    got = client.get(f"{emulator.url}/api/events/{some['event_uuid']}/")
    assert got.status_code == 200
    assert got.json() == {k: v for k, v in some.items() if k != "sort_value"}
    missing = client.get(f"{emulator.url}/api/events/nosuchid/")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Not found."


def test_reference_examples_are_served_as_the_reference_shows_them(emulator, client):
    got = client.get(f"{emulator.url}/api/events/3cpkp1f1/").json()
    assert got == {
        "model": "event",
        "creation_date": "2017-05-09T15:59:55.669742",
        "modification_date": "2017-05-09T15:59:55.669742",
        "event_uuid": "3cpkp1f1",
        "type": "order-running",
        "object_type": "order",
        "object_uuid": "1i0cvu4c",
        "event_date": "2017-05-09T16:01:06.196355",
        "data": None,
    }
    by_object = client.get(
        f"{emulator.url}/api/events/",
        params={"object_type": "order", "object_uuid": "e73cafe9-4785-441e-ab75-22ffa806a313", "sort": "creation_date"},
    ).json()
    assert [(e["event_uuid"], e["sort_value"]) for e in by_object] == [
        ("zk5c0whk", "WyIyMDE3LTA1LTA5VDEzOjUxOjE2Ljk3MjU3NiJd"),
        ("109ao75u", "WyIyMDE3LTA1LTA5VDE1OjU3OjU5LjMxMTg4NyJd"),
    ]
    first = client.get(
        f"{emulator.url}/api/events/", params={"sort": "event_date", "direction": "asc", "size": 4}
    ).json()
    by_uuid = {e["event_uuid"]: e for e in first}
    # the first example of the reference: sort_value holds the (sane) event_date
    assert by_uuid["109ao75u"]["sort_value"] == "WyIyMDE3LTA1LTA5VDE1OjU3OjU5LjU3MzM5MyJd"
    assert by_uuid["lrgecnfi"]["sort_value"] == "WyIyMDE3LTA1LTA5VDE2OjAxOjA0LjYzNzc2NiJd"
    assert by_uuid["lrgecnfi"]["event_date"] == "2017-05-09T16:1:04 AM.637766"
    assert {e["event_uuid"] for e in REFERENCE_EXAMPLES} <= {t["event_uuid"] for t in emulator.store.ground_truth()}


# -- errors and authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "modification_date"}, "invalid_sort"),
        ({"sort": "creation_date", "direction": "up"}, "invalid_direction"),
        ({"after": "not-base64!"}, "invalid_cursor"),
        ({"after": base64.b64encode(b'{"a": 1}').decode()}, "invalid_cursor"),
        ({"after": base64.b64encode(b'["yesterday"]').decode()}, "invalid_cursor"),
        ({"size": "0"}, "invalid_size"),
        ({"size": "1001"}, "invalid_size"),
        ({"limit": "ten"}, "invalid_size"),
        ({"object_type": "customer"}, "invalid_object_type"),
    ],
)
def test_bad_parameters_get_a_clear_400(emulator, client, params, code):
    response = client.get(f"{emulator.url}/api/events/", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code
    assert response.json()["detail"]


def test_authentication_schemes(emulator):
    url = f"{emulator.url}/api/events/?size=1"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(url, auth=("any-user", TOKEN)).status_code == 200
    assert httpx.get(url, headers={"X-API-Key": TOKEN}).status_code == 200
    assert httpx.get(f"{emulator.url}/api/events/3cpkp1f1/").status_code == 401


def test_openapi_documents_the_endpoints(emulator):
    spec = httpx.get(f"{emulator.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/events/",
        "/api/events/{event_uuid}/",
        "/api/v2/orders/{order_uuid}/events/info",
    }
    params = {p["name"] for p in spec["paths"]["/api/events/"]["get"]["parameters"]}
    assert params == {"sort", "direction", "size", "limit", "after", "object_type", "object_uuid"}
    assert "429" in spec["paths"]["/api/v2/orders/{order_uuid}/events/info"]["post"]["responses"]


# -- posting order-info -------------------------------------------------------------------------


def test_post_info_rules_and_throttle(emulator_factory, client):
    emu = emulator_factory()
    order = (
        next(o for o in emu.store.orders() if o.outcome == "open")
        if any(o.outcome == "open" for o in emu.store.orders())
        else emu.store.orders()[0]
    )
    url = f"{emu.url}/api/v2/orders/{order.order_uuid}/events/info"
    assert httpx.post(url, json={"message": "hi"}).status_code == 401
    forbidden = httpx.post(url, json={"message": "hi"}, headers={"Authorization": "Bearer readonly-token"})
    assert forbidden.status_code == 403
    assert client.post(f"{emu.url}/api/v2/orders/nosuchorder/events/info", json={"message": "hi"}).status_code == 404
    for bad in (
        {},
        {"message": ""},
        {"message": 3},
        {"message": "x", "stop_deferred": "yes"},
        ["x"],
        {"message": "x", "z": 1},
    ):
        assert client.post(url, json=bad).status_code == 400, bad
    assert client.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 400

    # a message already generated on this order in the last 5 minutes would throttle: move past it
    emu.store.advance(301)
    created = httpx.post(
        url, json={"message": "Hello there", "stop_deferred": True}, headers={"Authorization": "Bearer delivery-token"}
    )
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["type"] == "order-info"
    assert event["object_uuid"] == order.order_uuid
    assert event["data"] == {"message": "Hello there", "stop_deferred": True}

    throttled = client.post(url, json={"message": "again"})
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    emu.store.advance(299)
    assert client.post(url, json={"message": "again"}).status_code == 429
    emu.store.advance(2)
    assert client.post(url, json={"message": "again"}).status_code == 201

    listed, _ = page_all(client, emu.url, size=100, object_uuid=order.order_uuid)
    assert event["event_uuid"] in {e["event_uuid"] for e in listed}
    assert client.get(f"{emu.url}/api/events/{event['event_uuid']}/").json() == event


# -- CRI files ----------------------------------------------------------------------------------


def test_cri_links_expire_after_30_minutes_and_refresh_on_display(emulator_factory, client):
    emu = emulator_factory(share_fiber_pro=1.0, share_activate_create=0.0, share_activate_activate=0.0)
    truth = emu.store.ground_truth(emu.url)
    cri = next(t for t in truth if t["type"] == catalogue.CRI_EVENT_TYPE)
    assert cri["data"] and all(label.startswith("fichier ") for label in cri["data"])
    link = next(iter(cri["data"].values()))
    parts = urlsplit(link)
    assert parts.query.startswith("se=")
    first = httpx.get(link)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/pdf"
    assert first.content.startswith(b"%PDF-")
    blob = parts.path.removeprefix("/blob/")
    assert hashlib.sha256(first.content).digest() == hashlib.sha256(emu.store.blob_content(blob)).digest()

    emu.store.advance(29 * 60)
    assert httpx.get(link).status_code == 200
    emu.store.advance(2 * 60)
    expired = httpx.get(link)
    assert expired.status_code == 403
    assert b"AuthenticationFailed" in expired.content

    fresh = client.get(f"{emu.url}/api/events/{cri['event_uuid']}/").json()
    fresh_link = fresh["data"][next(iter(cri["data"]))]
    assert fresh_link != link and urlsplit(fresh_link).path == parts.path
    assert httpx.get(fresh_link).content == first.content
    forged = fresh_link.rsplit("-", 1)[0] + "-" + "0" * 32
    assert httpx.get(forged).status_code == 403


# -- faults -------------------------------------------------------------------------------------


def _set_faults(emu, **faults) -> None:
    httpx.post(f"{emu.url}/_emulator/faults", json=faults).raise_for_status()


def test_fault_error_bursts(emulator_factory, client):
    emu = emulator_factory()
    _set_faults(emu, error_rate=1.0, error_burst=3)
    statuses = [client.get(f"{emu.url}/api/events/?size=1").status_code for _ in range(6)]
    assert all(s in (500, 502, 503) for s in statuses)
    _set_faults(emu)
    assert client.get(f"{emu.url}/api/events/?size=1").status_code == 200
    # admin calls are never faulted
    _set_faults(emu, error_rate=1.0)
    assert httpx.get(f"{emu.url}/_emulator/status").status_code == 200


def test_fault_rate_limit_has_retry_after(emulator_factory, client):
    emu = emulator_factory()
    _set_faults(emu, rate_limit_rate=1.0, retry_after_s=7)
    response = client.get(f"{emu.url}/api/events/?size=1")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_fault_slow_response_exceeds_client_timeout(emulator_factory):
    emu = emulator_factory()
    _set_faults(emu, slow_rate=1.0, slow_s=1.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{emu.url}/api/events/?size=1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=0.5)


def test_fault_dropped_connection(emulator_factory):
    emu = emulator_factory()
    _set_faults(emu, drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{emu.url}/api/events/?size=50", headers={"Authorization": f"Bearer {TOKEN}"})


def test_fault_truncated_body(emulator_factory, client):
    emu = emulator_factory()
    _set_faults(emu, truncate_rate=1.0)
    response = client.get(f"{emu.url}/api/events/?size=50")
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_fault_settings_are_validated(emulator):
    assert httpx.post(f"{emulator.url}/_emulator/faults", json={"explode_rate": 1}).status_code == 400


def test_admin_calls_are_loopback_only():
    from covage_pipeline.emulator import create_app

    app = create_app(make_config(orders=5))

    async def from_another_host() -> list[int]:
        transport = httpx.ASGITransport(app=app.asgi, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as remote:
            return [
                (await remote.get("/_emulator/status")).status_code,
                (await remote.post("/_emulator/advance?seconds=60")).status_code,
            ]

    assert asyncio.run(from_another_host()) == [403, 403]


# -- data ---------------------------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data():
    a = EventStore(make_config(orders=150)).ground_truth()
    b = EventStore(make_config(orders=150)).ground_truth()
    c = EventStore(make_config(orders=150, seed=8)).ground_truth()
    assert a == b
    assert [e["event_uuid"] for e in a] != [e["event_uuid"] for e in c]


def test_lifecycles_follow_the_events_by_type_of_order_table():
    store = EventStore(make_config(orders=1500, late_share=0.0))  # every event visible when created
    events_by_object: dict[str, list] = {}
    for ev in store.visible():
        events_by_object.setdefault(ev.object_uuid, []).append(ev)
    seen_kinds = Counter()
    undocumented = set(catalogue.UNDOCUMENTED_EVENTS)
    final = {"order-completed", "order-cancelled", "order-dropped"}
    for order in store.orders():
        events = sorted(events_by_object.get(order.order_uuid, []), key=lambda e: e.seq)  # story order
        if not events:
            continue
        seen_kinds[order.kind] += 1
        types = [e.type for e in events]
        assert set(types) - undocumented <= catalogue.ALLOWED_EVENTS[order.kind], (order.kind, types)
        assert types[0] == "order-submitted"
        assert sum(t in final for t in types) <= 1
        for end in final & set(types):
            after = types[types.index(end) + 1 :]
            assert set(after) <= undocumented, (order.kind, types)
        if "order-rejected" in types and "order-completed" in types:
            assert order.kind == catalogue.ACTIVATE_CREATE and "order-requalified" in types
    assert set(seen_kinds) == set(catalogue.ORDER_KINDS)
    service_types = {ev.type for ev in store.visible() if ev.object_type == "service"}
    assert service_types - undocumented <= catalogue.SERVICE_EVENTS
    assert {"service-activated", "service-terminated"} <= service_types


def test_every_documented_payload_and_realism_is_served():
    store = EventStore(make_config(orders=3000, history_days=365.0))
    truth = store.ground_truth()
    by_type: dict[str, list[dict]] = {}
    for t in truth:
        by_type.setdefault(t["type"], []).append(t)
    assert set(by_type["order-submitted"][-1]["data"]) == {"kosc_order_ref"}
    assert set(by_type["order-rejected"][0]["data"]) == {
        "reject_reason",
        "reject_code",
        "reject_subcode",
        "reject_description",
    }
    assert any(e["data"]["reject_description"] is None for e in by_type["order-rejected"])
    assert set(by_type["order-cancelled"][0]["data"]) == {"reason"}
    assert set(by_type["order-completed"][0]["data"]) == {"endpoints", "service_uuid", "service_alias"}
    assert isinstance(by_type["order-completed"][0]["data"]["endpoints"], list)
    agreed = by_type["order-appointment-agreed"]
    assert any(e["data"]["end_date"] is None for e in agreed) and any(e["data"]["end_date"] for e in agreed)
    assert by_type["order-localloop-desaturation-planned"][0]["data"] == {"desaturation_type": "LL_FREE_DESAT"}
    assert set(by_type["order-information-from-provider"][0]["data"]) == {"message", "description"}
    assert any(e["data"].get("stop_deferred") is True for e in by_type["order-info"])
    for type_ in ("order-on-site-intervention-failed", "order-appointment-deferred"):
        assert set(by_type[type_][0]["data"]) == {"message"}
    assert by_type["order-acknowledged"][0]["data"] is None
    assert set(catalogue.UNDOCUMENTED_EVENTS) & set(by_type)
    # realism: ties, provider lateness, malformed dates (never in creation_date)
    assert max(Counter(t["creation_date"] for t in truth).values()) > 1
    malformed = [t for t in truth if " AM." in t["event_date"] or t["event_date"].startswith("0000")]
    assert len(malformed) > 5
    assert any(" AM." in (e["data"]["start_date"] or "") for e in agreed)
    assert all(len(t["creation_date"]) == 26 and "AM" not in t["creation_date"] for t in truth)
    late = [t for t in truth if t["event_date"][:10] < t["creation_date"][:10] and t["event_date"][0] != "0"]
    assert late


def test_late_visibility_shows_an_event_after_later_created_ones(emulator_factory, client):
    emu = emulator_factory(late_share=0.3, late_window_s=600.0, orders=200, history_days=5.0, orders_per_day=400.0)
    store = emu.store
    hidden = []
    for _ in range(20):  # move through busy hours until an event is hidden behind a later, listed one
        now = store.advance(3600)
        newest_listed = max(ev.creation_us for ev in store._events if ev.visible_us <= now)
        hidden = [ev for ev in store._events if ev.creation_us < newest_listed and now < ev.visible_us]
        if hidden:
            break
    assert hidden, "some events created before now are not visible yet"
    target = hidden[0]
    listed = client.get(
        f"{emu.url}/api/events/", params={"object_uuid": target.object_uuid, "sort": "creation_date"}
    ).json()
    assert target.event_uuid not in {e["event_uuid"] for e in listed}
    assert client.get(f"{emu.url}/api/events/{target.event_uuid}/").status_code == 404
    newer = client.get(
        f"{emu.url}/api/events/", params={"sort": "creation_date", "direction": "desc", "size": 1}
    ).json()
    assert newer[0]["creation_date"] > store.as_listed(target)["creation_date"]
    store.advance(601)
    assert client.get(f"{emu.url}/api/events/{target.event_uuid}/").status_code == 200


def test_clock_advance_reveals_new_events_and_new_orders(emulator_factory, client):
    emu = emulator_factory(orders_per_day=200.0)
    before = httpx.get(f"{emu.url}/_emulator/status").json()
    last = emu.store.ground_truth()[-1]["sort_value"]
    assert client.get(f"{emu.url}/api/events/", params={"sort": "creation_date", "after": last}).json() == []
    after = httpx.post(f"{emu.url}/_emulator/advance", params={"seconds": 86400}).json()
    assert after["events_visible"] > before["events_visible"]
    assert after["orders"] > before["orders"]
    new = client.get(f"{emu.url}/api/events/", params={"sort": "creation_date", "after": last, "size": 1000}).json()
    assert len(new) == after["events_visible"] - before["events_visible"]
    assert httpx.post(f"{emu.url}/_emulator/advance", params={"seconds": -5}).status_code == 400


def test_real_time_speed_up_moves_the_clock():
    store = EventStore(make_config(orders=10, speed=3600.0))
    first = store.clock.now_us()
    import time

    time.sleep(0.05)
    assert store.clock.now_us() - first >= 0.05 * 3600 * 1_000_000


def test_ground_truth_endpoint_matches_python_api(emulator):
    over_http = httpx.get(f"{emulator.url}/_emulator/ground-truth").json()
    assert over_http == emulator.store.ground_truth(emulator.url)
    orders = httpx.get(f"{emulator.url}/_emulator/orders").json()
    assert {o["kind"] for o in orders} <= set(catalogue.ORDER_KINDS)
