"""The same pipeline on the machine's PostgreSQL server (COVAGE_DESTINATION=postgres): backfill,
incremental run, kill-and-rerun convergence, a crashed run's pending load, all in a schema the
test creates and drops."""

from __future__ import annotations

import psycopg2

from covage_pipeline.pipeline import ingest, make_pipeline
from covage_pipeline.settings import load_settings
from covage_pipeline.source import covage_source

from .conftest import POSTGRES_URL
from .extraction import assert_equals_ground_truth, kill_at_random_points_then_rerun, settings_for


def _pg_settings(emu, tmp_path, prefix, **overrides):
    return settings_for(
        emu, tmp_path, destination="postgres", postgres_url=POSTGRES_URL, dataset=f"{prefix}_raw", **overrides
    )


def test_backfill_then_incremental_on_postgres(emulator_factory, tmp_path, pg_prefix):
    emu = emulator_factory(orders=400)
    settings = _pg_settings(emu, tmp_path, pg_prefix)
    first = ingest(settings)
    truth = emu.store.ground_truth(emu.url)
    assert first.events_in_table == len(truth) and first.stats.new == len(truth)
    assert "postgres" in first.warehouse and POSTGRES_URL not in first.warehouse
    assert_equals_ground_truth(settings, truth)
    assert not settings.duckdb_path.exists()  # nothing went to the embedded file

    emu.store.advance(24 * 3600)
    second = ingest(settings)
    new_truth = emu.store.ground_truth(emu.url)
    assert second.stats.new == len(new_truth) - len(truth) > 0
    assert_equals_ground_truth(settings, new_truth)
    idle = ingest(settings)
    assert idle.stats.new == 0 and idle.events_in_table == len(new_truth)

    # what the CLI reads from the raw events works there too
    from covage_pipeline.warehouse import last_info_message

    order = next(t for t in new_truth if t["type"] == "order-info")
    assert last_info_message(settings, order["object_uuid"]) is not None


def test_sigkill_then_rerun_converges_on_postgres(emulator_factory, tmp_path, pg_prefix):
    emu = emulator_factory(orders=500)
    killed = kill_at_random_points_then_rerun(
        emu,
        tmp_path,
        trials=3,
        seed=7,
        COVAGE_DESTINATION="postgres",
        COVAGE_POSTGRES_URL=POSTGRES_URL,
        COVAGE_DATASET=f"{pg_prefix}_raw",
    )
    assert killed == 3, "each trial kills its run on a page it has not finished"
    settings = load_settings(
        data_dir=tmp_path, destination="postgres", postgres_url=POSTGRES_URL, dataset=f"{pg_prefix}_raw"
    )
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))


def test_a_crashed_runs_pending_load_on_postgres(emulator_factory, tmp_path, pg_prefix):
    emu = emulator_factory()
    settings = _pg_settings(emu, tmp_path, pg_prefix)
    ingest(settings)
    emu.store.advance(6 * 3600)
    pipeline = make_pipeline(settings)
    pipeline.extract(covage_source(settings, max_pages=2))  # extracted, never loaded: "killed"
    assert pipeline.has_pending_data
    con = psycopg2.connect(POSTGRES_URL)
    con.autocommit = True
    with con.cursor() as cur:  # rows a replayed append job would have written twice
        cur.execute(f'insert into "{settings.dataset}".events select * from "{settings.dataset}".events limit 25')
    con.close()
    ingest(settings)
    assert_equals_ground_truth(settings, emu.store.ground_truth(emu.url))
