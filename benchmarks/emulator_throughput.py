"""Emulator throughput: events/s served to one sequential client, against static files in the same run.

The client pages `GET /api/events/?sort=creation_date&direction=asc&size=1000&after=...` to the
end, parsing each page with orjson to take the cursor. The baseline is the same client reading the
very same bytes, page by page, from static file servers (uvicorn + Starlette's StaticFiles, the
same HTTP stack as the emulator; and Python's `http.server`). The ratio tells whether the emulator
could ever be the bottleneck of a consumer.

    .venv/bin/python benchmarks/emulator_throughput.py [--orders 145000] [--size 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.args}")
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise TimeoutError(url)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def page_emulator(url: str, size: int) -> tuple[list[bytes], float]:
    pages: list[bytes] = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        after = None
        t0 = time.perf_counter()
        while True:
            params = {"sort": "creation_date", "direction": "asc", "size": size}
            if after:
                params["after"] = after
            body = client.get(f"{url}/api/events/", params=params).raise_for_status().content
            items = orjson.loads(body)
            if not items:
                break
            pages.append(body)
            after = items[-1]["sort_value"]
        return pages, time.perf_counter() - t0


def page_static(url: str, n_pages: int) -> tuple[int, float]:
    events = 0
    with httpx.Client(timeout=60) as client:
        t0 = time.perf_counter()
        for i in range(n_pages):
            items = orjson.loads(client.get(f"{url}/{i}.json").raise_for_status().content)
            events += len(items)
            _ = items[-1]["sort_value"]
        return events, time.perf_counter() - t0


def start(cmd: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def start_emulator(port: int, orders: int) -> subprocess.Popen:
    """`covage emulator serve` with a frozen clock, so every reader sees the same feed."""
    cmd = [str(Path(sys.executable).parent / "covage"), "emulator", "serve", "--port", str(port)]
    cmd += ["--orders", str(orders), "--token", TOKEN, "--speed", "0", "--start", "2026-01-01T00:00:00"]
    return start(cmd, env={**os.environ, "COVAGE_API_TOKEN": ""})


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=145_000, help="orders in the history (~6.9 events each)")
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"starting the emulator with {args.orders:,} orders...", flush=True)
    t0 = time.perf_counter()
    emulator = start_emulator(port, args.orders)
    tmp = Path(tempfile.mkdtemp(prefix="covage-bench-"))
    try:
        wait_http(f"{url}/_emulator/status", emulator)
        status = httpx.get(f"{url}/_emulator/status", timeout=120).json()
        print(f"  ready in {time.perf_counter() - t0:.1f} s: {status['events_visible']:,} events visible")
        _, cold_s = page_emulator(url, args.size)  # first display serialises and caches each event
        pages, emu_s = page_emulator(url, args.size)
        events = sum(len(orjson.loads(p)) for p in pages)
        total_bytes = sum(len(p) for p in pages)
        rss = peak_rss_mb(emulator.pid)
    finally:
        stop(emulator)

    for i, body in enumerate(pages):
        (tmp / f"{i}.json").write_bytes(body)
    results = {}
    static_port = free_port()
    servers = {
        "uvicorn + StaticFiles": [
            sys.executable,
            "-c",
            "import sys, uvicorn; from starlette.staticfiles import StaticFiles; "
            "uvicorn.run(StaticFiles(directory=sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), "
            "log_level='warning')",
            str(tmp),
            str(static_port),
        ],
        "python http.server": [
            sys.executable,
            "-m",
            "http.server",
            str(static_port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp),
        ],
    }
    try:
        for name, cmd in servers.items():
            proc = start(cmd)
            try:
                wait_http(f"http://127.0.0.1:{static_port}/0.json", proc)
                n, secs = page_static(f"http://127.0.0.1:{static_port}", len(pages))
                assert n == events
                results[name] = n / secs
            finally:
                stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    emu_rate = events / emu_s
    print(f"\n{events:,} events, {total_bytes / 1e6:.0f} MB, {len(pages)} pages of {args.size}")
    print(f"{'source':<28}{'events/s':>12}{'MB/s':>8}{'ratio':>8}")
    cold = f"{events / cold_s:>12,.0f}{total_bytes / cold_s / 1e6:>8.1f}{emu_s / cold_s:>8.2f}"
    print(f"{'emulator (cold, 1st pass)':<28}{cold}")
    print(f"{'emulator (warm)':<28}{emu_rate:>12,.0f}{total_bytes / emu_s / 1e6:>8.1f}{1.0:>8.2f}")
    for name, rate in results.items():
        print(f"{name:<28}{rate:>12,.0f}{rate * total_bytes / events / 1e6:>8.1f}{rate / emu_rate:>8.2f}")
    print(f"emulator peak RSS: {rss:,.0f} MB (ratio: events/s of each source over the warm emulator's)")


if __name__ == "__main__":
    main()
