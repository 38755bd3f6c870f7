"""The analysts' notebooks, run top to bottom against a warehouse built from the emulator: any
cell error fails, and each notebook must draw its figures. They are stored without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from covage_pipeline.models import build
from covage_pipeline.pipeline import ingest
from covage_pipeline.publish import analysts_path, publish_marts
from covage_pipeline.warehouse import query

from .extraction import settings_for

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIGURES = {"order_lifecycle": 4, "rejections_and_saturation": 4, "order_history": 2}


@pytest.fixture(scope="module")
def marts_db(tmp_path_factory):
    from covage_pipeline.emulator import running_emulator

    from .conftest import make_config

    with running_emulator(make_config(orders=600, history_days=120.0)) as emu:
        settings = settings_for(emu, tmp_path_factory.mktemp("notebooks"), page_size=1000)
        ingest(settings)
    assert build(settings).success
    publish_marts(settings)
    # the reference's 2017 examples make one old, sparse month, far before the others
    months = query(settings, "select distinct submission_month from main_marts.rejection_stats where period = 'month'")
    assert min(r["submission_month"].year for r in months) == 2017
    assert analysts_path(settings).exists()
    return settings.data_dir


def test_notebooks_are_stored_without_outputs():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(FIGURES)
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs: strip them"
        assert "parameters" in nb.cells[1].metadata.get("tags", []), f"{path.name}: the parameter cell comes first"
    attributes = (NOTEBOOKS.parent / ".gitattributes").read_text()
    assert "*.ipynb filter=nbstripout" in attributes


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_draws_its_figures(name, marts_db, monkeypatch):
    # the kernel runs in notebooks/ and reads the copy under COVAGE_DATA_DIR, as `covage sql` does
    monkeypatch.delenv("COVAGE_MARTS_DB", raising=False)
    monkeypatch.setenv("COVAGE_DATA_DIR", str(marts_db.resolve()))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    images = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == FIGURES[name]
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
    # the monthly tables (what the charts draw) hold the last 12 months only: not the 2017 month
    tables = [
        output["data"]["text/plain"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "submission_month" in output.get("data", {}).get("text/plain", "")
    ]
    assert len(tables) == {"order_lifecycle": 2, "rejections_and_saturation": 2, "order_history": 0}[name]
    assert not any("2017-" in table for table in tables)
    if name == "order_history":  # the default order is finished: it says so, then the open orders' forecasts
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "a forecast is for open orders" in printed
        forecast_table = nb.cells[-1].outputs[-1]["data"]["text/plain"]
        assert "p90_completed_at" in forecast_table and len(forecast_table.splitlines()) > 3


def test_monthly_window_keeps_the_last_months_and_shows_gaps():
    import pandas as pd

    from covage_pipeline.monthly import last_months

    months = pd.to_datetime(["2017-04-01", "2026-01-01", "2026-03-01", "2026-05-01"])
    df = pd.DataFrame({"submission_month": months, "v": [9, 1, 2, 3]})
    window = last_months(df, 12)
    assert [m.strftime("%Y-%m") for m in window["submission_month"]] == [f"2026-0{m}" for m in range(1, 6)]
    assert window["v"].isna().tolist() == [False, True, False, True, False]  # a gap, not a zero
    assert last_months(df, 3)["submission_month"].min() == pd.Timestamp("2026-03-01")


def test_notebooks_open_unmodified_in_jupyterlab():
    """JupyterLab writes the kernel's own kernelspec and language_info into a notebook it opens:
    stored otherwise, the notebook shows as modified before any edit."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    announced = {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}
    for path in NOTEBOOKS.glob("*.ipynb"):
        meta = nbformat.read(path, as_version=4).metadata
        assert meta.kernelspec == {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
        assert {k: v for k, v in meta.language_info.items() if k != "version"} == announced, path.name


def test_make_notebooks_serves_jupyterlab_on_loopback(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = NOTEBOOKS.parent
    env = {**os.environ, "JUPYTER_TOKEN": "test-token", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    proc = subprocess.Popen(
        ["make", "notebooks", f"NOTEBOOKS_PORT={port}"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "make notebooks exited"
            try:
                contents = httpx.get(f"http://127.0.0.1:{port}/api/contents", params={"token": "test-token"}, timeout=2)
                if contents.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not answer in 90 s"
            time.sleep(0.5)
        names = {item["name"] for item in contents.json()["content"]}
        assert {f"{n}.ipynb" for n in FIGURES} <= names
        lab = httpx.get(f"http://127.0.0.1:{port}/lab", params={"token": "test-token"}, timeout=10)
        assert lab.status_code == 200
        specs = httpx.get(f"http://127.0.0.1:{port}/api/kernelspecs", params={"token": "test-token"}, timeout=10)
        assert "python3" in specs.json()["kernelspecs"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
