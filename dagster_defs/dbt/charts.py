"""Small PNG charts for the Dagster UI: a trend at a glance in an asset's materialization metadata.

Rendered off-screen (Agg) and embedded in markdown as a data URL, so nothing is written to disk.
"""

from __future__ import annotations

import base64
import io

import dagster as dg


def _png_markdown(fig, title: str) -> dg.MetadataValue:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3))


def lead_time_trend(rows: list[dict]) -> dg.MetadataValue:
    """Median and p90 delivery lead time (days) by month of submission."""
    fig, ax = _figure()
    months = [r["submission_month"] for r in rows]
    ax.plot(months, [r["median_hours"] / 24 for r in rows], marker="o", label="median")
    ax.plot(months, [r["p90_hours"] / 24 for r in rows], marker="o", label="p90")
    ax.set_title("Delivery lead time by month of submission")
    ax.set_xlabel("month of submission")
    ax.set_ylabel("days")
    ax.legend()
    fig.autofmt_xdate()
    return _png_markdown(fig, "lead time trend")


def rejection_rate_trend(rows: list[dict]) -> dg.MetadataValue:
    """Rejection rate (% of submitted orders) by month of submission."""
    fig, ax = _figure()
    months = [r["submission_month"] for r in rows]
    ax.bar(months, [100 * float(r["rejection_rate"]) for r in rows], width=20)
    ax.set_title("Rejection rate by month of submission")
    ax.set_xlabel("month of submission")
    ax.set_ylabel("% of submitted orders")
    fig.autofmt_xdate()
    return _png_markdown(fig, "rejection rate trend")
