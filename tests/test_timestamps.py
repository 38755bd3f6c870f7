"""Timestamp reading: the reference's own malformed values read as a person reads them."""

from __future__ import annotations

from datetime import datetime

import pytest

from covage_pipeline.timestamps import format_iso, parse_column, parse_loose


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-05-09T15:59:55.669742", datetime(2017, 5, 9, 15, 59, 55, 669742)),
        ("2017-05-09T16:1:04 AM.637766", datetime(2017, 5, 9, 16, 1, 4, 637766)),  # the reference's own
        ("2017-04-22T10:12:00 AM.459593", datetime(2017, 4, 22, 10, 12, 0, 459593)),
        ("2017-04-22T12:12:00 AM.459593", datetime(2017, 4, 22, 12, 12, 0, 459593)),  # a slot's end: noon
        ("2017-04-22T02:12:00 PM", datetime(2017, 4, 22, 14, 12)),
        ("2017-05-09T15:59:55+02:00", datetime(2017, 5, 9, 13, 59, 55)),
        ("2017-05-09T15:59:55Z", datetime(2017, 5, 9, 15, 59, 55)),
        ("0000-00-00T00:00:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_loose(text, expected):
    assert parse_loose(text) == expected


def test_parse_column_keeps_raw_only_where_not_canonical_and_flags_the_unreadable():
    values = [
        "2026-01-01T00:00:00.000000",
        "2017-05-09T16:1:04 AM.637766",
        None,
        "0000-00-00T00:00:00",
        "2026-02-03T04:05:06",
        "2026-13-01T00:00:00.000000",
    ]
    parsed, raw, invalid = parse_column(values)
    assert parsed.to_pylist() == [
        datetime(2026, 1, 1),
        datetime(2017, 5, 9, 16, 1, 4, 637766),
        None,
        None,
        datetime(2026, 2, 3, 4, 5, 6),
        None,
    ]
    assert raw.to_pylist() == [None, "2017-05-09T16:1:04 AM.637766", None, "0000-00-00T00:00:00", None, values[5]]
    assert invalid.to_pylist() == [False, False, False, True, False, True]
    clean = parse_column(["2026-01-01T00:00:00.000001", None])
    assert clean[1].null_count == 2 and clean[2].to_pylist() == [False, False]


def test_format_iso_always_has_six_fraction_digits():
    assert format_iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000"
