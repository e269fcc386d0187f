"""The customer warehouse (dbt_project/) built end to end on a tiny raw dataset.

One module-scoped build: a temp DuckDB file gets raw.customers / raw.orders / raw.products /
raw.contact_log (with `_loaded_month`) for 2024-01..2025-03 and the design stage's
campaigns.campaign_plan, then `dbt build` (seeds, unit tests and data tests included) runs as of 2025-01,
as of 2025-02, and as of 2025-01 again (a rebuild of a past month after the next one was collected), the
month given as the loop gives it, in $CRM_AS_OF_MONTH. The tests compare the marts with an independent
pandas computation of the same definitions and check the invariants a user relies on: returns net out,
nothing after month end leaks in, snapshots of other months are untouched by a rebuild, no PII in the
marts, ids stay text, and only the first build parses the project.

tests/test_dbt_marts.py covers the other inputs and runs: an orders-only transaction log, a 12-month
replay built twice, sqlfluff and dbt docs. It reuses the world and the helpers defined here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.lib.dbt_project import BUILD_MONTH_VARIABLE, dbt_executable

pytestmark = pytest.mark.slow  # builds the warehouse with dbt on data (make test-fast leaves it out)

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO_ROOT / "dbt_project"
DBT_BIN = Path(dbt_executable())

MONTH_1 = date(2025, 1, 1)
MONTH_2 = date(2025, 2, 1)
RAW_MONTHS = pd.date_range("2024-01-01", "2025-03-01", freq="MS")
LAST_RAW_DAY = pd.Timestamp("2025-03-20")
PII_COLUMNS = {"full_name", "email", "phone"}
SNAPSHOT_MARTS = ("customer_rfm", "customer_value", "customer_portfolio", "customer_features")
CUSTOMER_MARTS = ("dim_customers", "fct_orders", *SNAPSHOT_MARTS)
HIGH_VALUE_TIERS = {"platinum", "gold", "silver"}  # dbt_project.yml var portfolio_high_value_tiers
LOYAL_MIN_R_SCORE = 3  # dbt_project.yml var portfolio_loyal_min_r_score


# --------------------------------------------------------------------------------------------------
# The tiny world
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawWorld:
    """Raw tables as the collect stage writes them (contract columns + `_loaded_month`), and the plan."""

    customers: pd.DataFrame
    orders: pd.DataFrame
    products: pd.DataFrame
    contact_log: pd.DataFrame
    campaign_plan: pd.DataFrame


RAW_TABLES = ("customers", "orders", "products", "contact_log")

# Column types of campaigns.campaign_plan, as the design stage writes it.
CAMPAIGN_PLAN_COLUMNS = {
    "campaign_id": "varchar",
    "customer_id": "varchar",
    "offer_id": "varchar",
    "group": "varchar",
    "selection": "varchar",
    "selection_probability": "double",
    "treatment_probability": "double",
    "expected_incremental_profit": "double",
    "stratum": "varchar",
    "rank": "bigint",
    "objective": "varchar",
    "policy": "varchar",
    "delivery_month": "timestamp",
    "designed_in_month": "timestamp",
}


def month_end(month: date) -> pd.Timestamp:
    """Last day of the month that starts at `month`."""
    return pd.Timestamp(month) + pd.offsets.MonthEnd(0)


def make_raw_world(seed: int = 7, n_customers: int = 150) -> RawWorld:
    """A small, deterministic company: ids with leading zeros, prices in cents, ties and returns on purpose.

    Customer ids are zero-padded digits ("00000".."00149", so "00042" exists) and product ids too
    ("000".."007"): anything that turns them into numbers loses the zeros. Hand-placed rows:
    "00042" orders on the last day of month 1 and the first day of month 2 and returns one unit in
    month 2; "00149" signs up and first orders in month 2; "00007" has only an order after month 2's
    end. About one order in twelve is partly returned a few days later (order_type 'return', the refund
    as a positive amount); sales have order_type 'sale' or NULL (which means sale). Every delivered
    campaign has a plan designed the month before, with a control group that is never contacted and
    two test customers the channel did not reach.
    """
    rng = np.random.default_rng(seed)
    customer_ids = np.array([f"{i:05d}" for i in range(n_customers)])

    signup_offsets = rng.integers(0, 540, n_customers)
    signup = pd.Timestamp("2023-07-01") + pd.to_timedelta(signup_offsets, unit="D")
    signup = signup.where(customer_ids != "00149", pd.Timestamp("2025-02-03"))
    signup = signup.where(customer_ids != "00007", pd.Timestamp("2023-07-01"))

    # Monthly full snapshots of everyone signed up by the snapshot's month end; consent drifts.
    snapshot_months = pd.to_datetime(["2024-12-01", "2025-01-01", "2025-02-01"])
    snapshots = pd.concat(
        [
            pd.DataFrame(
                {
                    "customer_id": customer_ids,
                    "full_name": [f"Person {c}" for c in customer_ids],
                    "email": [f" Person.{c}@Example.com " for c in customer_ids],
                    "phone": [f"+31 6 {c}{c[::-1]}" for c in customer_ids],
                    "signup_date": signup,
                    "email_consent": rng.random(n_customers) < 0.7,
                    "_loaded_month": month,
                }
            ).loc[lambda df, m=month: df["signup_date"] <= m + pd.offsets.MonthEnd(0)]
            for month in snapshot_months
        ],
        ignore_index=True,
    )
    snapshots.loc[snapshots["customer_id"] == "00003", "email"] = None
    snapshots.loc[snapshots["customer_id"] == "00004", "phone"] = "  "

    products = pd.DataFrame(
        {
            "product_id": [f"{j:03d}" for j in range(8)],
            "product_line": ["books", "books", "games", "games", "garden", "garden", "kitchen", "kitchen"],
            "product_name": [f"Product {j}" for j in range(8)],
            "unit_price": [9.99, 19.50, 4.25, 49.00, 12.75, 7.10, 29.95, 3.30],
            "unit_cost": [5.55, 11.20, 2.05, 31.40, 6.00, 3.95, 18.10, 1.15],
            "_loaded_month": pd.Timestamp("2024-01-01"),
        }
    )
    unit_price = products.set_index("product_id")["unit_price"]

    # Random orders (vectorised): a Poisson count per customer, dates after signup (and after 2024-01-01).
    n_orders = rng.poisson(4.0, n_customers)
    n_orders[np.isin(customer_ids, ["00149", "00007"])] = 0
    buyer = np.repeat(np.arange(n_customers), n_orders)
    window_start = np.maximum(signup[buyer].to_numpy(), np.datetime64("2024-01-01"))
    span_days = (LAST_RAW_DAY.to_datetime64() - window_start) // np.timedelta64(1, "D")
    order_dates = window_start + (rng.random(buyer.size) * (span_days + 1)).astype("timedelta64[D]")
    product_index = rng.integers(0, len(products), buyer.size)
    random_orders = pd.DataFrame(
        {
            "customer_id": customer_ids[buyer],
            "order_date": pd.to_datetime(order_dates),
            "product_id": products["product_id"].to_numpy()[product_index],
            "quantity": rng.integers(1, 4, buyer.size),
            "order_type": np.where(rng.random(buyer.size) < 0.5, "sale", None),
        }
    )
    # One unit of about one order in twelve comes back 1..20 days later (if that is within the raw data).
    returned = random_orders[rng.random(len(random_orders)) < 1 / 12].copy()
    returned["order_date"] += pd.to_timedelta(rng.integers(1, 21, len(returned)), unit="D")
    returned = returned[returned["order_date"] <= LAST_RAW_DAY].assign(quantity=1, order_type="return")
    placed_orders = pd.DataFrame(
        {
            "customer_id": ["00042", "00042", "00042", "00042", "00149", "00007"],
            "order_date": pd.to_datetime(
                ["2024-05-05", "2025-01-31", "2025-02-01", "2025-02-05", "2025-02-10", "2025-03-02"]
            ),
            "product_id": ["007", "003", "003", "003", "001", "002"],
            "quantity": [1, 2, 1, 1, 1, 1],
            "order_type": ["sale", "sale", None, "return", "sale", None],
        }
    )
    orders = pd.concat([random_orders, returned, placed_orders], ignore_index=True)
    orders = orders.sort_values(["order_date", "customer_id", "order_type"], kind="stable", ignore_index=True)
    orders.insert(0, "order_id", [f"{k:06d}" for k in range(len(orders))])
    orders["amount"] = (orders["quantity"] * orders["product_id"].map(unit_price)).round(2)
    orders["_loaded_month"] = orders["order_date"].dt.to_period("M").dt.to_timestamp()
    orders = orders[
        ["order_id", "customer_id", "order_date", "product_id", "quantity", "amount", "order_type", "_loaded_month"]
    ]

    # Delivered campaign contacts: one campaign per month, each reaching a random third of the base.
    campaigns = [
        ("2024-06-retention", "retain_voucher"),
        ("2024-12-retention", "retain_voucher"),
        ("2025-01-winback", "winback_voucher"),
        ("2025-02-retention", "retain_voucher"),
        ("2025-03-winback", "winback_voucher"),
    ]
    plans, contacts = [], []
    for campaign_id, offer_id in campaigns:
        delivery_month = pd.Timestamp(campaign_id[:7] + "-01")
        chosen = rng.choice(customer_ids, n_customers // 3 + 12, replace=False)
        test, control = chosen[: n_customers // 3 + 2], chosen[n_customers // 3 + 2 :]
        plans.append(
            pd.DataFrame(
                {
                    "campaign_id": campaign_id,
                    "customer_id": np.concatenate([test, control]),
                    "offer_id": offer_id,
                    "group": ["test"] * len(test) + ["control"] * len(control),
                    "selection": np.where(rng.random(len(chosen)) < 0.2, "explore", "exploit"),
                    "selection_probability": 0.5,
                    "treatment_probability": len(test) / len(chosen),
                    "expected_incremental_profit": rng.normal(1.0, 2.0, len(chosen)).round(2),
                    "stratum": "False",
                    "rank": np.arange(1, len(chosen) + 1),
                    "objective": campaign_id[8:],
                    "policy": "randomised_pilot",
                    "delivery_month": delivery_month,
                    "designed_in_month": delivery_month - pd.DateOffset(months=1),
                }
            )
        )
        contacts.append(  # the channel reaches all but the last two of the test group
            pd.DataFrame(
                {
                    "campaign_id": campaign_id,
                    "customer_id": test[:-2],
                    "offer_id": offer_id,
                    "channel": "email",
                    "contacted_at": delivery_month,
                }
            )
        )
    campaign_plan = pd.concat(plans, ignore_index=True)
    contact_log = pd.concat(contacts, ignore_index=True)
    contact_log["_loaded_month"] = contact_log["contacted_at"]

    for frame, columns in (
        (snapshots, ["signup_date", "_loaded_month"]),
        (orders, ["order_date", "_loaded_month"]),
        (products, ["_loaded_month"]),
        (contact_log, ["contacted_at", "_loaded_month"]),
    ):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return RawWorld(
        customers=snapshots, orders=orders, products=products, contact_log=contact_log, campaign_plan=campaign_plan
    )


def write_raw(database: Path, world: RawWorld) -> None:
    """Write the raw schema the way the collect stage does (typed DuckDB tables, ids as VARCHAR), and
    campaigns.campaign_plan the way the design stage does."""
    with duckdb.connect(str(database)) as con:
        con.execute("create schema if not exists raw")
        for name in RAW_TABLES:
            con.register("delivered", getattr(world, name))
            con.execute(f"create or replace table raw.{name} as select * from delivered")
            con.unregister("delivered")
        write_campaign_plan(con, world.campaign_plan)


def write_campaign_plan(con: duckdb.DuckDBPyConnection, plan: pd.DataFrame) -> None:
    """campaigns.campaign_plan with the design stage's column types (it exists even when empty)."""
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in CAMPAIGN_PLAN_COLUMNS.items())
    con.execute("create schema if not exists campaigns")
    con.execute(f"create or replace table campaigns.campaign_plan ({columns})")
    if not plan.empty:
        con.register("planned", plan[list(CAMPAIGN_PLAN_COLUMNS)])
        con.execute("insert into campaigns.campaign_plan select * from planned")
        con.unregister("planned")


def world_as_collected(world: RawWorld, month: date) -> RawWorld:
    """What the loop has collected by the time it builds `month`: raw rows loaded up to `month`, and the
    plans designed before it (the design stage of a month runs after its warehouse build)."""
    loaded = {
        name: getattr(world, name).loc[lambda frame: frame["_loaded_month"] <= month].reset_index(drop=True)
        for name in RAW_TABLES
    }
    plan = world.campaign_plan[world.campaign_plan["designed_in_month"] < pd.Timestamp(month)]
    return RawWorld(**loaded, campaign_plan=plan.reset_index(drop=True))


# --------------------------------------------------------------------------------------------------
# Independent expectations (pandas, integer cents so that ties are exact)
# --------------------------------------------------------------------------------------------------


def _cents(values: pd.Series) -> pd.Series:
    return (values.astype(float) * 100).round().astype("int64")


def rank_score(values: pd.Series, ascending: bool) -> pd.Series:
    """score = 1 + floor(5 * (rank - 1) / n), rank = SQL rank() (ties take the lowest rank)."""
    rank = values.rank(method="min", ascending=ascending)
    return (1 + np.floor(5 * (rank - 1) / len(values))).astype("int64")


def order_lines(world: RawWorld, as_of_month: date) -> pd.DataFrame:
    """Raw order lines dated up to month end, with money in signed cents (a return's is negative)."""
    end = month_end(as_of_month).date()
    lines = world.orders[world.orders["order_date"] <= end].merge(
        world.products[["product_id", "unit_cost"]], on="product_id", how="left"
    )
    lines["is_return"] = lines["order_type"].eq("return")
    sign = np.where(lines["is_return"], -1, 1)
    lines["revenue_cents"] = sign * _cents(lines["amount"])
    lines["margin_cents"] = sign * (_cents(lines["amount"]) - lines["quantity"] * _cents(lines["unit_cost"]))
    return lines


def expected_rfm(world: RawWorld, as_of_month: date) -> pd.DataFrame:
    """RFM of every customer with an order (sale) by month end, from the raw orders only.

    frequency counts sales; monetary = revenue net of returns / frequency; recency from the last sale.
    """
    end = month_end(as_of_month).date()
    lines = order_lines(world, as_of_month)
    sales = lines[~lines["is_return"]]
    per_customer = sales.groupby("customer_id").agg(
        last_order_date=("order_date", "max"), frequency=("order_id", "nunique")
    )
    net_cents = lines.groupby("customer_id")["revenue_cents"].sum().reindex(per_customer.index)
    recency_days = (pd.Timestamp(end) - pd.to_datetime(per_customer["last_order_date"])).dt.days
    average_cents = net_cents / per_customer["frequency"]
    rfm = pd.DataFrame(
        {
            "recency_days": recency_days,
            "frequency": per_customer["frequency"],
            "monetary": average_cents / 100,
            "r_score": rank_score(recency_days, ascending=False),  # most recent (fewest days) -> 5
            "f_score": rank_score(per_customer["frequency"], ascending=True),
            "m_score": rank_score(average_cents, ascending=True),
        }
    )
    segments = pd.read_csv(DBT_PROJECT / "seeds" / "rfm_segments.csv")
    pairs = rfm[["r_score", "f_score"]].reset_index().merge(segments, how="cross")
    pairs = pairs[
        pairs["r_score"].between(pairs["r_min"], pairs["r_max"])
        & pairs["f_score"].between(pairs["f_min"], pairs["f_max"])
    ]
    rfm["rfm_segment"] = pairs.set_index("customer_id")["rfm_segment"]
    return rfm.sort_index()


def expected_value(world: RawWorld, as_of_month: date) -> pd.DataFrame:
    """12-month profit and pyramid tier of every customer with an order (sale) by month end.

    Money is net of returns; orders_12m counts sales; profit = margin - (orders * per_order +
    contacts * per_contact); profit_rank_share = share of customers whose profit is at least the
    customer's (cume_dist over profit descending).
    """
    end = month_end(as_of_month).date()
    start = (pd.Timestamp(as_of_month) - pd.DateOffset(months=11)).date()
    costs = pd.read_csv(DBT_PROJECT / "seeds" / "cost_to_serve.csv").set_index("cost_item")["amount"]
    tiers = pd.read_csv(DBT_PROJECT / "seeds" / "pyramid_tiers.csv")

    lines = order_lines(world, as_of_month)
    buyers = pd.Index(lines.loc[~lines["is_return"], "customer_id"].unique(), name="customer_id")
    in_window = lines[lines["order_date"] >= start]
    contacts = world.contact_log[
        (world.contact_log["contacted_at"] >= start) & (world.contact_log["contacted_at"] <= end)
    ]

    value = pd.DataFrame(index=buyers.sort_values())
    grouped = in_window.groupby("customer_id")
    value["revenue_cents"] = grouped["revenue_cents"].sum()
    value["margin_cents"] = grouped["margin_cents"].sum()
    value["orders_12m"] = in_window[~in_window["is_return"]].groupby("customer_id").size()
    value["contacts_12m"] = contacts.groupby("customer_id").size()
    value = value.fillna(0).astype("int64")
    value["cost_to_serve_cents"] = value["orders_12m"] * round(costs["per_order"] * 100) + value[
        "contacts_12m"
    ] * round(costs["per_contact"] * 100)
    value["profit_cents"] = value["margin_cents"] - value["cost_to_serve_cents"]
    value["profit_rank_share"] = value["profit_cents"].rank(method="max", ascending=False) / len(value)
    tier_index = np.searchsorted(tiers["max_share"].to_numpy(), value["profit_rank_share"].to_numpy(), side="left")
    value["pyramid_tier"] = tiers["tier"].to_numpy()[tier_index]
    return value


def months_before(month: date, months: int) -> date:
    return (pd.Timestamp(month) - pd.DateOffset(months=months)).date()


def expected_features(world: RawWorld, as_of_month: date) -> pd.DataFrame:
    """Point-in-time features from the raw rows dated up to month end (windows: calendar months)."""
    end = month_end(as_of_month).date()
    lines = order_lines(world, as_of_month)
    sales = lines[~lines["is_return"]]
    grouped = sales.groupby("customer_id")
    features = pd.DataFrame(
        {
            "recency_days": (pd.Timestamp(end) - pd.to_datetime(grouped["order_date"].max())).dt.days,
            "frequency": grouped.size(),
            "days_since_first_order": (pd.Timestamp(end) - pd.to_datetime(grouped["order_date"].min())).dt.days,
        }
    )
    for months in (1, 3, 12):
        recent = sales[sales["order_date"] >= months_before(as_of_month, months - 1)]
        features[f"orders_{months}m"] = recent.groupby("customer_id").size().reindex(features.index, fill_value=0)
    returns = lines[lines["is_return"]].groupby("customer_id").size().reindex(features.index, fill_value=0)
    features["return_rate"] = returns / features["frequency"]
    net_cents = lines.groupby("customer_id")["revenue_cents"].sum().reindex(features.index)
    features["monetary"] = net_cents / features["frequency"] / 100
    return features.sort_index()


# --------------------------------------------------------------------------------------------------
# Running dbt
# --------------------------------------------------------------------------------------------------


def dbt_env(database: Path, month: date | None = None) -> dict[str, str]:
    """The environment of a dbt command on `database`, as of `month` when given ($CRM_AS_OF_MONTH; else none)."""
    env = {key: value for key, value in os.environ.items() if key != BUILD_MONTH_VARIABLE}
    env.update({"CRM_WAREHOUSE": str(database), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    if month is not None:
        env[BUILD_MONTH_VARIABLE] = f"{month:%Y-%m-%d}"
    return env


def run_dbt(
    args: list[str], database: Path, work_dir: Path, month: date | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI from the repo root against `database` (as of `month` in $CRM_AS_OF_MONTH when given); fail
    the test with dbt's log on error."""
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
    env = dbt_env(database, month)
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result


def build_month(month: date, database: Path, work_dir: Path) -> subprocess.CompletedProcess[str]:
    """`dbt build` as of `month`, given in $CRM_AS_OF_MONTH as the loop gives it (tests/test_dbt_marts.py builds
    with `--vars`); dbt's log file (work_dir/logs/dbt.log) in JSON, for `parse_reports`."""
    return run_dbt(["build", "--log-format-file", "json"], database, work_dir, month=month)


# dbt's events on how it parsed the project: a full parse says why (UnableToPartialParse).
PARSE_EVENTS = {"UnableToPartialParse", "PartialParsingEnabled", "PartialParsingNotEnabled", "PartialParsingError"}


def parse_reports(dbt_log: Path) -> list[list[str]]:
    """What dbt said about parsing the project, `<event>: <message>` per invocation in the order they ran, from a
    dbt.log in JSON (`--log-format-file json`; dagster-dbt's `--log-format json` writes the file so too) and the
    files dbt rotated it into (dbt.log.1 is the newest of them)."""
    rotated = [path for path in dbt_log.parent.glob(f"{dbt_log.name}.*") if path.suffix[1:].isdigit()]
    rotated.sort(key=lambda path: int(path.suffix[1:]), reverse=True)
    lines = [line for path in [*rotated, dbt_log] for line in path.read_text().splitlines()]
    invocations: dict[str, list[str]] = {}
    for line in lines:
        try:
            info = json.loads(line)["info"]
        except (ValueError, KeyError, TypeError):
            continue
        reports = invocations.setdefault(info["invocation_id"], [])
        if info["name"] in PARSE_EVENTS or (info["name"] == "Note" and "partial parsing" in info["msg"]):
            reports.append(f"{info['name']}: {info['msg']}")
    return list(invocations.values())


def assert_parsed_project_reused(reports: list[str]) -> None:
    """dbt re-used the project parsed by the previous invocation as it was (nothing parsed again)."""
    assert not [report for report in reports if report.startswith("UnableToPartialParse")], reports
    assert "Note: Nothing changed, skipping partial parsing." in reports, reports


def read_snapshot(database: Path, mart: str, month: date) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as con:
        frame = con.execute(f"select * from marts.{mart} where as_of_month = ? order by customer_id", [month]).df()
    return frame.set_index("customer_id")


@dataclass(frozen=True)
class Warehouse:
    """The built warehouse plus what was read between the builds."""

    database: Path
    world: RawWorld
    first_build: dict[tuple[str, date], pd.DataFrame]  # (mart, month) -> rows after builds 1 and 2
    rebuilt: dict[tuple[str, date], pd.DataFrame]  # (mart, month) -> rows after month 1 was rebuilt
    build_log: str  # dbt's output of the last build
    dbt_log: Path  # dbt's log file of the three builds, in JSON

    def query(self, sql: str, parameters: list | None = None) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql, parameters or []).df()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    work_dir = tmp_path_factory.mktemp("dbt_warehouse")
    database = work_dir / "warehouse.duckdb"
    world = make_raw_world()
    write_raw(database, world)

    # `dbt build` seeds (and tests the seeds) before the models: no separate `dbt seed` run needed.
    build_month(MONTH_1, database, work_dir)
    build_month(MONTH_2, database, work_dir)
    first_build = {
        (mart, month): read_snapshot(database, mart, month) for mart in SNAPSHOT_MARTS for month in (MONTH_1, MONTH_2)
    }
    result = build_month(MONTH_1, database, work_dir)  # rebuild a past month after the next one was built
    rebuilt = {
        (mart, month): read_snapshot(database, mart, month) for mart in SNAPSHOT_MARTS for month in (MONTH_1, MONTH_2)
    }
    return Warehouse(
        database=database,
        world=world,
        first_build=first_build,
        rebuilt=rebuilt,
        build_log=result.stdout,
        dbt_log=work_dir / "logs" / "dbt.log",
    )


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_every_unit_test_and_data_test_ran_and_passed(warehouse: Warehouse) -> None:
    summary = next(line for line in warehouse.build_log.splitlines() if "Done. PASS=" in line)
    counts = dict(part.split("=") for part in summary.split("Done.")[1].split())
    assert int(counts["ERROR"]) == 0 and int(counts["SKIP"]) == 0, summary
    # the warnings are the designed ones only: none on this complete input
    assert int(counts["WARN"]) == 0, summary
    ran = next(line for line in warehouse.build_log.splitlines() if "Finished running" in line)
    assert int(ran.split(" unit tests")[0].split()[-1]) >= 17, ran


def test_a_build_of_another_month_reuses_the_parsed_project(warehouse: Warehouse) -> None:
    """The month is not a `--vars` value, so dbt's partial parsing lasts from one month's build to the next: the
    first build parses the project (a fresh target folder), the next two, as of other months, parse nothing."""
    first, *later = parse_reports(warehouse.dbt_log)
    assert len(later) == 2, later
    assert [report for report in first if report.startswith("UnableToPartialParse")], first
    for reports in later:
        assert_parsed_project_reused(reports)


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_rfm_scores_equal_independent_pandas_computation(warehouse: Warehouse, month: date) -> None:
    actual = warehouse.first_build[("customer_rfm", month)]
    expected = expected_rfm(warehouse.world, month)

    assert actual.index.tolist() == expected.index.tolist()  # exactly the customers with an order
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score", "rfm_segment"):
        assert actual[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(actual["monetary"], expected["monetary"], rtol=0, atol=1e-9)
    # the formula gives both ends of the scale on this data
    assert set(actual["r_score"]) >= {1, 5} and set(actual["m_score"]) >= {1, 5}


def test_rebuilding_a_past_month_rewrites_only_that_month(warehouse: Warehouse) -> None:
    for mart in SNAPSHOT_MARTS:
        pd.testing.assert_frame_equal(warehouse.rebuilt[(mart, MONTH_2)], warehouse.first_build[(mart, MONTH_2)])
        pd.testing.assert_frame_equal(warehouse.rebuilt[(mart, MONTH_1)], warehouse.first_build[(mart, MONTH_1)])
        counts = warehouse.query(f"select as_of_month, count(*) as n from marts.{mart} group by 1 order by 1")
        assert counts["as_of_month"].tolist() == [pd.Timestamp(MONTH_1), pd.Timestamp(MONTH_2)], mart
        assert counts["n"].tolist() == [
            len(warehouse.rebuilt[(mart, MONTH_1)]),
            len(warehouse.rebuilt[(mart, MONTH_2)]),
        ], mart
    # the months differ (so the comparison above can fail): "00149" first ordered in month 2
    assert "00149" in warehouse.rebuilt[("customer_rfm", MONTH_2)].index


def test_snapshot_mart_tests_check_the_month_being_built(warehouse: Warehouse, tmp_path: Path) -> None:
    """A build writes one month of a snapshot mart, so its tests read that month only: a bad row left in an
    earlier month (checked when that month was built) does not fail a later month's tests, and it does fail
    its own month's."""
    database = tmp_path / "warehouse.duckdb"
    shutil.copyfile(warehouse.database, database)
    with duckdb.connect(str(database)) as con:
        con.execute("update marts.customer_rfm set r_score = 9 where as_of_month = ?", [MONTH_1])

    def test_month(month: date) -> subprocess.CompletedProcess[str]:
        command = [str(DBT_BIN), "test", "--select", "customer_rfm", "--vars", f"{{as_of_month: '{month:%Y-%m-%d}'}}"]
        command += ["--profiles-dir", "dbt_project", "--project-dir", "dbt_project"]
        command += ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
        env = dbt_env(database)
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert test_month(MONTH_2).returncode == 0
    failed = test_month(MONTH_1)
    assert failed.returncode != 0
    assert "accepted_range_customer_rfm_r_score" in failed.stdout


def test_a_null_in_a_required_column_fails_its_model_test_naming_the_column(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """The required columns of a model are checked in one test; its failures name each column with NULLs and
    count them (stored by `--store-failures`), and columns allowed to be NULL do not fail it."""
    database = tmp_path / "warehouse.duckdb"
    shutil.copyfile(warehouse.database, database)
    with duckdb.connect(str(database)) as con:
        lines = con.execute("select count(*) from marts.fct_orders").fetchone()[0]
        first_line = "select min(order_id) from marts.fct_orders"
        con.execute(f"update marts.fct_orders set order_date = null, revenue = null where order_id in ({first_line})")
        con.execute("update marts.fct_orders set product_id = null")  # optional: a plain log names no product
    command = [str(DBT_BIN), "test", "--select", "test_name:not_null_columns,fct_orders", "--store-failures"]
    command += ["--vars", f"{{as_of_month: '{MONTH_2:%Y-%m-%d}'}}", "--profiles-dir", "dbt_project"]
    command += [
        "--project-dir",
        "dbt_project",
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
    ]
    failed = subprocess.run(command, cwd=REPO_ROOT, env=dbt_env(database), capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert "FAIL 2 not_null_columns_fct_orders " in failed.stdout
    with duckdb.connect(str(database), read_only=True) as con:
        (schema,) = con.execute(
            "select table_schema from information_schema.tables where table_name = 'not_null_columns_fct_orders'"
        ).fetchone()
        failures = con.execute(f"select * from {schema}.not_null_columns_fct_orders order by column_name").df()
    assert failures.to_dict("records") == [
        {"column_name": "order_date", "null_rows": 1},
        {"column_name": "revenue", "null_rows": 1},
    ]
    assert lines > 1


def test_orders_after_month_end_do_not_leak_into_the_month(warehouse: Warehouse) -> None:
    # After the final build (as of month 1), with months 2 and 3 already in raw.
    end = month_end(MONTH_1).date()
    orders = warehouse.world.orders
    fct = warehouse.query("select count(*) as n, max(order_date) as last_day from marts.fct_orders")
    assert fct.loc[0, "n"] == (orders["order_date"] <= end).sum()
    assert fct.loc[0, "last_day"] == pd.Timestamp(end)  # "00042" ordered on the month's last day

    dim = warehouse.query("select * from marts.dim_customers").set_index("customer_id")
    assert "00149" not in dim.index  # signed up and first ordered in month 2
    assert dim.loc["00042", "last_order_date"] == pd.Timestamp(end)  # its 2025-02-01 order does not count
    sales_of_00042 = (orders["customer_id"] == "00042") & (orders["order_type"] != "return")
    assert dim.loc["00042", "lifetime_orders"] == (sales_of_00042 & (orders["order_date"] <= end)).sum()
    assert dim.loc["00042", "lifetime_returns"] == 0  # its return is in month 2
    assert dim.loc["00007", "lifetime_orders"] == 0 and pd.isna(dim.loc["00007", "acquisition_cohort"])
    assert (dim["as_of_month"] == pd.Timestamp(MONTH_1)).all()

    rfm_month_1 = warehouse.rebuilt[("customer_rfm", MONTH_1)]
    assert "00007" not in rfm_month_1.index and "00149" not in rfm_month_1.index
    assert "00149" in warehouse.rebuilt[("customer_rfm", MONTH_2)].index


def test_returns_are_negative_lines_that_net_out_of_revenue(warehouse: Warehouse) -> None:
    # As of month 1 (the final build). Every raw return is a fct_orders line with negative money.
    lines = order_lines(warehouse.world, MONTH_1).set_index("order_id")
    fct = warehouse.query("select * from marts.fct_orders").set_index("order_id").loc[lines.index]
    assert lines["is_return"].sum() >= 10  # the world has returns to check
    assert fct["is_return"].tolist() == lines["is_return"].tolist()
    assert fct["order_type"].tolist() == np.where(lines["is_return"], "return", "sale").tolist()  # NULL = sale
    assert (fct.loc[fct["is_return"], ["revenue", "cost", "margin"]] < 0).all().all()
    np.testing.assert_allclose(fct["revenue"], lines["revenue_cents"] / 100, atol=1e-9)
    np.testing.assert_allclose(fct["margin"], lines["margin_cents"] / 100, atol=1e-9)

    # lifetime revenue is net: sales minus refunds, per customer
    dim = warehouse.query("select customer_id, lifetime_revenue, lifetime_returns from marts.dim_customers")
    dim = dim.set_index("customer_id")
    net = lines.groupby("customer_id")["revenue_cents"].sum() / 100
    np.testing.assert_allclose(dim.loc[net.index, "lifetime_revenue"], net, atol=1e-9)
    returns = lines[lines["is_return"]].groupby("customer_id").size()
    assert dim.loc[returns.index, "lifetime_returns"].tolist() == returns.tolist()


def test_a_return_after_month_end_changes_only_the_later_month(warehouse: Warehouse) -> None:
    # "00042" returned one of its 2025-01-31 units on 2025-02-05: month 2 is net of it, month 1 is not.
    month_1 = warehouse.first_build[("customer_features", MONTH_1)].loc["00042"]
    month_2 = warehouse.first_build[("customer_features", MONTH_2)].loc["00042"]
    assert month_1["return_rate"] == 0
    assert month_2["return_rate"] > 0
    assert month_2["frequency"] == month_1["frequency"] + 1  # its 2025-02-01 sale
    assert month_2["net_revenue_lifetime"] == pytest.approx(month_1["net_revenue_lifetime"] + 49.00 - 49.00)


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_customer_value_matches_definition_and_profit_is_margin_minus_cost_to_serve(
    warehouse: Warehouse, month: date
) -> None:
    actual = warehouse.first_build[("customer_value", month)]
    expected = expected_value(warehouse.world, month)

    assert actual.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(actual["profit_12m"], actual["margin_12m"] - actual["cost_to_serve_12m"], atol=1e-9)
    for column in ("revenue", "margin", "cost_to_serve", "profit"):
        np.testing.assert_allclose(actual[f"{column}_12m"], expected[f"{column}_cents"] / 100, atol=1e-9)
    assert actual["orders_12m"].tolist() == expected["orders_12m"].tolist()
    assert actual["contacts_12m"].tolist() == expected["contacts_12m"].tolist()
    np.testing.assert_allclose(actual["profit_rank_share"], expected["profit_rank_share"], rtol=0, atol=1e-12)
    assert (actual["tier_basis"] == "profit").all()  # product costs are known for every order line
    np.testing.assert_allclose(actual["tier_rank_share"], actual["profit_rank_share"], rtol=0, atol=0)


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_every_customer_with_an_order_is_in_exactly_one_tier(warehouse: Warehouse, month: date) -> None:
    lines = order_lines(warehouse.world, month)
    buyers = set(lines.loc[~lines["is_return"], "customer_id"])
    value = warehouse.query("select customer_id, pyramid_tier from marts.customer_value where as_of_month = ?", [month])

    assert not value["customer_id"].duplicated().any()
    assert set(value["customer_id"]) == buyers
    assert value["pyramid_tier"].notna().all()
    expected = expected_value(warehouse.world, month)["pyramid_tier"]
    assert value.set_index("customer_id")["pyramid_tier"].sort_index().tolist() == expected.tolist()
    tier_counts = value["pyramid_tier"].value_counts()
    assert tier_counts.get("platinum", 0) >= 1  # > 100 buyers: the top 1% is not empty
    assert tier_counts["platinum"] <= 0.01 * len(value)  # ties never inflate a tier beyond its share


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_customer_features_are_point_in_time(warehouse: Warehouse, month: date) -> None:
    # Computed from raw rows dated up to month end only; month 1 was built while months 2-3 were in raw.
    actual = warehouse.rebuilt[("customer_features", month)]
    expected = expected_features(warehouse.world, month)

    assert actual.index.tolist() == expected.index.tolist()
    for column in ("recency_days", "frequency", "days_since_first_order", "orders_1m", "orders_3m", "orders_12m"):
        assert actual[column].tolist() == expected[column].tolist(), column
    for column in ("return_rate", "monetary"):
        np.testing.assert_allclose(actual[column], expected[column], rtol=0, atol=1e-9, err_msg=column)
    assert (actual["recency_days"] >= 0).all()
    assert (actual["orders_1m"] <= actual["orders_3m"]).all() and (actual["orders_3m"] <= actual["orders_12m"]).all()
    # the same definitions as the RFM snapshot
    rfm = warehouse.rebuilt[("customer_rfm", month)]
    assert actual[["recency_days", "frequency"]].equals(rfm[["recency_days", "frequency"]])


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_portfolio_quadrant_follows_value_tier_and_recency(warehouse: Warehouse, month: date) -> None:
    portfolio = warehouse.rebuilt[("customer_portfolio", month)]
    value = warehouse.rebuilt[("customer_value", month)]
    rfm = warehouse.rebuilt[("customer_rfm", month)]
    quadrants = pd.read_csv(DBT_PROJECT / "seeds" / "portfolio_quadrants.csv")

    assert portfolio.index.tolist() == value.index.tolist() == rfm.index.tolist()
    high_value = value["pyramid_tier"].isin(HIGH_VALUE_TIERS)
    loyal = rfm["r_score"] >= LOYAL_MIN_R_SCORE
    assert portfolio["is_high_value"].tolist() == high_value.tolist()
    assert portfolio["is_loyal"].tolist() == loyal.tolist()
    expected = pd.DataFrame({"is_high_value": high_value, "is_loyal": loyal}).merge(
        quadrants, on=["is_high_value", "is_loyal"], how="left"
    )
    assert portfolio["portfolio_quadrant"].tolist() == expected["portfolio_quadrant"].tolist()
    assert portfolio["recommended_treatment"].tolist() == expected["recommended_treatment"].tolist()
    assert set(portfolio["portfolio_quadrant"]) == set(quadrants["portfolio_quadrant"])  # all four occur
    assert high_value.mean() <= 0.2 + 1e-9  # high value = the top 20% at most (ties share a tier)


def test_cohort_retention_matches_orders(warehouse: Warehouse) -> None:
    # As of month 1 (the final build).
    lines = order_lines(warehouse.world, MONTH_1)
    lines["month"] = pd.to_datetime(lines["order_date"]).dt.to_period("M")
    sales = lines[~lines["is_return"]]
    cohort_of = sales.groupby("customer_id")["month"].min().rename("cohort")
    lines = lines.join(cohort_of, on="customer_id", how="inner")
    lines["k"] = (lines["month"] - lines["cohort"]).apply(lambda offset: offset.n)

    actual = warehouse.query("select * from marts.cohort_retention order by acquisition_cohort, 3")
    last = pd.Period(MONTH_1, "M")
    expected_rows = sum((last - cohort).n + 1 for cohort in cohort_of.unique())
    assert len(actual) == expected_rows  # dense: every cohort has every month up to the as-of month
    actual["cohort"] = actual["acquisition_cohort"].dt.to_period("M")
    actual = actual.set_index(["cohort", "months_since_first_order"])

    sizes = cohort_of.value_counts()
    assert (actual["cohort_size"] == actual.index.get_level_values("cohort").map(sizes)).all()
    active = lines[~lines["is_return"]].groupby(["cohort", "k"])["customer_id"].nunique()
    net = lines.groupby(["cohort", "k"])["revenue_cents"].sum() / 100
    assert (actual["active_customers"] == active.reindex(actual.index, fill_value=0)).all()
    np.testing.assert_allclose(actual["net_revenue"], net.reindex(actual.index, fill_value=0), atol=1e-9)
    np.testing.assert_allclose(actual["retention_share"], actual["active_customers"] / actual["cohort_size"])
    assert (actual.xs(0, level="months_since_first_order")["retention_share"] == 1).all()
    assert (actual["retention_share"] < 1).any() and (actual["active_customers"] == 0).any()


def test_campaign_history_has_every_assignment_with_contact_and_outcome(warehouse: Warehouse) -> None:
    # As of month 1 (the final build): plans designed before 2025-01, i.e. delivered up to 2025-01.
    world = warehouse.world
    plan = world.campaign_plan[world.campaign_plan["designed_in_month"] < pd.Timestamp(MONTH_1)]
    history = warehouse.query("select * from marts.campaign_history").set_index(["campaign_id", "customer_id"])

    assert sorted(history.index) == sorted(zip(plan["campaign_id"], plan["customer_id"], strict=True))
    assert set(history.index.get_level_values("campaign_id")) == {
        "2024-06-retention",
        "2024-12-retention",
        "2025-01-winback",
    }  # 2025-02-retention, designed in 2025-01, joins from the build of 2025-02 on
    assert history["is_outcome_window_closed"].all()

    contacted = set(zip(world.contact_log["campaign_id"], world.contact_log["customer_id"], strict=True))
    assert history["was_contacted"].tolist() == [key in contacted for key in history.index]
    assert not history.loc[history["treatment_group"] == "control", "was_contacted"].any()
    assert (~history.loc[history["treatment_group"] == "test", "was_contacted"]).sum() == 2 * 3  # not reached

    lines = order_lines(world, MONTH_1)
    lines["delivery_month"] = pd.to_datetime(lines["order_date"]).dt.to_period("M").dt.to_timestamp()
    keyed = plan.merge(lines, on=["customer_id", "delivery_month"], how="left")
    keyed["is_sale"] = keyed["order_id"].notna() & ~keyed["is_return"].fillna(False).astype(bool)
    outcome = (
        keyed.groupby(["campaign_id", "customer_id"])
        .agg(orders=("is_sale", "sum"), revenue_cents=("revenue_cents", "sum"))
        .loc[history.index]
    )
    assert history["orders_in_window"].tolist() == outcome["orders"].tolist()
    assert history["ordered_in_window"].tolist() == (outcome["orders"] > 0).tolist()
    np.testing.assert_allclose(history["revenue_in_window"], outcome["revenue_cents"] / 100, atol=1e-9)
    assert history["ordered_in_window"].any() and not history["ordered_in_window"].all()
    control = history[history["treatment_group"] == "control"]
    assert control["ordered_in_window"].notna().all()  # the control group's outcome is measured too


def test_no_pii_in_the_warehouse_models(warehouse: Warehouse) -> None:
    columns = warehouse.query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('staging', 'intermediate', 'marts')"
    )
    assert set(columns["table_schema"]) == {"staging", "intermediate", "marts"}
    assert not set(columns["column_name"]) & PII_COLUMNS

    customers = warehouse.world.customers
    pii_values = set(customers["full_name"]) | set(customers["email"].dropna()) | set(customers["phone"].dropna())
    pii_values |= {email.strip().lower() for email in customers["email"].dropna()}
    text_columns = columns[columns["data_type"] == "VARCHAR"]
    with duckdb.connect(str(warehouse.database), read_only=True) as con:
        for row in text_columns.itertuples():
            column = f"{row.table_schema}.{row.table_name}.{row.column_name}"
            values = con.execute(
                f'select distinct "{row.column_name}" from {row.table_schema}.{row.table_name}'
            ).fetchall()
            assert not {value for (value,) in values} & pii_values, column


def test_email_is_hashed_and_presence_flags_are_kept(warehouse: Warehouse) -> None:
    dim = warehouse.query("select * from marts.dim_customers").set_index("customer_id")
    assert dim.loc["00042", "email_hash"] == hashlib.sha256(b"person.00042@example.com").hexdigest()
    assert pd.isna(dim.loc["00003", "email_hash"]) and not dim.loc["00003", "has_email"]
    assert not dim.loc["00004", "has_phone"] and dim.loc["00005", "has_phone"]
    # contactable = consent known and true, and an address
    expected = dim["email_consent"].fillna(False).astype(bool) & dim["has_email"]
    assert dim["is_contactable"].tolist() == expected.tolist()
    assert not dim.loc["00003", "is_contactable"]


def test_ids_with_leading_zeros_stay_text(warehouse: Warehouse) -> None:
    id_columns = warehouse.query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('staging', 'intermediate', 'marts', 'reference') "
        "and column_name like '%\\_id' escape '\\'"
    )
    assert not id_columns.empty
    assert (id_columns["data_type"] == "VARCHAR").all(), id_columns[id_columns["data_type"] != "VARCHAR"]
    for mart in CUSTOMER_MARTS:
        ids = warehouse.query(f"select customer_id from marts.{mart}")["customer_id"]
        assert "00042" in set(ids), mart
    products = warehouse.query("select distinct product_id from marts.fct_orders")["product_id"]
    assert "007" in set(products)
    orders = warehouse.query("select order_id from marts.fct_orders")["order_id"]
    assert "000000" in set(orders)


def test_schemas_are_staging_intermediate_marts_and_reference(warehouse: Warehouse) -> None:
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables where table_schema not in ('raw', 'campaigns')"
    )
    by_schema = tables.groupby("table_schema")["table_name"].apply(set).to_dict()
    assert set(by_schema) == {"staging", "intermediate", "marts", "reference"}  # exact names: no `main_` prefix
    assert by_schema["staging"] >= {
        "stg_crm__customers",
        "stg_crm__orders",
        "stg_crm__products",
        "stg_crm__contact_log",
        "stg_campaigns__campaign_plan",
    }
    assert by_schema["marts"] >= {
        "fct_orders",
        "dim_customers",
        "customer_rfm",
        "customer_value",
        "customer_portfolio",
        "customer_features",
        "cohort_retention",
        "campaign_history",
    }
    assert by_schema["reference"] >= {"offers", "rfm_segments", "pyramid_tiers", "cost_to_serve", "portfolio_quadrants"}


def test_dbt_parse_needs_no_database(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "warehouse.duckdb"
    run_dbt(["parse"], database, tmp_path)

    assert not database.parent.exists()
    manifest = (tmp_path / "target" / "manifest.json").read_text()
    for node in (
        "model.crm_warehouse.customer_rfm",
        "model.crm_warehouse.customer_value",
        "model.crm_warehouse.customer_portfolio",
        "model.crm_warehouse.customer_features",
        "model.crm_warehouse.cohort_retention",
        "model.crm_warehouse.campaign_history",
        "unit_test.crm_warehouse.customer_rfm.customer_rfm_ties_share_a_score",
        "seed.crm_warehouse.pyramid_tiers",
        "source.crm_warehouse.campaigns.campaign_plan",
    ):
        assert f'"{node}"' in manifest, node
