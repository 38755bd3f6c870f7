"""Reading what can be read of a page that is not valid JSON as a whole.

A listing whose body holds one bad item (a byte that is not UTF-8, a lone surrogate, an object
nested deeper than the parser allows, or than can be written back) would otherwise fail on every
retry and block the feed at that page forever. Here the body is split into its top-level items
at the byte level, each parsed alone; the ones that fail come back as `Unreadable`, with their
exact bytes and the reason, for the quarantine. A body that is not a complete JSON list (cut
short, an HTML page) is not salvaged: that is a transport problem, retried as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

MAX_WRITTEN_DEPTH = 254  # orjson's writer (its reader takes 1,024)

# a JSON string (escapes included, any bytes inside), or one structural character
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


@dataclass(frozen=True)
class Unreadable:
    """An item of a listing that does not parse; `raw` are its bytes as served."""

    raw: bytes
    reason: str


def _reason(exc: orjson.JSONDecodeError) -> str:
    message = str(exc)
    if "depth" in message:
        plain = "nested deeper than 1024 levels"
    elif "surrogate" in message and "UTF-8" not in message:
        plain = "holds a lone UTF-16 surrogate"
    elif "UTF-8" in message:
        plain = "not valid UTF-8"
    else:
        plain = "not valid JSON"
    return f"unreadable item: {plain} ({message})"


def split_items(body: bytes) -> list[bytes] | None:
    """The bytes of each top-level item of a JSON list, or None when `body` is not a whole list."""
    depth, start, items = 0, 0, []
    for match in _TOKEN.finditer(body):
        token = match.group()[:1]
        if token == b'"':
            if depth == 0:
                return None
            continue
        if token in b"[{":
            if depth == 0:
                if token != b"[" or body[: match.start()].strip():
                    return None
                start = match.end()
            depth += 1
        elif token in b"]}":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                last = body[start : match.start()]
                if last.strip():
                    items.append(last)
                return None if body[match.end() :].strip() else items
        elif depth == 1:
            items.append(body[start : match.start()])
            start = match.end()
    return None  # never closed: cut short


def writable(value) -> bool:
    """orjson reads 1,024 levels of nesting and writes 254: an item between the two would parse,
    then fail every load at the moment it is stored, blocking the feed at its page for good."""
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def salvage_list(body: bytes) -> list | None:
    """The items of a listing, each parsed alone; None when the body is not a whole JSON list."""
    parts = split_items(body)
    if parts is None:
        return None
    items: list = []
    for part in parts:
        try:
            item = orjson.loads(part)
        except orjson.JSONDecodeError as exc:
            items.append(Unreadable(part.strip(), _reason(exc)))
            continue
        if writable(item):
            items.append(item)
        else:
            items.append(
                Unreadable(
                    part.strip(),
                    f"unreadable item: nested deeper than {MAX_WRITTEN_DEPTH} levels, more than can be stored",
                )
            )
    return items
