"""The headline figures of the marts, the few numbers an operations lead asks for first.

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


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def _num(value, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{float(value):,.{digits}f}{unit}"


def headline_figures(settings: Settings) -> list[Figure]:
    m = settings.marts_schema
    orders = query(
        settings,
        f"select count(*) as orders, "
        f"count(case when outcome = 'open' then 1 end) as open, "
        f"count(case when outcome = 'completed' then 1 end) as completed, "
        f"count(case when outcome = 'rejected' then 1 end) as rejected, "
        f"count(case when outcome in ('cancelled', 'dropped') then 1 end) as cancelled "
        f"from {m}.orders",
    )[0]
    delivery = query(settings, f"select * from {m}.delivery_stats where period = 'overall'")
    rejection = query(settings, f"select * from {m}.rejection_stats where period = 'overall'")
    top_code = query(settings, f"select reject_code, code_share from {m}.rejection_reasons where code_rank = 1")
    saturation = query(settings, f"select * from {m}.saturation_stats where period = 'overall'")
    appointments = query(settings, f"select * from {m}.appointment_stats where period = 'overall'")
    base = query(settings, f"select * from {m}.service_base_monthly order by month_start desc limit 2")
    backlog = query(
        settings,
        f"select count(*) as open, count(case when is_stuck then 1 end) as stuck, max(age_days) as oldest "
        f"from {m}.backlog",
    )[0]
    quality = query(settings, f"select issue, events from {m}.data_quality_summary order by events desc")

    d = delivery[0] if delivery else {}
    r = rejection[0] if rejection else {}
    s = saturation[0] if saturation else {}
    a = appointments[0] if appointments else {}
    figures = [
        Figure("Orders", "orders", f"{orders['orders']:,}"),
        Figure(
            "Orders",
            "open / completed / rejected / cancelled or dropped",
            f"{orders['open']:,} / {orders['completed']:,} / {orders['rejected']:,} / {orders['cancelled']:,}",
        ),
        Figure("Delivery", "median lead time", _num(d.get("median_lead_time_days"), " days")),
        Figure("Delivery", "p90 lead time", _num(d.get("p90_lead_time_days"), " days")),
        Figure(
            "Delivery",
            "completed within 7 / 14 / 30 days",
            " / ".join(_pct(d.get(f"share_completed_within_{n}_days")) for n in (7, 14, 30)),
        ),
        Figure("Rejections", "rejection rate (of submitted)", _pct(r.get("rejection_rate"))),
        Figure("Rejections", "requalified after a rejection", f"{r.get('orders_requalified', 0):,}"),
    ]
    if top_code:
        code = top_code[0]
        figures.append(Figure("Rejections", "top reject code", f"{code['reject_code']} ({_pct(code['code_share'])})"))
    figures += [
        Figure("Saturation", "local-loop / network saturated", " / ".join(
            _pct(s.get(k)) for k in ("share_localloop_saturated", "share_network_saturated"))),
        Figure("Saturation", "cost (median lead time, saturated - not)", _num(s.get("saturation_cost_days"), " days")),
        Figure("Appointments", "missed rate", _pct(a.get("missed_rate"))),
        Figure("Appointments", "intervention success rate", _pct(a.get("intervention_success_rate"))),
    ]  # fmt: skip
    if base:
        latest = base[0]
        figures.append(Figure("Services", "active base (latest month end)", f"{latest['active_at_month_end']:,}"))
        if len(base) > 1:
            figures.append(Figure("Services", "churn last full month", _pct(base[1]["churn_rate"])))
    figures += [
        Figure("Backlog", "open orders / stuck", f"{backlog['open']:,} / {backlog['stuck']:,}"),
        Figure("Backlog", "oldest open order", _num(backlog["oldest"], " days")),
    ]
    for row in quality:
        figures.append(Figure("Data quality", row["issue"].replace("_", " "), f"{row['events']:,} events"))
    return figures
