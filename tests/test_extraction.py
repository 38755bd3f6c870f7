"""Incremental extraction against the emulator over real HTTP: nothing lost, nothing duplicated."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from covage_pipeline.cursor import build_cursor
from covage_pipeline.emulator import catalogue
from covage_pipeline.pipeline import IngestError, ingest, make_pipeline, resource_state

from .extraction import assert_equals_ground_truth, event_ids, settings_for, warehouse


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("COVAGE_API_URL", "COVAGE_API_TOKEN", "COVAGE_DATA_DIR", "COVAGE_LOOKBACK_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_backfill_equals_ground_truth_field_by_field(emulator_factory, tmp_path):
    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    summary = ingest(settings)
    truth = emu.store.ground_truth(emu.url)
    assert_equals_ground_truth(settings, truth)
    assert summary.chunks > 1  # several committed loads
    assert summary.stats.new == len(truth)
    assert summary.events_in_table == len(truth)
    assert summary.cursor["creation_date"] == truth[-1]["creation_date"]


def test_a_load_hands_its_pages_to_dlt_in_batches(emulator_factory, tmp_path):
    """A load's rows reach dlt `batch_rows` at a time, not all at its end: nearly every page ends
    on an instant the next page reads again, and waiting for one that does not kept a whole
    chunk in memory (a backfill's peak grew with COVAGE_CHUNK_PAGES)."""
    emu = emulator_factory()
    settings = settings_for(emu, tmp_path, page_size=50, chunk_pages=1000, batch_rows=200)
    summary = ingest(settings)
    truth = emu.store.ground_truth(emu.url)
    assert summary.chunks == 1 and summary.stats.pages > 20
    # a batch closes on the first page after 200 rows whose group of instants has ended
    assert summary.stats.batches >= len(truth) // 400
    assert_equals_ground_truth(settings, truth)


def test_incremental_adds_exactly_the_new_events_and_nothing_when_idle(emulator_factory, tmp_path):
    emu = emulator_factory(orders_per_day=300.0)
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    before = set(event_ids(settings))

    idle = ingest(settings)
    assert idle.stats.new == 0 and idle.stats.updated == 0
    assert set(event_ids(settings)) == before

    emu.store.advance(6 * 3600)
    truth = emu.store.ground_truth(emu.url)
    new_ids = {t["event_uuid"] for t in truth} - before
    assert new_ids
    run = ingest(settings)
    assert run.stats.new == len(new_ids)
    assert set(event_ids(settings)) == before | new_ids
    assert_equals_ground_truth(settings, truth)


def test_ties_at_page_boundaries_are_not_lost(emulator_factory, tmp_path):
    emu = emulator_factory(tie_share=0.6, tie_bucket_s=6 * 3600)
    # no page growth: the ties here are smaller than a page, stepping back is what saves them
    settings = settings_for(emu, tmp_path, page_size=25, max_page_size=25)
    summary = ingest(settings)
    assert summary.stats.tie_overflow == 0
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))
    assert summary.stats.tail_rereads > 0  # tied tails were read twice and dropped once


def test_a_tie_larger_than_a_page_grows_the_page(emulator_factory, tmp_path):
    # one huge batch instant: far more events share it than a page of 10 holds
    emu = emulator_factory(tie_share=1.0, tie_bucket_s=30 * 86400, orders=60)
    settings = settings_for(emu, tmp_path, page_size=10, max_page_size=1000)
    summary = ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))
    assert summary.stats.tie_overflow == 0


def _follow_the_head(emu, settings, rounds: int = 12) -> None:
    """Polls like a scheduled job: the clock moves a little, the pipeline runs."""
    for _ in range(rounds):
        emu.store.advance(90)
        ingest(settings)
    emu.store.advance(3600)  # every late event is visible by now


@pytest.mark.parametrize("cursor_mode", ["built", "opaque"])
def test_late_visible_events_are_caught_by_the_lookback(emulator_factory, tmp_path, cursor_mode):
    emu = emulator_factory(late_share=0.4, late_window_s=240.0, orders_per_day=2000.0, orders=50)
    settings = settings_for(emu, tmp_path, cursor_mode=cursor_mode, page_size=200)
    ingest(settings)
    _follow_the_head(emu, settings)
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_without_lookback_late_visible_events_are_lost(emulator_factory, tmp_path):
    """The trap is real: the same polling with a lookback of 0 misses events."""
    emu = emulator_factory(late_share=0.4, late_window_s=240.0, orders_per_day=2000.0, orders=50)
    settings = settings_for(emu, tmp_path, lookback_s=0, page_size=200)
    ingest(settings)
    _follow_the_head(emu, settings)
    ingest(settings)
    truth = {t["event_uuid"] for t in emu.store.ground_truth(emu.url)}
    assert truth - set(event_ids(settings)), "lookback 0 should have lost late-visible events"


def test_full_refresh_and_since(emulator_factory, tmp_path):
    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    truth = emu.store.ground_truth(emu.url)
    since = datetime(2026, 2, 15)
    rereads = sum(1 for t in truth if t["creation_date"] > "2026-02-15T00:00:00.000000")
    committed = []  # the cursor after each load of the re-reading run: it never moves backwards

    def run_chunk(pipeline, source, refresh):
        pipeline.run(source, refresh=refresh)
        committed.append(resource_state(pipeline)["cursor"]["creation_date"])

    run = ingest(settings_for(emu, tmp_path, chunk_pages=2), since=since, run_chunk=run_chunk)
    assert run.stats.new == 0
    assert run.stats.duplicates >= rereads
    assert len(committed) > 2 and set(committed) == {truth[-1]["creation_date"]}

    con = duckdb.connect(str(settings.duckdb_path))
    table = f"{settings.dataset}.events"
    con.execute(f"delete from {table} where event_uuid in (select event_uuid from {table} limit 10)")
    con.close()
    refreshed = ingest(settings, full_refresh=True)
    assert refreshed.stats.new == len(truth)
    assert_equals_ground_truth(settings, truth)


def test_object_scoped_extraction_leaves_the_cursor_alone(emulator_factory, tmp_path):
    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    truth = emu.store.ground_truth(emu.url)
    order_uuid = next(t["object_uuid"] for t in truth if t["type"] == "order-completed")
    expected = {t["event_uuid"] for t in truth if t["object_uuid"] == order_uuid}
    run = ingest(settings, object_type="order", object_uuid=order_uuid)
    assert set(event_ids(settings)) == expected
    assert run.stats.new == len(expected)
    assert "cursor" not in resource_state(make_pipeline(settings))
    again = ingest(settings, object_type="order", object_uuid=order_uuid)
    assert again.stats.new == 0 and again.stats.duplicates == len(expected)
    ingest(settings)  # the global backfill still reads everything
    assert_equals_ground_truth(settings, truth)


def test_state_survives_losing_the_local_pipeline_folder(emulator_factory, tmp_path):
    """dlt restores the cursor from the destination: a lost working folder costs a lookback only."""
    emu = emulator_factory()
    settings = settings_for(emu, tmp_path)
    first = ingest(settings)
    shutil.rmtree(settings.pipelines_dir)
    again = ingest(settings)
    assert again.stats.received < 50  # the lookback window, not a new backfill
    assert again.cursor == first.cursor
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_built_cursor_is_encoded_like_the_reference():
    assert build_cursor(datetime(2017, 5, 9, 15, 57, 59, 311887)) == "WyIyMDE3LTA1LTA5VDE1OjU3OjU5LjMxMTg4NyJd"
    assert build_cursor(datetime(2026, 1, 1)) == "WyIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMDAwMCJd"


def test_malformed_timestamps_cri_links_and_unknown_types(emulator_factory, tmp_path):
    emu = emulator_factory(malformed_share=0.05, share_fiber_pro=0.6, unknown_type_share=0.05)
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    truth = emu.store.ground_truth(emu.url)
    assert any(" PM." in t["event_date"] for t in truth)  # a 12-hour clock among the malformed
    assert_equals_ground_truth(settings, truth)  # each malformed time read as a person reads it
    rows = {r["event_uuid"]: r for r in warehouse(settings)}
    reference = rows["lrgecnfi"]
    assert reference["event_date"] == datetime(2017, 5, 9, 16, 1, 4, 637766)
    assert reference["event_date_raw"] == "2017-05-09T16:1:04 AM.637766"
    assert reference["event_date_invalid"] is False
    unreadable = [r for r in rows.values() if r["event_date_raw"] == "0000-00-00T00:00:00"]
    assert unreadable and all(r["event_date"] is None and r["event_date_invalid"] for r in unreadable)
    cri = [r for r in rows.values() if r["type"] == catalogue.CRI_EVENT_TYPE]
    assert cri and all("?" not in r["data"] and "se=" not in r["data"] for r in cri)
    assert {r["type"] for r in rows.values()} & set(catalogue.UNDOCUMENTED_EVENTS)
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    (dtype,) = con.execute(
        "select data_type from information_schema.columns where table_name = 'events' and column_name = 'data'"
    ).fetchone()
    assert dtype == "JSON"
    con.close()


@pytest.mark.parametrize("auth_type", ["basic", "header"])
def test_alternative_auth_schemes(emulator_factory, tmp_path, auth_type):
    emu = emulator_factory(orders=30)
    settings = settings_for(emu, tmp_path, auth_type=auth_type)
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_wrong_token_fails_clearly_without_leaking_it(emulator_factory, tmp_path):
    emu = emulator_factory(orders=30)
    settings = settings_for(emu, tmp_path, api_token="s3cr3t-wrong-token")
    with pytest.raises(IngestError) as info:
        ingest(settings)
    assert "401" in str(info.value)
    assert "s3cr3t-wrong-token" not in str(info.value)


def test_dlt_forgets_loaded_packages_after_the_retention(emulator_factory, tmp_path):
    """dlt keeps a record of each load in its working folder, for ever; ours go after
    `retention_days`, and their rows (job files) as soon as they are loaded."""
    emu = emulator_factory(orders=60)
    kept = settings_for(emu, tmp_path / "kept")
    ingest(kept)
    pipeline = make_pipeline(kept)
    packages = pipeline.list_completed_load_packages()
    assert packages
    folder = Path(pipeline.working_dir) / "load" / "loaded" / packages[0]
    assert not any(p.suffix in (".parquet", ".gz") for p in folder.rglob("*"))  # rows not kept twice
    pruned = settings_for(emu, tmp_path / "pruned", retention_days=0)
    ingest(pruned)
    assert make_pipeline(pruned).list_completed_load_packages() == []
    assert_equals_ground_truth(pruned, emu.store.ground_truth(emu.url))
