"""Timestamps as the operator prints them: naive ISO strings with six fractional digits.

Internally the emulator counts integer microseconds since the Unix epoch (fast to compare, sort
and bisect); only this module turns them into strings. It always prints the fraction, because
`datetime.isoformat()` drops it when it is zero and cursor values compare as strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta

EPOCH = datetime(1970, 1, 1)
US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def to_us(value: datetime) -> int:
    """Microseconds since the epoch of a naive (UTC-like) datetime."""
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None) - (value.utcoffset() or timedelta())
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int) -> str:
    """`2017-05-09T15:59:55.669742`, always with the fraction."""
    dt = from_us(us)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond:06d}"
    )


def malformed_am(us: int) -> str:
    """The reference's own malformation: `2017-05-09T16:1:04 AM.637766`.

    Unpadded minute, a stray ` AM` whatever the hour, fraction after it. A human reads it as
    16:01:04.637766 (the reference's `sort_value` for that event confirms that reading).
    """
    dt = from_us(us)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute}:{dt.second:02d} AM.{dt.microsecond:06d}"
    )


def twelve_hour(us: int) -> str:
    """A 12-hour clock with its marker, as some provider systems print: `2017-04-22T02:12:00 PM.459593`
    (14:12); the morning's hours keep `AM`, noon is `12:.. PM`."""
    dt = from_us(us)
    hour = dt.hour % 12 or 12
    marker = "PM" if dt.hour >= 12 else "AM"
    if dt.hour == 0:
        hour, marker = 0, "AM"  # midnight as 00, the reading the reference's stray AM allows
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{hour:02d}:{dt.minute:02d}:{dt.second:02d} "
        f"{marker}.{dt.microsecond:06d}"
    )


def malformed(us: int, pick: float) -> str:
    """One of the operator's malformations of an instant: the stray AM (two cases in three), or
    a 12-hour clock; `pick` in [0, 1) chooses."""
    return malformed_am(us) if pick < 2 / 3 else twelve_hour(us)


# A value with no sane reading (a database "zero date"): consumers must keep it and flag it.
UNREADABLE_TIMESTAMP = "0000-00-00T00:00:00"


def parse_iso(text: str) -> int:
    """Microseconds of a well-formed naive ISO timestamp; ValueError otherwise."""
    return to_us(datetime.fromisoformat(text))
