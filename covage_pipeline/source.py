"""The dlt source `covage`: the `events` resource, paged by creation_date with a tie-safe cursor.

It never advances the cursor past a page it has not handed to dlt: the cursor lives in the
resource state (`cursor.CursorState`), which dlt commits in the same load as the rows it
describes, so a run that dies anywhere resumes from the last committed page. And it never hands
dlt a second row for an event, nor an older version than the one stored (`versions`): every load
holds at most one row per event_uuid, and its write disposition says what it does to the table:
an append when none of its events is stored yet, a merge on event_uuid when some replace a stored
version. A page that the load cannot take that way (an event it already holds, again) is left to
the next load, which starts before it.

Why not `dlt.sources.incremental`: the API's cursor is an opaque `sort_value` token, not a field
value to compare, and a load starts a lookback before it (a token built from an instant, or a
checkpoint in opaque mode). dlt's incremental tracks field values and deduplicates by hashes of
whole rows, not by the rule of versions above.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from .client import client_for
from .cursor import CursorState, Start
from .paginator import PageMark, SearchAfterPaginator, fetch_pages
from .records import EVENTS_COLUMNS, QUARANTINE_COLUMNS, build_page
from .settings import Settings, load_settings
from .versions import StoredVersions, latest_served, newer


class _JsonHintNotice(logging.Filter):
    """Silences dlt's per-page notice that our text `data` column is hinted `json`: that is the
    intent (one JSON column, whatever the CRI labels), and the notice would repeat on every page."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintNotice())

MERGE_HINTS = dlt.mark.make_hints(
    table_name="events",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="event_uuid",
    columns=EVENTS_COLUMNS,
)
# A load none of whose events is stored yet: a plain append, same table and columns.
APPEND_HINTS = dlt.mark.make_hints(
    table_name="events", write_disposition="append", primary_key="event_uuid", columns=EVENTS_COLUMNS
)
QUARANTINE_TABLE = "events_quarantine"
# Items that cannot be `events` rows land here with the reason, merged on a hash of (reason, raw).
QUARANTINE_HINTS = dlt.mark.make_hints(
    table_name=QUARANTINE_TABLE,
    write_disposition="merge",
    primary_key="quarantine_id",
    columns=QUARANTINE_COLUMNS,
)


@dataclass
class RunStats:
    """What one ingestion saw; shared by every load of the run and read by the progress display."""

    started: float = field(default_factory=time.monotonic)
    pages: int = 0
    received: int = 0
    new: int = 0
    updated: int = 0  # replaced a stored version
    duplicates: int = 0  # the same version again (re-read, or served twice): nothing written
    stale: int = 0  # older than the stored version: ignored
    tail_rereads: int = 0  # items tying at a page boundary, asked again on purpose and dropped
    quarantined: int = 0
    tie_overflow: int = 0
    batches: int = 0  # times rows were handed to dlt
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


@dataclass
class _Page:
    table: pa.Table
    quarantined: list[dict]
    mark: PageMark


class _Load:
    """The rows of one load: which events it holds already, and whether it appends or merges."""

    def __init__(
        self, stored: StoredVersions, stats: RunStats, merges: bool | None, reread_until: datetime | None
    ) -> None:
        self.stored = stored
        self.stats = stats
        self.reread_until = reread_until  # this load's lookback: what an earlier load read already
        self.held: list[pa.Array] = []  # event_uuids handed to dlt in this load (Arrow: compact)
        self.merges = merges  # None: fixed by the first rows handed to dlt
        self.left_replacement = False  # stopped before a page that replaces stored versions

    def settle(self, pages: list[_Page]) -> tuple[pa.Table | None, int]:
        """The rows this load takes from `pages`, and how many pages it takes (the rest waits).

        Among the pages taken, an event served twice keeps one version (the latest
        modification_date, on a tie the one served last), which then meets the stored version
        (`versions.newer`). Stops before a page that brings again an event an earlier batch of
        this load handed to dlt (a load never holds two rows of an event; the next load starts at
        that page), or, once the load has started as an append, before a page that replaces a
        stored version (the next load merges). Columnar throughout: a backfill's batch costs one
        lookup and a few Arrow kernels."""
        taken = len(pages)
        if self.held and pages:
            # one lookup for the whole batch (a value set is hashed anew for each call)
            self.held = [pa.concat_arrays(self.held)]
            uuids = pa.chunked_array([page.table.column("event_uuid") for page in pages], pa.string())
            again = pc.index(pc.is_in(uuids, value_set=self.held[0]), True).as_py()
            if again >= 0:
                ends = itertools.accumulate(page.table.num_rows for page in pages)
                taken = next(n for n, end in enumerate(ends) if again < end)
        while True:
            table, verdicts, repeats, older = self._versions(pages[:taken])
            replacing = [uuid for uuid, v in verdicts.items() if v]
            if not replacing or self.merges is not False:
                break
            pages_of = table.filter(pc.is_in(table.column("event_uuid"), value_set=pa.array(replacing)))
            taken = pc.min(pages_of.column("_page")).as_py()
            self.left_replacement = True
        counts = [sum(1 for v in verdicts.values() if v is x) for x in (True, None, False)]
        self.stats.updated += counts[0]
        self.stats.duplicates += counts[1] + repeats - older
        self.stats.stale += counts[2] + older
        self.stats.new += table.num_rows - len(verdicts)
        if counts[0]:
            self.merges = True
        dropped = [uuid for uuid, v in verdicts.items() if not v]
        if dropped:
            table = table.filter(pc.invert(pc.is_in(table.column("event_uuid"), value_set=pa.array(dropped))))
        table = table.drop_columns(["_page"])
        self.held.append(table.column("event_uuid").combine_chunks())
        return (table if table.num_rows else None), taken

    def _versions(self, pages: list[_Page]) -> tuple[pa.Table, dict[str, bool | None], int, int]:
        """The pages' rows, one per event, with the page each came from; the verdict on each
        event the warehouse stores already (True: replaces it; None: the same; False: older);
        how many rows were other versions served in these pages, and how many of those older."""
        tables = [
            page.table.append_column("_page", pa.repeat(pa.scalar(n, pa.int32()), page.table.num_rows))
            for n, page in enumerate(pages)
        ]
        if not tables:
            return pa.table({"event_uuid": pa.array([], pa.string()), "_page": pa.array([], pa.int32())}), {}, 0, 0
        table = pa.concat_tables(tables)
        served = table.num_rows
        table, older = latest_served(table)
        stored = self.stored.lookup(table.column("event_uuid").combine_chunks())
        if not stored:
            return table, {}, served - table.num_rows, older
        known = pc.indices_nonzero(pc.is_in(table.column("event_uuid"), value_set=pa.array(list(stored))))
        rows = table.take(known).to_pylist()
        until = self.reread_until
        verdicts = {
            row["event_uuid"]: newer(
                row, stored[row["event_uuid"]], until is not None and row["creation_date"] <= until
            )
            for row in rows
        }
        return table, verdicts, served - table.num_rows, older


def _refreshed(table: str) -> bool:
    """True when this load drops or truncates the table (dlt's `refresh`): nothing is stored."""
    try:
        state = dlt.current.load_package_state()["state"]
    except Exception:
        return False
    gone = [*state.get("dropped_tables", []), *state.get("truncated_tables", [])]
    return any(t.get("name") == table for t in gone)


def events(
    settings: Settings,
    scope: Scope,
    since: datetime | None,
    max_pages: int | None,
    stats: RunStats,
    on_page: Callable[[RunStats], None] | None,
) -> Iterator:
    resource_state = dlt.current.resource_state()
    scoped = bool(scope.params())
    # an object's whole history is read from the beginning; the global cursor is untouched
    state = CursorState() if scoped else CursorState.read(resource_state)
    state.stalled = None
    start = Start(None, None) if scoped else state.start(settings, since)
    # the pages a load reads again before where the last one stopped do not count in `max_pages`
    base = None if since is not None or scoped else (state.resume or state.cursor)
    # an item created this far past the run's start is quarantined, and the cursor never follows it
    horizon = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=settings.max_future_s)
    paginator = SearchAfterPaginator(start, settings.page_size, settings.max_page_size, horizon=horizon)
    params = {"sort": "creation_date", "direction": "asc", **scope.params()}
    try:
        pipeline = None if _refreshed("events") else dlt.current.pipeline()
    except Exception:  # the source iterated outside a pipeline: nothing is stored
        pipeline = None
    with StoredVersions(pipeline) as stored:
        load = _Load(stored, stats, True if state.merge_next else None, base.creation_date if base else None)
        batch: list[_Page] = []
        fetched = 0
        ends_tied = False  # the batch is full but its last page ended on an instant the next may go on with
        for items, mark in fetch_pages(client_for(settings), params, paginator):
            if base is None or (mark.resume is not None and mark.resume.creation_date > base.creation_date):
                fetched += 1
            stats.pages += 1
            stats.received += mark.received
            stats.tail_rereads += mark.repeats
            stats.tie_overflow = mark.tie_overflow
            page_after = mark.resume.sort_value if mark.resume else None
            built = build_page(items, page_after, settings.max_item_bytes, horizon)
            if ends_tied and not _goes_on(built.table, batch[-1].mark):
                # the group of the batch's last instant ended with its last page: the batch can go
                if not (yield from _flush(batch, load, state, settings, scoped, stats)):
                    break  # the next load reads the page left (it starts a lookback before it)
                batch = []
            batch.append(_Page(built.table, built.quarantined, mark))
            if mark.stalled:
                state.stalled = mark.stalled
            # nor while a tie makes the page grow: the next load would start that over
            # (and a load that has no position to resume from yet goes on)
            last_page = not mark.has_next or (
                max_pages is not None and fetched >= max_pages and not mark.regrown and mark.resume is not None
            )
            # pages go to dlt in batches (`batch_rows`): dlt's cost is per item yielded, not per row,
            # and the stored versions are looked up once a batch. A batch never ends inside a group
            # of events that share an instant: two versions of an event there settle in one batch
            # (split, the second would end the load there, and the next load settle it). A page
            # ending on an instant (`tied`: nearly every one) waits for the next page to show
            # whether its group goes on.
            full = sum(p.table.num_rows for p in batch) >= settings.batch_rows
            ends_tied = full and mark.tied and not last_page
            if last_page or (full and not mark.tied):
                if not (yield from _flush(batch, load, state, settings, scoped, stats)):
                    break
                batch = []
            if on_page is not None:
                on_page(stats)
            if last_page:
                break
        if batch:
            yield from _flush(batch, load, state, settings, scoped, stats)
    if not scoped:
        state.merge_next = load.left_replacement
        state.write(resource_state)


def _goes_on(table: pa.Table, previous: PageMark) -> bool:
    """Whether a page's rows continue the group of the instant the previous page ended on."""
    if previous.last is None or not table.num_rows:
        return True  # nothing to tell by: the batch waits on
    return pc.min(table.column("creation_date")).as_py() <= previous.last.creation_date


def _flush(
    batch: list[_Page], load: _Load, state: CursorState, settings: Settings, scoped: bool, stats: RunStats
) -> Iterator:
    """Hands the pages this load takes to dlt and moves the cursor past them; False when it left
    some (the load ends there)."""
    rows, taken = load.settle(batch)
    if rows is not None:
        if load.merges is None:
            load.merges = False
        # a lake has no merge in place (dlt would append, with a warning): there the replacing
        # versions are appended too, and the staging model keeps the latest
        lake = load.stored.on_files
        hints = MERGE_HINTS if load.merges and not lake else APPEND_HINTS
        stats.batches += 1
        yield dlt.mark.with_hints(rows, hints, create_table_variant=True)
    for page in batch[:taken]:
        if page.quarantined:
            stats.quarantined += len(page.quarantined)
            yield dlt.mark.with_hints(page.quarantined, QUARANTINE_HINTS, create_table_variant=True)
        if not scoped:
            mark = page.mark
            state.advance(mark.last, mark.resume, mark.has_next, settings)
    if not scoped:
        stats.cursor = state.cursor.as_state() if state.cursor else None
    return taken == len(batch)


@dlt.source(name="covage", max_table_nesting=0)
def covage_source(
    settings: Settings | None = None,
    object_type: str | None = None,
    object_uuid: str | None = None,
    since: datetime | None = None,
    max_pages: int | None = None,
    stats: RunStats | None = None,
    on_page: Callable[[RunStats], None] | None = None,
):
    """Events of the Covage API, for `covage ingest` or any dlt pipeline of yours:

        dlt.pipeline("covage", destination="duckdb", dataset_name="covage_raw").run(covage_source())

    `settings` default to `load_settings()`: dlt's config and secrets under `[sources.covage]`
    (`api_url`, `api_token`, ...) or the `COVAGE_*` variables. `object_type`/`object_uuid` scope a
    run to one object (the cursor is untouched), `since` re-reads from a date. `max_pages` ends a
    load after that many pages (the next run resumes there); `stats` and `on_page` observe progress."""
    settings = settings or load_settings()
    # Two tables from one pass over the pages: each yield carries its own table's hints, so the
    # quarantine table does not inherit the events table's key and not-null columns.
    return dlt.resource(events, name="events")(
        settings,
        Scope(object_type, object_uuid),
        since,
        max_pages,
        stats if stats is not None else RunStats(),
        on_page,
    )
