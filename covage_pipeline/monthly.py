"""The window a monthly chart shows, for the notebooks and the Dagster charts alike.

One old, sparse month (a test order from years ago, a late backfill) would otherwise stretch the
axis over years and squeeze the real months against its edge; a month without orders must show
as a gap, never as a zero that reads like a measurement.
"""

from __future__ import annotations

import pandas as pd

DEFAULT_MONTHS = 12


def last_months(df: pd.DataFrame, months: int = DEFAULT_MONTHS, column: str = "submission_month") -> pd.DataFrame:
    """The rows of the last `months` months up to the latest one, one row per calendar month from
    the first month with data in that window: a month without rows is all NaN (not drawn)."""
    if df.empty:
        return df
    stamps = pd.to_datetime(df[column])
    latest = stamps.max().to_period("M")
    first_allowed = latest - (max(months, 1) - 1)
    kept = df.assign(**{column: stamps})[stamps.dt.to_period("M") >= first_allowed]
    span = pd.period_range(kept[column].min().to_period("M"), latest, freq="M").to_timestamp()
    return kept.set_index(column).reindex(span).rename_axis(column).reset_index()
