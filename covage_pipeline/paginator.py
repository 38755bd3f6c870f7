"""Search-after paging over `sort_value` that never loses the events tying at a page boundary.

    GET /api/events/?sort=creation_date&direction=asc&size=3&after=C0
    -> [a (t1), b (t2), c (t2)]                 last item c; b ties with it
    GET /api/events/?...&after=<sort_value of a>  (not of c: `after` is strictly later, so
    -> [b (t2), c (t2), d (t2), e (t3)]          d, which also has t2, would be skipped)

The next cursor is the `sort_value` of the last item strictly earlier than the page's last
instant, so the tied tail is read again (the caller drops those repeats). The cursor stays
opaque: nothing is built from timestamps here. A full page whose items all share one instant
cannot step back: the page size doubles (up to the API's maximum) to get past the tie; at the
maximum, paging moves on from the last item and the caller is told (`tie_overflow`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import Request, Response


class SearchAfterPaginator(BasePaginator):
    def __init__(self, after: str | None, page_size: int, max_page_size: int = 1000) -> None:
        super().__init__()
        self.after = after
        self.page_size = page_size
        self.max_page_size = max(page_size, max_page_size)
        self.tail_uuids: set[str] = set()  # uuids of the tied tail, which the next page repeats
        self.tie_overflow = 0  # times a tie larger than the largest page forced a skip
        self.last_item: dict | None = None

    def init_request(self, request: Request) -> None:
        self.update_request(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        if not data:
            self._has_next_page = False
            return
        last = data[-1]
        self.last_item = last
        last_instant = last.get("creation_date")
        earlier = None
        tail: set[str] = set()
        for item in reversed(data):
            if item.get("creation_date") != last_instant:
                earlier = item
                break
            if isinstance(item.get("event_uuid"), str):
                tail.add(item["event_uuid"])
        if len(data) < self.page_size:
            # not a full page: the API had nothing more, the tie group is complete
            self.after, self.tail_uuids = last.get("sort_value"), set()
            self._has_next_page = False
        elif earlier is not None and earlier.get("sort_value"):
            self.after, self.tail_uuids = earlier["sort_value"], tail
        elif self.page_size < self.max_page_size:
            # same `after`, a bigger page: this whole page comes again
            self.page_size = min(self.page_size * 2, self.max_page_size)
            self.tail_uuids |= tail
        else:
            self.tie_overflow += 1
            self.after, self.tail_uuids = last.get("sort_value"), set()
        if self._has_next_page and not self.after:
            raise ValueError("the API's items carry no sort_value: paging cannot continue")

    def update_request(self, request: Request) -> None:
        if request.params is None:
            request.params = {}
        request.params["size"] = self.page_size
        if self.after:
            request.params["after"] = self.after
        else:
            request.params.pop("after", None)

    def __str__(self) -> str:
        return f"SearchAfterPaginator(after={self.after!r}, size={self.page_size})"


@dataclass(frozen=True)
class FetchedPage:
    """A page with the paginator's state as it stood right after that page."""

    items: list
    after: str | None
    page_size: int
    tail_uuids: set[str]
    last_item: dict | None
    tie_overflow: int
    has_next_page: bool


_DONE = object()


def prefetch(pages: Iterator[list], paginator: SearchAfterPaginator, depth: int = 2) -> Iterator[FetchedPage]:
    """Fetches the next pages in a thread while the caller processes the current one.

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
            for items in pages:
                page = FetchedPage(
                    items,
                    paginator.after,
                    paginator.page_size,
                    set(paginator.tail_uuids),
                    paginator.last_item,
                    paginator.tie_overflow,
                    paginator.has_next_page,
                )
                if not put(page):
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
