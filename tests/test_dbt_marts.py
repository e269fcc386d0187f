"""The customer warehouse on other inputs and runs than tests/test_dbt_warehouse.py's two-month build.

- A plain transaction log (customer_id, order_date, amount; no order ids, products, customers, contacts or
  plans) builds with every blocking test passing and degrades visibly: surrogate order ids, unknown
  margins, a pyramid by revenue that says so, unknown consent that is never contactable.
- A 12-month replay built twice: first as the loop does it (collect month M, then build M: raw holds only
  what was collected by M), then rebuilt month by month with all 12 months already in raw. Every mart must
  come out identical, which shows that a rebuild is deterministic and that nothing after a month's end
  leaks into it (its snapshot was first built when later data did not exist yet).
- `dbt docs generate` works, and the models pass sqlfluff (dbt templater, `.sqlfluff` at the repo root).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_dbt_warehouse import (
    DBT_BIN,
    REPO_ROOT,
    SNAPSHOT_MARTS,
    dbt_env,
    expected_rfm,
    make_raw_world,
    month_end,
    run_dbt,
    write_campaign_plan,
    write_raw,
)

pytestmark = pytest.mark.slow  # builds the warehouse with dbt on data (make test-fast leaves it out)

LOG_MONTH = date(2025, 1, 1)
REPLAY_MONTHS = [d.date() for d in pd.date_range("2024-04-01", "2025-03-01", freq="MS")]
SQLFLUFF_BIN = DBT_BIN.with_name("sqlfluff")

# The raw contract's column types (orchestration/lib/raw_tables.py), for the tables a transaction log lacks.
EMPTY_RAW_TABLES = {
    "customers": "customer_id varchar, full_name varchar, email varchar, phone varchar, signup_date timestamp, "
    "email_consent boolean, _loaded_month timestamp",
    "products": "product_id varchar, product_line varchar, product_name varchar, unit_price double, "
    "unit_cost double, _loaded_month timestamp",
    "contact_log": "campaign_id varchar, customer_id varchar, offer_id varchar, channel varchar, "
    "contacted_at timestamp, _loaded_month timestamp",
}


# --------------------------------------------------------------------------------------------------
# A plain transaction log (CDNOW-like)
# --------------------------------------------------------------------------------------------------


def make_transaction_log(seed: int = 11, n_customers: int = 60) -> pd.DataFrame:
    """customer_id, order_date, amount and nothing else (order_id, product_id, quantity NULL), 2024-01..2025-02.

    "00001" buys the same amount twice on one day (two real orders, identical rows) and returns part of
    one sale; order_type is NULL (= sale) except for the returns.
    """
    rng = np.random.default_rng(seed)
    n_orders = rng.poisson(3.0, n_customers) + 1
    customer = np.repeat([f"{i:05d}" for i in range(n_customers)], n_orders)
    days = rng.integers(0, 425, customer.size)  # 2024-01-01 .. 2025-02-28
    log = pd.DataFrame(
        {
            "customer_id": customer,
            "order_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D"),
            "amount": rng.gamma(2.0, 20.0, customer.size).round(2),
            "order_type": None,
        }
    )
    placed = pd.DataFrame(
        {
            "customer_id": ["00001", "00001", "00001", "00002"],
            "order_date": pd.to_datetime(["2024-03-05", "2024-03-05", "2024-03-20", "2025-01-15"]),
            "amount": [12.50, 12.50, 5.00, 8.00],
            "order_type": [None, None, "return", "return"],
        }
    )
    log = pd.concat([log, placed], ignore_index=True)
    log.insert(0, "order_id", None)
    log["product_id"], log["quantity"] = None, pd.array([pd.NA] * len(log), dtype="Int64")
    log["_loaded_month"] = log["order_date"].dt.to_period("M").dt.to_timestamp()
    return log[
        ["order_id", "customer_id", "order_date", "product_id", "quantity", "amount", "order_type", "_loaded_month"]
    ]


def write_transaction_log(database: Path, log: pd.DataFrame) -> None:
    """raw.orders from the log; the other raw tables and the campaign plan exist but are empty."""
    with duckdb.connect(str(database)) as con:
        con.execute("create schema raw")
        con.register("delivered", log)
        con.execute(
            "create table raw.orders as select cast(order_id as varchar) as order_id, customer_id, order_date, "
            "cast(product_id as varchar) as product_id, quantity, amount, cast(order_type as varchar) as order_type, "
            "_loaded_month from delivered"
        )
        con.unregister("delivered")
        for table, columns in EMPTY_RAW_TABLES.items():
            con.execute(f"create table raw.{table} ({columns})")
        write_campaign_plan(con, pd.DataFrame())


def surrogate_order_ids(log: pd.DataFrame) -> pd.Series:
    """The documented key: 'txn-' || md5(customer_id|order_date|amount|order_type|n), n numbering identical rows."""
    keyed = log.assign(order_type=log["order_type"].fillna("sale"), amount_text=log["amount"].map("{:.2f}".format))
    columns = ["customer_id", "order_date", "amount_text", "order_type"]
    number = keyed.groupby(columns).cumcount() + 1
    text = (
        keyed["customer_id"]
        + "|"
        + keyed["order_date"].dt.strftime("%Y-%m-%d")
        + "|"
        + keyed["amount_text"]
        + "|"
        + keyed["order_type"]
        + "|"
        + number.astype(str)
    )
    return "txn-" + text.map(lambda value: hashlib.md5(value.encode()).hexdigest())


@dataclass(frozen=True)
class LogWarehouse:
    database: Path
    work_dir: Path
    log: pd.DataFrame
    build_log: str

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).df()


@pytest.fixture(scope="module")
def log_warehouse(tmp_path_factory: pytest.TempPathFactory) -> LogWarehouse:
    work_dir = tmp_path_factory.mktemp("dbt_transaction_log")
    database = work_dir / "warehouse.duckdb"
    log = make_transaction_log()
    write_transaction_log(database, log)
    result = run_dbt(["build", "--vars", f"{{as_of_month: '{LOG_MONTH:%Y-%m-%d}'}}"], database, work_dir)
    return LogWarehouse(database=database, work_dir=work_dir, log=log, build_log=result.stdout)


def test_transaction_log_builds_with_only_the_designed_warnings(log_warehouse: LogWarehouse) -> None:
    summary = next(line for line in log_warehouse.build_log.splitlines() if "Done. PASS=" in line)
    assert "ERROR=0" in summary and "SKIP=0" in summary, summary
    warned = [line for line in log_warehouse.build_log.splitlines() if " WARN " in line and " of " in line]
    # buyers missing from the (absent) customer snapshot are flagged, not rejected; nothing else warns
    assert len(warned) == 1 and "dim_customers_in_customer_snapshot" in warned[0], warned


def test_transaction_log_orders_get_stable_surrogate_ids(log_warehouse: LogWarehouse) -> None:
    log = log_warehouse.log
    in_month = log[log["order_date"] <= month_end(LOG_MONTH)].reset_index(drop=True)
    fct = log_warehouse.query("select * from marts.fct_orders")

    assert len(fct) == len(in_month)
    assert set(fct["order_id"]) == set(surrogate_order_ids(in_month))  # content-based, so every rebuild agrees
    twins = fct[(fct["customer_id"] == "00001") & (fct["order_date"] == pd.Timestamp("2024-03-05"))]
    assert len(twins) == 2 and twins["order_id"].nunique() == 2  # identical rows stay two orders


def test_transaction_log_has_no_product_data_and_nets_returns(log_warehouse: LogWarehouse) -> None:
    fct = log_warehouse.query("select * from marts.fct_orders")
    assert fct[["product_id", "product_line", "quantity", "cost", "margin"]].isna().all().all()
    assert not fct["has_product_data"].any()
    returns = fct[fct["is_return"]]
    assert len(returns) == 2 and (returns["revenue"] < 0).all()
    dim = log_warehouse.query("select * from marts.dim_customers").set_index("customer_id")
    assert dim.loc["00001", "lifetime_revenue"] == pytest.approx(
        fct.loc[fct["customer_id"] == "00001", "revenue"].sum()
    )
    assert dim.loc["00001", "lifetime_returns"] == 1


def test_transaction_log_buyers_are_customers_with_unknown_consent(log_warehouse: LogWarehouse) -> None:
    dim = log_warehouse.query("select * from marts.dim_customers")
    log = log_warehouse.log
    assert set(dim["customer_id"]) == set(log.loc[log["order_date"] <= month_end(LOG_MONTH), "customer_id"])
    assert not dim["in_customer_snapshot"].any()
    assert dim["email_consent"].isna().all()
    assert not dim["is_contactable"].any()  # unknown consent is not consent
    assert dim["email_hash"].isna().all() and not dim["has_email"].any()


def test_transaction_log_pyramid_ranks_revenue_and_says_so(log_warehouse: LogWarehouse) -> None:
    value = log_warehouse.query("select * from marts.customer_value").set_index("customer_id").sort_index()
    assert (value["tier_basis"] == "revenue").all()
    assert value[["margin_12m", "profit_12m", "profit_rank_share"]].isna().all().all()
    assert value["cost_to_serve_12m"].notna().all()  # orders are known, so is their handling cost
    expected_share = value["revenue_12m"].rank(method="max", ascending=False) / len(value)
    np.testing.assert_allclose(value["tier_rank_share"], expected_share, rtol=0, atol=1e-12)
    top = value.loc[value["revenue_12m"].idxmax()]
    assert top["pyramid_tier"] in {"platinum", "gold"}
    assert value["pyramid_tier"].notna().all()

    portfolio = log_warehouse.query("select * from marts.customer_portfolio")
    assert len(portfolio) == len(value) and portfolio["portfolio_quadrant"].notna().all()
    assert log_warehouse.query("select count(*) as n from marts.campaign_history")["n"][0] == 0


def test_dbt_docs_generate_documents_every_mart(log_warehouse: LogWarehouse) -> None:
    # the docs show the models' SQL compiled as of a month: the one built
    month = ["--vars", f"{{as_of_month: '{LOG_MONTH:%Y-%m-%d}'}}"]
    run_dbt(["docs", "generate", "--static", *month], log_warehouse.database, log_warehouse.work_dir)
    target = log_warehouse.work_dir / "target"
    assert (target / "static_index.html").stat().st_size > 0
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())
    for mart in ("dim_customers", "fct_orders", *SNAPSHOT_MARTS, "cohort_retention", "campaign_history"):
        node = f"model.crm_warehouse.{mart}"
        assert node in catalog["nodes"], mart  # built and introspected
        assert manifest["nodes"][node]["description"].strip(), mart  # documented


# --------------------------------------------------------------------------------------------------
# 12 months, built twice
# --------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter: dbt is imported once and the project parsed once, then every month is a
# `dbt run` on the parsed project (a CLI call per month would spend most of its time starting up). Between
# months of the first pass it "collects" the next month: raw.* and the plan as the loop would have them.
REPLAY_SCRIPT = r"""
import json
import sys

import duckdb
from dbt.cli.main import dbtRunner

spec = json.loads(sys.argv[1])
common = ["--profiles-dir", "dbt_project", "--project-dir", "dbt_project", "--target-path", spec["target"],
          "--log-path", spec["logs"], "--quiet"]
raw_tables = ("customers", "orders", "products", "contact_log")


def invoke(runner, args):
    result = runner.invoke([*args, *common])
    if not result.success:
        sys.exit(f"dbt {' '.join(args)} failed: {result.exception}")
    return result


def collect(month):
    # raw rows loaded by `month` and plans designed before it (month None: everything)
    with duckdb.connect(spec["warehouse"]) as con:
        con.execute(f"attach '{spec['world']}' as world (read_only)")
        con.execute("create schema if not exists raw")
        con.execute("create schema if not exists campaigns")
        loaded = "true" if month is None else f"_loaded_month <= date '{month}'"
        designed = "true" if month is None else f"designed_in_month < date '{month}'"
        for table in raw_tables:
            con.execute(f"create or replace table raw.{table} as select * from world.raw.{table} where {loaded}")
        con.execute(
            "create or replace table campaigns.campaign_plan as "
            f"select * from world.campaigns.campaign_plan where {designed}"
        )
        con.execute("detach world")  # the database instance outlives the connection in this process


collect(spec["months"][0])
runner = dbtRunner(manifest=invoke(dbtRunner(), ["parse"]).result)
invoke(runner, ["seed"])
for month in spec["months"]:
    collect(month)
    invoke(runner, ["run", "--vars", json.dumps({"as_of_month": month})])
with duckdb.connect(spec["warehouse"]) as con:
    con.execute("create schema first_pass")
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' and table_type = 'BASE TABLE'"
    ).fetchall():
        con.execute(f"create table first_pass.{table} as select * from marts.{table}")
collect(None)
for month in spec["months"]:
    invoke(runner, ["run", "--vars", json.dumps({"as_of_month": month})])
"""


@dataclass(frozen=True)
class Replay:
    database: Path
    world_months: list[date]

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).df()


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    work_dir = tmp_path_factory.mktemp("dbt_replay")
    world_file, database = work_dir / "world.duckdb", work_dir / "warehouse.duckdb"
    write_raw(world_file, make_raw_world())
    spec = {
        "warehouse": str(database),
        "world": str(world_file),
        "months": [f"{month:%Y-%m-%d}" for month in REPLAY_MONTHS],
        "target": str(work_dir / "target"),
        "logs": str(work_dir / "logs"),
    }
    result = subprocess.run(
        [sys.executable, "-c", REPLAY_SCRIPT, json.dumps(spec)],
        cwd=REPO_ROOT,
        env=dbt_env(database),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"replay failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return Replay(database=database, world_months=REPLAY_MONTHS)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)


def test_rebuilding_twelve_months_gives_identical_marts(replay: Replay) -> None:
    tables = replay.query(
        "select table_name from information_schema.tables where table_schema = 'first_pass' order by 1"
    )["table_name"].tolist()
    assert set(tables) >= {"dim_customers", "fct_orders", *SNAPSHOT_MARTS, "cohort_retention", "campaign_history"}
    for table in tables:
        first = _sorted(replay.query(f"select * from first_pass.{table}"))
        second = _sorted(replay.query(f"select * from marts.{table}"))
        assert len(first) > 0, table
        pd.testing.assert_frame_equal(first, second, check_exact=True, obj=table)


def test_snapshot_marts_hold_one_snapshot_per_month(replay: Replay) -> None:
    for mart in SNAPSHOT_MARTS:
        counts = replay.query(f"select as_of_month, count(*) as n from marts.{mart} group by 1 order by 1")
        assert [ts.date() for ts in counts["as_of_month"]] == replay.world_months, mart
        assert counts["n"].is_monotonic_increasing and counts["n"].iloc[0] < counts["n"].iloc[-1], mart
        duplicated = replay.query(
            f"select count(*) as n from (select as_of_month, customer_id from marts.{mart} group by 1, 2 "
            "having count(*) > 1)"
        )
        assert duplicated["n"][0] == 0, mart


@pytest.mark.parametrize("month", [REPLAY_MONTHS[0], REPLAY_MONTHS[5], REPLAY_MONTHS[-1]], ids=str)
def test_replayed_rfm_matches_independent_computation(replay: Replay, month: date) -> None:
    # Anchors the comparison above: each month's snapshot is that month's, not a copy of another.
    actual = replay.query(f"select * from marts.customer_rfm where as_of_month = '{month}'").set_index("customer_id")
    expected = expected_rfm(make_raw_world(), month)
    assert actual.sort_index().index.tolist() == expected.index.tolist()
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score", "rfm_segment"):
        assert actual.sort_index()[column].tolist() == expected[column].tolist(), column


# --------------------------------------------------------------------------------------------------
# SQL style
# --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not SQLFLUFF_BIN.exists(), reason="sqlfluff not installed (pip install -e '.[dev]')")
def test_dbt_models_pass_sqlfluff(tmp_path: Path) -> None:
    # The dbt templater compiles the project, which opens the warehouse (an empty one is enough).
    env = {**dbt_env(tmp_path / "lint.duckdb"), "DBT_TARGET_PATH": str(tmp_path / "target")}
    result = subprocess.run(
        [str(SQLFLUFF_BIN), "lint", "dbt_project/models", "dbt_project/tests", "--nofail", "--format", "json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    files = json.loads(result.stdout)
    linted = {Path(entry["filepath"]).name for entry in files}
    assert {"customer_rfm.sql", "customer_portfolio.sql", "stg_crm__orders.sql"} <= linted, result.stderr[-2000:]
    violations = [
        f"{entry['filepath']}:{v['start_line_no']}: {v['code']} {v['description']}"
        for entry in files
        for v in entry["violations"]
    ]
    assert not violations, "\n".join(violations)
