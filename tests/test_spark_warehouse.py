"""The same dbt models on Spark (`--target spark`) as on DuckDB: every model equal, row for row.

One module-scoped pair of builds over the tiny world of tests/test_dbt_warehouse.py, with the raw tables typed
as the collect stage writes them (dates of the contract as timestamps). DuckDB builds as of 2025-01, 2025-02 and
2025-01 again (a rebuild of a past month). The raw tables are then copied into a local Spark (its own metastore
and warehouse directory under a temp directory) by the loader's command (`python -m orchestration.lib.spark_warehouse`),
and dbt builds the same three months on Spark: the snapshot marts go through insert_overwrite into an existing
month partition and into a new one. Every model (staging views, the intermediate table, every mart; both months of
each snapshot) must hold the same rows on both engines: text, flags and dates equal, numbers within 1e-9 relative.

The Python stages' warehouse on Spark (orchestration.resources.spark) answers the analyse and design stages'
reads (orchestration/lib/queries.py) with the same frames as the DuckDB resource on these builds, and its writes
replace a month as the DuckDB resource's do.

The Derby metastore admits one JVM, and a JVM takes seconds to start: the loader, the three dbt builds (dbt's
programmatic runner, on the session dbt-spark's `session` method finds open) and the reads share one Spark
session in this process. Small Spark (two local cores, two shuffle partitions): the tiny world moves little data.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_dbt_warehouse import (
    DBT_PROJECT,
    MONTH_1,
    MONTH_2,
    RAW_TABLES,
    make_raw_world,
    run_dbt,
    write_raw,
)

from models.customer_chunks import HASH_SLOTS, CustomerRange, TrainingSample
from orchestration.lib import queries
from orchestration.lib.privacy import ERASURES_TABLE, forget
from orchestration.lib.raw_tables import warehouse_columns
from orchestration.lib.spark_warehouse import SourceTable, dbt_source_tables, open_spark, spark_session_parameters
from orchestration.lib.spark_warehouse import main as load_sources_main
from orchestration.resources.spark import SparkWarehouseResource, spark_sql
from orchestration.resources.warehouse import DuckDBWarehouseResource, WarehouseResource

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
# The key of every seed (reference data, schema `reference`). A seed added to the project must be added here.
SEED_KEYS = {
    "campaign_objectives": ["objective"],
    "cost_to_serve": ["cost_item"],
    "offers": ["offer_id"],
    "portfolio_quadrants": ["portfolio_quadrant"],
    "pyramid_tiers": ["tier"],
    "rfm_segments": ["rfm_segment"],
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
        "CRM_SPARK_HOME": str(spark_home),
        "CRM_SPARK_MASTER": "local[2]",
        "CRM_SPARK_DRIVER_MEMORY": "1g",
        "CRM_SPARK_SHUFFLE_PARTITIONS": "2",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def month_vars(month: date) -> list[str]:
    return ["--vars", f"{{as_of_month: '{month:%Y-%m-%d}'}}"]


class SparkDbt:
    """dbt on the Spark target inside this process, on the Spark session this process holds.

    dbt-spark's `session` method opens its Spark with `SparkSession.builder...getOrCreate()`, so it works on
    the session already open here: one JVM and one Derby metastore for the loader, every build and the
    reads. The project is parsed once; every build reuses that manifest.
    """

    def __init__(self, work_dir: Path) -> None:
        from dbt.cli.main import dbtRunner

        self.common = [
            "--profiles-dir",
            str(DBT_PROJECT),
            "--project-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(work_dir / "target"),
            "--log-path",
            str(work_dir / "logs"),
        ]
        parsed = self.invoke(dbtRunner(), ["parse", "--target", "spark"])
        self.runner = dbtRunner(manifest=parsed.result)
        self.threads = ["--threads", "4"]  # independent nodes overlap their round trips to the session

    def invoke(self, runner, args: list[str]):
        result = runner.invoke([*args, *self.common])
        if not result.success:
            failed = [
                f"{node.node.unique_id}: {node.status} {node.message}"
                for node in getattr(result.result, "results", [])
                if str(node.status) not in ("success", "pass")
            ]
            raise AssertionError(f"dbt {' '.join(args)} on Spark failed: {result.exception or failed}")
        return result

    def build(self, args: list[str]):
        """`dbt build` with `args`; returns dbt's result for every node it ran."""
        return self.invoke(self.runner, ["build", *self.threads, *args]).result.results


class Builds:
    """Both warehouses after the same builds, and the Spark session the Spark one was built in."""

    def __init__(self, database: Path, spark_results: list, loader_output: str, spark) -> None:
        self.database = database
        self.spark_results = spark_results
        self.loader_output = loader_output
        self.spark = spark

    def duckdb_rows(self, relation: str) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(f"select * from {relation}").df()

    def spark_rows(self, relation: str) -> pd.DataFrame:
        return self.spark.table(relation).toPandas()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory):
    from pyspark.sql import SparkSession

    work_dir = tmp_path_factory.mktemp("spark_warehouse")
    database = work_dir / "warehouse.duckdb"
    write_raw_as_collected(database)
    for month in BUILDS:  # tests/test_dbt_warehouse.py runs the data tests and unit tests on DuckDB
        # the month in $CRM_AS_OF_MONTH, as the loop gives it: dbt keeps its parsed project from build to build
        run_dbt(["build", "--exclude-resource-type", "test", "unit_test"], database, work_dir / "duck", month=month)

    with pytest.MonkeyPatch.context() as environment:
        for name, value in spark_environment(work_dir / "spark").items():
            environment.setenv(name, value)
        environment.delenv("CRM_DBT_TARGET", raising=False)
        # One Spark session for the whole module, opened as the spark target opens it.
        spark = open_spark(spark_session_parameters())
        try:
            loader_output = io.StringIO()
            with contextlib.redirect_stdout(loader_output):
                loaded = load_sources_main(["--warehouse", str(database)])
            assert loaded == 0, f"loading the sources into Spark failed:\n{loader_output.getvalue()}"
            assert SparkSession.getActiveSession() is spark, "the loader stopped the session it was handed"

            # Months 1 and 2: seeds and models (the target named once by --target, once by $CRM_DBT_TARGET);
            # then the rebuild of month 1 with every data test and unit test, run over both months' snapshots.
            dbt = SparkDbt(work_dir / "spark_dbt")
            dbt.build(["--target", "spark", "--exclude-resource-type", "test", "unit_test", *month_vars(BUILDS[0])])
            environment.setenv("CRM_DBT_TARGET", "spark")
            dbt.build(["--resource-type", "model", *month_vars(BUILDS[1])])
            environment.delenv("CRM_DBT_TARGET")
            spark_results = dbt.build(["--target", "spark", "--exclude-resource-type", "seed", *month_vars(BUILDS[2])])
            yield Builds(database, spark_results, loader_output.getvalue(), spark)
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
    assert parameters["spark.ui.showConsoleProgress"] == "false"
    assert parameters["spark.master"].startswith("local[")
    assert parameters["spark.sql.warehouse.dir"] == f"{tmp_path}/warehouse"
    assert parameters["spark.driver.extraJavaOptions"] == f"-Dderby.system.home={tmp_path}"
    assert parameters["spark.sql.session.timeZone"] == "UTC"
    with pytest.raises(ValueError, match="not an in-process Spark session"):
        spark_session_parameters(target="dev", environment={})


def test_every_model_and_seed_has_a_key_to_compare_by() -> None:
    assert set(project_models()) == set(MODEL_KEYS)
    assert {path.stem for path in (DBT_PROJECT / "seeds").glob("*.csv")} == set(SEED_KEYS)


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
    statuses = Counter(str(result.status) for result in builds.spark_results)
    assert set(statuses) == {"success", "pass"}, statuses  # no error, failure, warning or skip
    kinds = Counter(result.node.resource_type for result in builds.spark_results)
    assert kinds["unit_test"] >= 17 and kinds["test"] >= 100 and kinds["model"] == len(MODEL_KEYS), kinds


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODEL_KEYS))
def test_every_model_on_spark_equals_duckdb(builds: Builds, model: str) -> None:
    relation = f"{project_models()[model]}.{model}"
    assert_same_rows(relation, MODEL_KEYS[model], builds.duckdb_rows(relation), builds.spark_rows(relation))


@pytest.mark.slow
@pytest.mark.parametrize("seed", sorted(SEED_KEYS))
def test_every_seed_on_spark_equals_duckdb(builds: Builds, seed: str) -> None:
    """Reference data loads the same on both engines; an empty cell is NULL on both."""
    relation = f"reference.{seed}"
    assert_same_rows(relation, SEED_KEYS[seed], builds.duckdb_rows(relation), builds.spark_rows(relation))


@pytest.mark.slow
@pytest.mark.parametrize("mart", SNAPSHOT_MARTS)
def test_snapshot_marts_keep_one_partition_per_month_on_spark(builds: Builds, mart: str) -> None:
    partitions = [row[0] for row in builds.spark.sql(f"show partitions marts.{mart}").collect()]
    assert partitions == [f"as_of_month={month:%Y-%m-%d}" for month in (MONTH_1, MONTH_2)]
    per_month = builds.duckdb_rows(f"marts.{mart}").groupby("as_of_month").size()
    spark_per_month = builds.spark_rows(f"marts.{mart}").groupby("as_of_month").size()
    assert spark_per_month.tolist() == per_month.tolist() and per_month.iloc[0] != per_month.iloc[1], mart


# --------------------------------------------------------------------------------------------------
# The Python stages' warehouse on Spark: the same reads and writes as on DuckDB
# --------------------------------------------------------------------------------------------------


def test_a_stage_query_becomes_spark_sql_with_its_parameters_in_place() -> None:
    translated = spark_sql(
        """
        select o.*, s.* exclude (customer_id), '?' as mark
        from campaigns.campaign_plan as o join analytics.customer_scores as s using (customer_id)
        where "group" = ? and delivery_month <= ? and "rank" between ? and ?
        order by o.customer_id
        """,
        ["te'st", pd.Timestamp("2025-01-31"), 1, 2.5],
    )
    assert "* EXCEPT (customer_id)" in translated and "'?' AS mark" in translated
    assert "`group` = 'te\\'st'" in translated
    assert "delivery_month <= CAST('2025-01-31 00:00:00' AS TIMESTAMP_NTZ)" in translated
    assert "BETWEEN 1 AND 2.5" in translated and "NULLS LAST" in translated
    with pytest.raises(ValueError, match="1 parameters in the SQL, 2 given"):
        spark_sql("select * from t where a = ?", [1, 2])


def duckdb_warehouse(builds: Builds) -> WarehouseResource:
    return DuckDBWarehouseResource(path=str(builds.database))


def spark_warehouse(builds: Builds) -> SparkWarehouseResource:
    return SparkWarehouseResource(crm_home=str(builds.database.parent), target="spark")


def assert_same_frame(name: str, duckdb_frame: pd.DataFrame, spark_frame: pd.DataFrame, ordered: bool) -> None:
    """The same columns in the same order, the same column types and the same rows (in the same order when
    the query orders them); numbers within 1e-9 relative. Timestamps compare at microseconds: a DuckDB table
    created from a frame keeps the frame's resolution (seconds for `pd.Timestamp(month)`), Spark has one."""
    assert list(spark_frame.columns) == list(duckdb_frame.columns), name
    assert len(duckdb_frame) > 0, f"{name}: no rows, nothing compared"
    times = [column for column in duckdb_frame if pd.api.types.is_datetime64_any_dtype(duckdb_frame[column])]
    duckdb_frame = duckdb_frame.astype(dict.fromkeys(times, "datetime64[us]"))
    if not ordered:
        duckdb_frame = duckdb_frame.sort_values(list(duckdb_frame.columns), ignore_index=True)
        spark_frame = spark_frame.sort_values(list(spark_frame.columns), ignore_index=True)
    pd.testing.assert_frame_equal(spark_frame, duckdb_frame, check_exact=False, rtol=RELATIVE_TOLERANCE, obj=name)


# The reads of the analyse and design stages (orchestration/lib/queries.py), as they call them; True: the query
# orders its rows.
STAGE_READS = {
    "orders_as_of": (lambda warehouse: queries.orders_as_of(warehouse, MONTH_1), True),
    # the analyse stage's scoring chunks and training sample: the same customers on both engines
    "orders_as_of_a_chunk": (
        lambda warehouse: queries.orders_as_of(
            warehouse, MONTH_1, customers=CustomerRange(*queries.customer_chunk_starts(warehouse, MONTH_1, 40)[1:3])
        ),
        True,
    ),
    "orders_as_of_the_training_sample": (
        lambda warehouse: queries.orders_as_of(warehouse, MONTH_1, sample=TrainingSample(HASH_SLOTS // 3)),
        True,
    ),
    "email_engagement_as_of": (lambda warehouse: queries.email_engagement_as_of(warehouse, MONTH_1), True),
    "email_engagement_as_of_a_chunk": (
        lambda warehouse: queries.email_engagement_as_of(
            warehouse, MONTH_1, customers=CustomerRange(*queries.customer_chunk_starts(warehouse, MONTH_1, 40)[1:3])
        ),
        True,
    ),
    "customers_with_orders": (
        lambda warehouse: pd.DataFrame({"customers": [queries.customers_with_orders(warehouse, MONTH_1)]}),
        True,
    ),
    "product_lines_as_of": (
        lambda warehouse: pd.DataFrame({"product_line": queries.product_lines_as_of(warehouse, MONTH_1)}),
        True,
    ),
    "contacted_test_customers": (lambda warehouse: queries.contacted_test_customers(warehouse, MONTH_2), False),
    "offers": (queries.offers, True),
    "campaign_objectives": (queries.campaign_objectives, True),
    "plan_for_delivery": (lambda warehouse: queries.plan_for_delivery(warehouse, MONTH_1), True),
    "plan_designed_in": (lambda warehouse: queries.plan_designed_in(warehouse, MONTH_1), True),
    "customer_month_outcomes": (lambda warehouse: queries.customer_month_outcomes(warehouse, MONTH_1), False),
    "customer_value": (lambda warehouse: queries.customer_value(warehouse, MONTH_2), False),
    "recent_contacts": (lambda warehouse: queries.recent_contacts(warehouse, MONTH_2, 9), False),
}


@pytest.mark.slow
@pytest.mark.parametrize("read", sorted(STAGE_READS))
def test_a_stage_read_returns_the_same_frame_on_spark(builds: Builds, read: str) -> None:
    run, ordered = STAGE_READS[read]
    assert_same_frame(read, run(duckdb_warehouse(builds)), run(spark_warehouse(builds)), ordered)


@pytest.mark.slow
def test_a_table_missing_on_both_engines_reads_as_missing(builds: Builds) -> None:
    for warehouse in (duckdb_warehouse(builds), spark_warehouse(builds)):
        assert warehouse.table_exists("campaigns.campaign_plan")
        assert not warehouse.table_exists(queries.DELIVERIES_TABLE)
        assert queries.delivered_campaigns(warehouse, MONTH_1) == []


def scores_of(month: date, customers: list[str], churn: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customers,
            "as_of_month": pd.Timestamp(month),
            "churn_probability": [churn + index / 100 for index in range(len(customers))],
            "segment": [f"segment {index % 2}" for index in range(len(customers))],
        }
    )


@pytest.mark.slow
def test_writing_a_month_on_spark_replaces_that_month_only_as_on_duckdb(builds: Builds) -> None:
    table = "analytics.spark_parity_scores"
    plan = queries.plan_designed_in(duckdb_warehouse(builds), MONTH_1)
    customers = sorted(plan["customer_id"].unique())[:6]
    results = {}
    for warehouse in (duckdb_warehouse(builds), spark_warehouse(builds)):
        warehouse.replace_rows(table, scores_of(MONTH_1, customers, 0.1), {"as_of_month": pd.Timestamp(MONTH_1)})
        warehouse.replace_rows(table, scores_of(MONTH_2, customers, 0.5), {"as_of_month": pd.Timestamp(MONTH_2)})
        # a re-run of month 1 with fewer customers and other scores: month 1 is replaced, month 2 untouched
        warehouse.replace_rows(table, scores_of(MONTH_1, customers[:4], 0.2), {"as_of_month": pd.Timestamp(MONTH_1)})
        warehouse.ensure_table(table, {"uplift": "double"})
        warehouse.append_rows(table, scores_of(date(2025, 3, 1), customers[:1], 0.9).assign(uplift=0.25))
        results[type(warehouse).__name__] = warehouse.query(f"select * from {table} order by as_of_month, customer_id")
    duckdb_rows, spark_rows = results["DuckDBWarehouseResource"], results["SparkWarehouseResource"]
    assert duckdb_rows.groupby("as_of_month").size().tolist() == [4, 6, 1]
    assert duckdb_rows.loc[0, "churn_probability"] == pytest.approx(0.2)
    assert_same_frame(table, duckdb_rows, spark_rows, ordered=True)
    with pytest.raises(ValueError, match="every row must have as_of_month"):
        spark_warehouse(builds).replace_rows(table, scores_of(MONTH_2, customers, 0.5), {"as_of_month": MONTH_1})


@pytest.mark.slow
def test_outcomes_joined_to_design_time_scores_are_the_same_on_spark(builds: Builds) -> None:
    """The measure and improve stages' read: outcomes with the scores of the design month (`* exclude`)."""
    results = []
    for warehouse in (duckdb_warehouse(builds), spark_warehouse(builds)):
        plan = queries.plan_for_delivery(warehouse, MONTH_1)
        outcomes = plan[["campaign_id", "customer_id", "group", "delivery_month", "designed_in_month"]].assign(
            orders=range(len(plan))
        )
        warehouse.replace_rows_between(queries.OUTCOMES_TABLE, outcomes, "delivery_month", None, pd.Timestamp(MONTH_1))
        scores = scores_of(date(2024, 12, 1), sorted(plan["customer_id"]), 0.1)
        warehouse.replace_rows(queries.SCORES_TABLE, scores, {"as_of_month": pd.Timestamp("2024-12-01")})
        results.append(queries.measured_outcomes_with_features(warehouse, MONTH_1))
    assert len(results[0]) == len(queries.plan_for_delivery(duckdb_warehouse(builds), MONTH_1))
    assert "churn_probability" in results[0] and "as_of_month" not in results[0]
    assert_same_frame("measured_outcomes_with_features", *results, ordered=True)


def without_token(frame: pd.DataFrame, token: str) -> pd.DataFrame:
    return frame.replace(token, "<token>")


@pytest.mark.slow
def test_forgetting_a_customer_on_spark_erases_what_it_erases_on_duckdb(builds: Builds, tmp_path: Path) -> None:
    """`crm-loop forget` through the warehouse resource: the same rows anonymised on both engines, the erasure
    recorded, and the snapshot marts still partitioned by month for dbt's next insert_overwrite. (Last in the
    module: it changes both warehouses.)"""
    orders = builds.duckdb_rows("marts.fct_orders")
    customer = str(orders["customer_id"].value_counts().index[0])
    held_orders = int((builds.duckdb_rows("raw.orders")["customer_id"] == customer).sum())
    compared = ["raw.customers", "raw.orders", "marts.dim_customers", "marts.fct_orders", "marts.customer_rfm"]
    erased, tables = {}, {}
    for warehouse in (duckdb_warehouse(builds), spark_warehouse(builds)):
        engine = warehouse.engine
        home = tmp_path / engine
        erasure = forget(warehouse, customer, home=home, exports_dir=home / "exports", requested_by="test")
        again = forget(warehouse, customer, home=home, exports_dir=home / "exports", requested_by="test")
        assert again.already_forgotten and again.token == erasure.token and not sum(again.rows_by_table.values())
        recorded = warehouse.query(f"select token, rows_anonymised from {ERASURES_TABLE} order by erased_at")
        assert recorded["token"].tolist() == [erasure.token] * 2
        assert json.loads(recorded["rows_anonymised"].iloc[0]) == erasure.rows_by_table
        erased[engine] = erasure.rows_by_table
        tables[engine] = {
            table: without_token(warehouse.query(f"select * from {table}"), erasure.token) for table in compared
        }
        assert not warehouse.query("select * from raw.orders where customer_id = ?", [customer]).shape[0]
    assert erased["duckdb"] == erased["spark"]
    assert erased["duckdb"]["raw.orders"] == held_orders > 0
    for table in compared:
        duckdb_rows, spark_rows = tables["duckdb"][table], tables["spark"][table]
        assert (duckdb_rows == "<token>").any().any(), f"{table}: the customer's rows are not under the token"
        assert_same_rows(table, list(duckdb_rows.columns), duckdb_rows, spark_rows)
    partitions = [c.name for c in builds.spark.catalog.listColumns("marts.customer_rfm") if c.isPartition]
    assert partitions == ["as_of_month"]
