"""The event catalogue, read from the dbt project's seed `sql/seeds/event_types.csv`: one home for
what each event type means (status, final or not, lifecycle rank, alert kind, description), read
by the SQL models (the seed) and by Python (this module) alike. Never written here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .settings import DEFAULT_DBT_PROJECT


@dataclass(frozen=True)
class EventType:
    event_type: str
    object_type: str
    status: str | None
    is_final: bool
    lifecycle_rank: int
    in_lifecycle: bool
    milestone: str | None
    counted_as: str | None
    alert_kind: str | None
    reveals_kind: str | None  # the kind of order that alone emits it
    description: str


@cache
def event_types(project: Path = DEFAULT_DBT_PROJECT) -> dict[str, EventType]:
    """Every documented event type, by its name."""
    with open(project / "seeds" / "event_types.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["event_type"]: EventType(
            event_type=row["event_type"],
            object_type=row["object_type"],
            status=row["status"] or None,
            is_final=row["is_final"] == "true",
            lifecycle_rank=int(row["lifecycle_rank"]),
            in_lifecycle=row["in_lifecycle"] == "true",
            milestone=row["milestone"] or None,
            counted_as=row["counted_as"] or None,
            alert_kind=row["alert_kind"] or None,
            reveals_kind=row["reveals_kind"] or None,
            description=row["description"],
        )
        for row in rows
    }


def alert_kinds(project: Path = DEFAULT_DBT_PROJECT) -> dict[str, str]:
    """Event type -> the support alert it raises."""
    return {name: t.alert_kind for name, t in event_types(project).items() if t.alert_kind}
