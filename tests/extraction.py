"""Helpers for the extraction tests: settings pointed at an emulator, and reconciliation."""

from __future__ import annotations

from pathlib import Path

import orjson

from covage_pipeline.settings import Settings, load_settings
from covage_pipeline.warehouse import query

from .conftest import TOKEN
from .oracle import is_normal, printed, read_time, without_tokens


def settings_for(emu, data_dir: Path, **overrides) -> Settings:
    values = {
        "api_url": emu.url,
        "api_token": TOKEN,
        "data_dir": data_dir,
        "page_size": 100,
        "chunk_pages": 5,
        "backoff_factor": 0.01,
        "max_retry_delay": 0.5,
        "max_attempts": 8,
        "request_timeout": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


def warehouse(settings: Settings, table: str = "events") -> list[dict]:
    return query(settings, f'select * from "{settings.dataset}"."{table}"')


def event_ids(settings: Settings) -> list[str]:
    return [r["event_uuid"] for r in warehouse(settings)]


def assert_equals_ground_truth(settings: Settings, truth: list[dict]) -> None:
    """Same set of event_uuid, no duplicate, and every field as the API serves it."""
    rows = warehouse(settings)
    ids = [r["event_uuid"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate event_uuid in the warehouse"
    expected = {t["event_uuid"]: t for t in truth}
    missing = set(expected) - set(ids)
    extra = set(ids) - set(expected)
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    for row in rows:
        t = expected[row["event_uuid"]]
        for name in ("model", "type", "object_type", "object_uuid", "sort_value"):
            assert row[name] == t[name], (name, row, t)
        assert printed(row["creation_date"]) == t["creation_date"]
        assert printed(row["modification_date"]) == t["modification_date"]
        if is_normal(t["event_date"]) and read_time(t["event_date"]) is not None:
            assert printed(row["event_date"]) == t["event_date"]
            assert row["event_date_raw"] is None and not row["event_date_invalid"]
        else:
            assert row["event_date_raw"] == t["event_date"]
            assert row["event_date"] == read_time(t["event_date"]), (row, t)
            assert row["event_date_invalid"] == (row["event_date"] is None)
        data = row["data"]
        if isinstance(data, str):  # DuckDB hands JSON back as text, psycopg2 as Python objects
            data = orjson.loads(data)
        assert data == without_tokens(t["data"]), (data, t["data"])


def kill_at_random_points_then_rerun(
    emu, data_dir: Path, trials: int, seed: int, pages=(1, 12), **variables: str
) -> int:
    """`covage ingest` killed (SIGKILL) `trials` times, each right after the emulator answered its
    n-th page (n drawn from `pages`: the kill point follows the run's progress, not the machine's
    speed), the feed moving on between attempts; then run to the end. Returns how many runs were
    killed; the caller checks the data.

    Small pages and chunks, so that kills land before, inside and between commits; `variables`
    add COVAGE_* settings.
    """
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    env = {
        **os.environ,
        "COVAGE_API_URL": emu.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(data_dir),
        "COVAGE_PAGE_SIZE": "50",
        "COVAGE_CHUNK_PAGES": "2",
        **variables,
    }
    covage = str(Path(sys.executable).with_name("covage"))
    rng = random.Random(seed)
    killed = 0
    for _ in range(trials):
        served = emu.app.listings_served
        target = served + rng.randint(*pages)
        proc = subprocess.Popen([covage, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and emu.app.listings_served < target:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        emu.store.advance(rng.uniform(0, 4 * 3600))
    final = subprocess.run([covage, "ingest"], env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    return killed
