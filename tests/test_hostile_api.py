"""`covage ingest` against a stand-in API that misbehaves (tests/hostile.py, not the emulator): every
promise of exactly-once checked by the exact rows stored, the exit code and the message."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from covage_pipeline.pipeline import IngestError, ingest
from covage_pipeline.settings import load_settings
from covage_pipeline.warehouse import query

from .conftest import POSTGRES_URL
from .extraction import warehouse
from .hostile import HostileAPI, Raw, Served, event

TOKEN = "hostile-token"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("COVAGE_API_URL", "COVAGE_API_TOKEN", "COVAGE_DATA_DIR", "COVAGE_LOOKBACK_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def settings_for(server: Served, data_dir: Path, **overrides):
    values = {
        "api_url": server.url,
        "api_token": TOKEN,
        "data_dir": data_dir,
        "page_size": 5,
        "chunk_pages": 100,
        "max_attempts": 2,
        "backoff_factor": 0.01,
        "max_retry_delay": 0.05,
        "request_timeout": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


def cli(server: Served, data_dir: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "COVAGE_API_URL": server.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(data_dir),
        "COVAGE_PAGE_SIZE": "5",
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "2",
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
        "COLUMNS": "200",
        **variables,
    }
    covage = str(Path(sys.executable).with_name("covage"))
    return subprocess.run([covage, "ingest", *args], env=env, capture_output=True, text=True, timeout=120)


def rows_by_uuid(settings) -> dict[str, dict]:
    rows = warehouse(settings)
    uuids = [r["event_uuid"] for r in rows]
    assert len(uuids) == len(set(uuids)), "an event_uuid is stored twice"
    return {r["event_uuid"]: r for r in rows}


def data_of(row: dict):
    return orjson.loads(row["data"]) if isinstance(row["data"], str) else row["data"]


def at(n: float) -> str:
    return event(n)["creation_date"]


# -- the same event served twice ---------------------------------------------------------------


def test_the_same_event_twice_in_one_page_keeps_the_latest_version(tmp_path):
    feed = [event(n) for n in range(1, 31)]
    # evt00007 again in the same page, modified later: the later version must win
    feed.insert(7, event(7, modification_date=at(500), data={"message": "corrected"}))
    feed[6]["data"] = {"message": "first"}
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=100)
        run = ingest(settings)
        stored = rows_by_uuid(settings)
        assert set(stored) == {f"evt{n:05d}" for n in range(1, 31)}
        assert data_of(stored["evt00007"]) == {"message": "corrected"}
        assert stored["evt00007"]["modification_date"] == datetime.fromisoformat(at(500))
        assert run.stats.new == 30
        # a rerun over everything keeps that version and writes nothing
        again = ingest(settings, since=datetime(2025, 1, 1))
        assert data_of(rows_by_uuid(settings)["evt00007"]) == {"message": "corrected"}
        assert again.stats.new == 0 and again.stats.updated == 0


def test_on_an_equal_modification_date_the_version_served_last_wins(tmp_path):
    feed = [event(n) for n in range(1, 11)]
    feed[3]["data"] = {"message": "served first"}
    feed.insert(4, event(4, data={"message": "served last"}))  # the same modification_date, after
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=100)
        ingest(settings)
        stored = rows_by_uuid(settings)
    assert len(stored) == 10
    assert data_of(stored["evt00004"]) == {"message": "served last"}


def test_a_copy_earlier_in_the_feed_never_undoes_a_later_one_of_the_same_date(tmp_path):
    """Read again from an earlier date (`since`, not a lookback), one page a load: the first copy
    of an event, earlier in the feed than the copy stored and with the same modification_date,
    must not replace it, not even for the loads until the later copy comes round again."""
    feed = [event(n) for n in range(1, 21)]
    feed[3]["data"] = {"message": "served first"}
    # evt00004 again after evt00008, the same modification_date, another payload: it wins
    feed.insert(8, event(4, creation_date=at(8.5), modification_date=at(4), data={"message": "served last"}))
    api = HostileAPI(feed=feed)
    seen = []  # evt00004 as stored after each load of the re-reading run

    def run_chunk(pipeline, source, refresh):
        pipeline.run(source, refresh=refresh)
        seen.append(data_of(rows_by_uuid(settings)["evt00004"]))

    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=5, chunk_pages=1)
        ingest(settings)
        assert data_of(rows_by_uuid(settings)["evt00004"]) == {"message": "served last"}
        again = ingest(settings, since=datetime(2025, 1, 1), run_chunk=run_chunk)
    assert len(seen) > 2  # the first load holds the earlier copy only
    assert seen == [{"message": "served last"}] * len(seen)
    assert again.stats.updated == 0


@pytest.mark.parametrize("chunk_pages", [1, 100])
def test_the_same_event_on_two_pages_keeps_the_latest_version(tmp_path, chunk_pages):
    feed = [event(n) for n in range(1, 46)]
    feed[2]["data"] = {"message": "old"}
    # evt00003 again four pages later (page size 5), modified: the newer version
    feed.insert(22, event(3, creation_date=at(22.5), modification_date=at(600), data={"message": "new"}))
    # evt00030 again later, but an older version than the one already served: ignored
    thirtieth = next(item for item in feed if item["event_uuid"] == "evt00030")
    thirtieth.update(modification_date=at(700), data={"message": "newest"})
    feed.insert(40, event(30, creation_date=at(38.5), modification_date=at(650), data={"message": "stale"}))
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, chunk_pages=chunk_pages)
        first = ingest(settings)
        stored = rows_by_uuid(settings)
        assert set(stored) == {f"evt{n:05d}" for n in range(1, 46)}
        assert data_of(stored["evt00003"]) == {"message": "new"}
        assert data_of(stored["evt00030"]) == {"message": "newest"}
        assert first.stats.stale >= 1  # counted at each read: a load re-reads its lookback
        # an incremental run, one page a load, over the whole feed again: nothing changes
        again = ingest(settings, since=datetime(2025, 1, 1))
        assert rows_by_uuid(settings) == stored
        assert again.stats.new == again.stats.updated == 0


def test_an_update_within_the_lookback_replaces_the_stored_version(tmp_path):
    """The default lookback re-reads the last minutes: a version modified there is replaced."""
    feed = [event(n) for n in range(1, 21)]
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path)
        ingest(settings)
        feed[17] = event(18, modification_date=at(3000), data={"message": "corrected"})
        feed.append(event(21))
        run = ingest(settings)
        stored = rows_by_uuid(settings)
    assert run.stats.updated == 1 and run.stats.new == 1
    assert data_of(stored["evt00018"]) == {"message": "corrected"}
    assert len(stored) == 21


# -- a server that makes no progress -----------------------------------------------------------


def test_a_server_ignoring_after_stops_with_an_error_after_keeping_what_was_new(tmp_path):
    api = HostileAPI(feed=[event(n) for n in range(1, 11)], ignore_after=True)
    with Served(api.app()) as server:
        result = cli(server, tmp_path)
        calls = api.calls
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "stopped making progress" in out and "/api/events/" in out and "after=" in out
    assert "Traceback" not in result.stdout + result.stderr
    assert calls <= 4
    settings = load_settings(data_dir=tmp_path)
    assert set(rows_by_uuid(settings)) == {f"evt{n:05d}" for n in range(1, 6)}  # the first page, once


# -- credentials never leave the API's origin --------------------------------------------------


@pytest.mark.parametrize("auth_type", ["bearer", "basic", "header"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_port_is_refused_for_every_auth_type(tmp_path, auth_type, status):
    elsewhere = HostileAPI(feed=[event(1)])
    with Served(elsewhere.app()) as other:
        api = HostileAPI(redirect=(status, other.url))
        with Served(api.app()) as server:
            settings = settings_for(server, tmp_path, auth_type=auth_type)
            with pytest.raises(IngestError) as info:
                ingest(settings)
    message = str(info.value)
    assert server.url in message and other.url in message and "another origin" in message
    assert elsewhere.calls == 0 and elsewhere.seen_credentials == []
    assert TOKEN not in message


@pytest.mark.parametrize("auth_type", ["bearer", "basic", "header"])
def test_a_redirect_to_another_loopback_address_is_refused(tmp_path, auth_type):
    elsewhere = HostileAPI(feed=[event(1)])
    with Served(elsewhere.app(), host="127.0.0.2") as other:
        api = HostileAPI(redirect=(302, other.url))
        with Served(api.app()) as server, pytest.raises(IngestError) as info:
            ingest(settings_for(server, tmp_path, auth_type=auth_type))
    assert "127.0.0.2" in str(info.value)
    assert elsewhere.calls == 0 and elsewhere.seen_credentials == []


# -- a body that drips -------------------------------------------------------------------------


def test_a_dripping_body_ends_in_a_clear_error_within_the_deadline(tmp_path):
    api = HostileAPI(feed=[event(n) for n in range(1, 4)], drip_s=0.05)  # about 40 s a page
    with Served(api.app()) as server:
        started = time.monotonic()
        result = cli(server, tmp_path, COVAGE_REQUEST_DEADLINE_SECONDS="1.5")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    assert "no complete answer within 1.5 s" in out and "COVAGE_REQUEST_DEADLINE_SECONDS" in out
    # each retry is told as it happens, with why: not a silent spinner
    assert "no complete answer within 1.5 s (COVAGE_REQUEST_DEADLINE_SECONDS); attempt 2 of 2 in" in out
    assert api.calls == 2  # retried once, like a timeout
    assert elapsed < 20  # two deadlines and the process start, not the 80 s of two whole bodies


# -- items that cannot be read -----------------------------------------------------------------

POISON = {
    "not valid UTF-8": b'{"event_uuid": "bad-utf8", "type": "order-running", "data": {"message": "caf\xe9"}}',
    "holds a lone UTF-16 surrogate": b'{"event_uuid": "bad-surrogate", "data": {"message": "\\ud800"}}',
    "nested deeper than 1024 levels": b'{"event_uuid": "too-deep", "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
}


def in_feed_order(feed: list) -> list:
    """As the API lists them: by creation_date (a stable sort keeps the order of equal instants)."""
    return sorted(feed, key=lambda item: item.creation_date if isinstance(item, Raw) else item["creation_date"])


def poisoned_feed() -> list:
    feed: list = [event(n) for n in range(1, 13)]
    feed += [Raw(at(3.5 + 4 * i), body) for i, body in enumerate(POISON.values())]
    return in_feed_order(feed)


def test_unreadable_items_are_quarantined_with_their_bytes_and_the_rest_loaded(tmp_path):
    api = HostileAPI(feed=poisoned_feed())
    with Served(api.app()) as server:
        result = cli(server, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        again = cli(server, tmp_path)  # never stuck at the bad page: a rerun ends as well
        assert again.returncode == 0, again.stdout + again.stderr
    settings = load_settings(data_dir=tmp_path)
    assert set(rows_by_uuid(settings)) == {f"evt{n:05d}" for n in range(1, 13)}
    quarantine = {q["event_uuid"]: q for q in warehouse(settings, "events_quarantine")}
    assert set(quarantine) == {"bad-utf8", "bad-surrogate", "too-deep"}
    for (why, body), uuid in zip(POISON.items(), ("bad-utf8", "bad-surrogate", "too-deep"), strict=True):
        row = quarantine[uuid]
        assert why in row["reason"]
        assert base64.b64decode(row["raw_base64"]) == body
    assert "Check COVAGE_API_URL" not in result.stdout


# -- a server that reads the reference otherwise -----------------------------------------------


def test_a_server_honouring_only_limit_is_read_to_the_end(tmp_path):
    api = HostileAPI(feed=[event(n) for n in range(1, 251)], honour=("limit",), default_page=100)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=1000)
        ingest(settings)
    assert len(rows_by_uuid(settings)) == 250


def test_a_server_honouring_neither_spelling_is_read_to_the_end(tmp_path):
    api = HostileAPI(feed=[event(n) for n in range(1, 251)], honour=(), default_page=100)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=1000)
        ingest(settings)
    assert len(rows_by_uuid(settings)) == 250


def test_a_report_under_another_type_is_recognised_by_its_payload_and_archived(tmp_path):
    from covage_pipeline.models import build
    from covage_pipeline.reports import archive_reports

    api = HostileAPI(files={"cr-42.pdf": b"%PDF-1.4 report 42"})
    with Served(api.app()) as server:
        link = f"{server.url}/files/cr-42.pdf?se=2026-01-01T00%3A30%3A00Z&sig=SECRET"
        api.feed = [event(1, type="order-submitted", data={"kosc_order_ref": "O260101_00001"}), event(2)]
        api.feed.append(event(3, type="cri", object_uuid="order-0", data={"fichier 1": link}))
        api.feed.append(event(4, type="order-info", data={"message": "see https://example.org/x?a=1"}))
        settings = settings_for(server, tmp_path)
        ingest(settings)
        stats = archive_reports(settings)
        result = build(settings, "stg_events stg_cri_files")
    assert stats.archived == 1 and stats.failed == 0
    assert result.success, result.error
    files = query(settings, "select event_uuid, file_label, file_url from main_staging.stg_cri_files")
    assert [(f["event_uuid"], f["file_label"], f["file_url"]) for f in files] == [
        ("evt00003", "fichier 1", f"{server.url}/files/cr-42.pdf")
    ]
    staged = {r["event_uuid"]: r for r in query(settings, "select * from main_staging.stg_events")}
    assert staged["evt00003"]["is_report"] and not staged["evt00003"]["is_unknown_type"]
    assert not staged["evt00004"]["is_report"]
    archived = list(Path(settings.reports_location).rglob("*.pdf"))
    assert [p.read_bytes() for p in archived] == [b"%PDF-1.4 report 42"]


# -- the same cases where PostgreSQL stores them differently ----------------------------------


def test_repeats_and_unreadable_items_on_postgres(tmp_path, pg_prefix):
    feed = in_feed_order(
        [*poisoned_feed(), event(2, creation_date=at(6.5), modification_date=at(900), data={"message": "new"})]
    )
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(
            server, tmp_path, destination="postgres", postgres_url=POSTGRES_URL, dataset=f"{pg_prefix}_raw"
        )
        ingest(settings)
        ingest(settings, since=datetime(2025, 1, 1))
    stored = rows_by_uuid(settings)
    assert set(stored) == {f"evt{n:05d}" for n in range(1, 13)}
    assert data_of(stored["evt00002"]) == {"message": "new"}
    quarantine = {q["event_uuid"]: q for q in warehouse(settings, "events_quarantine")}
    assert set(quarantine) == {"bad-utf8", "bad-surrogate", "too-deep"}
    assert base64.b64decode(quarantine["bad-utf8"]["raw_base64"]) == POISON["not valid UTF-8"]


def test_a_payload_rewritten_at_a_later_position_settles_without_going_round(tmp_path):
    """The same version (modification_date) served again later with another payload: the later
    one wins, and loads that re-read the earlier one on their way do not undo it for ever."""
    feed = [event(4), event(10), event(15), event(4, creation_date=at(20), data={"message": "rewritten"})]
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        for page_size, chunk_pages, batch_rows in ((2, 1, 50_000), (2, 4, 2), (6, 1, 1), (1, 4, 1)):
            settings = settings_for(
                server, tmp_path / f"{page_size}-{chunk_pages}-{batch_rows}", page_size=page_size, batch_rows=batch_rows
            )
            settings = settings.__class__(**{**settings.__dict__, "chunk_pages": chunk_pages})
            ingest(settings)
            stored = rows_by_uuid(settings)
            assert data_of(stored["evt00004"]) == {"message": "rewritten"}, (page_size, chunk_pages)
            assert set(stored) == {"evt00004", "evt00010", "evt00015"}
            # a run that re-reads both copies (its lookback spans the feed) writes nothing
            idle = ingest(settings)
            assert (idle.stats.new, idle.stats.updated) == (0, 0), (page_size, chunk_pages, batch_rows)


def test_a_tie_wider_than_a_batch_holding_two_versions_of_an_event_settles(tmp_path):
    """A group of events sharing one instant, spread over several pages (each page grows to reach
    past it), holds two versions of one event. Batches close around the group, not inside it: one
    that did would hand the first version to dlt and end the load at the second (the next load
    would settle it, one load later)."""
    tie = at(10)
    group = [event(10 + k, creation_date=tie) for k in range(6)]
    group.insert(5, event(11, creation_date=tie, modification_date=at(600), data={"message": "newer"}))
    feed = [event(1), event(2), *group, event(20), event(21)]
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=2, max_page_size=16, batch_rows=1)
        run = ingest(settings)
        stored = rows_by_uuid(settings)
    assert set(stored) == {"evt00001", "evt00002", "evt00020", "evt00021"} | {f"evt{10 + k:05d}" for k in range(6)}
    assert data_of(stored["evt00011"]) == {"message": "newer"}
    assert run.chunks == 1  # no load ended early on the second version
    assert run.stats.batches > 1  # the batches around the group still close


@pytest.mark.parametrize("lookback_s", [0.0, 900.0])
def test_a_load_ending_inside_the_feeds_first_instant_is_not_taken_for_the_end(tmp_path, lookback_s):
    """The feed opens on a tie wider than a page, each event of it served twice: the pages grow
    from the beginning of the feed (no `after` yet), and a load ends early at a page bringing an
    event it already handed to dlt. Its state once said "the end" there (no resume point): the
    run stopped with most of the feed unread (found by the property test)."""
    tie = at(8)
    opening = [event(1, creation_date=tie), event(2, creation_date=tie)]
    feed = [*opening, *reversed(opening), event(3, creation_date=at(12))]
    feed += [event(n, creation_date=at(37)) for n in (4, 5)] + [event(2, creation_date=at(37))]
    feed += [event(n, creation_date=at(40 + n)) for n in range(6, 12)]
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(
            server, tmp_path, page_size=2, max_page_size=64, chunk_pages=1, batch_rows=1, lookback_s=lookback_s
        )
        run = ingest(settings)
        stored = rows_by_uuid(settings)
    assert set(stored) == {f"evt{n:05d}" for n in range(1, 12)}
    assert run.chunks > 1


@pytest.mark.parametrize("spelling", ["Z", "+00:00", "short"])
def test_a_tie_spelt_two_ways_at_a_page_boundary_loses_no_event(tmp_path, spelling):
    """Three events at one instant across a page boundary, their creation_date spelt two ways
    (`...T00:00:10.000000` and `...T00:00:10Z`, `+00:00` or fewer fraction digits): the paginator
    tells instants apart, not spellings, so it reads the tie again and loses none of them."""
    tied = "2026-01-01T00:00:10.000000"
    other = {"Z": "2026-01-01T00:00:10Z", "+00:00": "2026-01-01T00:00:10+00:00", "short": "2026-01-01T00:00:10.0"}[
        spelling
    ]
    feed = [event(n) for n in range(1, 4)]
    feed += [event(10, event_uuid="tie-a", creation_date=tied), event(10, event_uuid="tie-b", creation_date=other)]
    feed += [event(10, event_uuid="tie-c", creation_date=tied)] + [event(n) for n in range(20, 24)]
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        settings = settings_for(server, tmp_path, page_size=5)  # the boundary falls inside the tie
        ingest(settings)
        assert {"tie-a", "tie-b", "tie-c"} <= set(rows_by_uuid(settings))
        assert len(rows_by_uuid(settings)) == len(feed)


@pytest.mark.parametrize("depth", [300, 1000])
def test_an_item_nested_deeper_than_can_be_stored_is_quarantined_with_its_bytes(tmp_path, depth):
    """orjson reads 1,024 levels and writes 254: an item in between parsed, then failed every load
    when written back, and the feed stayed blocked at its page. It is quarantined like any other
    unreadable item, with its exact bytes; the rest loads, and a rerun ends."""
    body = b'{"event_uuid": "deep", "creation_date": "' + at(3.5).encode() + b'", "data": '
    body += b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    feed = in_feed_order([event(n) for n in range(1, 9)] + [Raw(at(3.5), body)])
    api = HostileAPI(feed=feed)
    with Served(api.app()) as server:
        for _ in range(2):
            result = cli(server, tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
    settings = load_settings(data_dir=tmp_path)
    assert set(rows_by_uuid(settings)) == {f"evt{n:05d}" for n in range(1, 9)}
    quarantine = {q["event_uuid"]: q for q in warehouse(settings, "events_quarantine")}
    assert set(quarantine) == {"deep"} and "nested deeper than 254 levels" in quarantine["deep"]["reason"]
    assert base64.b64decode(quarantine["deep"]["raw_base64"]) == body


def test_an_event_dated_in_the_year_9999_is_quarantined_and_never_followed(tmp_path):
    """One event created in 9999 moved the cursor there and every later event was never loaded,
    silently. Created further ahead than COVAGE_MAX_FUTURE_SECONDS (a day) past the run's start,
    it is quarantined, and the cursor stays on the feed's real time."""
    future = event(4, event_uuid="far-future", creation_date="9999-12-31T23:59:59.999999")
    api = HostileAPI(feed=[event(n) for n in range(1, 8)] + [future])
    with Served(api.app()) as server:
        first = cli(server, tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        api.feed[-1:-1] = [event(n) for n in range(8, 15)]  # later events arrive (before it)
        second = cli(server, tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
    settings = load_settings(data_dir=tmp_path)
    assert set(rows_by_uuid(settings)) == {f"evt{n:05d}" for n in range(1, 15)}
    quarantine = {q["event_uuid"]: q for q in warehouse(settings, "events_quarantine")}
    assert set(quarantine) == {"far-future"} and "COVAGE_MAX_FUTURE_SECONDS" in quarantine["far-future"]["reason"]
    assert "9999" not in second.stdout.split("cursor now")[-1].splitlines()[0]
