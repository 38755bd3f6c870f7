"""Reading the operator's timestamps: fast for well-formed ones, humane for the malformed ones.

Well-formed values (`2017-05-09T15:59:55.669742`) go through Arrow's vectorised cast. The others
are read the way a person reads the reference's own examples: `2017-05-09T16:1:04 AM.637766` is
16:01:04.637766 (the stray `AM` is ignored when the hour says otherwise, as the reference's own
`sort_value` for that event confirms); a `PM` with an hour below 12 adds 12 hours. What has no sane
reading (`0000-00-00T00:00:00`, free text) becomes null, and the caller keeps the raw string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

TIMESTAMP = pa.timestamp("us")

_LOOSE = re.compile(
    r"^\s*(?P<date>\d{4}-\d{1,2}-\d{1,2})[T ](?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}))?"
    r"\s*(?P<ampm>[AaPp][Mm])?\s*(?:[.,](?P<f>\d{1,6}))?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?\s*$"
)


def format_iso(value: datetime) -> str:
    """Six fractional digits always: `isoformat()` drops them at zero and cursors compare as text."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_loose(text: str | None) -> datetime | None:
    """A naive UTC datetime for any sane reading of `text`, else None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        match = _LOOSE.match(text)
        if match is None:
            return None
        try:
            year, month, day = (int(part) for part in match["date"].split("-"))
            hour, minute = int(match["h"]), int(match["m"])
            second = int(match["s"] or 0)
            if match["ampm"] and match["ampm"].upper() == "PM" and hour < 12:
                hour += 12
            micro = int((match["f"] or "0").ljust(6, "0"))
            value = datetime(year, month, day, hour, minute, second, micro)
        except ValueError:
            return None
        if match["tz"]:
            sign = -1 if match["tz"].startswith("-") else 1
            digits = match["tz"].replace(":", "").lstrip("+-")
            if digits:
                offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                value -= sign * offset
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def is_canonical(text: str) -> bool:
    """The operator's normal form: `YYYY-MM-DDTHH:MM:SS.ffffff` (fraction optional)."""
    return len(text) in (19, 26) and text[4] == "-" and text[10] == "T" and text[13] == ":" and text[16] == ":"


def _parse_each(values: list, arr: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Normal in shape, impossible in value (a zero date, month 13): every value the careful way."""
    readings = [parse_loose(v) for v in values]
    keep_raw = [v is not None and (r is None or not is_canonical(v)) for v, r in zip(values, readings, strict=True)]
    return (
        pa.array(readings, TIMESTAMP),
        pc.if_else(pa.array(keep_raw, pa.bool_()), arr, pa.scalar(None, pa.string())),
        pa.array([v is not None and r is None for v, r in zip(values, readings, strict=True)], pa.bool_()),
    )


def parse_column(values: list[str | None]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(timestamps, raw strings kept where not canonical, invalid flags) for one column.

    Vectorised: canonical values are cast by Arrow; only the others (a few per page in a real
    feed) are read one by one in Python and put back in place.
    """
    arr = pa.array(values, pa.string())
    n = len(arr)
    try:  # the common case, a page without a single odd value: one cast
        return pc.cast(arr, TIMESTAMP), pa.nulls(n, pa.string()), pa.repeat(pa.scalar(False), n)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Odd values are a handful per page: set aside those not of the normal length (a cheap
    # kernel) and cast the rest; if one of normal length is still unreadable, read them all.
    canonical = pc.or_(pc.is_null(arr), pc.is_in(pc.utf8_length(arr), pa.array([19, 26], pa.int32())))
    try:
        parsed = pc.cast(pc.if_else(canonical, arr, pa.scalar(None, pa.string())), TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_each(values, arr)
    other = pc.invert(canonical)
    readings = [parse_loose(v) for v in arr.filter(other).to_pylist()]
    parsed = pc.replace_with_mask(parsed, other, pa.array(readings, TIMESTAMP))
    raw = pc.if_else(other, arr, pa.scalar(None, pa.string()))
    invalid = pc.replace_with_mask(
        pa.repeat(pa.scalar(False), n), other, pa.array([r is None for r in readings], pa.bool_())
    )
    return parsed, raw, invalid
