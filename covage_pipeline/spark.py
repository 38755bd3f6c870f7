"""COVAGE_DESTINATION=spark: the Spark session the readers query the models in, configured as
dbt's (sql/profiles.yml, output `spark`, reads the same values through `models.dbt_env`).

One session a process, started on first use (Spark's own `getOrCreate`): in the process that
just built the models it is dbt's. The local catalogue (an embedded Derby metastore) admits one
process at a time, as DuckDB's file does: a long-lived process (Dagster's code server, whose
alert sensor reads the marts; a run about to start dbt in a subprocess) calls `release` to let
the others in.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .settings import Settings


def spark_conf(settings: Settings) -> dict[str, str]:
    """What sql/profiles.yml passes dbt-spark as `server_side_parameters`, for the same settings."""
    home = settings.spark_dir
    return {
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.warehouse.dir": f"{home}/warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={home}/metastore_db;create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # as dbt-spark sets it: the models are written for these semantics (null, not an error,
        # on a cast that fails, as DuckDB's try_cast)
        "spark.sql.ansi.enabled": "false",
    }


_released = False


def session(settings: Settings) -> Any:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    global _released
    if _released and SparkContext._jvm is not None:
        # Derby unregisters its driver when it shuts down: loaded again, it opens the catalogue
        SparkContext._jvm.java.lang.Class.forName("org.apache.derby.jdbc.EmbeddedDriver").newInstance()
        _released = False
    settings.spark_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def release() -> None:
    """Stops this process's Spark and closes the local catalogue, so that another process (dbt in
    a subprocess, the CLI) can open it; the next `session` starts again (about 2 s, the JVM kept).
    Neither Spark nor Derby offers one call for it: stopping Spark leaves Derby holding its files."""
    global _released
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # no Spark installed: nothing to release
        return
    spark = SparkSession.getActiveSession() or SparkSession._instantiatedSession
    if spark is None:
        return
    jvm = spark._jvm
    spark.stop()
    with contextlib.suppress(Exception):  # Derby reports a clean shutdown as an error (XJ015)
        jvm.java.sql.DriverManager.getConnection("jdbc:derby:;shutdown=true")
    _released = True


def rows(settings: Settings, sql: str, params: list | None = None, dialect: str = "duckdb") -> list[dict]:
    """Rows of a read query written in DuckDB's dialect (as every reader of the package writes
    them), translated by sqlglot; `?` placeholders become Spark's positional parameters."""
    import sqlglot

    statement = sql if dialect == "spark" else sqlglot.transpile(sql, read=dialect, write="spark")[0]
    table = session(settings).sql(statement, args=list(params) if params else None).toArrow()
    return [{k: _naive(v) for k, v in row.items()} for row in table.to_pylist()]


def _naive(value: Any) -> Any:
    """Timestamps as naive UTC, as the other engines' readers hand them back."""
    tzinfo = getattr(value, "tzinfo", None)
    if tzinfo is not None and hasattr(value, "astimezone"):
        from datetime import UTC

        return value.astimezone(UTC).replace(tzinfo=None)
    return value
