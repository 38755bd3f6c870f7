"""From a page of API items to a typed Arrow table for the `events` table, and quarantined rows.

Never drops an item silently: an item that cannot be an `events` row (no `event_uuid`, no usable
`creation_date`, a `data` that is not an object, oversized) goes to `events_quarantine` with the
reason and the raw JSON. Tokens in URLs (CRI links) are cut off before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .salvage import Unreadable
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

# dlt column hints matching EVENTS_SCHEMA (naive TIMESTAMP, JSON columns). No `dedup_sort`: a
# load never holds two versions of an event (`versions` settles them before dlt sees them).
_TS = {"data_type": "timestamp", "timezone": False, "precision": 6}
EVENTS_COLUMNS: dict[str, dict] = {
    "event_uuid": {"data_type": "text", "nullable": False, "primary_key": True},
    "creation_date": {**_TS, "nullable": False},
    "modification_date": {**_TS},
    "event_date": {**_TS},
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
    "raw_base64": {"data_type": "text"},  # the exact bytes, when they are not valid text
    "received_at": {**_TS},
    "page_after": {"data_type": "text"},
}

MAX_ITEM_BYTES = 1_000_000

# The payload fields the reference documents for some event type (as in sql/dbt_project.yml,
# var `payload_fields`): a payload holding one is not an intervention report.
PAYLOAD_FIELDS = frozenset(
    [
        "kosc_order_ref",
        "endpoints",
        "service_uuid",
        "service_alias",
        "message",
        "description",
        "reason",
        "reject_reason",
        "reject_code",
        "reject_subcode",
        "reject_description",
        "start_date",
        "end_date",
        "desaturation_type",
        "stop_deferred",
    ]
)


def is_report_payload(data) -> bool:
    """An intervention report (CRI): file labels mapped to http(s) links. The reference gives no
    `type` for these events, so they are recognised by this, whatever their type (the staging
    model applies the same rule in SQL, macro `is_report_payload`)."""
    return (
        isinstance(data, dict)
        and bool(data)
        and PAYLOAD_FIELDS.isdisjoint(data)
        and all(isinstance(v, str) and v.startswith(("http://", "https://")) for v in data.values())
    )


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


# a URL's query string or fragment in raw bytes (where a CRI link's token sits)
_URL_TOKEN = re.compile(rb"(https?://[^\"\s?#]*)[?#][^\"\s]*")
_RAW_UUID = re.compile(rb'"event_uuid"\s*:\s*"([^"\\]{1,200})"')


def quarantine_row(item, reason: str, page_after: str | None) -> dict:
    raw_base64 = uuid = None
    if isinstance(item, Unreadable):
        # the bytes as served (tokens cut off), and readably with the bad bytes escaped
        exact = _URL_TOKEN.sub(rb"\1", item.raw)
        raw, raw_base64 = exact.decode("utf-8", "backslashreplace"), base64.b64encode(exact).decode()
        reason = item.reason
        found = _RAW_UUID.search(exact)
        uuid = found.group(1).decode("utf-8", "replace") if found else None
    else:
        raw = _dumps(strip_url_tokens(item))
        if isinstance(item, dict) and isinstance(item.get("event_uuid"), str):
            uuid = item["event_uuid"]
    return {
        "quarantine_id": hashlib.sha256(f"{reason}\x00{raw}".encode()).hexdigest()[:32],
        "reason": reason,
        "event_uuid": uuid,
        "raw": raw,
        "raw_base64": raw_base64,
        "received_at": datetime.now(UTC).replace(tzinfo=None),
        "page_after": page_after,
    }


def _data_json(data) -> bytes:
    out = orjson.dumps(data)
    if b"://" in out:  # only payloads holding URLs pay for the token stripping
        out = orjson.dumps(strip_url_tokens(data))
    return out


def build_page(
    items: list, page_after: str | None = None, max_item_bytes: int = MAX_ITEM_BYTES, horizon: datetime | None = None
) -> Page:
    """One pass over the items (the hot loop of a backfill), then columnar work in Arrow.

    An item created past `horizon` (far ahead of the clock) is quarantined: the cursor never
    follows it, and every later run reads it again until the operator corrects it."""
    quarantined: list[dict] = []
    data_col: list[bytes | None] = []
    extra_col: list[bytes | None] = []
    good: list[dict] = []
    for item in items:
        if type(item) is not dict:
            reason = "" if isinstance(item, Unreadable) else f"item is a JSON {type(item).__name__}, not an object"
            quarantined.append(quarantine_row(item, reason, page_after))
            continue
        uuid = item.get("event_uuid")
        if type(uuid) is not str or not uuid:
            quarantined.append(quarantine_row(item, "missing event_uuid", page_after))
            continue
        if type(item.get("creation_date")) is not str:
            quarantined.append(quarantine_row(item, "missing creation_date", page_after))
            continue
        data = item.get("data")
        if data is not None and type(data) is not dict:
            reason = f"data is a JSON {type(data).__name__}, not an object or null"
            quarantined.append(quarantine_row(item, reason, page_after))
            continue
        data_json = None if data is None else _data_json(data)
        extra_json = None
        if not _KNOWN.issuperset(item):
            extra_json = _data_json({k: v for k, v in item.items() if k not in _KNOWN})
        # payloads (data, unknown fields) are where an enormous value would sit
        if max_item_bytes and len(data_json or b"") + len(extra_json or b"") > max_item_bytes:
            quarantined.append(quarantine_row(item, f"item larger than {max_item_bytes} bytes", page_after))
            continue
        good.append(item)
        data_col.append(data_json)
        extra_col.append(extra_json)
    cols = {
        name: [it.get(name) for it in good] for name in ("event_uuid", *_TEXT, "creation_date", "modification_date")
    }
    event_dates = [it.get("event_date") for it in good]

    creation, creation_raw, creation_invalid = parse_column(cols["creation_date"])
    if pc.any(creation_invalid).as_py():
        # the sort key must be a real instant: rows without one are quarantined, not guessed
        flags = creation_invalid.to_pylist()
        quarantined.extend(
            quarantine_row(it, "unreadable creation_date", page_after)
            for it, bad in zip(good, flags, strict=True)
            if bad
        )
        return _without(
            build_page([it for it, bad in zip(good, flags, strict=True) if not bad], page_after, 0, horizon),
            quarantined,
        )
    if horizon is not None and len(creation) and pc.max(creation).as_py() > horizon:
        ahead = pc.greater(creation, pa.scalar(horizon, TIMESTAMP)).to_pylist()
        quarantined.extend(
            quarantine_row(it, f"creation_date {it['creation_date']} is past {horizon:%Y-%m-%dT%H:%M:%S} "
                           "(COVAGE_MAX_FUTURE_SECONDS ahead of the run's start): not followed", page_after)
            for it, bad in zip(good, ahead, strict=True)
            if bad
        )  # fmt: skip
        kept = [it for it, bad in zip(good, ahead, strict=True) if not bad]
        return _without(build_page(kept, page_after, 0), quarantined)
    modification, modification_raw, modification_invalid = parse_column(_texts(cols["modification_date"]))
    event, event_raw, event_invalid = parse_column(_texts(event_dates))
    table = pa.Table.from_arrays(
        [
            _text_array(cols["event_uuid"]),
            *(_text_array(cols[name]) for name in _TEXT[:4]),
            creation,
            modification,
            event,
            creation_raw,
            modification_raw,
            event_raw,
            event_invalid,
            modification_invalid,
            pa.array(data_col, pa.binary()).cast(pa.string()),
            pa.array(extra_col, pa.binary()).cast(pa.string()),
            _text_array(cols["sort_value"]),
        ],
        schema=EVENTS_SCHEMA,
    )
    return Page(table, quarantined)


_TEXT = ("model", "type", "object_type", "object_uuid", "sort_value")


def _without(page: Page, quarantined: list[dict]) -> Page:
    return Page(page.table, quarantined + page.quarantined)


def _texts(values: list) -> list:
    return values if all(v is None or type(v) is str for v in values) else [_as_text(v) for v in values]


def _text_array(values: list) -> pa.Array:
    """Strings as they came; anything else (a number where text was expected) as its JSON text."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_as_text(v) for v in values], pa.string())


def _as_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _dumps(value)
