"""Small PNG charts for the Dagster UI: a trend at a glance in an asset's materialization metadata.

Rendered off-screen (Agg) and embedded in markdown as a data URL, so nothing is written to disk.
They show the last months only (`chart_months`), a month without orders as a gap.
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


def _window(rows: list[dict], months: int):
    import pandas as pd

    from covage_pipeline.monthly import last_months

    return last_months(pd.DataFrame(rows, columns=list(rows[0]) if rows else ["submission_month"]), months)


def lead_time_trend(rows: list[dict], months: int) -> dg.MetadataValue:
    """Median and p90 delivery lead time (days) by month of submission."""
    fig, ax = _figure()
    df = _window(rows, months)
    if not df.empty:
        ax.plot(df["submission_month"], df["median_hours"].astype(float) / 24, marker="o", label="median")
        ax.plot(df["submission_month"], df["p90_hours"].astype(float) / 24, marker="o", label="p90")
        ax.legend()
    ax.set_title(f"Delivery lead time by month of submission (last {months} months)")
    ax.set_xlabel("month of submission")
    ax.set_ylabel("days")
    fig.autofmt_xdate()
    return _png_markdown(fig, "lead time trend")


def rejection_rate_trend(rows: list[dict], months: int) -> dg.MetadataValue:
    """Rejection rate (% of submitted orders) by month of submission."""
    fig, ax = _figure()
    df = _window(rows, months)
    if not df.empty:
        ax.bar(df["submission_month"], 100 * df["rejection_rate"].astype(float), width=20)
    ax.set_title(f"Rejection rate by month of submission (last {months} months)")
    ax.set_xlabel("month of submission")
    ax.set_ylabel("% of submitted orders")
    fig.autofmt_xdate()
    return _png_markdown(fig, "rejection rate trend")
