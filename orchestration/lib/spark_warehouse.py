"""The customer warehouse on Spark: the raw tables dbt reads, copied from the DuckDB warehouse into Spark.

The collect stage (and the design stage's campaign plan) write into the DuckDB file. To build the same dbt
models on Spark (`dbt build --target spark`), every table the dbt project declares as a source is copied
into a Spark table of the same schema and name, with the same column types: text stays text (ids keep their
leading zeros), dates stay dates, timestamps stay wall-clock timestamps, decimals and doubles keep their
type. The copy goes through one Parquet file per table, which both engines read and write natively.

Spark is opened with the `server_side_parameters` of the dbt target itself (dbt_project/profiles.yml), so
the loader writes into the same metastore and warehouse directory that dbt then builds in. The local
metastore is an embedded Derby database, which one process opens at a time: load, then run dbt, then read.

    python -m orchestration.lib.spark_warehouse --warehouse data/warehouse.duckdb   # load the sources
    dbt build --target spark --profiles-dir dbt_project --project-dir dbt_project --vars '{as_of_month: ...}'
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import yaml

from orchestration.lib.dbt_project import DBT_PROJECT_DIR

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROFILE_NAME = "crm_warehouse"
SPARK_TARGET = "spark"


@dataclass(frozen=True)
class SourceTable:
    """A table the dbt project reads as a source: `schema.name` in both warehouses."""

    schema: str
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


def dbt_source_tables(project_dir: Path = DBT_PROJECT_DIR) -> list[SourceTable]:
    """Every table declared under `sources:` in the project's model files, in file and declaration order."""
    tables = []
    for properties_file in sorted((project_dir / "models").rglob("*.yml")):
        properties = yaml.safe_load(properties_file.read_text()) or {}
        for source in properties.get("sources", []):
            schema = source.get("schema", source["name"])
            tables.extend(SourceTable(schema, table["name"]) for table in source.get("tables", []))
    return tables


def spark_session_parameters(
    target: str = SPARK_TARGET,
    profiles_dir: Path = DBT_PROJECT_DIR,
    environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Spark configuration of a `method: session` dbt target, rendered as dbt renders it (env_var(...)
    resolved against `environment`, default the process environment)."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ if environment is None else environment))
    raw_profiles = read_profile(str(profiles_dir))
    _, output = Profile.render_profile(raw_profiles[PROFILE_NAME], PROFILE_NAME, target, ProfileRenderer({}))
    if output.get("type") != "spark" or output.get("method") != "session":
        raise ValueError(
            f"dbt target {target!r} is not an in-process Spark session (type spark, method session): "
            f"type {output.get('type')!r}, method {output.get('method')!r}"
        )
    parameters = {key: str(value) for key, value in (output.get("server_side_parameters") or {}).items()}
    # dbt-spark runs every session with ANSI mode off (Spark 4 turns it on by default); so does every other
    # user of this session, so that a query means the same in a model and in a Python stage.
    parameters["spark.sql.ansi.enabled"] = "false"
    return parameters


def quiet_pyspark_import() -> None:
    """pyspark warns on import that it does not fully support pandas 3; the loop's Spark stages exchange data with
    pandas only through Parquet files and plain rows (tested on both engines), so that warning is not for the
    person running the loop. Only that message is filtered."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def open_spark(parameters: Mapping[str, Any]) -> SparkSession:
    """The process's Spark session: the one already open, else a new one with Hive support (the metastore dbt
    uses) and the given configuration.

    Spark's log shows errors only: a table with wall-clock timestamps (`timestamp_ntz`) is stored in Spark's own
    metastore format, with a warning and a Java stack trace each time its schema changes, which is expected here.
    """
    quiet_pyspark_import()
    # pyspark is the optional Spark engine (the `spark` extra): imported only when a Spark session is wanted.
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("crm-loop").enableHiveSupport()
    for key, value in parameters.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def copy_sources_to_spark(
    warehouse: Path, spark: SparkSession, tables: list[SourceTable] | None = None
) -> dict[str, int]:
    """Replace each source table in Spark with the DuckDB warehouse's copy; returns the rows copied per table.

    A table missing from the DuckDB file stops the copy with its name: dbt would fail on it anyway, later and
    less clearly.
    """
    tables = dbt_source_tables() if tables is None else tables
    copied = {}
    with (
        tempfile.TemporaryDirectory(prefix="crm-spark-load-") as staging,
        duckdb.connect(str(warehouse), read_only=True) as con,
    ):
        listed = con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()
        existing = {name for (name,) in listed}
        missing = [table.qualified_name for table in tables if table.qualified_name not in existing]
        if missing:
            raise LookupError(f"{warehouse} has no table {', '.join(missing)}: run the collect stage first")
        for table in tables:
            parquet_file = Path(staging) / f"{table.schema}.{table.name}.parquet"
            con.execute(f"copy (select * from {table.qualified_name}) to '{parquet_file}' (format parquet)")
            spark.sql(f"create database if not exists {table.schema}")
            frame = spark.read.parquet(str(parquet_file))
            frame.write.mode("overwrite").format("parquet").saveAsTable(table.qualified_name)
            copied[table.qualified_name] = spark.table(table.qualified_name).count()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.lib.spark_warehouse",
        description="Copy the dbt project's source tables from the DuckDB warehouse into Spark (dbt target spark).",
    )
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=Path(os.environ.get("CRM_WAREHOUSE", "data/warehouse.duckdb")),
        help="the DuckDB warehouse file (default $CRM_WAREHOUSE, else data/warehouse.duckdb)",
    )
    parser.add_argument("--target", default=SPARK_TARGET, help="the dbt target whose Spark session to load into")
    arguments = parser.parse_args(argv)
    if not arguments.warehouse.exists():
        print(f"no DuckDB warehouse at {arguments.warehouse}", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    already_open = SparkSession.getActiveSession()  # a caller's session (dbt run in this process) stays open
    spark = open_spark(spark_session_parameters(arguments.target))
    try:
        copied = copy_sources_to_spark(arguments.warehouse, spark)
    finally:
        if already_open is None:
            spark.stop()
    for table, rows in copied.items():
        print(f"{table:<28} {rows:>10,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
