"""The whole loop on Spark (CRM_WAREHOUSE_ENGINE=spark): two monthly cycles give the same warehouse as on DuckDB.

Two `crm-loop run --cycles 2` over the same small simulated world, one per engine, each in its own process (a
local Spark's Derby metastore admits one JVM, and a JVM keeps the metastore it started with). The Spark run's
tables are then read by the Spark warehouse resource in a third process (this file run as a script) into
Parquet, with the column types the DuckDB resource returns. Every table the loop wrote on DuckDB (raw, dbt models
and seeds, the analyse, design, execute and measure stages' tables) must exist on Spark with the same rows:
text, flags and times equal, numbers within 1e-9 relative (the plans' hashes too); only what names a run or the
moment of writing differs (run ids; when files were collected, gates checked, plans approved, contacts sent).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_spark_warehouse import assert_same_rows, spark_environment, value_kind

pytestmark = [pytest.mark.slow, pytest.mark.proof]

PYTHON = sys.executable
CUSTOMERS = "300"
CYCLES = "2"
# Columns that name a run or the moment something was written: they differ between any two runs.
PER_RUN_COLUMNS = {
    "run_id",
    "collected_at",
    "rejected_at",
    "checked_at",
    "approved_at",
    "sent_at",
    "completed_at",
    "erased_at",
}


def loop_environment(home: Path, engine: str) -> dict[str, str]:
    environment = {
        **os.environ,
        "CRM_HOME": str(home),
        "CRM_SIM_CUSTOMERS": CUSTOMERS,
        "CRM_WAREHOUSE_ENGINE": engine,
        "CRM_LOCK_TIMEOUT_SECONDS": "30",
    }
    environment.pop("CRM_DBT_TARGET", None)
    if engine == "spark":
        environment |= spark_environment(home / "spark")
    return environment


def run_loop(home: Path, engine: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "orchestration.cli", "run", "--cycles", CYCLES],
        env=loop_environment(home, engine),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, f"the loop on {engine} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def export_spark_tables(out_dir: Path) -> None:
    """Every base table of the Spark warehouse (of this process's environment) as `<schema>.<table>.parquet`,
    read through the Spark warehouse resource."""
    from orchestration.resources.spark import SparkWarehouseResource

    warehouse = SparkWarehouseResource(crm_home=str(out_dir))
    tables = warehouse.table_columns()[["table_schema", "table_name"]].drop_duplicates()
    out_dir.mkdir(parents=True, exist_ok=True)
    for schema, table in tables.itertuples(index=False):
        warehouse.query(f"select * from {schema}.{table}").to_parquet(out_dir / f"{schema}.{table}.parquet")
    warehouse.spark().stop()


class Runs:
    def __init__(self, duckdb_file: Path, spark_tables: Path, spark_home: Path, spark_output: str) -> None:
        self.duckdb_file = duckdb_file
        self.spark_tables = spark_tables
        self.spark_home = spark_home
        self.spark_output = spark_output

    def duckdb_tables(self) -> list[str]:
        with duckdb.connect(str(self.duckdb_file), read_only=True) as con:
            listed = con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_type = 'BASE TABLE' order by 1"
            ).fetchall()
        return [name for (name,) in listed]

    def duckdb_rows(self, table: str) -> pd.DataFrame:
        with duckdb.connect(str(self.duckdb_file), read_only=True) as con:
            return con.execute(f"select * from {table}").df()

    def spark_rows(self, table: str) -> pd.DataFrame:
        return pd.read_parquet(self.spark_tables / f"{table}.parquet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    duckdb_home = tmp_path_factory.mktemp("loop_on_duckdb")
    spark_home = tmp_path_factory.mktemp("loop_on_spark")
    run_loop(duckdb_home, "duckdb")
    spark_output = run_loop(spark_home, "spark")
    spark_tables = spark_home / "exported"
    exported = subprocess.run(
        [PYTHON, __file__, str(spark_tables)],
        env=loop_environment(spark_home, "spark"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, f"reading the Spark warehouse failed:\n{exported.stderr[-4000:]}"
    return Runs(duckdb_home / "warehouse.duckdb", spark_tables, spark_home, spark_output)


def test_the_spark_loop_keeps_nothing_in_duckdb(runs: Runs) -> None:
    assert not (runs.spark_home / "warehouse.duckdb").exists()
    assert (runs.spark_home / "spark" / "warehouse").is_dir()
    assert "cycle 2025-02 done" in runs.spark_output


def table_differences(runs: Runs, table: str) -> None:
    duckdb_rows = runs.duckdb_rows(table)
    spark_rows = runs.spark_rows(table)
    ignored = [column for column in duckdb_rows.columns if column in PER_RUN_COLUMNS]
    duckdb_rows, spark_rows = duckdb_rows.drop(columns=ignored), spark_rows.drop(columns=ignored, errors="ignore")
    if duckdb_rows.empty:
        assert spark_rows.empty, f"{table}: no rows on DuckDB, {len(spark_rows)} on Spark"
        assert set(spark_rows.columns) == set(duckdb_rows.columns), f"{table}: other columns on Spark"
        return
    kinds = {column: value_kind(duckdb_rows[column]) or value_kind(spark_rows[column]) for column in duckdb_rows}
    keys = [column for column, kind in kinds.items() if kind not in ("number", None)]
    if not keys or duckdb_rows.duplicated(keys).any():
        keys = list(duckdb_rows.columns)  # rows told apart by their numbers too
    assert_same_rows(table, keys, duckdb_rows, spark_rows)


def test_every_table_of_the_loop_exists_on_spark(runs: Runs) -> None:
    spark = {path.name.removesuffix(".parquet") for path in runs.spark_tables.glob("*.parquet")}
    assert set(runs.duckdb_tables()) - spark == set()


@pytest.mark.parametrize(
    "schema", ["raw", "reference", "intermediate", "marts", "analytics", "campaigns", "audit", "quarantine"]
)
def test_every_table_holds_the_same_rows_on_both_engines(runs: Runs, schema: str) -> None:
    tables = [table for table in runs.duckdb_tables() if table.startswith(f"{schema}.")]
    if schema != "quarantine":
        assert tables, f"the loop wrote no table in {schema} on DuckDB"
    for table in tables:
        table_differences(runs, table)


if __name__ == "__main__":
    export_spark_tables(Path(sys.argv[1]))
