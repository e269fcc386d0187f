"""`crm-loop import-orders`: a plain transaction log becomes the monthly files of the `files` source, and the
real CDNOW log (Fader, Hardie & Lee 2005, shipped with `lifetimes`) runs through collect and the dbt warehouse.

The small tests feed the importer inline logs in the common shapes (header or not, comma or whitespace,
CRLF, ids with leading zeros) and bad lines. The CDNOW tests import the full 69,659-line log and check it
against the raw text read independently; the slow one materialises the collect and warehouse assets for
1998-06 through Dagster and compares `marts.customer_rfm` with a pandas computation of its definition.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.lib.importer import TransactionLogError, import_transaction_log
from orchestration.lib.raw_tables import read_table_file

ROOT = Path(__file__).resolve().parents[1]
CDNOW_COLUMNS = ["customer_id", "order_date", "quantity", "amount"]
CDNOW_MONTH = "1998-06-01"


def cdnow_master() -> Path:
    """CDNOW_master.txt from the installed `lifetimes` package (located without importing it)."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations, "lifetimes is a dev/test dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"


def log_file(tmp_path: Path, text: str, name: str = "log.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def month_file(target: Path, month: str) -> str:
    return (target / "orders" / f"{month}.csv").read_text(encoding="utf-8")


def digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


# --------------------------------------------------------------------------------------------------
# The importer on small inline logs
# --------------------------------------------------------------------------------------------------


def test_a_csv_log_with_a_header_keeps_ids_and_amounts_as_they_came(tmp_path):
    log = log_file(
        tmp_path,
        "customer_id,order_date,amount\r\n00042,2024-01-31,12.50\r\n00007,2024-02-01,3\r\n00042,2024-02-10,0.10\r\n",
    )
    summary = import_transaction_log(log, tmp_path / "inbox")
    assert summary.months == ("2024-01", "2024-02")
    assert (summary.rows, summary.customers) == (3, 2)
    assert summary.revenue == pytest.approx(15.60)
    assert summary.shape.header == "customer_id,order_date,amount"
    assert month_file(tmp_path / "inbox", "2024-01") == "customer_id,order_date,amount\n00042,2024-01-31,12.50\n"
    assert month_file(tmp_path / "inbox", "2024-02") == (
        "customer_id,order_date,amount\n00007,2024-02-01,3\n00042,2024-02-10,0.10\n"
    )
    assert summary.environment() == {
        "CRM_SOURCE": "files",
        "CRM_CHANNEL": "file",
        "CRM_FILES_DIR": str((tmp_path / "inbox").resolve()),
        "CRM_START_MONTH": "2024-02",
    }


def test_a_log_without_header_needs_and_takes_column_names(tmp_path):
    log = log_file(tmp_path, "00042;2024-01-31;x;12.50\n00043;2024-01-05;y;7\n")
    with pytest.raises(TransactionLogError, match=r"line 1 is data, not a header .*--columns"):
        import_transaction_log(log, tmp_path / "inbox")
    summary = import_transaction_log(log, tmp_path / "inbox", columns=["customer_id", "order_date", "-", "amount"])
    assert summary.shape.delimiter == "semicolon" and summary.shape.header is None
    assert month_file(tmp_path / "inbox", "2024-01") == (
        "customer_id,order_date,amount\n00042,2024-01-31,12.50\n00043,2024-01-05,7\n"
    )


def test_a_whitespace_log_like_cdnow_with_crlf_line_ends(tmp_path):
    log = log_file(
        tmp_path,
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n"
        " 00002 19970112  1   12.00\r\n"
        " 00002 19970112  5   77.00\r\n"
        "\r\n"
        " 00003 19970402  2   20.76\r\n",
    )
    summary = import_transaction_log(log, tmp_path / "inbox", columns=CDNOW_COLUMNS, date_format="%Y%m%d")
    assert summary.shape.delimiter == "whitespace"
    assert summary.shape.header == "customer_id  date number_of_cds  dollar_value"
    assert summary.months == ("1997-01", "1997-02", "1997-03", "1997-04")
    assert summary.months_without_orders == ("1997-02", "1997-03")
    assert month_file(tmp_path / "inbox", "1997-01") == (
        "customer_id,order_date,quantity,amount\n00001,1997-01-01,1,11.77\n00002,1997-01-12,1,12.00\n"
        "00002,1997-01-12,5,77.00\n"
    )
    assert month_file(tmp_path / "inbox", "1997-02") == "customer_id,order_date,quantity,amount\n"
    # the files read back through the files source with every value intact
    rows = read_table_file(tmp_path / "inbox" / "orders" / "1997-01.csv", "orders").rows
    assert rows["customer_id"].tolist() == ["00001", "00002", "00002"]
    assert rows["quantity"].tolist() == [1, 1, 5]
    assert read_table_file(tmp_path / "inbox" / "orders" / "1997-02.csv", "orders").rows.empty


def test_a_bad_date_names_its_line_and_value_and_nothing_is_written(tmp_path):
    log = log_file(tmp_path, "00001 19970101 1 11.77\n00002 19970112 1 12.00\n00003 19971301 2 20.76\n")
    with pytest.raises(TransactionLogError) as raised:
        import_transaction_log(log, tmp_path / "inbox", columns=CDNOW_COLUMNS)
    message = str(raised.value)
    assert str(log) in message
    assert "line 3, column order_date: '19971301' is not a date in the format %Y%m%d" in message
    assert "--date-format" in message
    assert not (tmp_path / "inbox").exists()


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("a,2024-01-05,1\nb,05/01/2024,2\n", {}, r"line 2, column order_date: '05/01/2024' is not a date in ISO 8601"),
        ("a 19970101 1 11.77\nb 19970102 1\n", {}, r"line 2: fewer fields than the 4 columns"),
        ("a 19970101 1 11.77\nb 19970102 1 2 3\n", {}, r"line 2: 5 fields, but the lines before it have 4"),
        ("a 19970101 1 11.77\nb 19970102 1 12,00\n", {}, r"line 2, column amount: '12,00' is not a number"),
        ("a 19970101 1.5 11.77\n", {}, r"line 1, column quantity: '1.5' is not a whole number"),
        ("a 19970101 1 -3.00\n", {}, r"line 1, column amount: '-3.00' is negative"),
        ("a 19970101 1 3.00\n", {"date_format": "%d%m%Y"}, r"line 1, column order_date: '19970101' is not a date"),
    ],
)
def test_unreadable_lines_stop_the_import_with_their_line_number(tmp_path, text, options, message):
    columns = ["customer_id", "order_date", "amount"] if "," in text.split("\n")[0] else CDNOW_COLUMNS
    with pytest.raises(TransactionLogError, match=message):
        import_transaction_log(log_file(tmp_path, text), tmp_path / "inbox", columns=columns, **options)


def test_line_numbers_count_the_header_and_blank_lines(tmp_path):
    log = log_file(tmp_path, "customer_id order_date amount\r\n\r\n1 19970101 2\r\n\r\n1 19970101 2 4\r\n")
    with pytest.raises(TransactionLogError, match=r"line 5: 4 fields, but the lines before it have 3"):
        import_transaction_log(log, tmp_path / "inbox")
    log = log_file(tmp_path, "customer_id order_date amount\n\n1 19970101 2\n\n1 1997-02-30 2\n")
    with pytest.raises(TransactionLogError, match=r"line 5, column order_date: '1997-02-30' is not a date"):
        import_transaction_log(log, tmp_path / "inbox")


def test_unknown_or_missing_column_names_are_refused(tmp_path):
    log = log_file(tmp_path, "customer_id,date,amount\n1,2024-01-01,2\n")
    with pytest.raises(TransactionLogError, match=r"header line names 'date', which are not order columns"):
        import_transaction_log(log, tmp_path / "inbox")
    with pytest.raises(TransactionLogError, match=r"--columns option has no order_date"):
        import_transaction_log(log, tmp_path / "inbox", columns=["customer_id", "-", "amount"])


def test_reimporting_is_idempotent_and_different_content_is_never_overwritten_silently(tmp_path):
    log = log_file(tmp_path, "customer_id,order_date,amount\n1,2024-01-05,2\n2,2024-03-05,4\n")
    target = tmp_path / "inbox"
    first = import_transaction_log(log, target)
    before = digest(target / "orders")
    again = import_transaction_log(log, target)
    assert len(first.written) == 3 and again.written == () and len(again.unchanged) == 3
    assert digest(target / "orders") == before

    changed = log_file(tmp_path, "customer_id,order_date,amount\n1,2024-01-05,2.5\n2,2024-03-05,4\n", "changed.txt")
    with pytest.raises(
        TransactionLogError, match=r"1 monthly file\(s\) already exist with different content \(2024-01"
    ):
        import_transaction_log(changed, target)
    assert digest(target / "orders") == before, "a refused import writes nothing"
    replaced = import_transaction_log(changed, target, overwrite=True)
    assert [path.name for path in replaced.written] == ["2024-01.csv"]
    assert "2.5" in month_file(target, "2024-01")


def test_the_cli_prints_what_it_wrote_and_the_settings_to_run_on_it(tmp_path, crm_home, capsys):
    from orchestration.cli import main

    log = log_file(tmp_path, "00001 19970101 1 11.77\n00002 19970203 2 20.00\n")
    target = tmp_path / "inbox"
    arguments = ["import-orders", str(log), "--to", str(target), "--columns", ",".join(CDNOW_COLUMNS)]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "2 monthly files 1997-01 .. 1997-02" in out
    assert "rows 2   customers 2   revenue 31.77" in out
    for line in (
        "export CRM_SOURCE=files",
        f"export CRM_FILES_DIR={target.resolve()}",
        "export CRM_START_MONTH=1997-02",
    ):
        assert line in out
    assert main(["import", str(log), "--to", str(target)]) == 2
    assert "line 1 is data, not a header" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# CDNOW: the real log
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_log() -> pd.DataFrame:
    """The raw CDNOW lines, read independently of the importer: customer id, date, CDs, dollars."""
    lines = cdnow_master().read_text(encoding="ascii").splitlines()
    fields = [line.split() for line in lines[1:] if line.strip()]
    log = pd.DataFrame(fields, columns=["customer_id", "date", "cds", "dollars"])
    log["cents"] = [int(Decimal(value) * 100) for value in log["dollars"]]
    return log


@pytest.fixture(scope="module")
def cdnow_import(tmp_path_factory):
    target = tmp_path_factory.mktemp("cdnow") / "inbox"
    summary = import_transaction_log(cdnow_master(), target, columns=CDNOW_COLUMNS, date_format="%Y%m%d")
    return summary


def test_cdnow_imports_every_line_of_the_log(cdnow_import, cdnow_log):
    summary = cdnow_import
    assert summary.rows == len(cdnow_log) == 69_659
    assert summary.customers == 23_570
    assert summary.months == tuple(f"{month:%Y-%m}" for month in pd.date_range("1997-01", "1998-06", freq="MS"))
    assert summary.environment()["CRM_START_MONTH"] == "1998-06"
    total = Decimal(int(cdnow_log["cents"].sum())) / 100
    assert total == Decimal("2500315.63")
    assert round(Decimal(summary.revenue), 2) == total
    # the written amounts, as text, add up to the log's to the cent: nothing lost, nothing re-rounded
    written = pd.concat(
        pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted((summary.target / "orders").iterdir())
    )
    assert sum(Decimal(value) for value in written["amount"]) == total
    assert written["customer_id"].str.fullmatch(r"\d{5}").all() and "00001" in set(written["customer_id"])
    # month by month, each month's lines in the log's order
    in_file_order = cdnow_log.assign(month=cdnow_log["date"].str[:6]).sort_values("month", kind="stable")
    assert written["customer_id"].tolist() == in_file_order["customer_id"].tolist()


def test_reimporting_cdnow_writes_nothing(cdnow_import):
    before = digest(cdnow_import.target / "orders")
    again = import_transaction_log(cdnow_master(), cdnow_import.target, columns=CDNOW_COLUMNS)
    assert again.written == () and len(again.unchanged) == 18
    assert digest(cdnow_import.target / "orders") == before


def _materialise(partition_key: str, report: str) -> None:
    """In a fresh interpreter: materialise collect + the dbt warehouse for one partition, report as JSON."""
    from dagster import materialize

    from orchestration.definitions import build_resources
    from orchestration.lib.settings import load_settings
    from orchestration.stages.collect.assets import collect_raw_tables
    from orchestration.stages.warehouse.assets import customer_warehouse

    result = materialize(
        [collect_raw_tables, customer_warehouse],
        partition_key=partition_key,
        resources=build_resources(load_settings()),
        raise_on_error=False,
    )
    failed_checks = sorted(
        f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    )
    errors = [
        f"{event.step_key}: {event.event_specific_data.error.message.strip()}"
        for event in result.all_events
        if event.is_step_failure and getattr(event.event_specific_data, "error", None) is not None
    ]
    Path(report).write_text(json.dumps({"success": result.success, "failed_checks": failed_checks, "errors": errors}))


@pytest.fixture(scope="module")
def cdnow_warehouse(cdnow_import, dbt_manifest, tmp_path_factory) -> Path:
    """The raw tables and the dbt warehouse as of 1998-06, the loop's first month, through Dagster.

    A fresh interpreter: the monthly partitions start at CRM_START_MONTH, read when orchestration is
    first imported, and this test session has imported it already with the default start.
    """
    home = tmp_path_factory.mktemp("cdnow_home") / "crm"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("CRM_", "DAGSTER_HOME"))} | {
        "CRM_HOME": str(home),
        "CRM_SOURCE": "files",
        "CRM_CHANNEL": "file",
        "CRM_FILES_DIR": str(cdnow_import.target),
        "CRM_START_MONTH": CDNOW_MONTH,
        "CRM_WAREHOUSE": str(home / "warehouse.duckdb"),
        "DO_NOT_TRACK": "1",
    }
    report = home.parent / "materialise.json"
    run = subprocess.run(
        [sys.executable, __file__, CDNOW_MONTH, str(report)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.exists(), f"the Dagster run did not report:\n{run.stderr[-4000:]}"
    outcome = json.loads(report.read_text())
    assert outcome["success"], (
        "collect + warehouse for 1998-06 on CDNOW failed.\nFailed dbt tests / checks: "
        f"{outcome['failed_checks']}\nErrors:\n" + "\n".join(outcome["errors"])[-6000:]
    )
    return home / "warehouse.duckdb"


def _read(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).df()


@pytest.mark.slow
def test_cdnow_raw_orders_and_fct_orders_hold_the_whole_log(cdnow_warehouse, cdnow_log):
    total = Decimal(int(cdnow_log["cents"].sum())) / 100
    raw = _read(
        cdnow_warehouse,
        "select count(*) as n, count(distinct customer_id) as customers, sum(amount) as revenue, "
        "count(distinct _loaded_month) as months, count(order_type) as typed from raw.orders",
    ).iloc[0]
    assert (raw["n"], raw["customers"], raw["months"], raw["typed"]) == (69_659, 23_570, 18, 0)
    assert raw["revenue"] == pytest.approx(float(total), abs=1e-6)
    with duckdb.connect(str(cdnow_warehouse), read_only=True) as connection:
        n, customers, revenue, ids = connection.execute(
            "select count(*), count(distinct customer_id), sum(revenue), count(distinct order_id) from marts.fct_orders"
        ).fetchone()
    assert (n, customers, ids) == (69_659, 23_570, 69_659), "one order per line, duplicates of a day included"
    assert Decimal(revenue) == total
    for table in ("customers", "products", "contact_log"):
        assert _read(cdnow_warehouse, f"select count(*) as n from raw.{table}")["n"].item() == 0


def expected_rfm(log: pd.DataFrame, month_end: pd.Timestamp) -> pd.DataFrame:
    """RFM as customer_rfm.sql defines it, from the raw log: every line is an order (a sale).

    recency_days = month_end - last order date; frequency = orders; monetary = revenue / orders.
    score = 1 + floor(5 * (rank - 1) / n), rank ascending with ties at their lowest rank, except recency
    ranked descending (the most recent buyers score 5). Monetary ties are exact (cents / orders).
    """
    orders = log.assign(order_date=pd.to_datetime(log["date"], format="%Y%m%d"))
    per_customer = orders.groupby("customer_id").agg(
        last_order_date=("order_date", "max"), frequency=("order_date", "size"), cents=("cents", "sum")
    )
    n = len(per_customer)
    exact_monetary = per_customer["cents"] / per_customer["frequency"]
    ranks = {
        "r_score": (month_end - per_customer["last_order_date"]).dt.days.rank(method="min", ascending=False),
        "f_score": per_customer["frequency"].rank(method="min"),
        "m_score": exact_monetary.rank(method="min"),
    }
    return pd.DataFrame(
        {
            "recency_days": (month_end - per_customer["last_order_date"]).dt.days,
            "frequency": per_customer["frequency"],
            "monetary": exact_monetary / 100,
            **{score: (1 + np.floor(5 * (rank - 1) / n)).astype(int) for score, rank in ranks.items()},
        }
    )


@pytest.mark.slow
def test_cdnow_rfm_matches_an_independent_computation(cdnow_warehouse, cdnow_log):
    rfm = _read(
        cdnow_warehouse,
        "select customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_segment "
        f"from marts.customer_rfm where as_of_month = '{CDNOW_MONTH}'",
    ).set_index("customer_id")
    expected = expected_rfm(cdnow_log, pd.Timestamp("1998-06-30"))
    assert len(rfm) == len(expected) == 23_570
    rfm = rfm.loc[expected.index]
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        mismatched = (rfm[column].astype(int) != expected[column]).sum()
        assert mismatched == 0, f"{column}: {mismatched} customers differ"
    np.testing.assert_allclose(rfm["monetary"].astype(float), expected["monetary"], rtol=0, atol=1e-9)
    # each (R, F) lands in the segment the rfm_segments seed gives it
    rules = pd.read_csv(ROOT / "dbt_project" / "seeds" / "rfm_segments.csv")
    pairs = expected[["r_score", "f_score"]].drop_duplicates().merge(rules, how="cross")
    pairs = pairs[
        pairs["r_score"].between(pairs["r_min"], pairs["r_max"])
        & pairs["f_score"].between(pairs["f_min"], pairs["f_max"])
    ]
    segment = expected.reset_index().merge(pairs[["r_score", "f_score", "rfm_segment"]], on=["r_score", "f_score"])
    assert segment.set_index("customer_id")["rfm_segment"].reindex(rfm.index).eq(rfm["rfm_segment"]).all()
    assert rfm.index.str.fullmatch(r"\d{5}").all(), "customer ids keep their leading zeros in the marts"


if __name__ == "__main__":  # the fresh interpreter of `cdnow_warehouse`
    _materialise(sys.argv[1], sys.argv[2])
