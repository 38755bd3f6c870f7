"""The headline figures (the mart `headline_figures`), as a person reads them: formatting only.

Reads the marts dbt built (`covage build`), on DuckDB or PostgreSQL; never writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings
from .warehouse import query


@dataclass(frozen=True)
class Figure:
    section: str
    label: str
    value: str


def formatted(value: float | None, unit: str, detail: str | None = None) -> str:
    if value is None:
        text = "n/a"
    elif unit == "share":
        text = f"{100 * float(value):.1f} %"
    elif unit == "days":
        text = f"{float(value):,.1f} days"
    elif unit == "events":
        text = f"{int(value):,} events"
    else:
        text = f"{int(value):,}"
    return f"{detail} ({text})" if detail else text


def headline_figures(settings: Settings) -> list[Figure]:
    rows = query(settings, f"select * from {settings.marts_schema}.headline_figures order by position")
    return [Figure(r["section"], r["figure"], formatted(r["value"], r["unit"], r["detail"])) for r in rows]
