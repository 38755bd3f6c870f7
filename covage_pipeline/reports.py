"""The intervention-report (CRI) archive: every file of every CRI event, kept before its link dies.

A CRI event's links carry a token valid 30 minutes from when the event is displayed, and the
warehouse keeps links without their tokens; so each event is fetched again
(`GET /api/events/{uuid}/`) for fresh links, and fetched once more whenever the blob store
answers 403, up to MAX_LINK_REFRESHES. Files land in a folder or any fsspec URL, named by their
checksum: a file that changed at the source is kept beside the old one, never over it. Each
outcome is a row of `intervention_reports` (loaded by dlt, merged on event, label and checksum),
so a rerun archives nothing twice. Tokens never reach a row, a log line or an error.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dlt
import httpx
import orjson

from .client import CovageAPIError, client_for, get_event
from .records import is_report_payload, strip_url_tokens
from .settings import Settings
from .warehouse import raw_query

TABLE = "intervention_reports"
MAX_LINK_REFRESHES = 3
FAILED = "none"  # the sha256 of a failed row: one row per (event, label) failure

COLUMNS = {
    "event_uuid": {"data_type": "text", "nullable": False},
    "file_label": {"data_type": "text", "nullable": False},
    "sha256": {"data_type": "text", "nullable": False},
    "order_uuid": {"data_type": "text"},
    "link": {"data_type": "text"},
    "archived_path": {"data_type": "text"},
    "size_bytes": {"data_type": "bigint"},
    "content_type": {"data_type": "text"},
    "downloaded_at": {"data_type": "timestamp", "timezone": False},
    "status": {"data_type": "text"},
    "reason": {"data_type": "text"},
    "attempts": {"data_type": "bigint"},
    "event_modification_date": {"data_type": "timestamp", "timezone": False},
    "event_load_id": {"data_type": "text"},  # the load that brought the event's version archived
}


@dataclass
class ArchiveStats:
    events: int = 0
    archived: int = 0  # files written this run
    unchanged: int = 0  # downloaded again, same checksum as a file already archived
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "file"


def pending_events(settings: Settings, retry_failed: bool = False, recheck: bool = False) -> list[dict]:
    """CRI events with work to do: never archived, changed since (a newer modification_date), or,
    with `retry_failed`, with a file whose every attempt failed; with `recheck`, all of them.

    Only the events loaded after the newest one the archive holds a row for are read (and the
    archive's rows of those alone): a version of an event, corrected or new, comes with a new
    load, and a run's rows are loaded together, so nothing before that load is left to do. A
    run's cost follows the new events, not the feed's history."""
    events_table = f"{settings.dataset}.events"
    archive = f"{settings.dataset}.{TABLE}"
    try:
        since = raw_query(settings, f"select max(event_load_id) as since from {archive}")[0]["since"] or ""
    except Exception:  # no archive table (or, from an earlier release, no such column) yet
        since = ""
    where = "" if recheck else f"and e._dlt_load_id > '{since}'"
    # reports are recognised by their payload, whatever their type: the links narrow it in SQL
    candidates = raw_query(
        settings,
        f"select e.event_uuid, e.object_uuid, e.modification_date, e._dlt_load_id as event_load_id, e.data "
        f"from {events_table} e where e.data is not null and cast(e.data as text) like '%://%' {where}",
    )
    events = [
        {k: v for k, v in ev.items() if k != "data"}
        for ev in candidates
        if is_report_payload(orjson.loads(ev["data"]) if isinstance(ev["data"], str) else ev["data"])
    ]
    if retry_failed:  # and the events with a file whose every attempt failed, however old
        failed = raw_query(
            settings,
            f"select e.event_uuid, e.object_uuid, e.modification_date, e._dlt_load_id as event_load_id "
            f"from {events_table} e where e.event_uuid in (select event_uuid from {archive} a group by event_uuid, "
            "file_label having max(case when a.status = 'archived' then 1 else 0 end) = 0)",
        )
        known = {ev["event_uuid"] for ev in events}
        events += [ev for ev in failed if ev["event_uuid"] not in known]
    if recheck:
        return events
    try:
        rows = raw_query(
            settings,
            f"select a.event_uuid, a.file_label, a.status, a.event_modification_date from {archive} a "
            f"where a.event_uuid in (select e.event_uuid from {events_table} e where e.data is not null "
            f"and cast(e.data as text) like '%://%' {where})"
            + (
                f" or a.event_uuid in (select event_uuid from {archive} where status <> 'archived')"
                if retry_failed
                else ""
            ),
        )
    except Exception:  # no archive table yet: everything is new
        rows = []
    seen: dict[str, list[dict]] = {}
    for row in rows:
        seen.setdefault(row["event_uuid"], []).append(row)
    out = []
    for ev in events:
        done = seen.get(ev["event_uuid"])
        if not done:
            out.append(ev)
            continue
        archived_for = max((r["event_modification_date"] for r in done if r["event_modification_date"]), default=None)
        if ev["modification_date"] and archived_for and ev["modification_date"] > archived_for:
            out.append(ev)
            continue
        if retry_failed:
            labels = {r["file_label"] for r in done}
            ok = {r["file_label"] for r in done if r["status"] == "archived"}
            if labels - ok:
                out.append(ev)
    return out


class Archiver:
    """Downloads the files of CRI events into the archive; yields one row per file outcome."""

    def __init__(self, settings: Settings, after_links: Callable[[str], None] | None = None) -> None:
        import fsspec

        self.settings = settings
        self.api = client_for(settings)
        # the blob store gets no API credentials: its links carry their own token
        self.blobs = httpx.Client(timeout=settings.request_timeout or 60.0, follow_redirects=True)
        self.fs, self.root = fsspec.core.url_to_fs(settings.reports_location)
        self.after_links = after_links  # tests: lets the clock move between display and download
        self.stats = ArchiveStats()

    def close(self) -> None:
        self.blobs.close()

    def links(self, event_uuid: str) -> dict[str, str]:
        data = get_event(self.api, event_uuid).get("data") or {}
        return {str(k): v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def archive(self, event: dict) -> Iterator[dict]:
        self.stats.events += 1
        try:
            links = self.links(event["event_uuid"])
        except CovageAPIError as exc:
            yield self._failed(event, "(event)", None, f"could not display the event: {exc}", 1)
            return
        if self.after_links:
            self.after_links(event["event_uuid"])
        for label, url in links.items():
            yield self._file(event, label, url)

    def _file(self, event: dict, label: str, url: str) -> dict:
        reason = ""
        for attempt in range(1, MAX_LINK_REFRESHES + 2):
            try:
                response = self.blobs.get(url)
            except httpx.HTTPError as exc:
                reason = f"download failed: {type(exc).__name__}"
                continue
            if response.status_code == 403:
                reason = f"the blob store refused the link (403) {attempt} times, fresh links included"
                if attempt <= MAX_LINK_REFRESHES:
                    try:
                        url = self.links(event["event_uuid"]).get(label, url)
                    except CovageAPIError as exc:
                        reason = f"link expired and the event could not be displayed again: {exc}"
                        break
                continue
            if response.status_code >= 400:
                reason = f"the blob store answered HTTP {response.status_code}"
                continue
            return self._stored(event, label, url, response, attempt)
        return self._failed(event, label, url, reason, attempt)

    def _stored(self, event: dict, label: str, url: str, response: httpx.Response, attempts: int) -> dict:
        content = response.content
        sha = hashlib.sha256(content).hexdigest()
        content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        extension = mimetypes.guess_extension(content_type) or ""
        path = f"{self.root}/{event['object_uuid']}/{event['event_uuid']}/{sha[:16]}-{_safe(label)}{extension}"
        if self.fs.exists(path):
            self.stats.unchanged += 1
        else:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            partial = f"{path}.partial"
            self.fs.pipe_file(partial, content)
            self.fs.mv(partial, path)  # readers never see half a file
            self.stats.archived += 1
        return self._row(event, label, url, sha, "archived", None, attempts, path, len(content), content_type)

    def _failed(self, event: dict, label: str, url: str | None, reason: str, attempts: int) -> dict:
        self.stats.failed += 1
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
        return self._row(event, label, url, FAILED, "failed", reason, attempts, None, None, None)

    def _row(self, event, label, url, sha, status, reason, attempts, path, size, content_type) -> dict:
        return {
            "event_uuid": event["event_uuid"],
            "file_label": label,
            "sha256": sha,
            "order_uuid": event["object_uuid"],
            "link": strip_url_tokens(url) if url else None,
            "archived_path": path,
            "size_bytes": size,
            "content_type": content_type,
            "downloaded_at": datetime.now(UTC).replace(tzinfo=None) if status == "archived" else None,
            "status": status,
            "reason": reason,
            "attempts": attempts,
            "event_modification_date": event["modification_date"],
            "event_load_id": event["event_load_id"],
        }


def reports_resource(archiver: Archiver, events: list[dict]):
    @dlt.resource(
        name=TABLE,
        table_name=TABLE,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=["event_uuid", "file_label", "sha256"],
        columns=COLUMNS,
    )
    def intervention_reports() -> Iterator[dict]:
        for event in events:
            yield from archiver.archive(event)

    return intervention_reports


def archive_reports(
    settings: Settings,
    retry_failed: bool = False,
    recheck: bool = False,
    after_links: Callable[[str], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ArchiveStats:
    """Archives the files of every CRI event with work to do; loads their rows.

    `recheck` downloads every file again: one that changed at the source is archived beside the
    old one, an unchanged one is not written again."""
    from .destinations import make_pipeline
    from .locking import writer_lock

    # the warehouse's one writer, and dlt's state of the pipeline `covage ingest` runs too (its
    # cursor): never at the same time as another writer
    with writer_lock(settings, "covage reports fetch", on_wait):
        events = pending_events(settings, retry_failed, recheck)
        archiver = Archiver(settings, after_links)
        try:
            if events:
                make_pipeline(settings).run(reports_resource(archiver, events))
        finally:
            archiver.close()
    return archiver.stats


def list_reports(settings: Settings, order_uuid: str | None = None) -> list[dict]:
    where, params = ("where order_uuid = ?", [order_uuid]) if order_uuid else ("", [])
    return raw_query(
        settings,
        f"select order_uuid, event_uuid, file_label, status, size_bytes, sha256, archived_path, reason, "
        f"downloaded_at from {settings.dataset}.{TABLE} {where} order by order_uuid, event_uuid, file_label",
        params,
    )
