"""The CRI archive in Dagster: downstream of the events, so every new intervention report is
downloaded in the same run that loaded it, well within its links' 30 minutes."""

import dagster as dg

from covage_pipeline.reports import archive_reports

from ..dlt import EVENTS_KEY, OWNERS
from ..settings import CovageSettings
from ..warehouse import POOL, WAREHOUSE_TAGS

REPORTS_KEY = dg.AssetKey(["covage", "intervention_reports"])


def build_reports_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORTS_KEY,
        deps=[EVENTS_KEY],
        group_name="ingestion",
        owners=OWNERS,
        kinds={"dlt", "files"},
        pool=POOL,
        op_tags=WAREHOUSE_TAGS,
        description=(
            "Every file of every intervention report (CRI), archived before its link expires "
            "(COVAGE_REPORTS_URL: a folder or any fsspec URL), one row per file in intervention_reports."
        ),
    )
    def intervention_reports(context: dg.AssetExecutionContext, covage: CovageSettings) -> dg.MaterializeResult:
        settings = covage.settings()
        stats = archive_reports(settings)
        for reason, n in stats.reasons.items():
            context.log.warning(f"{n} report files not archived: {reason}")
        return dg.MaterializeResult(
            metadata={
                "cri_events": dg.MetadataValue.int(stats.events),
                "files_archived": dg.MetadataValue.int(stats.archived),
                "already_archived": dg.MetadataValue.int(stats.unchanged),
                "failed": dg.MetadataValue.int(stats.failed),
                "archive": dg.MetadataValue.text(settings.reports_location),
            }
        )

    return intervention_reports
