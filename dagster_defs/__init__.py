"""Dagster definitions for covage-pipeline (schedules, assets, checks): built on top of the pipeline.

Nothing here yet: the Dagster issue fills this package. It is installed now so the distribution's
layout is fixed from the start.
"""
