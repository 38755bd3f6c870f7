"""The dlt source `covage`: the `events` resource, paged by creation_date with a tie-safe cursor.

It never advances the cursor past a page it has not handed to dlt: the cursor lives in the
resource state, which dlt commits in the same load as the rows it describes, so a run that dies
anywhere resumes from the last committed page.

Why not `dlt.sources.incremental`: the API's cursor is an opaque `sort_value` token, not a field
value to compare, and the lookback must rewind from a creation_date to a token (built, or taken
from checkpoints in opaque mode). dlt's incremental tracks field values only; our state keeps the
token, its instant and the checkpoints, and duplicates are settled by the merge on `event_uuid`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .pages import built_pages
from .paginator import FetchedPage
from .records import EVENTS_COLUMNS, QUARANTINE_COLUMNS
from .settings import Settings
from .timestamps import TIMESTAMP, format_iso, parse_loose


class _JsonHintNotice(logging.Filter):
    """Silences dlt's per-page notice that our text `data` column is hinted `json`: that is the
    intent (one JSON column, whatever the CRI labels), and the notice would repeat on every page."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintNotice())

EVENTS_HINTS = dlt.mark.make_hints(
    table_name="events",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="event_uuid",
    columns=EVENTS_COLUMNS,
)
# For rows the warehouse cannot hold yet (created after the committed cursor, repeats dropped):
# a plain append, about twice as fast as the merge, same table and columns.
EVENTS_APPEND_HINTS = dlt.mark.make_hints(
    table_name="events",
    write_disposition="append",
    primary_key="event_uuid",
    # `dedup_sort` only means something to a merge
    columns={name: {k: v for k, v in hint.items() if k != "dedup_sort"} for name, hint in EVENTS_COLUMNS.items()},
)
QUARANTINE_TABLE = "events_quarantine"
# Items that cannot be `events` rows land here with the reason, merged on a hash of (reason, raw).
QUARANTINE_HINTS = dlt.mark.make_hints(
    table_name=QUARANTINE_TABLE,
    write_disposition="merge",
    primary_key="quarantine_id",
    columns=QUARANTINE_COLUMNS,
)
_CHECKPOINTS_KEPT = 64
_BATCH_ROWS = 10_000


@dataclass
class RunStats:
    """What one ingestion saw; shared by every chunk of the run and read by the progress display."""

    started: float = field(default_factory=time.monotonic)
    pages: int = 0
    received: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    quarantined: int = 0
    tie_overflow: int = 0
    cursor: dict | None = None

    @property
    def events_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.received / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class Scope:
    object_type: str | None = None
    object_uuid: str | None = None

    def params(self) -> dict[str, str]:
        out = {}
        if self.object_type:
            out["object_type"] = self.object_type
        if self.object_uuid:
            out["object_uuid"] = self.object_uuid
        return out


def build_cursor(instant: datetime) -> str:
    """A `sort_value` for an instant, encoded exactly as the reference's examples are."""
    return base64.b64encode(orjson.dumps([format_iso(instant)])).decode()


def start_instant(state: dict, settings: Settings, since: datetime | None) -> datetime | None:
    """The instant a new run re-reads from: `--since`, else the cursor minus the lookback."""
    if since is not None:
        return since
    cursor = state.get("cursor")
    if cursor:
        return parse_loose(cursor["creation_date"]) - timedelta(seconds=settings.lookback_s)
    if settings.start_date:
        return parse_loose(settings.start_date)
    return None


def start_after(
    state: dict, settings: Settings, since: datetime | None, resume: bool
) -> tuple[str | None, datetime | None]:
    """(`after` for the first request, instant before which rows are filtered out client-side)."""
    if resume and state.get("resume_after"):
        return state["resume_after"], None
    instant = start_instant(state, settings, since)
    if instant is None:
        return None, None
    if settings.cursor_mode == "built":
        return build_cursor(instant), None
    # opaque mode: the newest checkpoint at or before the instant, and filter what comes before
    earlier = [cp for cp in state.get("checkpoints", []) if parse_loose(cp[0]) <= instant]
    return (earlier[-1][1] if earlier else None), instant


def _push_checkpoint(state: dict, creation_date: str, sort_value: str, settings: Settings) -> None:
    checkpoints = state.setdefault("checkpoints", [])
    checkpoints.append([creation_date, sort_value])
    # keep what a lookback can reach, plus one older checkpoint to start from
    horizon = parse_loose(creation_date) - timedelta(seconds=2 * settings.lookback_s)
    while len(checkpoints) > 2 and parse_loose(checkpoints[1][0]) <= horizon:
        checkpoints.pop(0)
    del checkpoints[:-_CHECKPOINTS_KEPT]


def _drop_known(table: pa.Table, known: dict[str, datetime | None], stats: RunStats) -> pa.Table:
    """Drops rows already in the warehouse with the same modification_date; counts the rest."""
    if not known:
        stats.new += table.num_rows
        return table
    uuids = table.column("event_uuid").to_pylist()
    if not any(u in known for u in uuids):
        stats.new += len(uuids)
        return table
    modified = table.column("modification_date").to_pylist()
    keep = []
    for uuid, mod in zip(uuids, modified, strict=True):
        if uuid not in known:
            stats.new += 1
            keep.append(True)
        elif known[uuid] == mod:
            stats.duplicates += 1
            keep.append(False)
        else:
            stats.updated += 1
            keep.append(True)
    return table.filter(pa.array(keep))


def events(
    settings: Settings,
    scope: Scope,
    since: datetime | None,
    resume: bool,
    known: dict[str, datetime | None],
    stats: RunStats,
    max_pages: int | None,
    on_page: Callable[[RunStats], None] | None,
    append_only: bool = False,
) -> Iterator:
    state = dlt.current.resource_state()
    scoped = bool(scope.params())
    if scoped:
        after, not_before = None, None  # an object's whole history; the global cursor is untouched
    else:
        after, not_before = start_after(state, settings, since, resume)
    # a resumed chunk keeps the page size a large tie had grown it to, or it would grow it again
    size = state.get("resume_page_size", settings.page_size) if resume and not scoped else settings.page_size
    repeats = set(state.get("tail_uuids", [])) if resume and not scoped else set()
    params = {"sort": "creation_date", "direction": "asc", **scope.params()}
    state["reached_end"] = False
    hints = EVENTS_APPEND_HINTS if append_only else EVENTS_HINTS
    # Pages are handed to dlt in batches: dlt's cost is per item yielded, not per row. The
    # batch is always flushed before the generator ends, so rows and state commit together.
    batch: list[pa.Table] = []
    for pages, page in enumerate(built_pages(settings, params, after, size, repeats, max_pages), start=1):
        fetched = page.fetched
        stats.pages += 1
        stats.received += page.received
        stats.duplicates += page.repeats_dropped
        table = page.table
        if not_before is not None:
            table = table.filter(pc.greater(table.column("creation_date"), pa.scalar(not_before, TIMESTAMP)))
        table = _drop_known(table, known, stats)
        stats.tie_overflow = fetched.tie_overflow
        if not scoped and fetched.last_item is not None:
            _advance(state, fetched, settings)
            stats.cursor = dict(state["cursor"]) if state.get("cursor") else None
        if table.num_rows:
            batch.append(table)
        if sum(t.num_rows for t in batch) >= _BATCH_ROWS:
            yield dlt.mark.with_hints(pa.concat_tables(batch), hints, create_table_variant=True)
            batch = []
        if page.quarantined:
            stats.quarantined += len(page.quarantined)
            yield dlt.mark.with_hints(page.quarantined, QUARANTINE_HINTS, create_table_variant=True)
        if on_page is not None:
            on_page(stats)
        if max_pages is not None and pages >= max_pages and fetched.has_next_page:
            break
    else:
        state["reached_end"] = True
    if batch:
        yield dlt.mark.with_hints(pa.concat_tables(batch), hints, create_table_variant=True)


def _advance(state: dict, fetched: FetchedPage, settings: Settings) -> None:
    last = fetched.last_item
    creation, sort_value = last.get("creation_date"), last.get("sort_value")
    previous = state.get("cursor")
    instant = parse_loose(creation) if isinstance(creation, str) else None
    # the cursor never moves backwards (a --since run re-reads older pages)
    if instant is not None and sort_value and (previous is None or instant >= parse_loose(previous["creation_date"])):
        state["cursor"] = {"creation_date": format_iso(instant), "sort_value": sort_value}
        if settings.cursor_mode == "opaque":
            _push_checkpoint(state, state["cursor"]["creation_date"], sort_value, settings)
    state["resume_after"] = fetched.after
    state["resume_page_size"] = fetched.page_size
    state["tail_uuids"] = sorted(fetched.tail_uuids)


@dlt.source(name="covage", max_table_nesting=0)
def covage_source(
    settings: Settings,
    object_type: str | None = None,
    object_uuid: str | None = None,
    since: datetime | None = None,
    resume: bool = False,
    known: dict[str, datetime | None] | None = None,
    stats: RunStats | None = None,
    max_pages: int | None = None,
    on_page: Callable[[RunStats], None] | None = None,
    append_only: bool = False,
):
    """Events of the Covage API. `settings` comes from `covage_pipeline.settings.load_settings()`,
    which reads dlt's config and secrets; the other arguments scope or resume one run.
    `append_only` is for the runner alone: it asserts no row of this chunk can be in the table."""
    # Two tables from one pass over the pages: each yield carries its own table's hints, so the
    # quarantine table does not inherit the events table's key and not-null columns.
    resource = dlt.resource(events, name="events")(
        settings,
        Scope(object_type, object_uuid),
        since,
        resume,
        known or {},
        stats if stats is not None else RunStats(),
        max_pages,
        on_page,
        append_only,
    )
    return resource
