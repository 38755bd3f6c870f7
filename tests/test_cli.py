"""The `covage` command as a user runs it: a real process, a real port."""

from __future__ import annotations

import itertools
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
import pytest

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
    # the query the figures suggest runs as written in `covage sql` on the demo's data
    hint = re.search(r'`covage sql "([^"]+)"`', result.stdout.replace("\n", " "))
    assert hint, result.stdout[-600:]
    env["COVAGE_DATA_DIR"] = str(tmp_path / "demo")
    suggested = subprocess.run([COVAGE, "sql", hint.group(1)], capture_output=True, text=True, env=env, timeout=60)
    assert suggested.returncode == 0 and "overall" in suggested.stdout, suggested.stdout
    # the way to explore it is one that works here (no `duckdb` command is installed)
    said = " ".join(result.stdout.split())
    assert f"Explore it: `COVAGE_DATA_DIR={tmp_path / 'demo'} .venv/bin/covage sql`" in said
    assert "`duckdb " not in said


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


def test_the_emulators_default_clock_is_the_wall_clock():
    """`covage emulator serve` without --start: its newest events are as recent as a live API's, so
    the freshness check (default 60 minutes) does not warn on a fresh demo; without the reference's
    2017 examples, which would stretch every monthly chart."""
    from datetime import UTC, datetime, timedelta

    from covage_pipeline.cli import _emulator_config
    from covage_pipeline.emulator import running_emulator
    from covage_pipeline.settings import Settings
    from covage_pipeline.timestamps import parse_loose

    config = _emulator_config(42, 2000, 180.0, None, 1.0, "t", [], 1000, [])
    with running_emulator(config) as emu:
        truth = emu.store.ground_truth(emu.url)
    newest = max(parse_loose(e["creation_date"]) for e in truth)
    age = datetime.now(UTC).replace(tzinfo=None) - newest
    assert timedelta(0) <= age < timedelta(minutes=Settings().freshness_minutes)
    assert min(parse_loose(e["creation_date"]) for e in truth).year >= datetime.now(UTC).year - 1


def _commands(group, path=()):
    yield path, group
    if hasattr(group, "commands"):  # a group (typer vendors its own click)
        for name, command in group.commands.items():
            yield from _commands(command, (*path, name))


def test_every_help_reads_well_at_80_columns():
    """Paragraphs reflow to the terminal (no hard break mid-sentence), no double space, no
    `<bool>` on a flag, no text eaten as markup."""
    import typer
    from typer.testing import CliRunner

    from covage_pipeline.cli import app

    runner = CliRunner()
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) > 15
    for path, _ in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}, terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        text = result.output
        assert "<bool>" not in text, path
        prose = [line.strip() for line in text.splitlines() if not line.strip().startswith(("│", "╭", "╰"))]
        for line, following in itertools.pairwise(prose):
            assert "  " not in line, (path, line)
            if line and following and not line.startswith(("Usage:", "-", "•")):
                # a line that leaves room for the next word was broken by hand, not by the terminal
                assert len(line) + 1 + len(following.split()[0]) > 78, (path, line, following)
    ingest = runner.invoke(app, ["ingest", "--help"], terminal_width=80).output
    assert "[sources.covage]" in ingest


def test_sql_shell_in_a_terminal_edits_recalls_and_describes(tmp_path):
    """`covage sql` driven through a pseudo-terminal, as a person types: the up arrow recalls the
    last statement, `.schema orders` lists its columns, an unknown dot-command says so instead of
    joining the next statement, `.mode csv` changes the output, history outlives the session."""
    import pty
    import select

    env = {**os.environ, "COVAGE_DATA_DIR": str(tmp_path), "TERM": "xterm"}
    copy = tmp_path / "analysts" / "covage_marts.duckdb"
    copy.parent.mkdir()
    with duckdb.connect(str(copy)) as con:
        con.execute("create schema marts; create table marts.orders as select range as order_number from range(7)")

    def session(*keys: str) -> str:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the shell on the terminal's other end
            os.execve(COVAGE, [COVAGE, "sql"], env)
        seen = b""

        def next_prompt(timeout: float = 30) -> None:
            nonlocal seen
            prompts = seen.count(b"covage> ")
            deadline = time.monotonic() + timeout
            while seen.count(b"covage> ") == prompts and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.2)[0]:
                    try:
                        seen += os.read(fd, 65536)
                    except OSError:  # the shell left
                        return
            assert seen.count(b"covage> ") > prompts, seen.decode(errors="replace")[-500:]

        next_prompt()
        for key in keys[:-1]:
            os.write(fd, key.encode())
            next_prompt()
        os.write(fd, keys[-1].encode())
        os.waitpid(pid, 0)
        os.close(fd)
        return seen.decode(errors="replace")

    first = session("select 6 * 7 as answer;\r", "\x1b[A\r", ".schema orders\r", ".nope\r", ".mode csv\r",
                    "select count(*) as n from orders;\r", ".quit\r")  # fmt: skip
    # typed once, then recalled by the up arrow (echoed as text, not as ^[[A) and run again
    assert first.count("covage> select 6 * 7 as answer;") == 2 and len(re.findall(r"│\s+42 │", first)) == 2, first
    assert "order_number" in first and "BIGINT" in first
    assert "Unknown command .nope" in first
    assert "n\r\n7" in first  # csv: a header line, then the value
    second = session("\x1b[A\x1b[A\r", ".quit\r")  # the history of the first session, two back
    assert "Unknown command" not in second and "order_number" not in second and re.search(r"│\s+7\s+│", second)


def test_every_reader_that_finds_no_warehouse_says_where_the_demos_is(tmp_path, monkeypatch):
    """`make demo` writes under <data dir>/demo: `covage sql`, `covage headlines`, `covage build`
    and the notebooks' copy, run on the default data dir afterwards, found nothing and said only
    "no warehouse". Each names the demo's folder, and each follows COVAGE_DATA_DIR to it."""
    from typer.testing import CliRunner

    from covage_pipeline.cli import app
    from covage_pipeline.publish import copy_to_read
    from covage_pipeline.settings import load_settings

    demo = tmp_path / "demo"
    (demo / "analysts").mkdir(parents=True)
    duckdb.connect(str(demo / "covage.duckdb")).close()
    with duckdb.connect(str(demo / "analysts" / "covage_marts.duckdb")) as con:
        con.execute("create schema marts; create table marts.orders as select range as n from range(3)")
    monkeypatch.delenv("COVAGE_MARTS_DB", raising=False)
    runner = CliRunner()
    hint = f"The demo's warehouse is in {demo}: set COVAGE_DATA_DIR={demo}"
    for command in (["sql", "select 1"], ["headlines"], ["build"]):
        result = runner.invoke(app, command, env={"COVAGE_DATA_DIR": str(tmp_path)}, terminal_width=400)
        assert result.exit_code == 1, (command, result.output)
        assert hint in " ".join(result.output.split()), (command, result.output)
    with pytest.raises(FileNotFoundError, match="The demo's warehouse is in"):
        copy_to_read(load_settings(data_dir=tmp_path))
    # pointed there, every reader reads it
    assert copy_to_read(load_settings(data_dir=demo)) == demo / "analysts" / "covage_marts.duckdb"
    result = runner.invoke(app, ["sql", "select count(*) as n from orders"], env={"COVAGE_DATA_DIR": str(demo)})
    assert result.exit_code == 0 and "3" in result.output, result.output
    # and nothing is hinted where there is no demo
    empty = tmp_path / "elsewhere"
    result = runner.invoke(app, ["sql", "select 1"], env={"COVAGE_DATA_DIR": str(empty)}, terminal_width=400)
    assert result.exit_code == 1 and "demo" not in result.output
