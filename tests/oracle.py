"""Readings the tests check the pipeline against, written apart from the pipeline's own code: a
bug in a shared helper would otherwise pass in the code and in its oracle alike."""

from __future__ import annotations

import re
from datetime import datetime

_NORMAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?")
# as a person reads the operator's malformed times: `16:1:04 AM.637766`, `02:12:00 PM`
_HUMAN = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2}):(\d{1,2})\s*(AM|PM)?\s*(?:\.(\d{1,6}))?")


def is_normal(text: str) -> bool:
    """The operator's normal form, `2017-05-09T15:59:55.669742` (fraction optional)."""
    return _NORMAL.fullmatch(text) is not None


def read_time(text) -> datetime | None:
    """A naive datetime for a time a person can read, else None."""
    if not isinstance(text, str):
        return None
    match = _HUMAN.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if match.group(7) == "PM" and hour < 12:
        hour += 12
    fraction = int((match.group(8) or "").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, fraction)
    except ValueError:
        return None


def printed(value: datetime) -> str:
    """How the operator prints a time: six fraction digits, always."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def without_tokens(value):
    """The value with each URL's query string (where a CRI token sits) cut off."""
    if isinstance(value, str):
        return value.split("?", 1)[0] if value.startswith(("http://", "https://")) else value
    if isinstance(value, dict):
        return {k: without_tokens(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_tokens(v) for v in value]
    return value
