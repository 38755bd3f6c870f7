"""The pipeline's commands as a user runs them, against the emulator over HTTP; and settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from covage_pipeline.settings import load_settings

from .conftest import TOKEN
from .extraction import assert_equals_ground_truth, warehouse

COVAGE = str(Path(sys.executable).with_name("covage"))


def _run(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([COVAGE, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVAGE_")}
    env.update({"COVAGE_API_TOKEN": TOKEN, "COVAGE_DATA_DIR": str(tmp_path), "COLUMNS": "200"})
    return env


def test_ingest_history_and_events_get(emulator_factory, cli_env, tmp_path):
    emu = emulator_factory(share_fiber_pro=0.5)
    env = {**cli_env, "COVAGE_API_URL": emu.url}
    first = _run(["ingest"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Ingestion summary" in first.stdout and "cursor now" in first.stdout
    truth = emu.store.ground_truth(emu.url)
    settings = load_settings(data_dir=tmp_path)
    assert_equals_ground_truth(settings, truth)

    again = _run(["ingest"], env)
    assert again.returncode == 0
    summary = dict(re.findall(r"│ (new|updated|events in the warehouse)\s+│\s+([\d,]+) │", again.stdout))
    assert summary == {"new": "0", "updated": "0", "events in the warehouse": f"{len(truth):,}"}, again.stdout

    order = next(t["object_uuid"] for t in truth if t["type"] == "order-completed")
    events = sum(1 for t in truth if t["object_uuid"] == order)
    before = _run(["history", order], env)
    assert before.returncode == 1 and "run `covage build` first" in before.stdout  # the marts tell the story
    assert _run(["build"], env).returncode == 0
    ref = next(
        t["data"]["kosc_order_ref"] for t in truth if t["object_uuid"] == order and t["type"] == "order-submitted"
    )
    service = next(
        t["data"]["service_uuid"] for t in truth if t["object_uuid"] == order and t["type"] == "order-completed"
    )
    with_service = events + sum(1 for t in truth if t["object_uuid"] == service)
    # the uuid; or the reference operators quote, which names the order and the service it created
    for key, objects, count in ((order, [order], events), (ref, [order, service], with_service)):
        narrow = _run(["history", key], {**env, "COLUMNS": "80"})
        assert narrow.returncode == 0, narrow.stdout + narrow.stderr
        labels = narrow.stdout.splitlines()[: len(objects)]
        assert labels[0] == f"order {order} (ref {ref})"
        assert labels[1:] == ([f"service {service}, created by that order"] if len(objects) > 1 else [])
        assert f"{count} events (the warehouse)" in narrow.stdout
        # one timeline: numbered from 1 to the last event, order and service together
        numbers = [int(m) for m in re.findall(r"^│\s+(\d+) │", narrow.stdout, re.M)]
        assert numbers == list(range(1, count + 1)), numbers
        assert "submitted" in narrow.stdout and "completed" in narrow.stdout and ref in narrow.stdout
        assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    live = _run(["history", order, "--live"], env)
    assert live.returncode == 0, live.stderr
    assert f"{events} events (the API, as listed)" in live.stdout

    cri = next(t for t in truth if t["type"] == "order-cri")
    shown = _run(["events", "get", cri["event_uuid"]], env)
    assert shown.returncode == 0 and cri["event_uuid"] in shown.stdout
    assert "se=" not in shown.stdout
    missing = _run(["events", "get", "nosuchevent"], env)
    assert missing.returncode == 1 and "No event" in missing.stdout

    nothing = _run(["history", "not-an-object"], env)  # the marts exist: nothing for this one
    assert nothing.returncode == 1 and "No events" in nothing.stdout


def test_ingest_reports_failures_plainly(cli_env, tmp_path):
    env = {**cli_env, "COVAGE_API_URL": "http://127.0.0.1:9", "RUNTIME__REQUEST_MAX_ATTEMPTS": "1"}
    result = _run(["ingest"], env)
    assert result.returncode == 1
    assert "Ingestion stopped" in result.stdout
    assert "Nothing answers at COVAGE_API_URL=http://127.0.0.1:9" in result.stdout  # the URL, not "run again"
    assert TOKEN not in result.stdout + result.stderr
    bad = _run(["ingest"], {**env, "COVAGE_CURSOR_MODE": "sideways"})
    assert bad.returncode == 2 and "COVAGE_CURSOR_MODE" in bad.stdout


def test_order_info_refuses_locally_reports_429_and_posts(emulator_factory, cli_env, tmp_path):
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    emu = emulator_factory(start=now, speed=1.0, orders=120, history_days=20.0)
    env = {**cli_env, "COVAGE_API_URL": emu.url}
    order = emu.store.orders()[-1].order_uuid

    posted = _run(["order-info", order, "Hello there", "--stop-deferred"], env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    assert "Posted" in posted.stdout

    throttled = _run(["order-info", order, "Again"], env)  # the warehouse does not know yet: the API says no
    assert throttled.returncode == 3 and "throttled" in throttled.stdout

    assert _run(["ingest"], env).returncode == 0
    refused = _run(["order-info", order, "Again"], env)  # now the warehouse knows: refused locally
    assert refused.returncode == 3 and "Try again in" in refused.stdout
    rows = [
        r
        for r in warehouse(load_settings(data_dir=tmp_path))
        if r["object_uuid"] == order and r["type"] == "order-info"
    ]
    assert any('"stop_deferred":true' in r["data"].replace(" ", "") for r in rows)

    other = emu.store.orders()[-2].order_uuid  # no message yet: the API itself answers
    forbidden = _run(["order-info", other, "x"], {**env, "COVAGE_API_TOKEN": "readonly-token"})
    assert forbidden.returncode == 1 and "Not sent (403)" in forbidden.stdout
    assert "'admin' or 'delivery' group" in forbidden.stdout


def test_help_explains_every_command():
    result = subprocess.run([COVAGE, "--help"], capture_output=True, text=True)
    for command in ("ingest", "events", "history", "order-info", "emulator", "demo"):
        assert command in result.stdout
    ingest_help = subprocess.run([COVAGE, "ingest", "--help"], capture_output=True, text=True).stdout
    assert "--full-refresh" in ingest_help and "--since" in ingest_help and "COVAGE_API_URL" in ingest_help


_SHOW_SETTINGS = """
import json
from covage_pipeline.settings import load_settings
s = load_settings()
print(json.dumps({"api_url": s.api_url, "page_size": s.page_size, "lookback_s": s.lookback_s,
                  "token": s.api_token, "repr": repr(s), "duckdb": str(s.duckdb_path)}))
"""


def _settings_in(cwd: Path, env: dict) -> dict:
    """dlt reads `.dlt/` of the working directory once per process: ask a fresh process."""
    out = subprocess.run([sys.executable, "-c", _SHOW_SETTINGS], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return __import__("json").loads(out.stdout.strip().splitlines()[-1])


def test_settings_come_from_dlt_config_then_env_then_arguments(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVAGE_", "SOURCES__COVAGE"))}
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[sources.covage]\napi_url = "https://extranet.example"\npage_size = 250\nlookback_s = 60\n'
    )
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.covage]\napi_token = "from-secrets"\n')
    from_dlt = _settings_in(tmp_path, env)
    assert from_dlt["api_url"] == "https://extranet.example"
    assert from_dlt["page_size"] == 250 and from_dlt["lookback_s"] == 60
    assert from_dlt["token"] == "from-secrets"
    assert "from-secrets" not in from_dlt["repr"]

    env.update(
        {"COVAGE_API_URL": "http://env.example", "COVAGE_API_TOKEN": "from-env", "COVAGE_DATA_DIR": "/srv/covage"}
    )
    from_env = _settings_in(tmp_path, env)
    assert from_env["api_url"] == "http://env.example" and from_env["token"] == "from-env"
    assert from_env["duckdb"] == "/srv/covage/covage.duckdb"
    assert from_env["page_size"] == 250  # still from dlt's config

    defaults = _settings_in(tmp_path.parent, {k: v for k, v in env.items() if not k.startswith("COVAGE_")})
    assert defaults["lookback_s"] == 900.0 and defaults["duckdb"] == "data/covage.duckdb"
    assert load_settings(page_size=10).page_size == 10
    with pytest.raises(ValueError, match="COVAGE_API_AUTH"):
        load_settings(auth_type="digest")


def test_build_full_refresh_reaches_events_already_built(emulator_factory, cli_env, tmp_path):
    """An incremental build reads only new loads; `--full-refresh` (after an upgrade) reads them all."""
    import duckdb

    emu = emulator_factory(orders=150)
    env = {**cli_env, "COVAGE_API_URL": emu.url}
    assert _run(["ingest"], env).returncode == 0
    # a selection on a fresh warehouse: the tests towards models not built yet wait for them
    selected = _run(["build", "--select", "stg_events"], env)
    assert selected.returncode == 0, selected.stdout + selected.stderr
    assert re.search(r"dbt build: \d+ of \d+ models and tests passed .* in \d+\.\d s", selected.stdout)
    assert "Analysts' copy" not in selected.stdout  # a partial build publishes nothing
    db = str(load_settings(data_dir=tmp_path).duckdb_path)

    def stale_rows() -> int:
        with duckdb.connect(db) as con:
            return con.execute("select count(*) from main_staging.stg_events where event_type = 'stale'").fetchone()[0]

    with duckdb.connect(db) as con:  # as if an older version of the models had typed these events
        con.execute("update main_staging.stg_events set event_type = 'stale' where object_type = 'order'")
    assert stale_rows() > 0
    assert _run(["build", "--select", "stg_events"], env).returncode == 0
    assert stale_rows() > 0  # nothing new was loaded: the incremental build leaves them
    refreshed = _run(["build", "--select", "stg_events", "--full-refresh"], env)
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    assert stale_rows() == 0
