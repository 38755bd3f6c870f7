"""From a page of API items to a typed Arrow table for the `events` table, and quarantined rows.

Never drops an item silently: an item that cannot be an `events` row (no `event_uuid`, no usable
`creation_date`, a `data` that is not an object, oversized) goes to `events_quarantine` with the
reason and the raw JSON. Tokens in URLs (CRI links) are cut off before anything is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import orjson
import pyarrow as pa

from .timestamps import TIMESTAMP, parse_column

KNOWN_FIELDS = (
    "model",
    "event_uuid",
    "type",
    "object_type",
    "object_uuid",
    "creation_date",
    "modification_date",
    "event_date",
    "data",
    "sort_value",
)

_KNOWN = frozenset(KNOWN_FIELDS)

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_uuid", pa.string(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("type", pa.string()),
        pa.field("object_type", pa.string()),
        pa.field("object_uuid", pa.string()),
        pa.field("creation_date", TIMESTAMP, nullable=False),
        pa.field("modification_date", TIMESTAMP),
        pa.field("event_date", TIMESTAMP),
        pa.field("creation_date_raw", pa.string()),
        pa.field("modification_date_raw", pa.string()),
        pa.field("event_date_raw", pa.string()),
        pa.field("event_date_invalid", pa.bool_()),
        pa.field("modification_date_invalid", pa.bool_()),
        pa.field("data", pa.string()),
        pa.field("extra_fields", pa.string()),
        pa.field("sort_value", pa.string()),
    ]
)

# dlt column hints matching EVENTS_SCHEMA (naive TIMESTAMP, JSON columns, latest version wins).
_TS = {"data_type": "timestamp", "timezone": False, "precision": 6}
EVENTS_COLUMNS: dict[str, dict] = {
    "event_uuid": {"data_type": "text", "nullable": False, "primary_key": True},
    "creation_date": {**_TS, "nullable": False},
    "modification_date": {**_TS, "dedup_sort": "desc"},
    "event_date": _TS,
    "data": {"data_type": "json"},
    "extra_fields": {"data_type": "json"},
    "event_date_invalid": {"data_type": "bool"},
    "modification_date_invalid": {"data_type": "bool"},
}

QUARANTINE_COLUMNS: dict[str, dict] = {
    "quarantine_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "reason": {"data_type": "text"},
    "event_uuid": {"data_type": "text", "nullable": True, "primary_key": False},  # not the resource's key
    "raw": {"data_type": "text"},
    "received_at": {**_TS},
    "page_after": {"data_type": "text"},
}

MAX_ITEM_BYTES = 1_000_000


@dataclass
class Page:
    """One page, split: rows for `events`, rows for `events_quarantine`."""

    table: pa.Table
    quarantined: list[dict] = field(default_factory=list)


def strip_url_tokens(value):
    """The value with every URL's query string and fragment removed (recursively)."""
    if isinstance(value, str):
        if "://" in value and ("?" in value or "#" in value):
            parts = urlsplit(value)
            if parts.scheme and parts.netloc:
                return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return value
    if isinstance(value, dict):
        return {k: strip_url_tokens(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_url_tokens(v) for v in value]
    return value


def _dumps(value) -> str:
    return orjson.dumps(value).decode()


def quarantine_row(item, reason: str, page_after: str | None) -> dict:
    raw = _dumps(strip_url_tokens(item))
    return {
        "quarantine_id": hashlib.sha256(f"{reason}\x00{raw}".encode()).hexdigest()[:32],
        "reason": reason,
        "event_uuid": item.get("event_uuid")
        if isinstance(item, dict) and isinstance(item.get("event_uuid"), str)
        else None,
        "raw": raw,
        "received_at": datetime.now(UTC).replace(tzinfo=None),
        "page_after": page_after,
    }


def _why_not(item, max_item_bytes: int) -> str | None:
    if not isinstance(item, dict):
        return f"item is a JSON {type(item).__name__}, not an object"
    uuid = item.get("event_uuid")
    if not isinstance(uuid, str) or not uuid:
        return "missing event_uuid"
    if not isinstance(item.get("creation_date"), str):
        return "missing creation_date"
    data = item.get("data")
    if data is not None and not isinstance(data, dict):
        return f"data is a JSON {type(data).__name__}, not an object or null"
    if max_item_bytes and len(orjson.dumps(item)) > max_item_bytes:
        return f"item larger than {max_item_bytes} bytes"
    return None


def build_page(items: list, page_after: str | None = None, max_item_bytes: int = MAX_ITEM_BYTES) -> Page:
    good: list[dict] = []
    quarantined: list[dict] = []
    for item in items:
        why = _why_not(item, max_item_bytes)
        if why is None:
            good.append(item)
        else:
            quarantined.append(quarantine_row(item, why, page_after))

    creation, creation_raw, creation_invalid = parse_column([it["creation_date"] for it in good])
    if any(creation_invalid):
        # the sort key must be a real instant: rows without one are quarantined, not guessed
        keep = [i for i, bad in enumerate(creation_invalid) if not bad]
        quarantined.extend(
            quarantine_row(good[i], "unreadable creation_date", page_after)
            for i, bad in enumerate(creation_invalid)
            if bad
        )
        good = [good[i] for i in keep]
        creation, creation_raw, _ = parse_column([it["creation_date"] for it in good])
    modification, modification_raw, modification_invalid = parse_column([it.get("modification_date") for it in good])
    event, event_raw, event_invalid = parse_column([_as_text(it.get("event_date")) for it in good])

    data_col: list[str | None] = []
    extra_col: list[str | None] = []
    for it in good:
        data = it.get("data")
        data_col.append(None if data is None else _dumps(strip_url_tokens(data)))
        extra = {k: v for k, v in it.items() if k not in _KNOWN}
        extra_col.append(_dumps(strip_url_tokens(extra)) if extra else None)

    def text(name: str) -> list:
        return [_as_text(it.get(name)) for it in good]

    table = pa.Table.from_arrays(
        [
            pa.array([it["event_uuid"] for it in good], pa.string()),
            pa.array(text("model"), pa.string()),
            pa.array(text("type"), pa.string()),
            pa.array(text("object_type"), pa.string()),
            pa.array(text("object_uuid"), pa.string()),
            creation,
            modification,
            event,
            pa.array(creation_raw, pa.string()),
            pa.array(modification_raw, pa.string()),
            pa.array(event_raw, pa.string()),
            pa.array(event_invalid, pa.bool_()),
            pa.array(modification_invalid, pa.bool_()),
            pa.array(data_col, pa.string()),
            pa.array(extra_col, pa.string()),
            pa.array(text("sort_value"), pa.string()),
        ],
        schema=EVENTS_SCHEMA,
    )
    return Page(table, quarantined)


def _as_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _dumps(value)
