"""What the delivery forecast costs as the warehouse grows: the whole `dbt build` and, inside it,
`int_order_forecasts_now` (the current forecast; the weekly backtest is frozen, one cutoff a
week), with the peak memory of the build, at several sizes of history, in one run.

Per size: an emulator with --orders over 180 days (frozen clock), `covage ingest`, then
`covage build` timed, its peak RSS read from the kernel (children included: dbt runs in-process),
and dbt's own time for each model from run_results.json. The forecast learns one curve per cutoff,
comparison and class of time from the stretches of history: this shows how its cost grows with
the history, next to the rest of the build (the ratio forecast / rest of the build).

    .venv/bin/python benchmarks/forecast_scale.py [--orders 3000 10000 30000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from emulator_throughput import TOKEN, free_port, start_emulator, stop, wait_http

BIN = Path(sys.executable).parent
FORECAST = "model.covage.int_order_forecasts_now"


def run(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([str(BIN / "covage"), *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"covage {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def one_size(orders: int, tmp: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "COVAGE_API_URL": url,
        "COVAGE_API_TOKEN": TOKEN,
        "COVAGE_DATA_DIR": str(tmp / f"orders-{orders}"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
        "COVAGE_DEBUG": "1",  # dbt writes run_results.json, read below
    }
    emulator = start_emulator(port, orders)
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        run(["ingest"], env)
    finally:
        stop(emulator)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    build = run(["build"], env)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KB
    project = Path(os.environ.get("COVAGE_DBT_PROJECT_DIR", Path(__file__).parents[1] / "sql"))
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    times = {r["unique_id"]: r["execution_time"] for r in results}
    code = (
        "from covage_pipeline.settings import load_settings; from covage_pipeline.warehouse import query; "
        "s = load_settings(); m = s.marts_schema; "
        "print(query(s, f'select count(*) as n from {m}.open_order_forecast')[0]['n'])"
    )
    counted = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    open_orders = int(counted.stdout.split()[-1])
    return {
        "orders": orders,
        "open": open_orders,
        "build": build,
        "forecast": times.get(FORECAST, float("nan")),
        "rest": sum(t for node, t in times.items() if node != FORECAST),
        "peak_mb": (peak if peak > before else float("nan")) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, nargs="+", default=[3000, 10000, 30000], help="sizes, smallest first")
    args = parser.parse_args()
    print(f"{'orders':>8}{'open':>7}{'build':>10}{'forecast':>11}{'rest':>9}{'ratio':>8}{'peak':>10}")
    with tempfile.TemporaryDirectory(prefix="covage-forecast-scale-") as tmp:
        for orders in sorted(args.orders):
            r = one_size(orders, Path(tmp))
            print(
                f"{r['orders']:>8,}{r['open']:>7,}{r['build']:>8.1f} s{r['forecast']:>9.1f} s{r['rest']:>7.1f} s"
                f"{r['forecast'] / r['rest']:>7.1f}x{r['peak_mb']:>7,.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
