"""Pages of the API turned into Arrow tables: fetched one page ahead, repeats dropped, built.

Never touches dlt's state: the caller advances the cursor. (Building the pages in a forked worker
process was measured too: slower on two cores, where the emulator or the network stack already
uses the other one, so it is not here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from .client import client_for
from .paginator import FetchedPage, SearchAfterPaginator, prefetch
from .records import build_page
from .settings import Settings

_META = ("after", "page_size", "tail_uuids", "last_item", "tie_overflow", "has_next_page")


@dataclass
class BuiltPage:
    fetched: FetchedPage  # the paginator's state after this page (items emptied)
    table: pa.Table
    quarantined: list[dict]
    received: int
    repeats_dropped: int


def built_pages(
    settings: Settings,
    params: dict,
    after: str | None,
    size: int,
    repeats: set[str],
    max_pages: int | None,
) -> Iterator[BuiltPage]:
    """Up to `max_pages` pages from `after`; `repeats` are the uuids the first page repeats."""
    client = client_for(settings)
    paginator = SearchAfterPaginator(after, size, settings.max_page_size)
    fetching = prefetch(client.paginate("/api/events/", params=params, paginator=paginator), paginator)
    for n, fetched in enumerate(fetching, start=1):
        items = fetched.items
        received = len(items)
        if repeats:
            items = [it for it in items if not (isinstance(it, dict) and it.get("event_uuid") in repeats)]
        repeats = fetched.tail_uuids
        page = build_page(items, fetched.after, settings.max_item_bytes)
        meta = FetchedPage([], *(getattr(fetched, f) for f in _META))
        yield BuiltPage(meta, page.table, page.quarantined, received, received - len(items))
        if max_pages is not None and n >= max_pages and fetched.has_next_page:
            return
