"""Which version of an event the warehouse already holds, and which of two versions wins.

The rule, everywhere (within a page, a load, across loads and runs): an event is kept once, in
its version with the latest `modification_date`; on an equal `modification_date`, the one served
last, in the feed's order: the later `creation_date`, and at the same `creation_date` the one read
last (so an unchanged re-read changes nothing, and a corrected payload replaces the old one).
A lookback re-reads what an earlier load already read in order: there, only a newer
`modification_date` replaces the stored version (an earlier copy read again must not undo a later
one, and two copies of one date and one instant would otherwise swap at every re-read).

It only reads the destination, through the pipeline that is extracting (so a user's own dlt
pipeline gets the same guarantee): before a batch is handed to dlt, the stored rows of its
event_uuids are looked up. On a lake of files, through dlt's SQL client over them (DuckDB's),
and only newer versions are appended; where no SQL client can be had, nothing is known here
and the staging model settles duplicates by the same rule.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

# what makes two versions the same event content (sort_value is where the API lists it, not content)
COMPARED = (
    "model",
    "type",
    "object_type",
    "object_uuid",
    "creation_date",
    "event_date",
    "event_date_raw",
    "modification_date_raw",
    "data",
    "extra_fields",
)
_JSON = ("data", "extra_fields")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def same_content(a: dict, b: dict) -> bool:
    return all((_json(a[c]) if c in _JSON else a[c]) == (_json(b[c]) if c in _JSON else b[c]) for c in COMPARED)


def newer(incoming: dict, stored: dict, rereading: bool = False) -> bool | None:
    """True: `incoming` replaces `stored`; False: it is older; None: the same version re-read.

    `rereading`: `incoming` lies in the lookback a load reads again (see above)."""
    new_mod: datetime | None = incoming["modification_date"]
    old_mod: datetime | None = stored["modification_date"]
    if new_mod != old_mod:
        return old_mod is None or (new_mod is not None and new_mod > old_mod)
    if rereading or same_content(incoming, stored):
        return None
    # the same modification_date, another payload: the one later in the feed
    return incoming["creation_date"] >= stored["creation_date"]


def latest_served(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per event_uuid by the rule above (rows are in the order served); and how many of
    the rows left out were older versions."""
    uuids = table.column("event_uuid")
    if len(pc.unique(uuids)) == len(uuids):  # most often: one C kernel, nothing to settle
        return table, 0
    uuids = uuids.to_pylist()
    mods = table.column("modification_date").to_pylist()
    created = table.column("creation_date").to_pylist()
    best: dict[str, int] = {}
    for i, uuid in enumerate(uuids):
        j = best.get(uuid)
        if j is None or _rank(mods[i], created[i]) >= _rank(mods[j], created[j]):
            best[uuid] = i
    kept = set(best.values())
    older = sum(1 for i, uuid in enumerate(uuids) if i not in kept and mods[i] != mods[best[uuid]])
    return table.take(pa.array(sorted(kept), pa.int64())), older


def _rank(mod: datetime | None, created: datetime) -> tuple:
    """Versions in the rule's order (a missing modification_date is the oldest)."""
    return (mod is not None, mod or created, created)


# the versions of an event in the rule's order, the latest last: one row an event, but on a lake,
# where the later load breaks a tie (a user's own pipeline into a database may carry no
# _dlt_load_id: dlt adds it to Arrow rows only when asked)
_OLDEST_FIRST = "order by event_uuid, modification_date asc nulls first"
_OLDEST_FIRST_ON_FILES = _OLDEST_FIRST + ", _dlt_load_id asc"


class StoredVersions:
    """The stored rows of given event_uuids, in the pipeline's destination, read-only."""

    def __init__(self, pipeline: Any | None, table: str = "events") -> None:
        self.table = table
        self._pipeline = pipeline
        self._client = None
        self._missing = pipeline is None  # no table yet (or nothing to ask): nothing is stored
        destination = getattr(pipeline, "destination", None)
        self.on_files = destination is not None and destination.destination_name == "filesystem"

    def __enter__(self) -> StoredVersions:
        if not self._missing:
            try:
                self._client = self._pipeline.sql_client()
                self._client.__enter__()
            except Exception as exc:  # a destination without SQL (files): nothing can be looked up
                logger.info("stored versions cannot be looked up here (%s): duplicates settle in staging", exc)
                self._client, self._missing = None, True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.__exit__(*exc_info)
            self._client = None

    def lookup(self, uuids: pa.Array) -> dict[str, dict]:
        """event_uuid -> the stored row (the `COMPARED` columns and modification_date)."""
        if self._missing or not len(uuids):
            return {}
        import duckdb
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        client = self._client
        order = _OLDEST_FIRST_ON_FILES if self.on_files else _OLDEST_FIRST
        columns = ", ".join(("event_uuid", "modification_date", *COMPARED))
        table = client.make_qualified_table_name(self.table)
        try:
            if hasattr(client, "create_views_for_tables"):
                # a lake, read by DuckDB through dlt's views over its files: made (again) here,
                # so that they list what the previous chunk added
                client.create_views_for_tables({self.table: self.table})
            con = client.native_connection
            if isinstance(con, duckdb.DuckDBPyConnection):
                # the uuids as an Arrow table, joined; the stored rows' columns are read only for
                # the uuids found (most often none: scanning one column is what a batch costs)
                con.register("_covage_uuids", pa.table({"event_uuid": uuids}))
                try:
                    found = con.execute(
                        f"select event_uuid from {table} where event_uuid in (select event_uuid from _covage_uuids)"
                    ).fetchall()
                    if not found:
                        return {}
                    con.register("_covage_uuids", pa.table({"event_uuid": pa.array([f[0] for f in found])}))
                    cursor = con.execute(
                        f"select {columns} from {table} where event_uuid in (select event_uuid from _covage_uuids) "
                        f"{order}"
                    )
                    names = [d[0] for d in cursor.description]
                    rows = cursor.fetchall()
                finally:
                    con.unregister("_covage_uuids")
            else:  # PostgreSQL's spelling; other engines would need theirs
                with client.execute_query(
                    f"select {columns} from {table} where event_uuid = any(%s) {order}",
                    pc.unique(uuids).to_pylist(),
                ) as cursor:
                    names = [d[0] for d in cursor.description]
                    rows = cursor.fetchall()
        except (DatabaseUndefinedRelation, duckdb.CatalogException):
            self._missing = True  # the first load creates it; nothing is stored before
            return {}
        # a lake holds every version an event had: the last row of a uuid, its latest, is the one
        return {row[0]: dict(zip(names, row, strict=True)) for row in rows}
