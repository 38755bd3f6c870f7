"""Dagster definitions of covage-pipeline: `dagster dev -m dagster_defs` (or `make dagster`)."""

from .definitions import build_definitions

defs = build_definitions()

__all__ = ["build_definitions", "defs"]
