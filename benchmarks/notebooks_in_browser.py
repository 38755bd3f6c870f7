"""Do the notebooks open unmodified in JupyterLab, in a real browser?

`make test` checks what JupyterLab would rewrite on open (the kernelspec and language_info it
writes into a notebook); this opens each notebook in JupyterLab in headless Chromium and reads the
tab's "modified" mark a few seconds after the kernel is up, on a copy of `notebooks/` (JupyterLab
autosaves). A control copy whose kernelspec differs must show as modified, or the check is blind.

Needs Chromium and Playwright, which the project does not install:
    apt-get install chromium; .venv/bin/pip install playwright
    .venv/bin/python benchmarks/notebooks_in_browser.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "browser-check"


def modified_on_open(page, url: str, settle_s: float) -> bool:
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    time.sleep(settle_s)
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count() > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait after the kernel is idle")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="covage-notebooks-"))
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    names = sorted(p.name for p in (work / "notebooks").glob("*.ipynb"))
    control = work / "notebooks" / "control.ipynb"
    notebook = json.loads((work / "notebooks" / names[0]).read_text())
    notebook["metadata"]["kernelspec"]["display_name"] = "Some other name"
    control.write_text(json.dumps(notebook, indent=1))
    before = {name: (work / "notebooks" / name).read_bytes() for name in names}
    port = free_port()
    lab = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "--ip", "127.0.0.1", "--port", str(port),
         "--no-browser", "--notebook-dir", str(work / "notebooks"), "--allow-root"],
        env={**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTER_RUNTIME_DIR": str(work / "runtime")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    results = {}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/status", params={"token": TOKEN}, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("JupyterLab did not answer in 90 s")
            time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            for name in [*names, control.name]:
                page = browser.new_page()
                url = f"http://127.0.0.1:{port}/lab/tree/{name}?token={TOKEN}&reset"
                results[name] = modified_on_open(page, url, args.settle_s)
                page.close()
            browser.close()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
    for name, dirty in results.items():
        print(f"{name:40} {'MODIFIED on open' if dirty else 'unmodified'}")
    unchanged = all((work / "notebooks" / name).read_bytes() == before[name] for name in names)
    print(f"files on disk unchanged after opening: {unchanged}")
    shutil.rmtree(work, ignore_errors=True)
    if not results[control.name]:
        raise SystemExit("the control copy did not show as modified: the check cannot see the mark")
    if any(results[name] for name in names) or not unchanged:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
