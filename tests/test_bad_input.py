"""Bad input, case by case, through the `files` source: the raw gate stops the run and says where and why.

For every case: the run stops at the gate of the right raw table with a message naming the file, the rule and
the number of bad rows; nothing downstream (the dbt warehouse) is materialised; the raw file is untouched; the
rejected rows are readable in `quarantine.<table>` with the rule; and once the file is fixed a re-run passes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.lib.months import next_month, partition_month, previous_month
from orchestration.partitions import monthly_partitions

pytestmark = pytest.mark.slow  # builds the warehouse with dbt on data (make test-fast leaves it out)

FIRST = partition_month(monthly_partitions.get_first_partition_key())
SECOND = next_month(FIRST)
HISTORY = previous_month(FIRST)


def _m(month: date) -> str:
    return f"{month:%Y-%m}"


CUSTOMERS = (
    "customer_id,full_name,email,phone,signup_date,email_consent\n"
    f"C1,Ada Lovelace,ada@example.org,+44 1,{_m(HISTORY)}-01,yes\n"
    f"C2,Alan Turing,alan@example.org,,{_m(HISTORY)}-02,no\n"
    f"C3,Grace Hopper,grace@example.org,,{_m(HISTORY)}-03,yes\n"
)
PRODUCTS = (
    "product_id,product_line,product_name,unit_price,unit_cost\n"
    "P1,Cookware,Pan,30.00,12.00\nP2,Tableware,Plate,10.00,4.00\n"
)
HEADER = "order_id,customer_id,order_date,product_id,quantity,amount,order_type"
GOOD_ORDERS = {
    HISTORY: f"{HEADER}\nO1,C1,{_m(HISTORY)}-05,P1,1,30.00,\nO2,C2,{_m(HISTORY)}-09,P2,2,20.00,sale\n",
    FIRST: (
        f"{HEADER}\nO3,C1,{_m(FIRST)}-03,P2,1,10.00,sale\nO4,C3,{_m(FIRST)}-11,P1,1,30.00,\n"
        f"O5,C2,{_m(FIRST)}-20,P2,1,10.00,return\n"
    ),
    SECOND: f"{HEADER}\nO6,C3,{_m(SECOND)}-04,P1,2,60.00,sale\nO7,C1,{_m(SECOND)}-08,P2,1,10.00,\n",
}


def orders_with(line: str, month: date = FIRST) -> str:
    """The month's good orders file with one more line."""
    return GOOD_ORDERS[month] + line + "\n"


@dataclass(frozen=True)
class Case:
    """A bad delivery: what is written where, and what the gate must say about it."""

    name: str
    table: str
    file: str  # relative to the inbox
    content: str | bytes | pd.DataFrame
    rule: str  # a regular expression the gate's message and the quarantine's rule must match
    bad_rows: int
    month: date = FIRST
    fixed: str | None = None  # the corrected content (None: remove the bad file)
    instead_of: str | None = None  # a good file the bad one replaces (put back by the fix)


BAD_INPUTS = [
    Case(
        "missing column",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        "order_id,customer_id,amount\nO3,C1,10.00\nO4,C3,30.00\n",
        r"missing required column\(s\) order_date of table orders",
        2,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "extra column",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        f"{HEADER},discount\nO3,C1,{_m(FIRST)}-03,P2,1,10.00,sale,0.5\nO4,C3,{_m(FIRST)}-11,P1,1,30.00,,0\n",
        r"column\(s\) 'discount' are not columns of table orders",
        2,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "wrong type",
        "orders",
        f"orders/{_m(FIRST)}.parquet",
        pd.DataFrame(
            {"customer_id": [1.0, 3.0], "order_date": pd.to_datetime([f"{_m(FIRST)}-03"] * 2), "amount": [10.0, 3.0]}
        ),
        r"column customer_id must be text .* float64",
        2,
        instead_of=f"orders/{_m(FIRST)}.csv",
    ),
    Case(
        "a value not of its column's type",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O9,C1,{_m(FIRST)}-12,P1,two,12.50,sale"),
        r"quantity is a whole number",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "unparsable date",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O9,C1,{_m(FIRST)}-32,P1,1,12.50,sale"),
        r"order_date is a date \(ISO 8601",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "future date",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with("O9,C1,2999-01-05,P1,1,12.50,sale"),
        r"no order is dated in the future",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "negative amount not marked as a return",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O9,C1,{_m(FIRST)}-12,P1,1,-12.50,sale"),
        r"amount is not negative \(a return is a positive amount with order_type return\)",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "duplicate order id",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O3,C2,{_m(FIRST)}-12,P1,1,12.50,sale"),
        r"no order_id appears twice",
        2,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "unknown customer id",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O9,C404,{_m(FIRST)}-12,P1,1,12.50,sale"),
        r"every order's customer_id is a delivered customer",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "null customer id",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        orders_with(f"O9,,{_m(FIRST)}-12,P1,1,12.50,sale"),
        r"every order has a customer_id",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case("empty file", "orders", f"orders/{_m(FIRST)}.csv", "", r"empty file", 0, fixed=GOOD_ORDERS[FIRST]),
    Case(
        "truncated file",
        "orders",
        f"orders/{_m(FIRST)}.csv",
        GOOD_ORDERS[FIRST] + f"O9,C1,{_m(FIRST)}-1",
        r"every line is UTF-8 text with as many fields as the header",
        1,
        fixed=GOOD_ORDERS[FIRST],
    ),
    Case(
        "corrupt file",
        "products",
        f"products/{_m(FIRST)}.parquet",
        b"PAR1\x00\x13garbage, not a parquet footer",
        r"not a readable Parquet file",
        0,
    ),
    Case(
        "non-UTF-8 file",
        "customers",
        f"customers/{_m(FIRST)}.csv",
        (CUSTOMERS + f"C4,J\xfcrgen M\xfcller,jm@example.org,,{_m(FIRST)}-02,yes\n").encode("latin-1"),
        r"every line is UTF-8 text",
        1,
        fixed=CUSTOMERS,
    ),
    Case(
        "the same month delivered twice",
        "orders",
        f"orders/{_m(SECOND)}.csv",
        GOOD_ORDERS[FIRST],
        rf"repeats .*orders/{_m(FIRST)}\.csv \(a month delivered twice\)",
        3,
        month=SECOND,
        fixed=GOOD_ORDERS[SECOND],
    ),
    Case(
        "two files for one month",
        "orders",
        f"orders/{_m(SECOND)}.parquet",
        pd.DataFrame({"customer_id": ["C1"], "order_date": pd.to_datetime([f"{_m(SECOND)}-09"]), "amount": [5.0]}),
        rf"two files for {_m(SECOND)}",
        1,
        month=SECOND,
    ),
]


def _write(path: Path, content: str | bytes | pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _good_inbox(inbox: Path) -> None:
    _write(inbox / "customers" / f"{_m(HISTORY)}.csv", CUSTOMERS)
    _write(inbox / "products" / f"{_m(HISTORY)}.csv", PRODUCTS)
    for month, text in GOOD_ORDERS.items():
        _write(inbox / "orders" / f"{_m(month)}.csv", text)


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@dataclass
class World:
    """A small inbox and its warehouse; `run` collects a month (and builds the warehouse downstream of it)."""

    root: Path
    assets: list
    resources: dict

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def run(self, month: date, with_warehouse: bool = True):
        from dagster import materialize

        assets = self.assets if with_warehouse else self.assets[:-1]
        return materialize(assets, partition_key=month.isoformat(), resources=self.resources, raise_on_error=False)

    def read(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql).df()


@pytest.fixture(scope="module")
def fresh_world(dbt_manifest, tmp_path_factory):
    """A factory of worlds with a good inbox: collect, the four raw gates, and the dbt warehouse downstream."""
    from orchestration.lib.dbt_project import dbt_executable
    from orchestration.resources import DuckDBWarehouseResource, SourceResource
    from orchestration.resources.dbt import WarehouseDbtResource
    from orchestration.stages.collect import gates
    from orchestration.stages.collect.assets import collect_raw_tables
    from orchestration.stages.warehouse.assets import customer_warehouse, dbt_project

    raw_gates = [
        gates.suite_raw_orders,
        gates.suite_raw_customers,
        gates.suite_raw_products,
        gates.suite_raw_contact_log,
    ]
    dbt = WarehouseDbtResource(
        project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir), dbt_executable=dbt_executable()
    )

    def make(name: str) -> World:
        root = tmp_path_factory.mktemp(re.sub(r"\W+", "_", name))
        resources = {
            "source": SourceResource(kind="files", files_dir=str(root / "inbox"), home=str(root)),
            "warehouse": DuckDBWarehouseResource(path=str(root / "warehouse.duckdb")),
            "dbt": dbt,
        }
        world = World(root, [collect_raw_tables, *raw_gates, customer_warehouse], resources)
        _good_inbox(world.inbox)
        return world

    return make


def _gate_failure(result) -> str:
    failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failures, "the run should have failed"
    return "\n".join(f"{event.step_key}: {event.event_specific_data.error.message}" for event in failures)


def _materialised(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_bad_input_stops_at_its_gate_and_is_quarantined(fresh_world, case: Case):
    world = fresh_world(case.name)
    if case.month == SECOND:
        assert world.run(FIRST, with_warehouse=False).success, "the month before is clean"
    bad = world.inbox / case.file
    replaced = world.inbox / case.instead_of if case.instead_of else None
    if replaced is not None:
        good_text = replaced.read_text()
        replaced.unlink()
    _write(bad, case.content)
    before = _fingerprint(bad)

    result = world.run(case.month)

    assert not result.success
    message = _gate_failure(result)
    # stopped at the right gate, naming the file, the rule and the number of bad rows
    assert f"suite_raw_{case.table}" in message, message
    assert str(bad) in message, message
    assert re.search(case.rule, message), message
    assert re.search(rf"\b{case.bad_rows} rows?\b", message), message
    # personal data stays out of the message (Dagster's run history keeps it)
    assert "jm@example.org" not in message and "ller" not in message
    # nothing downstream was materialised: only the raw tables were written
    assert _materialised(result) <= {f"raw/{table}" for table in ("customers", "orders", "products", "contact_log")}
    assert world.read("select count(*) as n from information_schema.tables where table_schema = 'marts'")["n"][0] == 0
    # the raw file is untouched
    assert _fingerprint(bad) == before
    # the rejected rows are readable in the quarantine, with the rule
    quarantine = world.read(f"select * from quarantine.{case.table} where run_id = '{result.run_id}'")
    mine = quarantine[quarantine["file"] == str(bad)]
    reasons = mine["rule"] + " " + mine["value"].fillna("")
    matching = mine[reasons.str.contains(case.rule, regex=True)]
    assert len(matching), quarantine[["file", "line", "rule", "value"]]
    if case.bad_rows:
        assert matching["line"].nunique() == case.bad_rows, matching
        assert matching["row_values"].notna().all()
    else:
        assert matching["line"].isna().all()

    # fixed, the month passes its gates
    if case.fixed is None:
        bad.unlink()
    else:
        _write(bad, case.fixed)
    if replaced is not None:
        _write(replaced, good_text)
    again = world.run(case.month, with_warehouse=False)
    assert again.success, _gate_failure(again)


def test_after_a_fix_the_whole_warehouse_builds_from_the_corrected_file(fresh_world):
    world = fresh_world("fix then build")
    bad = world.inbox / "orders" / f"{_m(FIRST)}.csv"
    _write(bad, orders_with(f"O9,C1,{_m(FIRST)}-12,P1,1,-12.50,sale"))
    assert not world.run(FIRST).success
    _write(bad, GOOD_ORDERS[FIRST])
    result = world.run(FIRST)
    assert result.success
    assert "marts/fct_orders" in _materialised(result)
    orders = world.read("select order_id from marts.fct_orders order by order_id")["order_id"].tolist()
    assert orders == ["O1", "O2", "O3", "O4", "O5"]
    # the record of what was rejected stays, from the failed run only
    quarantine = world.read("select distinct run_id, rule from quarantine.orders")
    assert len(quarantine) == 1 and quarantine["run_id"][0] != result.run_id


def test_rows_of_a_clean_delivery_keep_their_file_and_line(fresh_world):
    world = fresh_world("provenance")
    assert world.run(FIRST, with_warehouse=False).success
    rows = world.read("select order_id, _source_file, _source_line from raw.orders order by order_id")
    assert rows["_source_line"].tolist() == [2, 3, 2, 3, 4]
    assert rows["_source_file"].str.endswith(f"{_m(HISTORY)}.csv").sum() == 2
    log = world.read("select table_name, origin, rows, problems from audit.deliveries order by origin")
    assert log["problems"].isna().all() and log["rows"].sum() == 3 + 2 + 5
