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


def test_settings_that_would_lie_are_refused_naming_the_variable_and_the_range(monkeypatch):
    """Each was accepted and then misbehaved: 0 or -1 pages a load loaded everything and blamed
    the operator; -1 bytes quarantined every event; an unreadable start date was ignored (a full
    backfill); a huge lookback ended in OverflowError; a page size of 0 said 'from 1 to 0'."""
    import pytest

    cases = {
        "COVAGE_CHUNK_PAGES": ("0", "COVAGE_CHUNK_PAGES must be at least 1"),
        "COVAGE_MAX_ITEM_BYTES": ("-1", "COVAGE_MAX_ITEM_BYTES must be at least 0 bytes (0: no limit)"),
        "COVAGE_START_DATE": ("yesterday-ish", "COVAGE_START_DATE='yesterday-ish' is not a date"),
        "COVAGE_LOOKBACK_SECONDS": ("1e12", "COVAGE_LOOKBACK_SECONDS must be from 0 to"),
        "COVAGE_MAX_PAGE_SIZE": ("0", "COVAGE_MAX_PAGE_SIZE must be at least 1, not 0"),
        "COVAGE_BATCH_ROWS": ("-5", "COVAGE_BATCH_ROWS must be at least 1"),
    }
    for variable, (value, message) in cases.items():
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_settings()
        monkeypatch.delenv(variable)
    monkeypatch.setenv("COVAGE_CHUNK_PAGES", "-1")
    with pytest.raises(ValueError, match="COVAGE_CHUNK_PAGES must be at least 1 pages a committed load holds, not -1"):
        load_settings()
    monkeypatch.delenv("COVAGE_CHUNK_PAGES")
    assert load_settings(start_date="2026-01-31").start_date == "2026-01-31"


def test_a_secret_loses_its_surrounding_whitespace_and_one_with_a_control_character_is_refused_unshown(monkeypatch):
    import pytest

    monkeypatch.setenv("COVAGE_API_TOKEN", "tok-123\n")
    assert load_settings().api_token == "tok-123"  # a copy from a file brings the newline
    monkeypatch.setenv("COVAGE_API_TOKEN", "  tok-123\r\n")
    assert load_settings().api_token == "tok-123"
    for bad in ("tok\n123", "tok\r123", "tok\t123"):
        monkeypatch.setenv("COVAGE_API_TOKEN", bad)
        with pytest.raises(ValueError, match="COVAGE_API_TOKEN holds a control character") as raised:
            load_settings()
        assert "123" not in str(raised.value) and "tok" not in str(raised.value)
    monkeypatch.delenv("COVAGE_API_TOKEN")
    with pytest.raises(ValueError, match="COVAGE_API_TOKEN holds a control character"):
        load_settings(api_token="tok\x00123")  # from dlt's secrets.toml, say


def test_two_runs_preparing_a_fresh_data_dir_at_once_both_succeed(tmp_path):
    """Both created and deleted the same probe file: one run in ten failed with 'not a folder
    covage-pipeline can write (No such file or directory)'."""
    from concurrent.futures import ThreadPoolExecutor

    failures = []
    settings = [load_settings(data_dir=tmp_path / f"fresh-{i}") for i in range(50)]

    def prepare(i: int) -> None:
        try:
            settings[i // 8].prepare_data_dir()  # eight at once on each fresh folder
        except ValueError as exc:
            failures.append(str(exc))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(prepare, range(400)))
    assert failures == []
