"""Exactly-once as a property: generated feeds with repeats (same version, newer, older, a new
payload on an equal modification_date), ties, instants spelt several ways, an event dated in the
year 9999, an item nested too deep to store, any page size, chunk size, lookback and a run
killed on a random page; after every committed chunk and at the end, the warehouse is checked
against an oracle computed from the feed alone."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covage_pipeline.cursor import CursorState
from covage_pipeline.pipeline import IngestError, ingest, resource_state
from covage_pipeline.settings import load_settings
from covage_pipeline.warehouse import query

from .hostile import HostileAPI, Raw, Served, event, sort_value

TOKEN = "hostile-token"


class Killed(RuntimeError):
    """What a SIGKILL is to the run: it stops on this page, its load never commits."""


@pytest.fixture(scope="module")
def server():
    api = HostileAPI()
    with Served(api.app()) as served:
        yield api, served


SPELLINGS = ("canonical", "Z", "+00:00", "short")


def spelt(created: str, style: str) -> str:
    """One instant, spelt as an API might: `...T00:00:10.000000`, with `Z`, with `+00:00`, or
    with fewer fraction digits."""
    if style == "Z":
        return created + "Z"
    if style == "+00:00":
        return created + "+00:00"
    if style == "short":
        whole, _, fraction = created.partition(".")
        return f"{whole}.{fraction.rstrip('0') or '0'}"
    return created


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


@st.composite
def feeds(draw):
    """Events on a few instants (so they tie), their creation_date spelt several ways, some served
    again later as another version; now and then an event dated in the year 9999 or an item nested
    deeper than can be stored (both quarantined, never followed nor loaded)."""
    n = draw(st.integers(3, 24))
    instants = sorted(draw(st.lists(st.integers(0, 120), min_size=n, max_size=n)))
    items = []
    for i, t in enumerate(instants):
        created = spelt(event(t)["creation_date"], draw(st.sampled_from(SPELLINGS)))
        items.append(event(i + 1, creation_date=created))
    for _ in range(draw(st.integers(0, 8))):
        original = draw(st.sampled_from(items[:n]))
        created = original["creation_date"]
        later = [i for i in instants if instant(event(i)["creation_date"]) >= instant(created)] or [120]
        kind = draw(st.sampled_from(["same", "newer", "older", "rewritten"]))
        copy = dict(original, creation_date=event(draw(st.sampled_from(later)))["creation_date"])
        shift = timedelta(seconds={"same": 0, "newer": 500, "older": -500, "rewritten": 0}[kind])
        copy["modification_date"] = (datetime.fromisoformat(original["modification_date"]) + shift).strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )
        if kind != "same":
            copy["data"] = {"message": f"{kind} {draw(st.integers(0, 10**6))}"}
        copy["sort_value"] = sort_value(copy["creation_date"])
        items.append(copy)
    if draw(st.booleans()):
        items.append(event(n + 1, event_uuid="far-future", creation_date="9999-12-31T23:59:59.999999"))
    if draw(st.booleans()):
        at = event(draw(st.sampled_from(instants)))["creation_date"]
        depth = draw(st.sampled_from([300, 1000]))
        body = b'{"event_uuid": "too-deep", "creation_date": "' + at.encode() + b'", "data": '
        items.append(Raw(at, body + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"))
    # as the API lists them: by instant, served in this order (a stable sort)
    return sorted(
        items, key=lambda item: instant(item.creation_date if isinstance(item, Raw) else item["creation_date"])
    )


def oracle(feed: list) -> dict[str, dict]:
    """Per event_uuid, the latest modification_date; on a tie, the one served last. The items
    that are quarantined (far ahead of the clock, too deep) are not events."""
    best: dict[str, tuple] = {}
    for position, item in enumerate(feed):
        if isinstance(item, Raw) or item["event_uuid"] == "far-future":
            continue
        key = (item["modification_date"], position)
        if item["event_uuid"] not in best or key > best[item["event_uuid"]][0]:
            best[item["event_uuid"]] = (key, item)
    return {uuid: item for uuid, (_, item) in best.items()}


def stored(settings, table: str = "events") -> list[dict]:
    return query(settings, f'select * from "{settings.dataset}"."{table}"')


def check_after_commit(settings, feed: list[dict], cursor: CursorState) -> None:
    rows = stored(settings)
    uuids = [r["event_uuid"] for r in rows]
    assert len(uuids) == len(set(uuids)), "an event stored twice"
    if cursor.cursor is None:
        return
    seen = cursor.cursor.creation_date
    for row in rows:
        versions = [i for i in feed if isinstance(i, dict) and i["event_uuid"] == row["event_uuid"]]
        read = [i for i in versions if instant(i["creation_date"]) < seen]
        if len(read) == len(versions):  # every version of it is behind the cursor: read
            assert row["modification_date"] == datetime.fromisoformat(max(i["modification_date"] for i in read))


# 20 generated cases in `make test` (about a minute); COVAGE_PROPERTY_EXAMPLES=500 for a deep run
@settings(
    max_examples=int(os.environ.get("COVAGE_PROPERTY_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    feed=feeds(),
    page_size=st.integers(2, 6),
    chunk_pages=st.integers(1, 4),
    batch_rows=st.sampled_from([1, 3, 50_000]),
    lookback_s=st.sampled_from([0.0, 5.0, 30.0, 900.0]),
    cursor_mode=st.sampled_from(["built", "opaque"]),
    kill_at=st.one_of(st.none(), st.integers(1, 12)),
)
def test_every_commit_holds_one_latest_version_per_event(
    server, feed, page_size, chunk_pages, batch_rows, lookback_s, cursor_mode, kill_at
):
    api, served = server
    api.feed = feed
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            api_url=served.url,
            api_token=TOKEN,
            data_dir=Path(data_dir),
            page_size=page_size,
            max_page_size=64,
            chunk_pages=chunk_pages,
            batch_rows=batch_rows,
            lookback_s=lookback_s,
            cursor_mode=cursor_mode,
        )

        def run_chunk(pipeline, source, refresh):
            pipeline.run(source, refresh=refresh)
            check_after_commit(settings, feed, CursorState.read(resource_state(pipeline)))

        if kill_at is not None:

            def kill(stats) -> None:
                if stats.pages >= kill_at:
                    raise Killed(f"killed on page {stats.pages}")

            try:
                ingest(settings, on_page=kill, run_chunk=run_chunk)
            except IngestError as exc:
                assert "Killed" in str(exc)
        ingest(settings, run_chunk=run_chunk)
        rows = {r["event_uuid"]: r for r in stored(settings)}
        expected = oracle(feed)
        assert set(rows) == set(expected)
        for uuid, item in expected.items():
            row = rows[uuid]
            assert row["modification_date"] == datetime.fromisoformat(item["modification_date"]), uuid
            data = orjson.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
            assert data == item["data"], uuid
            assert row["creation_date"] == instant(item["creation_date"]), uuid
        quarantined = (
            {q["event_uuid"] for q in stored(settings, "events_quarantine")}
            if any(isinstance(i, Raw) or i["event_uuid"] == "far-future" for i in feed)
            else set()
        )
        assert quarantined == {"too-deep" for i in feed if isinstance(i, Raw)} | {
            "far-future" for i in feed if isinstance(i, dict) and i["event_uuid"] == "far-future"
        }
