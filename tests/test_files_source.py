"""The `files` source: monthly CSV or Parquet files per table, read as they came, with the history in the
loop's first month. The strict reader (the importer, consent at send time) rejects every bad input with a
message naming the file, the row, the column and the rule; the collect stage reads leniently and leaves the
judgement to the gates (tests/test_bad_input.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.lib.raw_tables import (
    LOADED_MONTH,
    RAW_SCHEMAS,
    SourceError,
    month_files,
    read_table_file,
    warehouse_columns,
)
from orchestration.resources.source import SourceResource

JAN, FEB, MAR = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)


def write(folder: Path, table: str, name: str, text: str | bytes) -> Path:
    path = folder / table / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def source(folder: Path) -> SourceResource:
    return SourceResource(kind="files", files_dir=str(folder))


def test_a_csv_transaction_log_is_read_as_it_came(tmp_path):
    write(
        tmp_path,
        "orders",
        "2024-01.csv",
        "customer_id,order_date,amount\r\n00042,2024-01-31,12.50\r\n7,2024-01-02,3\r\n",
    )
    delivery = source(tmp_path).extract(JAN)["orders"]
    rows = delivery.rows
    assert list(rows.columns[: len(RAW_SCHEMAS["orders"])]) == list(RAW_SCHEMAS["orders"])
    assert set(rows.columns) == set(warehouse_columns("orders")), "the contract, provenance and _loaded_month"
    assert rows["_source_line"].tolist() == [2, 3] and rows["_unreadable_line"].isna().all()
    assert rows["customer_id"].tolist() == ["00042", "7"], "ids stay text with their leading zeros"
    assert rows["amount"].tolist() == [12.5, 3.0]
    assert rows["order_date"].tolist() == [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-01-02")]
    # optional columns the log does not have are NULL; order_type NULL means a sale
    assert rows[["order_id", "product_id", "quantity", "order_type"]].isna().all().all()
    assert delivery.absent_columns == ("order_id", "product_id", "quantity")
    assert (rows[LOADED_MONTH] == pd.Timestamp(JAN)).all()
    assert source(tmp_path).extract(JAN)["customers"] is None, "tables the source lacks are None"


def test_parquet_and_csv_give_the_same_rows(tmp_path):
    frame = pd.DataFrame(
        {
            "order_id": ["0001", "0002"],
            "customer_id": ["00042", "00043"],
            "order_date": pd.to_datetime(["2024-02-01", "2024-02-29"]),
            "product_id": ["007", "008"],
            "quantity": [2, 1],
            "amount": [20.0, 5.25],
            "order_type": ["sale", "return"],
        }
    )
    (tmp_path / "parquet" / "orders").mkdir(parents=True)
    frame.to_parquet(tmp_path / "parquet" / "orders" / "2024-02.parquet")
    write(
        tmp_path / "csv",
        "orders",
        "2024-02.csv",
        "order_id,customer_id,order_date,product_id,quantity,amount,order_type\n"
        "0001,00042,2024-02-01,007,2,20.00,sale\n0002,00043,2024-02-29,008,1,5.25,return\n",
    )
    from_parquet = source(tmp_path / "parquet").extract(FEB)["orders"]
    from_csv = source(tmp_path / "csv").extract(FEB)["orders"]
    contract = [*RAW_SCHEMAS["orders"], LOADED_MONTH]
    pd.testing.assert_frame_equal(from_parquet.rows[contract], from_csv.rows[contract])
    assert from_csv.rows["order_type"].tolist() == ["sale", "return"]
    assert from_csv.rows["quantity"].dtype == "Int64"
    assert from_parquet.absent_columns == ()


def test_the_first_month_carries_every_earlier_file_and_later_months_one_each(tmp_path):
    for month, customer in (("2023-11", "A"), ("2023-12", "B"), ("2024-01", "C"), ("2024-02", "D")):
        write(tmp_path, "orders", f"{month}.csv", f"customer_id,order_date,amount\n{customer},{month}-15,1\n")
    write(tmp_path, "customers", "2023-12.csv", "customer_id,email_consent\nA,yes\nB,no\n")
    write(tmp_path, "customers", "2024-01.csv", "customer_id,email_consent\nA,no\nB,no\nC,true\n")

    first = source(tmp_path).extract(JAN, with_history=True)
    orders = first["orders"].rows
    assert orders["customer_id"].tolist() == ["A", "B", "C"], "every file up to the first month, not later ones"
    # each row keeps the month of its file, so a snapshot table keeps its history apart
    assert orders[LOADED_MONTH].dt.strftime("%Y-%m").tolist() == ["2023-11", "2023-12", "2024-01"]
    customers = first["customers"].rows
    assert customers.groupby(LOADED_MONTH).size().tolist() == [2, 3]
    assert customers["email_consent"].tolist() == [True, False, False, False, True]
    assert len(first["orders"].origins) == 3

    later = source(tmp_path).extract(FEB)
    assert later["orders"].rows["customer_id"].tolist() == ["D"], "a later month reads its own file only"
    assert later["customers"] is None


def test_a_missing_month_of_orders_says_which_file_and_what_to_set(tmp_path):
    write(tmp_path, "orders", "2024-01.csv", "customer_id,order_date,amount\nA,2024-01-15,1\n")
    with pytest.raises(SourceError, match=r"orders: no file for 2024-03 .*2024-03\.csv.*CRM_START_MONTH=2024-01"):
        source(tmp_path).extract(MAR, with_history=True)
    with pytest.raises(SourceError, match=r"no file for 2024-02"):
        source(tmp_path).extract(FEB)
    with pytest.raises(SourceError, match=r"crm-loop import-orders"):
        source(tmp_path / "empty").extract(JAN)


def test_consent_at_send_time_reads_the_latest_customer_snapshot(tmp_path):
    assert source(tmp_path).consent_at_send_time(FEB) is None, "no customer data: nobody may be contacted"
    write(tmp_path, "customers", "2024-01.csv", "customer_id,email,email_consent\n001,a@x.org,yes\n")
    write(tmp_path, "customers", "2024-03.csv", "customer_id,email,email_consent\n001,a@x.org,no\n")
    consent = source(tmp_path).consent_at_send_time(FEB)
    assert list(consent.columns) == ["customer_id", "email", "phone", "email_consent"]
    assert consent["customer_id"].tolist() == ["001"] and consent["email_consent"].tolist() == [True]
    assert consent["phone"].isna().all()


BAD_CSV = [
    (
        "customer_id,order_date,amount\nA,2024-01-05,1\nB,2024-13-01,2\nC,05/01/2024,3\n",
        r"2024-01\.csv: line 3, column order_date: '2024-13-01' is not a date .*2 rows break this rule",
    ),
    (
        "customer_id,order_date,amount\nA,2024-01-05,1\nB,2024-01-06,12,50\n",
        r"2024-01\.csv: line 3: 4 fields, but the header has 3 \(a decimal comma",
    ),
    (
        "customer_id,order_date,amount\nA,2024-01-05,1.234,5\n",
        r"2024-01\.csv: line 2: 4 fields, but the header has 3",
    ),
    (
        "customer_id,order_date,amount\nA,2024-01-05,1\nB,2024-01-06,€12\n",
        r"2024-01\.csv: line 3, column amount: '€12' is not a number",
    ),
    (
        "customer_id,order_date,amount,quantity\nA,2024-01-05,1,1.5\n",
        r"line 2, column quantity: '1\.5' is not a whole number",
    ),
    (
        "customer_id,order_date,amount\nA,2024-01-05,1\n,2024-01-06,2\n",
        r"line 3, column customer_id: \(empty\) is not allowed: the column is required",
    ),
    (
        "customer_id,order_date,amount,order_type\nA,2024-01-05,1,refund\n",
        r"line 2, column order_type: 'refund' is not an order type \(sale, return or empty\)",
    ),
    (
        "customer_id,order_date,amount\nA,2024-01-05,-1\n",
        r"line 2, column amount: '-1' is negative \(a return is a positive amount with order_type return\)",
    ),
    (
        "customer_id,date,amount\nA,2024-01-05,1\n",
        r"2024-01\.csv: missing required column\(s\) order_date of table orders \(columns found: customer_id, "
        r"date, amount",
    ),
    ("", r"2024-01\.csv: empty file; a month without rows still needs the header line"),
    (
        "customer_id,order_date,amount\nA,2024-01-05,1\nM\xfcller,2024-01-06,2\n".encode("latin-1"),
        r"2024-01\.csv: line 3: not UTF-8 text \(byte 0xfc",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_a_bad_csv_names_the_file_line_column_and_rule(tmp_path, content, message):
    path = write(tmp_path, "orders", "2024-01.csv", content)
    with pytest.raises(SourceError, match=message) as raised:
        read_table_file(path, "orders")
    assert str(path) in str(raised.value)
    # collect reads the same file without stopping: the gates judge it (tests/test_bad_input.py)
    assert source(tmp_path).extract(JAN)["orders"].files[0].origin == str(path)


def test_a_header_only_file_is_a_month_without_rows(tmp_path):
    write(tmp_path, "orders", "2024-01.csv", "customer_id,order_date,amount\n")
    assert source(tmp_path).extract(JAN)["orders"].rows.empty


def test_blank_lines_do_not_shift_the_line_numbers(tmp_path):
    path = write(
        tmp_path, "orders", "2024-01.csv", "customer_id,order_date,amount\n\nA,2024-01-05,1\n\nB,2024-01-99,2\n"
    )
    with pytest.raises(SourceError, match=r"line 5, column order_date: '2024-01-99'"):
        read_table_file(path, "orders")
    rows = source(tmp_path).extract(JAN)["orders"].rows
    assert rows["_source_line"].tolist() == [3, 5]
    assert rows["_unreadable_order_date"].tolist()[1] == "2024-01-99"


def test_a_parquet_column_of_the_wrong_type_is_rejected(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    frame = pd.DataFrame({"customer_id": [1.0, 2.0], "order_date": ["2024-01-05", "2024-01-06"], "amount": [1, 2]})
    path = folder / "2024-01.parquet"
    frame.to_parquet(path)
    with pytest.raises(SourceError, match=r"2024-01\.parquet: column customer_id must be text .* float64"):
        read_table_file(path, "orders")
    assert "column customer_id must be text" in source(tmp_path).extract(JAN)["orders"].files[0].problems[0]
    frame.assign(customer_id=["A", "B"], amount=[True, False]).to_parquet(path)
    with pytest.raises(SourceError, match=r"2024-01\.parquet: column amount must be a number"):
        read_table_file(path, "orders")
    frame.assign(customer_id=["A", "B"], order_date=["2024-01-05", "soon"]).to_parquet(path)
    with pytest.raises(SourceError, match=r"2024-01\.parquet: row 2, column order_date: 'soon' is not a date"):
        read_table_file(path, "orders")


def test_integer_ids_in_parquet_are_read_as_text(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    pd.DataFrame({"customer_id": [42], "order_date": pd.to_datetime(["2024-01-05"]), "amount": [1.5]}).to_parquet(
        folder / "2024-01.parquet"
    )
    assert source(tmp_path).extract(JAN)["orders"].rows["customer_id"].tolist() == ["42"]


def test_misnamed_or_duplicate_monthly_files_are_rejected(tmp_path):
    write(tmp_path, "orders", "2024-01.csv", "customer_id,order_date,amount\nA,2024-01-05,1\n")
    write(tmp_path, "orders", "notes.txt", "not read")
    write(tmp_path, "orders", ".2024-02.csv.partial", "not read")
    assert len(source(tmp_path).extract(JAN)["orders"].rows) == 1, "other suffixes and hidden files are not read"
    bad = write(tmp_path, "orders", "january.csv", "customer_id,order_date,amount\n")
    with pytest.raises(SourceError, match=r"january\.csv: not a monthly file: .*<YYYY-MM>\.csv"):
        month_files(tmp_path, "orders")
    files = {Path(f.origin).name: f for f in source(tmp_path).extract(JAN)["orders"].files}
    assert files["january.csv"].problems[0].startswith("not a monthly file: ")
    bad.unlink()
    pd.DataFrame({"customer_id": ["A"], "order_date": ["2024-01-05"], "amount": [1.0]}).to_parquet(
        tmp_path / "orders" / "2024-01.parquet"
    )
    with pytest.raises(SourceError, match=r"two files for 2024-01 \(2024-01\.csv and 2024-01\.parquet\)"):
        month_files(tmp_path, "orders")
    delivery = source(tmp_path).extract(JAN)["orders"]
    assert [f.problems for f in delivery.files] == [
        ("two files for 2024-01 (2024-01.csv and 2024-01.parquet); keep one of them",)
    ] * 2


# --------------------------------------------------------------------------------------------------
# collect through Dagster: the raw tables exist with their full schema, history lands once
# --------------------------------------------------------------------------------------------------


def _read(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).df()


def test_collect_lands_history_once_and_creates_every_table(tmp_path):
    from dagster import materialize

    from orchestration.lib.months import next_month, partition_month, previous_month
    from orchestration.lib.queries import PLAN_SCHEMA, PLAN_TABLE
    from orchestration.partitions import monthly_partitions
    from orchestration.resources import DuckDBWarehouseResource
    from orchestration.stages.collect.assets import collect_raw_tables

    first = partition_month(monthly_partitions.get_first_partition_key())
    second = next_month(first)
    before = previous_month(first)
    inbox, warehouse_file = tmp_path / "inbox", tmp_path / "warehouse.duckdb"
    for month, rows in (
        (before, "A,{m}-03,1.00\nB,{m}-04,2.00\n"),
        (first, "A,{m}-05,3.00\n"),
        (second, "C,{m}-06,4\n"),
    ):
        text = "customer_id,order_date,amount\n" + rows.format(m=f"{month:%Y-%m}")
        write(inbox, "orders", f"{month:%Y-%m}.csv", text)
    # a warehouse written before order_type joined the contract gains the column
    with duckdb.connect(str(warehouse_file)) as connection:
        connection.execute("create schema raw")
        connection.execute(
            "create table raw.orders (order_id varchar, customer_id varchar, order_date timestamp, "
            "product_id varchar, quantity bigint, amount double, _loaded_month timestamp)"
        )
    warehouse = DuckDBWarehouseResource(path=str(warehouse_file))
    resources = {"source": source(inbox), "warehouse": warehouse}

    def collect(month: date) -> None:
        result = materialize([collect_raw_tables], partition_key=month.isoformat(), resources=resources)
        assert result.success

    collect(first)
    collect(first)  # a re-run replaces what it owns
    collect(second)
    orders = _read(warehouse_file, "select * from raw.orders order by order_date")
    assert orders["customer_id"].tolist() == ["A", "B", "A", "C"]
    assert orders["_loaded_month"].dt.strftime("%Y-%m").tolist() == [
        f"{before:%Y-%m}",
        f"{before:%Y-%m}",
        f"{first:%Y-%m}",
        f"{second:%Y-%m}",
    ]
    assert orders["order_type"].isna().all()
    for table, schema in RAW_SCHEMAS.items():
        columns = _read(warehouse_file, f"describe raw.{table}")["column_name"].tolist()
        assert set(columns) == set(warehouse_columns(table)) and set(schema) < set(columns), table
    assert _read(warehouse_file, "select count(*) as n from raw.customers")["n"].item() == 0
    plan = _read(warehouse_file, f"describe {PLAN_TABLE}")
    assert dict(zip(plan["column_name"], plan["column_type"].str.lower(), strict=True)) == PLAN_SCHEMA

    # the design stage's writes still fit: an empty plan, then a real one
    month = pd.Timestamp(first)
    empty_plan = pd.DataFrame().assign(delivery_month=pd.Timestamp(second), designed_in_month=month)
    assert warehouse.replace_rows(PLAN_TABLE, empty_plan, {"designed_in_month": month}) == 0
    plan_rows = pd.DataFrame(
        {
            "campaign_id": ["2024-02-retention"],
            "customer_id": ["00042"],
            "offer_id": ["retain_voucher"],
            "group": ["test"],
            "selection": ["explore"],
            "selection_probability": [0.5],
            "treatment_probability": [0.9],
            "expected_incremental_profit": [float("nan")],
            "stratum": ["False"],
            "rank": [1],
            "objective": ["retention"],
            "policy": ["randomised_pilot"],
            "delivery_month": [pd.Timestamp(second)],
            "designed_in_month": [month],
        }
    )
    warehouse.replace_rows(PLAN_TABLE, plan_rows, {"designed_in_month": month})
    assert _read(warehouse_file, f'select customer_id, "group" from {PLAN_TABLE}').values.tolist() == [
        ["00042", "test"]
    ]
