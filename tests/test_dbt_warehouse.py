"""The customer warehouse (dbt_project/) built end to end on a tiny raw dataset.

One module-scoped build: a temp DuckDB file gets raw.customers / raw.orders / raw.products /
raw.contact_log (with `_loaded_month`) for 2024-01..2025-03, then `dbt build` (seeds included) runs as
of 2025-01, as of 2025-02, and as of 2025-01 again (a rebuild of a past month after the next one was
collected). The tests compare the marts with an independent pandas computation of the same
definitions and check the invariants a user relies on: nothing after month end leaks in, snapshots of
other months are untouched by a rebuild, no PII in the marts, ids stay text.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO_ROOT / "dbt_project"
DBT_BIN = Path(os.environ.get("DBT_BIN", REPO_ROOT / ".venv" / "bin" / "dbt"))

MONTH_1 = date(2025, 1, 1)
MONTH_2 = date(2025, 2, 1)
RAW_MONTHS = pd.date_range("2024-01-01", "2025-03-01", freq="MS")
LAST_RAW_DAY = pd.Timestamp("2025-03-20")
PII_COLUMNS = {"full_name", "email", "phone"}
SNAPSHOT_MARTS = ("customer_rfm", "customer_value")

pytestmark = pytest.mark.skipif(not DBT_BIN.exists(), reason=f"dbt CLI not found at {DBT_BIN}")


# --------------------------------------------------------------------------------------------------
# The tiny world
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawWorld:
    """Raw tables as the collect stage writes them (contract columns + `_loaded_month`)."""

    customers: pd.DataFrame
    orders: pd.DataFrame
    products: pd.DataFrame
    contact_log: pd.DataFrame


def month_end(month: date) -> pd.Timestamp:
    """Last day of the month that starts at `month`."""
    return pd.Timestamp(month) + pd.offsets.MonthEnd(0)


def make_raw_world(seed: int = 7, n_customers: int = 150) -> RawWorld:
    """A small, deterministic company: ids with leading zeros, prices in cents, ties on purpose.

    Customer ids are zero-padded digits ("00000".."00149", so "00042" exists) and product ids too
    ("000".."007"): anything that turns them into numbers loses the zeros. Hand-placed rows:
    "00042" orders on the last day of month 1 and the first day of month 2; "00149" signs up and
    first orders in month 2; "00007" has only an order after month 2's end.
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
        }
    )
    placed_orders = pd.DataFrame(
        {
            "customer_id": ["00042", "00042", "00042", "00149", "00007"],
            "order_date": pd.to_datetime(["2024-05-05", "2025-01-31", "2025-02-01", "2025-02-10", "2025-03-02"]),
            "product_id": ["007", "003", "003", "001", "002"],
            "quantity": [1, 2, 1, 1, 1],
        }
    )
    orders = pd.concat([random_orders, placed_orders], ignore_index=True)
    orders = orders.sort_values(["order_date", "customer_id"], kind="stable", ignore_index=True)
    orders.insert(0, "order_id", [f"{k:06d}" for k in range(len(orders))])
    unit_price = orders["product_id"].map(products.set_index("product_id")["unit_price"])
    orders["amount"] = (orders["quantity"] * unit_price).round(2)
    orders["_loaded_month"] = orders["order_date"].dt.to_period("M").dt.to_timestamp()

    # Delivered campaign contacts: one campaign per month, each reaching a random third of the base.
    campaigns = [
        ("2024-06-retention", "retain_voucher"),
        ("2024-12-retention", "retain_voucher"),
        ("2025-01-winback", "winback_voucher"),
        ("2025-02-retention", "retain_voucher"),
        ("2025-03-winback", "winback_voucher"),
    ]
    contact_log = pd.concat(
        [
            pd.DataFrame(
                {
                    "campaign_id": campaign_id,
                    "customer_id": rng.choice(customer_ids, n_customers // 3, replace=False),
                    "offer_id": offer_id,
                    "channel": "email",
                    "contacted_at": pd.Timestamp(campaign_id[:7] + "-01"),
                }
            )
            for campaign_id, offer_id in campaigns
        ],
        ignore_index=True,
    )
    contact_log["_loaded_month"] = contact_log["contacted_at"]

    for frame, columns in (
        (snapshots, ["signup_date", "_loaded_month"]),
        (orders, ["order_date", "_loaded_month"]),
        (products, ["_loaded_month"]),
        (contact_log, ["contacted_at", "_loaded_month"]),
    ):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return RawWorld(customers=snapshots, orders=orders, products=products, contact_log=contact_log)


def write_raw(database: Path, world: RawWorld) -> None:
    """Write the raw schema the way the collect stage does: typed DuckDB tables, ids as VARCHAR."""
    with duckdb.connect(str(database)) as con:
        con.execute("create schema raw")
        for name in ("customers", "orders", "products", "contact_log"):
            con.register("delivered", getattr(world, name))
            con.execute(f"create table raw.{name} as select * from delivered")
            con.unregister("delivered")


# --------------------------------------------------------------------------------------------------
# Independent expectations (pandas, integer cents so that ties are exact)
# --------------------------------------------------------------------------------------------------


def _cents(values: pd.Series) -> pd.Series:
    return (values.astype(float) * 100).round().astype("int64")


def rank_score(values: pd.Series, ascending: bool) -> pd.Series:
    """score = 1 + floor(5 * (rank - 1) / n), rank = SQL rank() (ties take the lowest rank)."""
    rank = values.rank(method="min", ascending=ascending)
    return (1 + np.floor(5 * (rank - 1) / len(values))).astype("int64")


def expected_rfm(world: RawWorld, as_of_month: date) -> pd.DataFrame:
    """RFM of every customer with an order by month end, from the raw orders only."""
    end = month_end(as_of_month).date()
    orders = world.orders[world.orders["order_date"] <= end].assign(amount_cents=lambda o: _cents(o["amount"]))
    per_customer = orders.groupby("customer_id").agg(
        last_order_date=("order_date", "max"),
        frequency=("order_id", "nunique"),
        revenue_cents=("amount_cents", "sum"),
    )
    recency_days = (pd.Timestamp(end) - pd.to_datetime(per_customer["last_order_date"])).dt.days
    average_cents = per_customer["revenue_cents"] / per_customer["frequency"]
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
    """12-month profit and pyramid tier of every customer with an order by month end.

    profit = margin - (orders * per_order + contacts * per_contact); profit_rank_share = share of
    customers whose profit is at least the customer's (cume_dist over profit descending).
    """
    end = month_end(as_of_month).date()
    start = (pd.Timestamp(as_of_month) - pd.DateOffset(months=11)).date()
    costs = pd.read_csv(DBT_PROJECT / "seeds" / "cost_to_serve.csv").set_index("cost_item")["amount"]
    tiers = pd.read_csv(DBT_PROJECT / "seeds" / "pyramid_tiers.csv")

    orders = world.orders.merge(world.products[["product_id", "unit_cost"]], on="product_id")
    orders["revenue_cents"] = _cents(orders["amount"])
    orders["margin_cents"] = orders["revenue_cents"] - orders["quantity"] * _cents(orders["unit_cost"])
    buyers = pd.Index(orders.loc[orders["order_date"] <= end, "customer_id"].unique(), name="customer_id")
    in_window = orders[(orders["order_date"] >= start) & (orders["order_date"] <= end)]
    contacts = world.contact_log[
        (world.contact_log["contacted_at"] >= start) & (world.contact_log["contacted_at"] <= end)
    ]

    value = pd.DataFrame(index=buyers.sort_values())
    grouped = in_window.groupby("customer_id")
    value["revenue_cents"] = grouped["revenue_cents"].sum()
    value["margin_cents"] = grouped["margin_cents"].sum()
    value["orders_12m"] = grouped["order_id"].nunique()
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


# --------------------------------------------------------------------------------------------------
# Running dbt
# --------------------------------------------------------------------------------------------------


def run_dbt(args: list[str], database: Path, work_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI from the repo root against `database`; fail the test with dbt's log on error."""
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
    env = {**os.environ, "CRM_WAREHOUSE": str(database), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result


def build_month(month: date, database: Path, work_dir: Path) -> None:
    run_dbt(["build", "--vars", f"{{as_of_month: '{month:%Y-%m-%d}'}}"], database, work_dir)


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

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).df()


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
    build_month(MONTH_1, database, work_dir)  # rebuild a past month after the next one was built
    rebuilt = {
        (mart, month): read_snapshot(database, mart, month) for mart in SNAPSHOT_MARTS for month in (MONTH_1, MONTH_2)
    }
    return Warehouse(database=database, world=world, first_build=first_build, rebuilt=rebuilt)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


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
        assert counts["as_of_month"].tolist() == [pd.Timestamp(MONTH_1), pd.Timestamp(MONTH_2)]
        assert counts["n"].tolist() == [
            len(warehouse.rebuilt[(mart, MONTH_1)]),
            len(warehouse.rebuilt[(mart, MONTH_2)]),
        ]


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
    assert (
        dim.loc["00042", "lifetime_orders"]
        == ((orders["customer_id"] == "00042") & (orders["order_date"] <= end)).sum()
    )
    assert dim.loc["00007", "lifetime_orders"] == 0 and pd.isna(dim.loc["00007", "acquisition_cohort"])
    assert (dim["as_of_month"] == pd.Timestamp(MONTH_1)).all()

    rfm_month_1 = warehouse.rebuilt[("customer_rfm", MONTH_1)]
    assert "00007" not in rfm_month_1.index and "00149" not in rfm_month_1.index
    assert "00149" in warehouse.rebuilt[("customer_rfm", MONTH_2)].index


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


@pytest.mark.parametrize("month", [MONTH_1, MONTH_2], ids=str)
def test_every_customer_with_an_order_is_in_exactly_one_tier(warehouse: Warehouse, month: date) -> None:
    end = month_end(month).date()
    orders = warehouse.world.orders
    buyers = set(orders.loc[orders["order_date"] <= end, "customer_id"])
    value = warehouse.query(f"select customer_id, pyramid_tier from marts.customer_value where as_of_month = '{month}'")

    assert not value["customer_id"].duplicated().any()
    assert set(value["customer_id"]) == buyers
    assert value["pyramid_tier"].notna().all()
    expected = expected_value(warehouse.world, month)["pyramid_tier"]
    assert value.set_index("customer_id")["pyramid_tier"].sort_index().tolist() == expected.tolist()
    tier_counts = value["pyramid_tier"].value_counts()
    assert tier_counts.get("platinum", 0) >= 1  # > 100 buyers: the top 1% is not empty
    assert tier_counts["platinum"] <= 0.01 * len(value)  # ties never inflate a tier beyond its share


def test_no_pii_in_the_warehouse_models(warehouse: Warehouse) -> None:
    columns = warehouse.query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('staging', 'marts')"
    )
    assert set(columns["table_schema"]) == {"staging", "marts"}
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


def test_ids_with_leading_zeros_stay_text(warehouse: Warehouse) -> None:
    id_columns = warehouse.query(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('staging', 'marts', 'reference') and column_name like '%\\_id' escape '\\'"
    )
    assert not id_columns.empty
    assert (id_columns["data_type"] == "VARCHAR").all(), id_columns[id_columns["data_type"] != "VARCHAR"]
    for mart in ("dim_customers", "fct_orders", "customer_rfm", "customer_value"):
        ids = warehouse.query(f"select customer_id from marts.{mart}")["customer_id"]
        assert "00042" in set(ids), mart
    products = warehouse.query("select distinct product_id from marts.fct_orders")["product_id"]
    assert "007" in set(products)


def test_schemas_are_staging_marts_and_reference(warehouse: Warehouse) -> None:
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables where table_schema <> 'raw'"
    )
    by_schema = tables.groupby("table_schema")["table_name"].apply(set).to_dict()
    assert set(by_schema) == {"staging", "marts", "reference"}  # exact names: no `main_` prefix
    assert by_schema["staging"] >= {
        "stg_crm__customers",
        "stg_crm__orders",
        "stg_crm__products",
        "stg_crm__contact_log",
    }
    assert by_schema["marts"] >= {"fct_orders", "dim_customers", "customer_rfm", "customer_value"}
    assert by_schema["reference"] >= {"offers", "rfm_segments", "pyramid_tiers", "cost_to_serve"}


def test_dbt_parse_needs_no_database(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "warehouse.duckdb"
    run_dbt(["parse"], database, tmp_path)

    assert not database.parent.exists()
    manifest = (tmp_path / "target" / "manifest.json").read_text()
    for node in (
        "model.crm_warehouse.customer_rfm",
        "model.crm_warehouse.customer_value",
        "unit_test.crm_warehouse.customer_rfm.customer_rfm_ties_share_a_score",
        "seed.crm_warehouse.pyramid_tiers",
    ):
        assert f'"{node}"' in manifest, node
