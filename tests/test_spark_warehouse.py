"""The same dbt models on Spark (`--target spark`) as on DuckDB: every model equal, row for row.

One module-scoped pair of builds over the tiny world of tests/test_dbt_warehouse.py, with the raw tables typed
as the collect stage writes them (dates of the contract as timestamps). DuckDB builds as of 2025-01, 2025-02 and
2025-01 again (a rebuild of a past month). The raw tables are then copied into a local Spark (its own metastore
and warehouse directory under a temp directory) by `python -m orchestration.spark_warehouse`, and dbt builds the
same three months on Spark: the snapshot marts go through insert_overwrite into an existing month partition and
into a new one. Every model (staging views, the intermediate table, every mart; both months of each snapshot)
must hold the same rows on both engines: text, flags and dates equal, numbers within 1e-9 relative.

One Spark process at a time (the Derby metastore admits one): the loader, each dbt run, then this process reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_dbt_warehouse import (
    DBT_BIN,
    DBT_PROJECT,
    MONTH_1,
    MONTH_2,
    RAW_TABLES,
    REPO_ROOT,
    make_raw_world,
    run_dbt,
    write_raw,
)

from orchestration.raw_tables import warehouse_columns
from orchestration.spark_warehouse import SourceTable, dbt_source_tables, open_spark, spark_session_parameters

BUILDS = (MONTH_1, MONTH_2, MONTH_1)  # a month, the next one, then a rebuild of the first

# The grain of every model: the columns that name one row. A model added to the project must be added here.
MODEL_KEYS = {
    "stg_campaigns__campaign_plan": ["campaign_id", "customer_id"],
    "stg_crm__contact_log": ["campaign_id", "customer_id"],
    "stg_crm__customers": ["customer_id"],
    "stg_crm__orders": ["order_id"],
    "stg_crm__products": ["product_id"],
    "int_customer_activity": ["customer_id"],
    "fct_orders": ["order_id"],
    "dim_customers": ["customer_id"],
    "cohort_retention": ["acquisition_cohort", "months_since_first_order"],
    "campaign_history": ["campaign_id", "customer_id"],
    "customer_rfm": ["as_of_month", "customer_id"],
    "customer_value": ["as_of_month", "customer_id"],
    "customer_portfolio": ["as_of_month", "customer_id"],
    "customer_features": ["as_of_month", "customer_id"],
}
MODEL_SCHEMAS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}
SNAPSHOT_MARTS = ("customer_rfm", "customer_value", "customer_portfolio", "customer_features")
RELATIVE_TOLERANCE = 1e-9


def project_models() -> dict[str, str]:
    """model name -> the schema it is built in, for every model file of the dbt project."""
    return {path.stem: MODEL_SCHEMAS[path.parent.name] for path in sorted((DBT_PROJECT / "models").rglob("*.sql"))}


# --------------------------------------------------------------------------------------------------
# Comparing a table across engines
# --------------------------------------------------------------------------------------------------


def value_kind(values: pd.Series) -> str | None:
    """text, flag, number or time: what a column holds, whatever the engine's type and pandas' dtype
    (Spark hands decimals over as Decimal and dates as datetime.date; DuckDB as float64 and datetime64)."""
    present = values.dropna()
    if present.empty:
        return None
    sample = present.iloc[0]
    if isinstance(sample, bool | np.bool_):
        return "flag"
    if isinstance(sample, date | datetime | np.datetime64):
        return "time"
    if isinstance(sample, int | float | Decimal | np.number):
        return "number"
    return "text"


def comparable(values: pd.Series, kind: str | None) -> pd.Series:
    if kind == "time":
        return pd.to_datetime(values).astype("datetime64[us]")
    if kind == "number":
        return values.astype("float64")
    return values.astype(object).where(values.notna(), None)


def assert_same_rows(name: str, keys: list[str], duckdb_rows: pd.DataFrame, spark_rows: pd.DataFrame) -> None:
    """The same columns and, sorted by the key, the same rows; the message names the column and first row
    that differ."""
    assert set(spark_rows.columns) == set(duckdb_rows.columns), (
        f"{name}: columns only on DuckDB {sorted(set(duckdb_rows.columns) - set(spark_rows.columns))}, "
        f"only on Spark {sorted(set(spark_rows.columns) - set(duckdb_rows.columns))}"
    )
    assert len(spark_rows) == len(duckdb_rows), f"{name}: {len(duckdb_rows)} rows on DuckDB, {len(spark_rows)} on Spark"
    assert len(duckdb_rows) > 0, f"{name}: no rows on either engine, nothing compared"
    kinds = {}
    for column in duckdb_rows.columns:
        duckdb_kind, spark_kind = value_kind(duckdb_rows[column]), value_kind(spark_rows[column])
        assert None in (duckdb_kind, spark_kind) or duckdb_kind == spark_kind, (
            f"{name}.{column}: {duckdb_kind} on DuckDB, {spark_kind} on Spark"
        )
        kinds[column] = duckdb_kind or spark_kind
    left = pd.DataFrame({column: comparable(duckdb_rows[column], kinds[column]) for column in duckdb_rows.columns})
    right = pd.DataFrame({column: comparable(spark_rows[column], kinds[column]) for column in duckdb_rows.columns})
    left = left.sort_values(keys, ignore_index=True)
    right = right.sort_values(keys, ignore_index=True)
    assert not left.duplicated(keys).any(), f"{name}: the key {keys} is not unique on DuckDB"

    for column in left.columns:
        expected, actual = left[column], right[column]
        both_missing = expected.isna().to_numpy() & actual.isna().to_numpy()
        if kinds[column] == "number":
            close = np.isclose(actual, expected, rtol=RELATIVE_TOLERANCE, atol=0, equal_nan=True)
            differs = ~close
        else:
            differs = ~(both_missing | (expected == actual).fillna(False).to_numpy(dtype=bool))
        if differs.any():
            first = int(np.flatnonzero(differs)[0])
            row = ", ".join(f"{key}={left.loc[first, key]}" for key in keys)
            spark_row = ", ".join(f"{key}={right.loc[first, key]}" for key in keys)
            raise AssertionError(
                f"{name}.{column} differs in {int(differs.sum())} of {len(left)} rows; first at ({row}): "
                f"DuckDB {expected.iloc[first]!r}, Spark {actual.iloc[first]!r} (Spark row: {spark_row})"
            )


# --------------------------------------------------------------------------------------------------
# The two builds
# --------------------------------------------------------------------------------------------------


def write_raw_as_collected(database: Path) -> None:
    """The tiny world's raw tables with the collect stage's column types (contract dates are timestamps)."""
    write_raw(database, make_raw_world())
    with duckdb.connect(str(database)) as con:
        for table in RAW_TABLES:
            present = {name for (name,) in con.execute(f"select column_name from (describe raw.{table})").fetchall()}
            for column, sql_type in warehouse_columns(table).items():
                if column in present and sql_type == "timestamp":
                    con.execute(f"alter table raw.{table} alter {column} type timestamp")


def spark_environment(spark_home: Path) -> dict[str, str]:
    """A private Spark for this module: metastore and tables under `spark_home`, small and local."""
    return {
        **os.environ,
        "CRM_SPARK_HOME": str(spark_home),
        "CRM_SPARK_MASTER": "local[1]",
        "CRM_SPARK_DRIVER_MEMORY": "1g",
        "CRM_SPARK_SHUFFLE_PARTITIONS": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def run_spark_dbt(args: list[str], environment: dict[str, str], work_dir: Path) -> str:
    command = [
        str(DBT_BIN),
        *args,
        "--profiles-dir",
        "dbt_project",
        "--project-dir",
        "dbt_project",
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"dbt {' '.join(args)} on Spark failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    )
    return result.stdout


def month_vars(month: date) -> list[str]:
    return ["--vars", f"{{as_of_month: '{month:%Y-%m-%d}'}}"]


class Builds:
    """Both warehouses after the same builds, and a Spark session on the Spark one."""

    def __init__(self, database: Path, spark_log: str, loader_output: str, spark) -> None:
        self.database = database
        self.spark_log = spark_log
        self.loader_output = loader_output
        self.spark = spark

    def duckdb_rows(self, relation: str) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(f"select * from {relation}").df()

    def spark_rows(self, relation: str) -> pd.DataFrame:
        return self.spark.table(relation).toPandas()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory):
    work_dir = tmp_path_factory.mktemp("spark_warehouse")
    database = work_dir / "warehouse.duckdb"
    write_raw_as_collected(database)
    for month in BUILDS:  # tests/test_dbt_warehouse.py runs the data tests and unit tests on DuckDB
        run_dbt(
            ["build", "--exclude-resource-type", "test", "unit_test", *month_vars(month)], database, work_dir / "duck"
        )

    environment = spark_environment(work_dir / "spark")
    loaded = subprocess.run(
        [sys.executable, "-m", "orchestration.spark_warehouse", "--warehouse", str(database)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, f"loading the sources into Spark failed:\n{loaded.stdout}\n{loaded.stderr[-4000:]}"

    # Months 1 and 2: seeds and models (the target named once by --target, once by $CRM_DBT_TARGET); then the
    # rebuild of month 1 with every data test and unit test, run over both months' snapshots.
    models_only = ["--exclude-resource-type", "test", "unit_test"]
    run_spark_dbt(["build", "--target", "spark", *models_only, *month_vars(BUILDS[0])], environment, work_dir)
    run_spark_dbt(["build", *models_only, *month_vars(BUILDS[1])], {**environment, "CRM_DBT_TARGET": "spark"}, work_dir)
    spark_log = run_spark_dbt(["build", "--target", "spark", *month_vars(BUILDS[2])], environment, work_dir)

    spark = open_spark(spark_session_parameters(environment=environment))
    try:
        yield Builds(database, spark_log, loaded.stdout, spark)
    finally:
        spark.stop()


# --------------------------------------------------------------------------------------------------
# Tests that need no Spark
# --------------------------------------------------------------------------------------------------


def test_the_sources_to_copy_are_the_dbt_projects_sources() -> None:
    assert dbt_source_tables() == [
        SourceTable("campaigns", "campaign_plan"),
        *(SourceTable("raw", table) for table in ("customers", "orders", "products", "contact_log")),
    ]


def test_the_spark_target_is_local_private_and_silent(tmp_path: Path) -> None:
    parameters = spark_session_parameters(environment={"CRM_SPARK_HOME": str(tmp_path)})
    assert parameters["spark.ui.enabled"] == "false"
    assert parameters["spark.master"].startswith("local[")
    assert parameters["spark.sql.warehouse.dir"] == f"{tmp_path}/warehouse"
    assert parameters["spark.driver.extraJavaOptions"] == f"-Dderby.system.home={tmp_path}"
    assert parameters["spark.sql.session.timeZone"] == "UTC"
    with pytest.raises(ValueError, match="not an in-process Spark session"):
        spark_session_parameters(target="dev", environment={})


def test_every_model_has_a_key_to_compare_by() -> None:
    assert set(project_models()) == set(MODEL_KEYS)


def test_a_difference_between_the_engines_names_the_table_column_and_row() -> None:
    duckdb_rows = pd.DataFrame(
        {"customer_id": ["00042", "00007"], "as_of_month": pd.to_datetime(["2025-01-01"] * 2), "monetary": [1.5, 2.0]}
    )
    # Spark hands dates over as datetime.date and decimals as Decimal, in another row order
    spark_rows = pd.DataFrame(
        {"customer_id": ["00007", "00042"], "as_of_month": [date(2025, 1, 1)] * 2, "monetary": [Decimal("2.0"), None]}
    )
    assert_same_rows("marts.t", ["customer_id"], duckdb_rows, spark_rows.fillna({"monetary": Decimal("1.5")}))
    spark_rows.loc[1, "monetary"] = Decimal("1.5000001")
    with pytest.raises(
        AssertionError, match=r"marts.t.monetary differs in 1 of 2 rows; first at \(customer_id=00042\)"
    ):
        assert_same_rows("marts.t", ["customer_id"], duckdb_rows, spark_rows)
    with pytest.raises(AssertionError, match="marts.t.as_of_month: time on DuckDB, text on Spark"):
        assert_same_rows("marts.t", ["customer_id"], duckdb_rows, duckdb_rows.assign(as_of_month="2025-01-01"))


# --------------------------------------------------------------------------------------------------
# Tests on the two builds
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_sources_reach_spark_with_their_rows_and_types(builds: Builds) -> None:
    for table in dbt_source_tables():
        duckdb_rows = builds.duckdb_rows(table.qualified_name)
        spark_rows = builds.spark_rows(table.qualified_name)
        assert list(spark_rows.columns) == list(duckdb_rows.columns), table.qualified_name
        keys = ["campaign_id", "customer_id"] if "campaign_id" in duckdb_rows else list(duckdb_rows.columns)[:1]
        if table.name == "customers":
            keys = ["customer_id", "_loaded_month"]
        assert_same_rows(table.qualified_name, keys, duckdb_rows, spark_rows)
    order_types = dict(builds.spark.table("raw.orders").dtypes)
    assert order_types["order_date"] == "timestamp_ntz"  # a wall-clock time, never shifted by a time zone
    assert order_types["customer_id"] == "string" and order_types["amount"] == "double"
    assert dict(builds.spark.table("campaigns.campaign_plan").dtypes)["rank"] == "bigint"
    assert "raw.orders" in builds.loader_output


@pytest.mark.slow
def test_the_spark_build_passes_every_data_test_and_unit_test(builds: Builds) -> None:
    summary = next(line for line in builds.spark_log.splitlines() if "Done. PASS=" in line)
    counts = dict(part.split("=") for part in summary.split("Done.")[1].split())
    assert int(counts["ERROR"]) == 0 and int(counts["SKIP"]) == 0 and int(counts["WARN"]) == 0, summary
    ran = next(line for line in builds.spark_log.splitlines() if "Finished running" in line)
    assert int(ran.split(" unit tests")[0].split()[-1]) >= 17, ran
    assert int(ran.split(" data tests")[0].split()[-1]) >= 200, ran


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODEL_KEYS))
def test_every_model_on_spark_equals_duckdb(builds: Builds, model: str) -> None:
    relation = f"{project_models()[model]}.{model}"
    assert_same_rows(relation, MODEL_KEYS[model], builds.duckdb_rows(relation), builds.spark_rows(relation))


@pytest.mark.slow
@pytest.mark.parametrize("mart", SNAPSHOT_MARTS)
def test_snapshot_marts_keep_one_partition_per_month_on_spark(builds: Builds, mart: str) -> None:
    partitions = [row[0] for row in builds.spark.sql(f"show partitions marts.{mart}").collect()]
    assert partitions == [f"as_of_month={month:%Y-%m-%d}" for month in (MONTH_1, MONTH_2)]
    per_month = builds.duckdb_rows(f"marts.{mart}").groupby("as_of_month").size()
    spark_per_month = builds.spark_rows(f"marts.{mart}").groupby("as_of_month").size()
    assert spark_per_month.tolist() == per_month.tolist() and per_month.iloc[0] != per_month.iloc[1], mart
