"""The dbt side in Dagster: every model of `sql/` as an asset, its dbt tests as asset checks, and
the analysts' copy of the marts published after each build.

The dbt source `covage.events` has the dlt asset's key, so the graph runs from the API to every
mart in one lineage. The manifest is prepared here when missing or stale (a fresh clone, an edit).
"""

import json
import os
import shutil
import sys
from collections.abc import Mapping
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from covage_pipeline.headlines import headline_figures
from covage_pipeline.locking import writer_lock
from covage_pipeline.models import dbt_environment, prepare_manifest
from covage_pipeline.publish import analysts_path, publish_marts
from covage_pipeline.settings import Settings
from covage_pipeline.warehouse import query

from ..dlt import OWNERS
from ..settings import CovageSettings
from ..warehouse import POOL, WAREHOUSE_TAGS
from . import charts
from .lineage import column_lineage

ANALYSTS_COPY_KEY = dg.AssetKey(["analysts", "marts_copy"])
CHARTED = {"order_lifecycle_durations", "rejection_stats"}
# dagster-dbt gives each invocation its own folder under sql/target (about 5 MB: manifest,
# compiled SQL, run results, logs); a 5-minute schedule would leave 1.4 GB a day. The newest are
# kept to look into a failed build.
KEEP_TARGET_FOLDERS = 5


def _layer(dbt_resource_props: Mapping[str, Any]) -> str | None:
    """staging, intermediate or marts for a model; staging for the seed (the event catalogue)."""
    kind = dbt_resource_props["resource_type"]
    return "staging" if kind == "seed" else dbt_resource_props["fqn"][1] if kind == "model" else None


class CovageDbtTranslator(DagsterDbtTranslator):
    """Models and seeds keyed by layer (`staging/stg_events`, `marts/orders`) and grouped by it."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if layer := _layer(dbt_resource_props):
            return dg.AssetKey([layer, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return _layer(dbt_resource_props) or super().get_group_name(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS


def dbt_project(settings: Settings) -> DbtProject:
    """The project in sql/, its manifest parsed when missing or older than the SQL (about 6 s)."""
    prepare_manifest(settings)  # (dbt sees the warehouse's settings for the parse alone)
    project = settings.dbt_project
    return DbtProject(project_dir=project, profiles_dir=project, target=settings.destination)


class CovageDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, told dbt's version instead of asking `dbt --version`.

    The resource is built afresh for every run and runs `dbt --version` in a subprocess each time:
    dbt's imports alone, 5 to 7 s of every scheduled run. The executable is this environment's
    own dbt, so its version is the installed dbt-core's.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(version("dbt-core"))


def dbt_resource(settings: Settings, project: DbtProject) -> DbtCliResource:
    # the environment's own dbt: the definitions load with no virtual environment activated
    executable = Path(sys.executable).parent / "dbt"
    return CovageDbtCliResource(project_dir=project, dbt_executable=str(executable), target=settings.destination)


class BuildConfig(dg.Config):
    full_refresh: bool = False  # rebuild incremental models from scratch (the daily build)


def build_dbt_assets(project: DbtProject) -> dg.AssetsDefinition:
    # the source tests (on dlt's events) become checks of the ingestion asset, not observations
    translator = CovageDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
    )

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        name="covage_dbt",
        pool=POOL,
        op_tags=WAREHOUSE_TAGS,
    )
    def covage_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, covage: CovageSettings, config: BuildConfig):
        """dbt build: models, then their tests (as asset checks); a failing test fails the run."""
        settings = covage.settings()
        args = ["build", *(["--full-refresh"] if config.full_refresh else [])]
        # DuckDB has one writer: row counts and charts read the warehouse after dbt has let go of
        # it, so the events are held until the build ends, then reported with them attached.
        # (dagster-dbt's fetch_row_counts would open the file in this process through the dbt
        # adapter and keep it open, with a configuration no other reader here could match.)
        if settings.destination == "spark":  # dbt's own Spark, in its process, opens the catalogue
            from covage_pipeline.spark import release

            release()
        # the one writer of the warehouse, whoever else (the CLI, a notebook's build) wants it
        with writer_lock(settings, "Dagster's dbt build", context.log.info):
            # the warehouse's settings (a password among them) reach dbt's process only: the
            # environment is copied when dbt starts, then this process's is as it was
            with dbt_environment(settings):
                invocation = dbt.cli(args, context=context)
            try:
                events = list(invocation.stream())
            finally:
                _keep_parse_state(invocation.target_path)
                _prune_target_folders(invocation.target_path, KEEP_TARGET_FOLDERS)
        # the invocation's own manifest: its relation names are those of the compiled SQL (the
        # definitions' manifest may have been parsed for another target)
        run_manifest = invocation.target_path / "manifest.json"
        manifest = json.loads(run_manifest.read_text()) if run_manifest.exists() else invocation.manifest
        keys = {e.output_name: context.asset_key_for_output(e.output_name) for e in events if isinstance(e, dg.Output)}
        counts = _row_counts(settings, list(keys.values()))
        for event in events:
            if isinstance(event, dg.Output):
                key = keys[event.output_name]
                extra = {"dagster/row_count": dg.MetadataValue.int(counts[key])}
                unique_id = event.metadata["unique_id"].value
                if lineage := column_lineage(manifest, unique_id, invocation.target_path, translator):
                    extra["dagster/column_lineage"] = dg.MetadataValue.column_lineage(lineage)
                if key.path[-1] in CHARTED:
                    extra["chart"] = _chart(settings, key.path[-1])
                event = event.with_metadata({**event.metadata, **extra})
            yield event

    return covage_dbt


def _keep_parse_state(run_target: Path) -> None:
    """The invocation's parse state becomes the project's, where the next invocation starts from.

    dagster-dbt copies `target/partial_parse.msgpack` into each invocation's folder, never back.
    dbt parses the whole project again when the profile differs from the one the state was saved
    with (the install's `dbt parse` saw other paths), so every scheduled run parsed from scratch.
    """
    fresh = run_target / "partial_parse.msgpack"
    if fresh.exists():
        staged = run_target.parent / f".{run_target.name}.msgpack"
        shutil.copy(fresh, staged)
        os.replace(staged, run_target.parent / fresh.name)  # a reader never sees half a file


def _prune_target_folders(latest: Path, keep: int) -> None:
    """Deletes all but the `keep` newest invocation folders of this asset beside `latest`."""
    name = latest.name.split("-")[0]  # <op name>-<run id>-<unique id>
    folders = sorted(latest.parent.glob(f"{name}-*"), key=lambda folder: folder.stat().st_mtime, reverse=True)
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)


def _row_counts(settings: Settings, keys: list[dg.AssetKey]) -> dict[dg.AssetKey, int]:
    """Every built model's rows, in one query: a connection (on Spark a job) per model cost seconds."""
    if not keys:
        return {}
    counts = " union all ".join(
        f'select {i} as i, count(*) as n from {settings.dbt_schema}_{key.path[0]}."{key.path[1]}"'
        for i, key in enumerate(keys)
    )
    return {keys[row["i"]]: row["n"] for row in query(settings, counts)}


def _chart(settings: Settings, mart: str) -> dg.MetadataValue:
    m = settings.marts_schema
    if mart == "rejection_stats":
        rows = query(settings, f"select * from {m}.rejection_stats where period = 'month' order by submission_month")
        return charts.rejection_rate_trend(rows, settings.chart_months)
    rows = query(
        settings,
        f"select * from {m}.lifecycle_stats where period = 'month' and stage = 'lead_time' order by submission_month",
    )
    return charts.lead_time_trend(rows, settings.chart_months)


FORECAST_CALIBRATION_KEY = dg.AssetKey(["marts", "forecast_calibration"])
# fewer past forecasts whose answer is known than this, and the shares say little yet
FORECASTS_TO_JUDGE = 100


def build_forecast_check() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=FORECAST_CALIBRATION_KEY,
        pool=POOL,
        description=(
            "Past delivery forecasts were calibrated: of the orders forecast at past weekly cutoffs, "
            "90% +/- 5 points completed by their p90 date and 50% +/- 10 by their p50 date "
            f"(judged from {FORECASTS_TO_JUDGE} forecasts whose answer is known)."
        ),
    )
    def forecast_is_calibrated(covage: CovageSettings) -> dg.AssetCheckResult:
        settings = covage.settings()
        row = query(settings, f"select * from {settings.marts_schema}.forecast_calibration where period = 'overall'")[0]
        judged = row["orders_forecast"] or 0
        p50, p90 = row["share_completed_by_p50"], row["share_completed_by_p90"]
        enough = judged >= FORECASTS_TO_JUDGE
        passed = not enough or (abs(float(p90) - 0.9) <= 0.05 and abs(float(p50) - 0.5) <= 0.1)
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "forecasts_judged": judged,
                "share_completed_by_p50": float(p50) if p50 is not None else -1.0,
                "share_completed_by_p90": float(p90) if p90 is not None else -1.0,
                "verdict": "calibrated" if enough and passed else "off" if enough else "too few to judge yet",
            },
        )

    return forecast_is_calibrated


def build_publish_asset(marts: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=ANALYSTS_COPY_KEY,
        deps=marts,
        group_name="publish",
        owners=OWNERS,
        kinds={"duckdb"},
        pool=POOL,
        op_tags=WAREHOUSE_TAGS,
        description=(
            "A read-only copy of the marts for analysts (notebooks, `covage sql`), replaced atomically "
            "after each build so readers never hold the warehouse's one writer lock. On PostgreSQL the "
            "marts are read in place and nothing is copied."
        ),
    )
    def marts_copy(context: dg.AssetExecutionContext, covage: CovageSettings) -> dg.MaterializeResult:
        settings = covage.settings()
        figures = headline_figures(settings)
        preview = "| | figure | value |\n| --- | --- | --- |\n" + "\n".join(
            f"| {f.section} | {f.label} | {f.value} |" for f in figures
        )
        metadata: dict[str, Any] = {"headline_figures": dg.MetadataValue.md(preview)}
        if settings.destination == "duckdb":
            with writer_lock(settings, "Dagster's analysts' copy", context.log.info):
                counts = publish_marts(settings)
            context.log.info(f"published {len(counts)} marts to {analysts_path(settings)}")
            metadata.update(
                path=dg.MetadataValue.path(str(analysts_path(settings))),
                marts=dg.MetadataValue.int(len(counts)),
                rows=dg.MetadataValue.json(counts),
            )
        return dg.MaterializeResult(metadata=metadata)

    return marts_copy
