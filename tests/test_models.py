"""The dbt project on a warehouse built from the emulator: staging types and cleans, tests gate."""

from __future__ import annotations

import duckdb
import pytest

from covage_pipeline.emulator import catalogue
from covage_pipeline.models import build, dbt
from covage_pipeline.pipeline import ingest
from covage_pipeline.warehouse import query

from .extraction import settings_for


@pytest.fixture
def warehouse(emulator_factory, tmp_path):
    emu = emulator_factory(orders=400, malformed_share=0.03, unknown_type_share=0.05)
    settings = settings_for(emu, tmp_path)
    ingest(settings)
    return emu, settings


def test_build_types_every_documented_payload_field(warehouse):
    emu, settings = warehouse
    result = build(settings)
    assert result.success, result.error
    assert result.statuses and not result.failures
    staged = {r["event_uuid"]: r for r in query(settings, "select * from main_staging.stg_events")}
    truth = emu.store.ground_truth(emu.url)
    assert set(staged) == {t["event_uuid"] for t in truth}
    fields = {
        "order-submitted": {"kosc_order_ref": "kosc_order_ref"},
        "order-rejected": {k: k for k in ("reject_reason", "reject_code", "reject_subcode", "reject_description")},
        "order-cancelled": {"cancel_reason": "reason"},
        "order-information-from-provider": {"message": "message", "provider_description": "description"},
        "order-appointment-agreed": {"appointment_start_raw": "start_date", "appointment_end_raw": "end_date"},
        "order-localloop-desaturation-planned": {"desaturation_type": "desaturation_type"},
        "order-completed": {"service_uuid": "service_uuid", "service_alias": "service_alias"},
    }
    checked = 0
    for t in truth:
        for column, key in fields.get(t["type"], {}).items():
            assert staged[t["event_uuid"]][column] == (t["data"] or {}).get(key), (t, column)
            checked += 1
        if t["type"] == "order-info" and t["data"] and "stop_deferred" in t["data"]:
            assert staged[t["event_uuid"]]["stop_deferred"] is t["data"]["stop_deferred"]
    assert checked > 500
    unknown = {u for u, r in staged.items() if r["is_unknown_type"]}
    assert unknown == {t["event_uuid"] for t in truth if t["type"] in catalogue.UNDOCUMENTED_EVENTS}
    fallback = [r for r in staged.values() if r["is_event_date_fallback"]]
    assert fallback and all(r["business_time"] == r["creation_date"] for r in fallback)


def test_a_failing_dbt_test_fails_the_build_and_docs_generate(warehouse):
    _, settings = warehouse
    con = duckdb.connect(str(settings.duckdb_path))
    con.execute(f"insert into {settings.dataset}.events select * from {settings.dataset}.events limit 1")
    con.close()
    result = build(settings)
    assert not result.success
    assert any("unique" in node for node in result.failures)
    assert "model.covage.stg_events" not in result.statuses or result.statuses["model.covage.stg_events"] == "skipped"
    # the documentation still generates, from the tables as they are: the raw events, no model
    import json

    assert dbt(settings, "docs", "generate").success
    catalog = json.loads((settings.dbt_project / "target" / "catalog.json").read_text())
    assert {"event_uuid", "modification_date", "data"} <= set(
        catalog["sources"]["source.covage.covage.events"]["columns"]
    )
    assert [node for node in catalog["nodes"] if node.startswith("model.")] == []  # the seed only


def test_one_event_catalogue_for_sql_python_and_the_emulator():
    """The seed event_types is the catalogue: the emulator emits its types (and no other documented
    one), the alerts and the models read it, and no model lists event types of its own."""
    import re

    from covage_pipeline.catalogue import alert_kinds, event_types
    from covage_pipeline.models import SQL_DIR

    assert set(event_types()) == catalogue.DOCUMENTED_EVENTS
    assert alert_kinds() == {
        "order-rejected": "rejection",
        "order-localloop-saturation": "saturation",
        "order-network-saturation": "saturation",
        "order-appointment-missed": "missed_appointment",
        "order-on-site-intervention-failed": "failed_intervention",
    }
    # where SQL names event types: the one-line summaries, and the few rules about one type
    places = {}
    for path in (SQL_DIR / "models").rglob("*.sql"):
        named = set(re.findall(r"'((?:order|service)-[a-z-]+)'", path.read_text()))
        if named:
            places[path.name] = named
    assert not any(len(named) > 8 for named in places.values()), places  # no list of types
    # an event the catalogue says reveals a kind is one no other kind emits, and every event that
    # only one kind emits says so
    from covage_pipeline.emulator.catalogue import ALLOWED_EVENTS

    for kind, allowed in ALLOWED_EVENTS.items():
        others = set().union(*(a for k, a in ALLOWED_EVENTS.items() if k != kind))
        revealing = {name for name, t in event_types().items() if t.reveals_kind == kind}
        assert not revealing & others, (kind, revealing & others)
        assert allowed - others <= revealing, (kind, allowed - others - revealing)


def test_every_model_and_column_is_documented(warehouse):
    """dbt docs generate: each model and each column the warehouse has carries a description."""
    import json

    _, settings = warehouse
    assert build(settings).success
    assert dbt(settings, "docs", "generate").success
    manifest = json.loads((settings.dbt_project / "target" / "manifest.json").read_text())
    catalog = json.loads((settings.dbt_project / "target" / "catalog.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) >= 18
    for unique_id, node in models.items():
        assert node["description"].strip(), f"{unique_id} has no description"
        documented = {name for name, col in node["columns"].items() if col["description"].strip()}
        actual = set(catalog["nodes"][unique_id]["columns"])
        assert actual <= documented, f"{unique_id}: undocumented columns {sorted(actual - documented)}"
        # the types the yml gives (the Dagster UI's Type column) are the types the warehouse built
        built = {name: col["type"].lower() for name, col in catalog["nodes"][unique_id]["columns"].items()}
        assert {name: col.get("data_type") for name, col in node["columns"].items()} == built, unique_id


def test_a_release_that_adds_a_catalogue_column_builds_on_an_old_warehouse(warehouse):
    """A warehouse built by an earlier release holds the event catalogue without a newer column:
    the next `covage build` (not a full refresh) reloads it whole instead of failing."""
    import duckdb

    _, settings = warehouse
    assert build(settings).success
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("alter table main_staging.event_types drop column cancels_appointment")
    result = build(settings)
    assert result.success, result.error
    columns = {r["column_name"] for r in query(settings, "describe main_staging.event_types")}
    assert "cancels_appointment" in columns


def test_every_description_reads_as_rendered():
    """As dbt docs and the Dagster UI show them: no Jinja left, and a doc block only ever stands as
    a paragraph of its own, never in the middle of a sentence."""
    import json
    import re

    from covage_pipeline.models import SQL_DIR, prepare_manifest
    from covage_pipeline.settings import load_settings

    manifest = json.loads(prepare_manifest(load_settings()).read_text())
    blocks = [doc["block_contents"].strip() for doc in manifest["docs"].values() if doc["name"] != "__overview__"]
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")]
    texts = [(n["name"], n["description"]) for n in nodes]
    texts += [(f"{n['name']}.{c}", col["description"]) for n in nodes for c, col in n["columns"].items()]
    texts += [(f"source {s['name']}", s["description"]) for s in manifest["sources"].values()]
    assert len(texts) > 300 and SQL_DIR.exists()
    for name, text in texts:
        assert not re.search(r"\{\{|\{%|\}\}|%\}", text), f"{name}: unrendered Jinja in {text!r}"
        for block in blocks:
            at = text.find(block)
            if at < 0:
                continue
            before, after = text[:at], text[at + len(block) :]
            assert not before.strip() or before.endswith("\n\n") or before.rstrip()[-1] in ".:)", (name, before[-60:])
            assert not after.strip() or after.startswith("\n"), (name, after[:60])


def test_engines_not_ported_say_so_instead_of_failing_midway(tmp_path):
    from covage_pipeline.settings import load_settings

    for engine in ("bigquery", "snowflake"):
        result = build(load_settings(destination=engine, data_dir=tmp_path))
        assert not result.success and "not ported" in result.error and "docs/warehouses.md" in result.error
    with pytest.raises(ValueError, match="COVAGE_DESTINATION must be one of"):
        load_settings(destination="oracle")
    assert load_settings(destination="motherduck", data_dir=tmp_path).dbt_schema == "main"


def test_the_manifest_is_parsed_only_when_the_project_changed(tmp_path, monkeypatch):
    """Every Dagster step process loads the definitions: they must not all rewrite the manifest."""
    import os
    import shutil

    from covage_pipeline import models
    from covage_pipeline.settings import load_settings

    project = tmp_path / "sql"
    shutil.copytree(models.SQL_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    settings = load_settings(data_dir=tmp_path / "data", dbt_project_dir=project)

    manifest = models.prepare_manifest(settings)
    assert manifest == project / "target" / "manifest.json" and manifest.exists()
    parsed_at = manifest.stat().st_mtime_ns
    assert models.prepare_manifest(settings).stat().st_mtime_ns == parsed_at  # fresh: not parsed again

    model = project / "models" / "marts" / "orders.sql"
    earlier = model.stat().st_mtime - 60
    os.utime(manifest, (earlier, earlier))  # as if orders.sql had been edited after the last parse
    reparsed = models.prepare_manifest(settings).stat().st_mtime_ns
    assert reparsed > parsed_at  # parsed again
    assert models.prepare_manifest(settings).stat().st_mtime_ns == reparsed
    assert [p.name for p in (project / "target").iterdir() if p.name.startswith("parse-")] == []
