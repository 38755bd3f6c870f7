"""Dagster definitions of covage-pipeline: `dagster dev -m dagster_defs` (or `make dagster`).

Loaded lazily: importing the package builds nothing (no dbt parse, no pipeline, no data folder);
Dagster calls `defs` when it loads the code location.
"""

import dagster as dg

from .definitions import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()


__all__ = ["build_definitions", "defs"]
