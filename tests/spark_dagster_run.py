"""Run by tests/test_models_spark.py in a process of its own: the Dagster definitions on Spark,
the ingest-and-build job executed in-process, and what it did, as JSON on stdout.

Its own process because a local Spark's catalogue admits one process (JVM) at a time, and the
dbt asset runs dbt in a subprocess that opens it: the test process's own Spark session (the
other Spark tests') must not hold it meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from covage_pipeline.settings import load_settings
from covage_pipeline.spark import release, session
from covage_pipeline.warehouse import query
from dagster_defs import build_definitions
from dagster_defs.definitions import INGEST_JOB


def main(api_url: str, token: str, data_dir: str) -> None:
    os.environ["COVAGE_API_TOKEN"] = token  # each Dagster run resolves its secrets, as in production
    settings = load_settings(api_url=api_url, data_dir=Path(data_dir), destination="spark")
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance, raise_on_error=False)
    materialized = {
        e.materialization.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    out = {
        "success": result.success,
        "materialized": sorted(materialized),
        "new_events": materialized.get("covage/events", {}).get("new_events"),
        "row_counts": {k: m.get("dagster/row_count") for k, m in materialized.items()},
        "headline_figures": "headline_figures" in materialized.get("analysts/marts_copy", {}),
        "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
        "orders": query(settings, f"select count(*) as n from {settings.marts_schema}.orders")[0]["n"],
    }
    # views have no files of their own: written out here for the test to read as it reads tables
    spark = session(settings)
    for schema in (f"{settings.dbt_schema}_staging", settings.marts_schema):
        for table in spark.catalog.listTables(schema):
            if table.tableType == "VIEW":
                folder = Path(data_dir, "views", f"{schema}.db")
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(spark.table(f"{schema}.{table.name}").toArrow(), folder / f"{table.name}.parquet")
    # this process keeps its Spark (the row counts, the checks): released, the catalogue lets a
    # user's `covage headlines` in, and this process's next query starts Spark again
    release()
    env = {**os.environ, "COVAGE_DATA_DIR": data_dir, "COVAGE_DESTINATION": "spark"}
    covage = str(Path(sys.executable).with_name("covage"))
    headlines = subprocess.run([covage, "headlines"], env=env, capture_output=True, text=True, timeout=300)
    out["headlines"] = {"returncode": headlines.returncode, "stdout": headlines.stdout}
    out["headlines"]["stderr"] = headlines.stderr[-3000:]
    out["orders_after_release"] = query(settings, f"select count(*) as n from {settings.marts_schema}.orders")[0]["n"]
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
