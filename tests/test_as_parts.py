"""covage-pipeline as parts of a user's own stack: the dlt source in their own dlt pipeline, and
the dbt project as a package of their own dbt project."""

from __future__ import annotations

import os

import dlt
import pytest

from covage_pipeline.source import covage_source
from covage_pipeline.warehouse import read_only_rows

from .conftest import TOKEN
from .extraction import assert_equals_ground_truth


@pytest.fixture
def dlt_config(monkeypatch, tmp_path):
    """Configured the dlt way only: SOURCES__COVAGE__* variables (as .dlt/config.toml would)."""
    for name in [n for n in os.environ if n.startswith("COVAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def configure(url: str, **values) -> None:
        monkeypatch.setenv("SOURCES__COVAGE__API_URL", url)
        monkeypatch.setenv("SOURCES__COVAGE__API_TOKEN", TOKEN)
        for key, value in values.items():
            monkeypatch.setenv(f"SOURCES__COVAGE__{key.upper()}", str(value))

    return configure


@pytest.mark.parametrize("max_pages", [None, 3])
def test_the_source_in_a_users_own_dlt_pipeline_keeps_every_event_once(
    emulator_factory, tmp_path, dlt_config, max_pages
):
    emu = emulator_factory(orders=150, modified_share=0.2, orders_per_day=300.0)
    dlt_config(emu.url, page_size=50)
    pipeline = dlt.pipeline(
        "my_covage",
        destination=dlt.destinations.duckdb(str(tmp_path / "mine.duckdb")),
        dataset_name="covage_raw",
        pipelines_dir=str(tmp_path / "pipelines"),
    )

    def run_until_done() -> int:
        """What a user's scheduler does: one run a tick; with `max_pages`, a few ticks."""
        runs = 0
        while True:
            pipeline.run(covage_source(max_pages=max_pages))
            runs += 1
            state = pipeline.state["sources"]["covage"]["resources"]["events"]
            if state.get("reached_end"):
                return runs

    first = run_until_done()
    assert first > 1 if max_pages else first == 1
    for _ in range(3):  # the feed moves on, with corrections and late events
        emu.store.advance(1800)
        run_until_done()
    emu.store.advance(3600)
    run_until_done()
    rows = read_only_rows(tmp_path / "mine.duckdb", "select event_uuid from covage_raw.events")
    uuids = [r["event_uuid"] for r in rows]
    assert len(uuids) == len(set(uuids))
    truth = emu.store.ground_truth(emu.url)
    assert set(uuids) == {t["event_uuid"] for t in truth}
    assert_equals_ground_truth(_reading(tmp_path / "mine.duckdb"), truth)


def _reading(path):
    """Settings that read a DuckDB file at `path` (the helpers read `<data dir>/covage.duckdb`)."""
    import shutil

    from covage_pipeline.settings import load_settings

    data = path.parent / "reading"
    data.mkdir(exist_ok=True)
    shutil.copy(path, data / "covage.duckdb")
    return load_settings(data_dir=data)


def test_the_dbt_project_as_a_package_of_a_users_own_dbt_project(emulator_factory, tmp_path):
    """packages.yml with this repository (git, subdirectory sql) in a dbt project of the user's:
    `dbt deps` then `dbt build` build every model and test, on events loaded where the user says."""
    import subprocess
    import sys
    from pathlib import Path

    from covage_pipeline.pipeline import ingest

    from .extraction import settings_for

    emu = emulator_factory(orders=60)
    settings = settings_for(emu, tmp_path / "data", dataset="isp_feed")  # not the default schema
    ingest(settings)
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    project = tmp_path / "my_isp"
    project.mkdir()
    (project / "dbt_project.yml").write_text(
        "name: my_isp\nversion: '1.0'\nconfig-version: 2\nprofile: my_isp\nvars:\n  covage_source_schema: isp_feed\n"
    )
    (project / "packages.yml").write_text(
        f"packages:\n  - git: 'file://{repo}'\n    revision: {head.stdout.strip()}\n    subdirectory: sql\n"
    )
    (project / "profiles.yml").write_text(
        f"my_isp:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: '{settings.duckdb_path}'\n"
        "      schema: analytics\n"
    )
    dbt = str(Path(sys.executable).with_name("dbt"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVAGE_")}
    for step in (["deps"], ["build"]):
        done = subprocess.run(
            [dbt, *step, "--project-dir", str(project), "--profiles-dir", str(project)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
    orders = read_only_rows(settings.duckdb_path, "select count(*) as n from analytics_marts.orders")[0]["n"]
    truth = emu.store.ground_truth(emu.url)
    assert orders == len({t["object_uuid"] for t in truth if t["object_type"] == "order"})
