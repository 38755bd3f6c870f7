"""The warehouse as dlt sees it: the destination the settings name, and the pipeline that loads it.

Imported by the runner (which writes) and by the readers alike; it never loads anything itself.
"""

from __future__ import annotations

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.impl.postgres.configuration import PostgresCredentials

from .settings import Settings

PIPELINE_NAME = "covage"


def make_pipeline(settings: Settings) -> dlt.Pipeline:
    settings.prepare_data_dir()
    # Arrow rows get no _dlt_load_id unless asked; the dbt staging model reads only the loads it
    # has not seen (incremental), so every row must carry its load id. A constant dictionary
    # column: it costs next to nothing.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    # a loaded package keeps its job files (the rows, as parquet) unless told otherwise: a
    # backfill would leave hundreds of MB behind, and every tick a little more
    dlt.config["load.delete_completed_jobs"] = True
    if settings.destination == "postgres":
        credentials = PostgresCredentials(settings.resolved_postgres_url())
        if credentials.password is None:  # trust or peer authentication: dlt requires the field
            credentials.password = ""
        destination = dlt.destinations.postgres(credentials=credentials)
    elif settings.destination == "spark":
        # a lake: Parquet files Spark reads as tables (sql/macros/lake.sql registers them). No
        # merge in place there (plain Parquet; Delta's and Iceberg's Spark jars are not in
        # pyspark): the source appends only versions newer than the stored ones, and the staging
        # model keeps the latest of each event, by the same rule
        # the stored versions are looked up through dlt's SQL client over the files: its views must
        # list the files the previous chunk of the same run added
        destination = dlt.destinations.filesystem(bucket_url=settings.lake_location, always_refresh_views=True)
    elif settings.destination != "duckdb":
        # motherduck, bigquery, snowflake: credentials from dlt's own config and secrets
        # (DESTINATION__<NAME>__CREDENTIALS__...), as dlt documents for each
        destination = getattr(dlt.destinations, settings.destination)()
    else:
        # DuckDB's default (80% of RAM) lets its cache grow with the table; a loader needs little
        credentials = DuckDbCredentials(
            str(settings.duckdb_path), global_config={"memory_limit": settings.duckdb_memory_limit}
        )
        destination = dlt.destinations.duckdb(credentials)
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=destination,
        dataset_name=settings.dataset,
        pipelines_dir=str(settings.pipelines_dir),
    )


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    """Parquet for a lake (Spark reads it as tables); the destination's own choice elsewhere."""
    return "parquet" if pipeline.destination and pipeline.destination.destination_name == "filesystem" else None
