"""The CRI archive against the emulator's blob stand-in: archive, expired links refreshed, a
permanent failure recorded, reruns idempotent, changed files kept beside the old ones."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from covage_pipeline.emulator import catalogue
from covage_pipeline.pipeline import ingest
from covage_pipeline.reports import MAX_LINK_REFRESHES, archive_reports, list_reports

from .conftest import TOKEN
from .extraction import settings_for, warehouse


def _blob(url: str) -> str:
    return url.split("/blob/", 1)[1].split("?", 1)[0]


@pytest.fixture
def fed(emulator_factory, tmp_path):
    emu = emulator_factory(orders=120, share_fiber_pro=0.6, share_activate_create=0.3, share_activate_activate=0.1)
    settings = settings_for(emu, tmp_path / "data", reports_url=str(tmp_path / "archive"))
    ingest(settings)
    cri = [t for t in emu.store.ground_truth(emu.url) if t["type"] == catalogue.CRI_EVENT_TYPE]
    assert len(cri) >= 5
    return emu, settings, cri


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_file_archived_with_its_checksum_and_no_token(fed, tmp_path):
    emu, settings, cri = fed
    stats = archive_reports(settings)
    expected = {(t["event_uuid"], label): _blob(url) for t in cri for label, url in t["data"].items()}
    assert stats.archived == len(expected) and stats.failed == 0
    rows = {(r["event_uuid"], r["file_label"]): r for r in list_reports(settings)}
    assert set(rows) == set(expected)
    for key, blob in expected.items():
        row = rows[key]
        content = emu.store.blob_content(blob)
        assert row["status"] == "archived" and row["sha256"] == hashlib.sha256(content).hexdigest()
        assert Path(row["archived_path"]).read_bytes() == content and row["size_bytes"] == len(content)
    full = warehouse(settings, "intervention_reports")
    assert all(r["link"].endswith(".pdf") and "?" not in r["link"] for r in full)
    assert all(r["content_type"] == "application/pdf" for r in full)
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "archive").rglob("*"))


def test_a_rerun_archives_nothing_twice(fed, tmp_path):
    emu, settings, _ = fed
    archive_reports(settings)
    files = _files(tmp_path / "archive")
    rows = warehouse(settings, "intervention_reports")
    downloads = emu.store.blob_downloads
    again = archive_reports(settings)
    assert (again.events, again.archived, emu.store.blob_downloads) == (0, 0, downloads)
    assert _files(tmp_path / "archive") == files
    assert len(warehouse(settings, "intervention_reports")) == len(rows)


def test_an_expired_link_is_refreshed(fed):
    emu, settings, cri = fed
    first = cri[0]["event_uuid"]

    def expire(event_uuid: str) -> None:  # the links just displayed die before the download
        if event_uuid == first:
            emu.store.advance(31 * 60)

    stats = archive_reports(settings, after_links=expire)
    assert stats.failed == 0
    rows = [r for r in warehouse(settings, "intervention_reports") if r["event_uuid"] == first]
    assert rows and all(r["status"] == "archived" and r["attempts"] == 2 for r in rows)


def test_a_permanent_failure_is_recorded_then_retried(fed):
    emu, settings, cri = fed
    label, url = next(iter(cri[1]["data"].items()))
    blob = _blob(url)
    emu.store.revoked_blobs.add(blob)
    stats = archive_reports(settings)
    assert stats.failed == 1
    failed = [r for r in warehouse(settings, "intervention_reports") if r["status"] == "failed"]
    assert len(failed) == 1
    row = failed[0]
    assert (row["event_uuid"], row["file_label"]) == (cri[1]["event_uuid"], label)
    assert "403" in row["reason"] and row["attempts"] == MAX_LINK_REFRESHES + 1
    assert row["archived_path"] is None and "?" not in row["link"]

    assert archive_reports(settings).events == 0  # a plain rerun leaves failures alone
    emu.store.revoked_blobs.discard(blob)
    retried = archive_reports(settings, retry_failed=True)
    assert retried.archived == 1 and retried.failed == 0
    mine = [r for r in list_reports(settings) if (r["event_uuid"], r["file_label"]) == (cri[1]["event_uuid"], label)]
    assert {r["status"] for r in mine} == {"failed", "archived"}  # the failure stays on record


def test_a_file_changed_at_the_source_is_kept_beside_the_old(fed, tmp_path):
    emu, settings, cri = fed
    archive_reports(settings)
    before = _files(tmp_path / "archive")
    label, url = next(iter(cri[2]["data"].items()))
    emu.store.blob_versions[_blob(url)] = 1
    stats = archive_reports(settings, recheck=True)
    assert stats.archived == 1 and stats.unchanged == len(before) - 1
    after = _files(tmp_path / "archive")
    assert set(before) < set(after) and all(after[k] == v for k, v in before.items())  # nothing overwritten
    versions = [
        r for r in list_reports(settings) if (r["event_uuid"], r["file_label"]) == (cri[2]["event_uuid"], label)
    ]
    assert len(versions) == 2 and len({r["sha256"] for r in versions}) == 2


def test_cli_fetch_and_list(fed, tmp_path):
    emu, settings, cri = fed
    env = {
        **os.environ,
        "COVAGE_API_URL": emu.url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(settings.data_dir),
        "COVAGE_REPORTS_URL": str(tmp_path / "archive"),
    }
    covage = str(Path(sys.executable).with_name("covage"))
    fetched = subprocess.run([covage, "reports", "fetch"], env=env, capture_output=True, text=True, timeout=120)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert f"{len(cri)} CRI events examined" in fetched.stdout
    order = cri[0]["object_uuid"]
    listed = subprocess.run(
        [covage, "reports", "list", "--order", order], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and cri[0]["event_uuid"] in listed.stdout and "archived" in listed.stdout
    assert TOKEN not in fetched.stdout + fetched.stderr + listed.stdout
    assert "se=" not in fetched.stdout + listed.stdout


def test_any_fsspec_url_holds_the_archive(emulator_factory, tmp_path):
    """The archive goes through fsspec: here its in-memory filesystem stands for S3, Azure or GCS."""
    import fsspec

    emu = emulator_factory(orders=60, share_fiber_pro=1.0, share_activate_create=0.0, share_activate_activate=0.0)
    settings = settings_for(emu, tmp_path / "data", reports_url="memory://covage-cri")
    ingest(settings)
    stats = archive_reports(settings)
    assert stats.archived > 0 and stats.failed == 0
    fs = fsspec.filesystem("memory")
    for row in list_reports(settings):
        assert row["archived_path"].startswith("/covage-cri/")
        assert hashlib.sha256(fs.cat_file(row["archived_path"])).hexdigest() == row["sha256"]
    assert not (tmp_path / "data" / "reports").exists()


def test_a_run_reads_only_the_events_loaded_since_the_last_archived_one(fed):
    """The archive's cost follows the new events: a run reads the events loaded after the newest
    one it holds a row for; a report in an earlier load is not read again unless asked (recheck)."""
    import duckdb

    from covage_pipeline.reports import pending_events

    emu, settings, cri = fed
    archive_reports(settings)
    assert pending_events(settings) == []
    # an old report's rows lost (as if never archived): a normal run does not look that far back
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(f"delete from {settings.dataset}.intervention_reports where event_uuid = ?", [cri[0]["event_uuid"]])
    assert pending_events(settings) == []
    # new events: only their reports are pending
    emu.store.advance(3 * 24 * 3600)
    ingest(settings)
    new = {t["event_uuid"] for t in emu.store.ground_truth(emu.url) if t["type"] == catalogue.CRI_EVENT_TYPE}
    new -= {t["event_uuid"] for t in cri}
    assert new and {e["event_uuid"] for e in pending_events(settings)} == new
    stats = archive_reports(settings)
    assert stats.events == len(new) and stats.failed == 0
    assert cri[0]["event_uuid"] in {e["event_uuid"] for e in pending_events(settings, recheck=True)}
