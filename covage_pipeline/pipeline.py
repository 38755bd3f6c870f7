"""Runs the `covage` source into the warehouse, one committed chunk of pages at a time.

Each chunk is one dlt load that carries its rows and the cursor state together; a crash between
chunks loses nothing committed, a crash inside one loses that chunk's work only, and the next
run re-reads from the committed cursor minus the lookback. Never leaves a partial chunk behind
that a rerun would not converge from (the merge on `event_uuid` absorbs any re-read).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import dlt
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

from .client import CovageAPIError
from .cursor import CursorState
from .destinations import loader_file_format, make_pipeline
from .locking import WarehouseBusy, duckdb_lock_holder, retry_while_locked, writer_lock
from .settings import Settings
from .source import RunStats, covage_source

if TYPE_CHECKING:
    from dlt.sources import DltSource


class IngestError(RuntimeError):
    """An ingestion stopped; the message names the committed cursor to resume from."""


@dataclass
class IngestSummary:
    stats: RunStats
    chunks: int
    seconds: float
    cursor: dict | None
    warehouse: str
    events_in_table: int | None

    def as_dict(self) -> dict:
        s = self.stats
        return {
            "pages": s.pages,
            "received": s.received,
            "new": s.new,
            "updated": s.updated,
            "skipped_duplicates": s.duplicates,
            "stale": s.stale,
            "quarantined": s.quarantined,
            "tie_overflow": s.tie_overflow,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(s.received / self.seconds) if self.seconds > 0 else None,
            "cursor": self.cursor,
            "events_in_table": self.events_in_table,
            "warehouse": self.warehouse,
        }


def resource_state(pipeline: dlt.Pipeline) -> dict:
    """The committed state of the `events` resource (`cursor.CursorState` reads it)."""
    sources = pipeline.state.get("sources", {})
    return sources.get("covage", {}).get("resources", {}).get("events", {})


def _count_events(pipeline: dlt.Pipeline) -> int | None:
    try:
        with pipeline.sql_client() as sql:
            rows = sql.execute_sql(f"select count(*) from {sql.make_qualified_table_name('events')}")
            return int(rows[0][0])
    except Exception:
        return None


def ingest(
    settings: Settings,
    *,
    full_refresh: bool = False,
    since: datetime | None = None,
    object_type: str | None = None,
    object_uuid: str | None = None,
    on_page: Callable[[RunStats], None] | None = None,
    pipeline: dlt.Pipeline | None = None,
    run_chunk: Callable[[dlt.Pipeline, DltSource, str | None], object] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Brings the warehouse up to date with the API, one committed load per chunk of pages.

    `run_chunk(pipeline, source, refresh)` loads one chunk; default `pipeline.run`. Dagster passes
    its `DagsterDltResource.run`, which drops the local state first and restores it from the
    destination: the cursor lives in the destination's state, so each chunk resumes correctly.
    While another process writes the warehouse, it waits (telling `on_wait`), then starts.
    """
    try:
        settings.prepare_data_dir()
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    _release_arrow_memory()

    def attempt() -> IngestSummary:
        return _ingest(settings, full_refresh, since, object_type, object_uuid, on_page, pipeline, run_chunk)

    try:
        with writer_lock(settings, "covage ingest", on_wait):
            return retry_while_locked(attempt, lambda exc: exc, settings, on_wait)
    except WarehouseBusy as exc:
        raise IngestError(str(exc)) from None


def _release_arrow_memory() -> None:
    """Arrow's allocations go through the C allocator, which hands freed pages back.

    pyarrow's default pool (mimalloc) keeps what each batch freed: a backfill of 1M events peaked
    at about 80 MB more RSS with it, for no gain in speed (`benchmarks/ingest_throughput.py`). The
    runner owns its process (the CLI, a Dagster run), so it chooses; a user's own pipeline that
    takes `covage_source` keeps whatever pool it set."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _ingest(
    settings: Settings,
    full_refresh: bool,
    since: datetime | None,
    object_type: str | None,
    object_uuid: str | None,
    on_page: Callable[[RunStats], None] | None,
    pipeline: dlt.Pipeline | None,
    run_chunk: Callable[[dlt.Pipeline, DltSource, str | None], object] | None,
) -> IngestSummary:
    run_chunk = run_chunk or _run_chunk
    pipeline = pipeline or make_pipeline(settings)
    try:
        if full_refresh:
            pipeline.drop()  # local state only; the tables and their state go with refresh below
            pipeline = make_pipeline(settings)
        else:
            _finish_crashed_run(pipeline, settings)
            # a lost or dropped local folder (Dagster drops it before each run): the cursor and the
            # rest of the state come back from the destination before this run plans its work
            pipeline.sync_destination()
            _index_event_uuid(pipeline, settings)
    except PipelineStepFailed as exc:
        raise IngestError(_failure_message(exc, None, settings)) from None
    stats = RunStats()
    started = time.monotonic()
    scoped = bool(object_type or object_uuid)
    before = CursorState.read(resource_state(pipeline))
    visited = {before.progress}
    chunks = 0
    while True:
        source = covage_source(
            settings,
            object_type=object_type,
            object_uuid=object_uuid,
            since=since if chunks == 0 else None,
            max_pages=None if scoped else settings.chunk_pages,
            stats=stats,
            on_page=on_page,
        )
        try:
            run_chunk(pipeline, source, "drop_sources" if full_refresh and chunks == 0 else None)
        except PipelineStepFailed as exc:
            raise IngestError(_failure_message(exc, before.cursor, settings)) from None
        chunks += 1
        if chunks == 1:
            _index_event_uuid(pipeline, settings)  # a first load has just created the table
        after = CursorState.read(resource_state(pipeline))
        if after.stalled:
            raise IngestError(_stalled_message(after, settings))
        if scoped or after.reached_end:
            break
        # a load that leaves a state this run had already would go round in circles
        if after.progress in visited:
            raise IngestError(
                f"A load of the API's events moved the cursor nowhere (resume point {after.resume}). "
                "The API serves the same events again and again; nothing was lost or duplicated. "
                "Report it to the operator, then run `covage ingest` again."
            )
        visited.add(after.progress)
        before = after
    _prune_loaded_packages(pipeline, settings)
    cursor = CursorState.read(resource_state(pipeline)).cursor
    return IngestSummary(
        stats=stats,
        chunks=chunks,
        seconds=time.monotonic() - started,
        cursor=cursor.as_state() if cursor else None,
        warehouse=settings.warehouse_name,
        events_in_table=_count_events(pipeline),
    )


def _stalled_message(state: CursorState, settings: Settings) -> str:
    kept = _kept(state.cursor.as_state() if state.cursor else None, settings)
    return (
        f"The API stopped making progress: {state.stalled}. {kept} "
        f"Check COVAGE_API_URL ({settings.api_url}) points at the events API, and report it to the "
        "operator if it does: `covage ingest` would only read the same page again."
    )


def _run_chunk(pipeline: dlt.Pipeline, source: DltSource, refresh: str | None) -> object:
    return pipeline.run(source, refresh=refresh, loader_file_format=loader_file_format(pipeline))


def _index_event_uuid(pipeline: dlt.Pipeline, settings: Settings) -> None:
    """On PostgreSQL, an index on event_uuid: each batch looks its events up (`versions`), and
    without it every lookup reads the whole table. dlt only offers unique indexes, which would
    turn a replayed load job (see below) into a failed load. DuckDB joins without one."""
    if settings.destination != "postgres":
        return
    with pipeline.sql_client() as sql:
        if not sql.has_dataset():
            return
        table = sql.make_qualified_table_name("events")
        try:
            sql.execute_sql(f"create index if not exists events_event_uuid on {table} (event_uuid)")
        except Exception:  # no table yet: the first load creates it, the next run indexes it
            return


def _prune_loaded_packages(pipeline: dlt.Pipeline, settings: Settings) -> None:
    """Forgets loaded packages older than `retention_days` (dlt keeps each one's record in its
    working folder: one a load, for ever). dlt has no public call for it, hence its storage."""
    cutoff = time.time() - settings.retention_days * 86400
    storage = pipeline._get_load_storage()
    for load_id in pipeline.list_completed_load_packages():
        try:
            old = float(load_id) < cutoff
        except ValueError:
            continue
        if old:
            storage.delete_loaded_package(load_id)


def _drop_extracted_leftovers(pipeline: dlt.Pipeline) -> None:
    """Deletes the extracted copy of a package dlt already normalized.

    dlt commits a normalized package (a rename into `load/normalized`), then deletes its extracted
    copy; a kill in between leaves both, and the next normalize of the copy fails on every run
    (`[Errno 39] Directory not empty`). The normalized one is complete: the copy is what is left
    over. dlt offers no public call for this repair, hence its storage object here.
    """
    done = {*pipeline.list_normalized_load_packages(), *pipeline.list_completed_load_packages()}
    for load_id in set(pipeline.list_extracted_load_packages()) & done:
        pipeline._get_normalize_storage().extracted_packages.delete_package(load_id)


def _finish_crashed_run(pipeline: dlt.Pipeline, settings: Settings) -> None:
    """Loads what a killed run left extracted but not loaded, before this run starts its own.

    dlt replays a load job that was killed between the database's commit and its own bookkeeping;
    for an appended chunk that would leave a row twice, so replayed rows are removed right after.
    """
    if not pipeline.has_pending_data:
        return
    _drop_extracted_leftovers(pipeline)
    try:
        pipeline.run()  # no data: normalizes and loads the pending packages only
    except PipelineStepFailed as exc:
        raise IngestError(_failure_message(exc, CursorState.read(resource_state(pipeline)).cursor, settings)) from None
    keep_one_copy(pipeline, settings)


# the version kept, as everywhere (`versions`): the latest modification_date; on an equal one the
# copy served last: the later load, the later creation_date, the row written last
LATEST_FIRST = "modification_date desc nulls last, _dlt_load_id desc, creation_date desc"


def keep_one_copy(pipeline: dlt.Pipeline, settings: Settings) -> None:
    """One row per event_uuid in `events`, the latest version (a replayed job wrote rows twice)."""
    # the engine's physical row id tells the copies apart (a replayed job wrote identical rows);
    # engines without one rewrite the table keeping one copy of each event
    row_id = {"postgres": "ctid", "duckdb": "rowid", "motherduck": "rowid"}.get(settings.destination)
    with pipeline.sql_client() as sql:
        table = sql.make_qualified_table_name("events")
        if row_id:
            sql.execute_sql(
                f"delete from {table} where {row_id} in (select {row_id} from (select {row_id}, row_number() over "
                f"(partition by event_uuid order by {LATEST_FIRST}, {row_id} desc) as n_copy from {table}) copies "
                "where n_copy > 1)"
            )
        else:
            sql.execute_sql(
                f"create or replace table {table} as select * from {table} "
                f"qualify row_number() over (partition by event_uuid order by {LATEST_FIRST}) = 1"
            )


def _kept(cursor: dict | None, settings: Settings) -> str:
    if cursor:
        return (
            f"Everything up to the last committed cursor (creation_date {cursor['creation_date']}, "
            f"sort_value {cursor['sort_value']}) is safely in {settings.warehouse_name}."
        )
    return f"Nothing was committed yet to {settings.warehouse_name}."


def _failure_message(exc: PipelineStepFailed, position, settings: Settings) -> str:
    cause: BaseException = exc
    # the innermost error, unless one of ours already says what happened in plain words
    while not isinstance(cause, CovageAPIError) and (
        cause.__cause__ is not None or getattr(cause, "exception", None) is not None
    ):
        cause = getattr(cause, "exception", None) or cause.__cause__
    kept = _kept(position.as_state() if position else None, settings)
    advice = explain(cause, settings)
    return f"Ingestion stopped at step '{exc.step}': {type(cause).__name__}: {cause}\n{advice}\n{kept}"


def disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or what it was raised from, is a disk out of space (an OSError with
    ENOSPC, or a database engine's message saying so)."""
    while exc is not None:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def explain(cause: BaseException, settings: Settings) -> str:
    """What to do about an error, in words a person can act on."""
    import requests

    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 403):
        where = "COVAGE_API_TOKEN (or api_token under [sources.covage] in .dlt/secrets.toml)"
        scheme = f"COVAGE_API_AUTH={settings.auth_type}" + (
            f", header {settings.auth_header}" if settings.auth_type == "header" else ""
        )
        return (
            f"The API refused the token ({status}): check {where} and how it is sent ({scheme}). "
            + ("A 403 can also mean the token may not read these events." if status == 403 else "")
        ).strip()
    if isinstance(cause, requests.exceptions.ConnectionError) and not isinstance(
        cause, requests.exceptions.ChunkedEncodingError
    ):
        text = str(cause)
        if "Connection refused" in text or "Name or service not known" in text or "Failed to resolve" in text:
            return (
                f"Nothing answers at COVAGE_API_URL={settings.api_url}: check the address (and that the API or "
                "`covage emulator serve` is running)."
            )
    if type(cause).__name__ == "OperationalError" and settings.destination == "postgres":
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return (
            f"PostgreSQL cannot be reached or refused the connection ({first}): check COVAGE_POSTGRES_URL "
            "(or DESTINATION__POSTGRES__CREDENTIALS) and that the server is running."
        )
    if duckdb_lock_holder(cause):
        return f"The warehouse is held by {duckdb_lock_holder(cause)}: close it there, then run `covage ingest`."
    if disk_full(cause):
        return (
            f"The disk holding COVAGE_DATA_DIR ({settings.data_dir}) is full: free some space there (or point "
            "COVAGE_DATA_DIR at a larger disk), then run `covage ingest` again: it resumes where the last "
            "committed load left off."
        )
    if isinstance(cause, CovageAPIError):
        return "Nothing was loaded from the failing page; fix the cause above, then run `covage ingest` again."
    return "Run `covage ingest` again to resume (it re-reads the lookback window; nothing is duplicated)."
