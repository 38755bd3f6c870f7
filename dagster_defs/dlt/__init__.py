"""The dlt side in Dagster: the `events` table as an asset, loaded by `covage ingest`'s own runner
through `DagsterDltResource`, and the checks that guard it.

It never moves the cursor itself: the dlt source does, in the destination's state, which is what
survives the resource dropping the local pipeline folder before each run.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from covage_pipeline.destinations import make_pipeline
from covage_pipeline.pipeline import IngestError, ingest
from covage_pipeline.settings import Settings
from covage_pipeline.source import covage_source
from covage_pipeline.warehouse import raw_query

from ..settings import CovageSettings
from ..warehouse import POOL, WAREHOUSE_TAGS

EVENTS_KEY = dg.AssetKey(["covage", "events"])  # also the dbt source `covage.events`
OWNERS = ["team:data"]


class CovageDltTranslator(DagsterDltTranslator):
    """The dlt resource `events` is the dbt source `covage.events`: one asset, one lineage."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        destination = data.destination.destination_name if data.destination else "duckdb"
        return spec.replace_attributes(
            key=EVENTS_KEY,
            deps=[],
            group_name="ingestion",
            owners=OWNERS,
            kinds={"dlt", destination},
            description=(
                "Every event of the Covage events API, merged on event_uuid (raw schema "
                "`COVAGE_DATASET`). Loaded incrementally by creation_date with a lookback; the "
                "cursor lives in dlt's state in the destination. Bad items go to events_quarantine."
            ),
        )


def _cursor_text(cursor: dict | None) -> str:
    return cursor["creation_date"] if cursor else ""


def build_ingestion_assets(settings: Settings) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=covage_source(settings),
        dlt_pipeline=make_pipeline(settings),
        name="covage_ingestion",
        dagster_dlt_translator=CovageDltTranslator(),
        pool=POOL,
        op_tags=WAREHOUSE_TAGS,
    )
    def covage_ingestion(context: dg.AssetExecutionContext, dlt: DagsterDltResource, covage: CovageSettings):
        """`covage ingest`, chunk by chunk, each chunk loaded by DagsterDltResource."""
        settings = covage.settings()

        def run_chunk(pipeline, source, refresh):
            # the resource drops the local state and restores it from the destination first
            for _ in dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline, refresh=refresh):
                pass

        def on_page(stats) -> None:
            if stats.pages % 100 == 0:
                context.log.info(f"{stats.pages} pages, {stats.received:,} events ({stats.events_per_s:,.0f}/s)")

        try:
            summary = ingest(settings, run_chunk=run_chunk, on_page=on_page)
        except IngestError as exc:
            raise dg.Failure(description=str(exc)) from None
        stats = summary.stats
        context.log.info(
            f"{stats.new:,} new, {stats.updated:,} updated, {stats.duplicates:,} unchanged re-reads, "
            f"{stats.quarantined:,} quarantined; cursor {_cursor_text(summary.cursor)}"
        )
        yield dg.MaterializeResult(
            asset_key=EVENTS_KEY,
            metadata={
                "dagster/row_count": dg.MetadataValue.int(summary.events_in_table or 0),
                "new_events": dg.MetadataValue.int(stats.new),
                "updated_events": dg.MetadataValue.int(stats.updated),
                "unchanged_rereads": dg.MetadataValue.int(stats.duplicates),
                "quarantined": dg.MetadataValue.int(stats.quarantined),
                "pages": dg.MetadataValue.int(stats.pages),
                "chunks": dg.MetadataValue.int(summary.chunks),
                "cursor_creation_date": dg.MetadataValue.text(_cursor_text(summary.cursor)),
                "seconds": dg.MetadataValue.float(round(summary.seconds, 2)),
                "warehouse": dg.MetadataValue.text(settings.warehouse_name),
            },
        )

    return covage_ingestion


def build_ingestion_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    table = f"{settings.dataset}.events"

    # a lake appends each newer version of an event (stg_events keeps the latest): there, no event
    # twice in one load
    lake = settings.destination == "spark"
    distinct = "event_uuid || '/' || _dlt_load_id" if lake else "event_uuid"

    @dg.asset_check(
        asset=EVENTS_KEY,
        blocking=True,
        pool=POOL,
        description="No event_uuid appears twice" + (" in one load (a lake appends versions)." if lake else "."),
    )
    def no_duplicate_event_uuid(covage: CovageSettings) -> dg.AssetCheckResult:
        row = raw_query(covage.settings(), f"select count(*) as n, count(distinct {distinct}) as d from {table}")[0]
        return dg.AssetCheckResult(
            passed=row["n"] == row["d"],
            metadata={"events": row["n"], "duplicates": row["n"] - row["d"]},
        )

    @dg.asset_check(
        asset=EVENTS_KEY,
        pool=POOL,
        description=f"The newest creation_date is less than {settings.freshness_minutes:g} minutes old "
        "(COVAGE_FRESHNESS_MINUTES).",
    )
    def events_are_fresh(covage: CovageSettings) -> dg.AssetCheckResult:
        settings = covage.settings()
        freshness = timedelta(minutes=settings.freshness_minutes)
        newest = raw_query(settings, f"select max(creation_date) as newest from {table}")[0]["newest"]
        now = datetime.now(UTC).replace(tzinfo=None)
        age = now - newest if newest else None
        return dg.AssetCheckResult(
            passed=age is not None and age <= freshness,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "newest_creation_date": str(newest),
                "age_minutes": round(age.total_seconds() / 60, 1) if age is not None else -1.0,
                "threshold_minutes": freshness.total_seconds() / 60,
            },
        )

    @dg.asset_check(
        asset=EVENTS_KEY,
        blocking=True,
        description="The committed cursor never moves backwards from one materialization to the next.",
    )
    def cursor_never_moves_backwards(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(EVENTS_KEY, limit=2).records
        cursors = [
            r.asset_materialization.metadata.get("cursor_creation_date")
            for r in records
            if r.asset_materialization is not None
        ]
        cursors = [c.value for c in cursors if c is not None]
        if len(cursors) < 2:
            return dg.AssetCheckResult(passed=True, metadata={"cursor": cursors[0] if cursors else ""})
        latest, previous = cursors
        return dg.AssetCheckResult(passed=latest >= previous, metadata={"cursor": latest, "previous": previous})

    return [no_duplicate_event_uuid, events_are_fresh, cursor_never_moves_backwards]
