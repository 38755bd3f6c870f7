"""The `covage` command as a user runs it: a real process, a real port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

COVAGE = str(Path(sys.executable).with_name("covage"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_serving(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until the emulator answers its status call; fails if the process dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/_emulator/status", timeout=2)
            return
        except httpx.TransportError:
            assert proc.poll() is None, "the emulator exited"
            assert time.monotonic() < deadline, "the emulator did not answer in time"
            time.sleep(0.2)


def test_emulator_serve_answers_over_http_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            COVAGE,
            "emulator",
            "serve",
            "--port",
            str(port),
            "--orders",
            "60",
            "--seed",
            "3",
            "--token",
            "cli-token",
            "--extra-token",
            "ro:readonly",
            "--speed",
            "0",
            "--start",
            "2026-02-01T00:00:00",
            "--set",
            "reject_rate=0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COVAGE_API_TOKEN": ""},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_serving(url, proc)
        status = httpx.get(f"{url}/_emulator/status", timeout=10).json()
        assert status["now"] == "2026-02-01T00:00:00.000000"
        assert status["config"]["reject_rate"] == 0.5
        assert "cli-token" not in str(status)
        page = httpx.get(f"{url}/api/events/?sort=creation_date&size=5", headers={"Authorization": "Bearer cli-token"})
        assert page.status_code == 200 and len(page.json()) == 5
        post = httpx.post(
            f"{url}/api/v2/orders/x/events/info", json={"message": "m"}, headers={"Authorization": "Bearer ro"}
        )
        assert post.status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal it caught (exit status -15)
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        assert "Finished server process" in proc.stdout.read().decode()


def test_emulator_serve_takes_faults():
    port = _free_port()
    proc = subprocess.Popen(
        [
            COVAGE,
            "emulator",
            "serve",
            "--port",
            str(port),
            "--orders",
            "20",
            "--speed",
            "0",
            "--token",
            "t",
            "--faults",
            '{"rate_limit_rate": 1.0, "retry_after_s": 9}',
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(f"http://127.0.0.1:{port}", proc)
        response = httpx.get(f"http://127.0.0.1:{port}/api/events/", headers={"Authorization": "Bearer t"})
        assert response.status_code == 429 and response.headers["Retry-After"] == "9"
    finally:
        proc.kill()
        proc.wait()
    bad = subprocess.run([COVAGE, "emulator", "serve", "--faults", '{"boom": 1}'], capture_output=True, text=True)
    assert bad.returncode == 2 and "--faults" in bad.stdout + bad.stderr


def test_bad_set_option_is_a_usage_error():
    result = subprocess.run([COVAGE, "emulator", "serve", "--set", "nonsense=1"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "--set takes NAME=VALUE" in result.stdout + result.stderr


def test_demo_serves_ingests_and_summarises(tmp_path):
    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path)}
    result = subprocess.run([COVAGE, "demo", "--orders", "80"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Orders by kind" in result.stdout
    assert "order-submitted" in result.stdout
    assert result.stdout.count("Ingestion summary") == 2
    assert "incremental run" in result.stdout
    assert "dbt build:" in result.stdout and "passed" in result.stdout
    assert re.search(r"Analysts' copy: \d+ marts published to", result.stdout)
    assert (tmp_path / "demo" / "covage.duckdb").exists()
    # the analysts' copy the notebooks open by default (../data/demo/analysts/covage_marts.duckdb)
    copy = tmp_path / "demo" / "analysts" / "covage_marts.duckdb"
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("select count(*) from marts.orders").fetchone()[0] > 0
    # ends with the headline figures, read from the marts just built
    assert "Headline figures" in result.stdout
    for label in ("median lead time", "rejection rate", "saturated", "missed rate", "open orders", "stuck"):
        assert label in result.stdout, label
    assert "n/a" not in result.stdout.split("Headline figures")[1].split("Delivery")[0]


def test_sql_reads_the_analysts_copy(tmp_path):
    """`covage build` publishes the marts; `covage sql` queries them, one-shot and interactively."""
    import duckdb

    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path)}
    missing = subprocess.run([COVAGE, "sql", "select 1"], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and "run `covage build`" in missing.stdout.replace("\n", " ")
    copy = tmp_path / "analysts" / "covage_marts.duckdb"
    copy.parent.mkdir()
    con = duckdb.connect(str(copy))
    con.execute("create schema marts; create table marts.orders as select range as n from range(7)")
    con.close()
    one = subprocess.run(
        [COVAGE, "sql", "select count(*) as orders from orders"], capture_output=True, text=True, env=env, timeout=60
    )
    assert one.returncode == 0 and "7" in one.stdout, one.stdout + one.stderr
    bad = subprocess.run(
        [COVAGE, "sql", "select nope from orders"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode == 1 and "nope" in bad.stdout
    shell = subprocess.run(
        [COVAGE, "sql"],
        input=".tables\nselect max(n)\nfrom orders;\n.quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shell.returncode == 0 and "orders" in shell.stdout and "6" in shell.stdout, shell.stdout
    writable = subprocess.run(
        [COVAGE, "sql", "create table marts.x (a int)"], capture_output=True, text=True, env=env, timeout=60
    )
    assert writable.returncode == 1 and "read-only" in writable.stdout  # the copy cannot be written
