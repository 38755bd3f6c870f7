"""Search-after paging over `sort_value` that never loses the events tying at a page boundary,
drops the repeats that this causes, and stops when the API stops making progress.

    GET /api/events/?sort=creation_date&direction=asc&size=3&limit=3&after=C0
    -> [a (t1), b (t2), c (t2)]                 last item c; b ties with it
    GET /api/events/?...&after=<sort_value of a>  (not of c: `after` is strictly later, so
    -> [b (t2), c (t2), d (t2), e (t3)]          d, which also has t2, would be skipped)
                                                 b and c are dropped here: the caller had them

The next cursor is the `sort_value` of the last item strictly earlier than the page's last
instant, so the tied tail is read again and removed from the page before the caller sees it. A
page whose items all share one instant cannot step back: the page size doubles (up to the API's
maximum) to get past the tie; at the maximum, paging moves on from the last item and counts it
(`tie_overflow`). The page size is asked in both spellings the reference uses (`size`, `limit`).

An item created further ahead than `horizon` (a date in the year 9999) never becomes the cursor:
paging resumes from the items before it, and the caller quarantines it.

The feed ends on an empty page or a page with nothing new, never on a short page alone: an API
that honours neither spelling answers with its own default page. A page that moves the cursor
nowhere (`after` not later than the one that asked for it) ends paging with `stalled` set, so
the caller keeps what was new and reports the API's fault instead of looping.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import Request, Response

from .cursor import Position, Start
from .timestamps import parse_loose


@dataclass(frozen=True)
class PageMark:
    """What one page did to the paging, as it stood right after that page."""

    received: int  # items as served, repeats included
    repeats: int  # items of the previous page's tied tail, dropped
    last: Position | None  # the newest item of the page
    resume: Position | None  # the `after` the next page starts from, and its instant
    tie_overflow: int  # times so far a tie larger than the largest page forced a skip
    has_next: bool
    stalled: str | None  # why paging stopped, when the API made no progress
    regrown: bool = False  # the next page asks the same `after` again with a bigger size
    tied: bool = False  # the next page starts by reading this page's last instant again


def _position(item: Any, horizon: datetime | None = None) -> Position | None:
    """Where an item stands in the feed; None for an item nothing can be resumed from, or one
    created past `horizon` (far ahead of the clock: the quarantine takes it, the cursor does
    not follow it)."""
    if type(item) is not dict:
        return None
    sort_value, created = item.get("sort_value"), item.get("creation_date")
    if not isinstance(sort_value, str) or not sort_value or not isinstance(created, str):
        return None
    instant = parse_loose(created)
    if instant is None or (horizon is not None and instant > horizon):
        return None
    return Position(instant, sort_value)


def _key(item: Any) -> bytes | None:
    """An item as served, to recognise it when it is served again."""
    return orjson.dumps(item) if type(item) is dict else None


def _items(served: list) -> Counter[bytes]:
    return Counter(k for item in served if (k := _key(item)) is not None)


def _take(pending: Counter[bytes], item: Any) -> bool:
    """True (and one fewer pending) when `item` is one of the pending ones."""
    key = _key(item)
    if key is None or pending[key] <= 0:
        return False
    pending[key] -= 1
    return True


def _without_pending(served: list, pending: Counter[bytes]) -> list:
    """`served` less one copy of each pending item; once none is left, the rest is not looked at
    (the tail comes again at the top of the page), instead of serializing every item to compare."""
    left = sum(pending.values())
    kept = []
    for item in served:
        if left and _take(pending, item):
            left -= 1
        else:
            kept.append(item)
    return kept


class SearchAfterPaginator(BasePaginator):
    def __init__(
        self,
        start: Start,
        page_size: int,
        max_page_size: int = 1000,
        url: str = "/api/events/",
        horizon: datetime | None = None,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.after = start.after
        self.after_instant: datetime | None = start.instant
        self.page_size = page_size
        self.max_page_size = max(page_size, max_page_size)
        self.url = url
        self.tail: Counter[bytes] = Counter()  # the tied tail's items, which the next page repeats
        self.tie_overflow = 0
        self.mark: PageMark | None = None
        self._grown_from: int | None = None  # items of the page that made the size grow

    def init_request(self, request: Request) -> None:
        self.update_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        served = list(data or ())
        if data and self.tail:
            # in place: the list is the page dlt hands to the caller. Items, not uuids: another
            # version of an event in the tie is a new item, kept for the caller to settle
            pending = Counter(self.tail)
            data[:] = _without_pending(served, pending)
        repeats = len(served) - len(data or ())
        stalled = None
        resume = Position(self.after_instant, self.after) if self.after and self.after_instant else None
        # only the end of the page is read here (this runs beside the caller's parsing)
        last_index, last = next(
            ((i, p) for i in range(len(served) - 1, -1, -1) if (p := _position(served[i], self.horizon))), (-1, None)
        )
        if not served or (not data and self._grown_from is None):
            self._has_next_page = False  # empty, or nothing new: the end of the feed for now
        elif last is None:
            if len(served) >= self.page_size:
                stalled = "a full page whose items carry no usable sort_value and creation_date"
            self._has_next_page = False
        else:
            stalled = self._step(served, last_index, last)
            if stalled is None:
                resume = Position(self.after_instant, self.after) if self.after and self.after_instant else None
            else:
                self._has_next_page = False
        regrown = self.has_next_page and self._grown_from is not None
        tied = self.has_next_page and (regrown or bool(self.tail))
        self.mark = PageMark(
            len(served), repeats, last, resume, self.tie_overflow, self.has_next_page, stalled, regrown, tied
        )

    def _step(self, served: list, last_index: int, last: Position) -> str | None:
        """Moves `after` for the next page; returns why not when the API made no progress."""
        # instants, not their spellings: `...T00:00:10Z` and `...T00:00:10.000000` tie
        earlier, earlier_index = None, -1
        for i in range(last_index - 1, -1, -1):
            position = _position(served[i], self.horizon)
            if position is not None and position.creation_date != last.creation_date:
                earlier, earlier_index = position, i
                break
        if earlier is not None:
            target, self.tail = earlier, _items(served[earlier_index + 1 :])
        elif len(served) >= self.page_size and self.page_size < self.max_page_size and not self._ignored_size(served):
            # the same `after`, a bigger page: this whole page comes again
            self._grown_from = len(served)
            self.page_size = min(self.page_size * 2, self.max_page_size)
            self.tail = _items(served)
            return None
        else:
            if len(served) >= self.page_size or self._ignored_size(served):
                self.tie_overflow += 1
            target, self.tail = last, Counter()
        self._grown_from = None
        if self.after_instant is not None and target.creation_date <= self.after_instant:
            return (
                f"GET {self.url} with after={self.after} answered items no later than that cursor "
                f"({target.creation_date.isoformat()}): the API ignores `after` or serves the same page again"
            )
        self.after, self.after_instant = target.sort_value, target.creation_date
        return None

    def _ignored_size(self, served: list) -> bool:
        """The page did not grow when asked for more: the API caps pages below the tie."""
        return self._grown_from is not None and len(served) <= self._grown_from

    def update_request(self, request: Request) -> None:
        if request.params is None:
            request.params = {}
        request.params["size"] = self.page_size
        request.params["limit"] = self.page_size  # the reference's second example spells it so
        if self.after:
            request.params["after"] = self.after
        else:
            request.params.pop("after", None)

    def __str__(self) -> str:
        return f"SearchAfterPaginator(after={self.after!r}, size={self.page_size})"


_DONE = object()


def fetch_pages(
    client: RESTClient, params: dict, paginator: SearchAfterPaginator, depth: int = 2
) -> Iterator[tuple[list, PageMark]]:
    """Pages and their marks, fetched in a thread while the caller processes the current one.

    The cursor of page N+1 only depends on page N's raw items, so the network wait overlaps the
    caller's parsing and loading. HTTP and JSON parsing only happen in the thread; the caller
    keeps everything that touches dlt's state. Stops its thread when the caller stops early.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for items in client.paginate(paginator.url, params=params, paginator=paginator):
                if not put((items, paginator.mark)):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="covage-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
