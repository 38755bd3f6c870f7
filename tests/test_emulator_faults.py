"""The emulator's misbehaviours (what a real API may do) and its operator's corrections, each
switched on and met by `covage ingest` as a user runs it; and the emulator's own edge cases."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from covage_pipeline.emulator import FaultConfig
from covage_pipeline.pipeline import IngestError, ingest

from .conftest import TOKEN
from .extraction import assert_equals_ground_truth, settings_for, warehouse


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("COVAGE_API_URL", "COVAGE_API_TOKEN", "COVAGE_DATA_DIR", "COVAGE_LOOKBACK_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_corrected_events_reach_the_warehouse_through_the_default_lookback(emulator_factory, tmp_path):
    """The operator corrects some events minutes after creating them (a later modification_date,
    an amended payload): an incremental run, with the default lookback, stores the correction."""
    emu = emulator_factory(orders=150, modified_share=0.3, orders_per_day=400.0)
    settings = settings_for(emu, tmp_path)  # the default lookback: nothing set
    ingest(settings)
    updated = 0
    for _ in range(6):
        emu.store.advance(120)
        updated += ingest(settings).stats.updated
    emu.store.advance(600)
    updated += ingest(settings).stats.updated
    truth = emu.store.ground_truth(emu.url)
    corrected = [t for t in truth if t["modification_date"] != t["creation_date"]]
    assert updated > 0 and len(corrected) > 20
    assert_equals_ground_truth(settings, truth)  # every field, modification_date and data included


@pytest.mark.parametrize("param", ["size", "limit", "neither"])
def test_a_server_honouring_one_spelling_of_the_page_size_or_neither(emulator_factory, tmp_path, param):
    emu = emulator_factory(orders=60, faults=FaultConfig(page_size_param=param))
    settings = settings_for(emu, tmp_path, page_size=500)
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_duplicated_items_are_stored_once(emulator_factory, tmp_path):
    emu = emulator_factory(orders=120, faults=FaultConfig(duplicate_rate=0.7, seed=4))
    settings = settings_for(emu, tmp_path, page_size=50)
    ingest(settings)
    assert emu.app.faults.injected.get("duplicate", 0) > 3
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_bad_bytes_are_quarantined_then_loaded_once_served_well(emulator_factory, tmp_path):
    emu = emulator_factory(orders=120, faults=FaultConfig(bad_bytes_rate=0.5, seed=2))
    settings = settings_for(emu, tmp_path, page_size=50)
    run = ingest(settings)
    broken = emu.app.faults.injected.get("bad bytes", 0)
    quarantine = warehouse(settings, "events_quarantine")
    # each broken item is kept with its bytes (an item broken at a page's end is served again,
    # well, by the next page, so some are stored as well)
    assert broken > 2 and 1 <= len(quarantine) <= broken and run.stats.quarantined >= len(quarantine)
    assert all(
        "not valid UTF-8" in q["reason"] and b"\xff" in __import__("base64").b64decode(q["raw_base64"])
        for q in quarantine
    )
    emu.app.faults.configure(FaultConfig())
    ingest(settings, since=datetime(2000, 1, 1))  # the same events, served well this time
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_a_stuck_page_a_drip_and_a_redirect_each_end_in_a_clear_error(emulator_factory, tmp_path):
    emu = emulator_factory(orders=40, faults=FaultConfig(ignore_after=True))
    with pytest.raises(IngestError, match="stopped making progress"):
        ingest(settings_for(emu, tmp_path / "stuck", page_size=20))
    emu.app.faults.configure(FaultConfig(drip_rate=1.0, drip_s=0.01))
    with pytest.raises(IngestError, match=r"no complete answer within 0\.5 s"):
        ingest(settings_for(emu, tmp_path / "drip", request_deadline_s=0.5, max_attempts=2))
    emu.app.faults.configure(FaultConfig(redirect_to="http://127.0.0.2:9"))
    with pytest.raises(IngestError, match="another origin"):
        ingest(settings_for(emu, tmp_path / "redirect"))


def test_faults_switch_on_over_http(emulator, client):
    """The fault modes are settings of `POST /_emulator/faults`, for demos and benchmarks."""
    body = {"duplicate_rate": 0.2, "bad_bytes_rate": 0.1, "ignore_after": True, "page_size_param": "limit"}
    answer = httpx.post(f"{emulator.url}/_emulator/faults", json=body, timeout=10).json()
    try:
        assert {k: answer["faults"][k] for k in body} == body
    finally:
        httpx.post(f"{emulator.url}/_emulator/faults", json={}, timeout=10)


def test_reports_under_another_type_name(emulator_factory, tmp_path):
    emu = emulator_factory(orders=80, share_fiber_pro=1.0, cri_event_type="cri")
    types = {t["type"] for t in emu.store.ground_truth(emu.url)}
    assert "cri" in types and "order-cri" not in types


# -- the emulator's own edge cases -----------------------------------------------------------


def test_a_replayed_report_shaped_as_the_reference_is_served_as_given(emulator_factory, client):
    emu = emulator_factory(orders=0, reference_examples=False)
    link = "https://covdevpvi.blob.core.windows.net/pvi/A/W/Public/file_name.pdf?se=token"
    emu.store.replay(
        [
            {
                "event_uuid": "cri00001",
                "type": "cri",
                "object_uuid": "order-x",
                "event_date": "2026-02-01T10:00:00.000000",
                "creation_date": "2026-02-01T10:00:01.000000",
                "data": {"fichier 1": link},
            }
        ]
    )
    listing = client.get(f"{emu.url}/api/events/", params={"sort": "creation_date", "direction": "asc"})
    assert listing.status_code == 200
    assert listing.json()[0]["data"] == {"fichier 1": link}
    assert client.get(f"{emu.url}/api/events/cri00001/").json()["data"] == {"fichier 1": link}


def test_an_empty_after_is_no_cursor(emulator, client):
    params = {"sort": "creation_date", "direction": "asc", "size": 5}
    first = client.get(f"{emulator.url}/api/events/", params=params).json()
    empty = client.get(f"{emulator.url}/api/events/", params={**params, "after": ""})
    assert empty.status_code == 200 and empty.json() == first


def test_the_reference_examples_orders_take_messages(emulator_factory):
    emu = emulator_factory(orders=10)
    answer = httpx.post(
        f"{emu.url}/api/v2/orders/e73cafe9-4785-441e-ab75-22ffa806a313/events/info",
        json={"message": "Hello there"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def test_the_clock_speed_can_change_and_freeze(emulator_factory):
    emu = emulator_factory(orders=10, speed=0.0)
    before = httpx.get(f"{emu.url}/_emulator/status", timeout=10).json()["now"]
    httpx.post(f"{emu.url}/_emulator/speed?value=3600", timeout=10).raise_for_status()
    import time

    time.sleep(0.3)
    httpx.post(f"{emu.url}/_emulator/speed?value=0", timeout=10).raise_for_status()
    frozen = httpx.get(f"{emu.url}/_emulator/status", timeout=10).json()["now"]
    time.sleep(0.2)
    assert frozen > before  # a real 0.3 s was about 18 emulated minutes
    assert httpx.get(f"{emu.url}/_emulator/status", timeout=10).json()["now"] == frozen
    assert httpx.post(f"{emu.url}/_emulator/speed?value=-1", timeout=10).status_code == 400
