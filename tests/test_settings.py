"""Settings as long-lived processes resolve them (a Dagster code server, on every sensor tick)."""

from __future__ import annotations

from dlt.common.configuration.utils import get_resolved_traces

from covage_pipeline.settings import load_settings


def test_resolving_the_settings_again_and_again_keeps_nothing_behind():
    """dlt logs every value it resolves in a per-thread list that only a pipeline run clears: a
    code server resolving the settings on each tick grew by its traces, tick after tick."""
    load_settings()
    before = len(get_resolved_traces().all_traces)
    for _ in range(20):
        load_settings(page_size=500)
    assert len(get_resolved_traces().all_traces) == before


def test_a_sensor_tick_with_nothing_to_deliver_keeps_nothing_behind(tmp_path):
    import logging

    from covage_pipeline import alerts

    settings = load_settings(data_dir=tmp_path)
    before = len(get_resolved_traces().all_traces)
    for _ in range(5):
        assert alerts.deliver(settings, [], logging.getLogger("test")) == {}
    assert len(get_resolved_traces().all_traces) == before
