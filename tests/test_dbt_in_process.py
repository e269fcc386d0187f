"""dbt run inside the Dagster process (orchestration.stages.warehouse.dbt_in_process), as the loop runs it on
Spark: its events become the Dagster events a dbt subprocess's would, and a failing build stops with the failing
nodes named.

Run here on the DuckDB target over the tiny world of tests/test_dbt_warehouse.py: the class is the same for any
target, and DuckDB starts in milliseconds (tests/test_spark_loop.py runs it on Spark inside the loop).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization
from test_dbt_warehouse import MONTH_1, make_raw_world, write_raw

from orchestration.lib.dbt_project import BUILD_MONTH_VARIABLE
from orchestration.stages.warehouse.assets import WarehouseTranslator, dbt_build_arguments, dbt_project
from orchestration.stages.warehouse.dbt_in_process import DbtBuildFailed, InProcessDbt

pytestmark = pytest.mark.slow  # builds the warehouse with dbt on data (make test-fast leaves it out)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny world's raw tables in a DuckDB file, the dbt profile's `dev` target pointed at it."""
    database = tmp_path / "warehouse.duckdb"
    write_raw(database, make_raw_world())
    monkeypatch.setenv("CRM_WAREHOUSE", str(database))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.delenv(BUILD_MONTH_VARIABLE, raising=False)
    return database


@pytest.fixture
def dbt(database: Path, tmp_path: Path) -> InProcessDbt:
    return InProcessDbt("dev", tmp_path / "dbt")


def build(dbt: InProcessDbt, command: list[str], events: list | None = None, month: str | None = None) -> list:
    """The Dagster events of `dbt <command>` (as of `month` when given; appended to `events` as they come, when
    given)."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    events = [] if events is None else events
    for event in dbt.build(command, "test", None, manifest, WarehouseTranslator(), month=month):
        events.append(event)
    return events


def test_a_build_in_process_reports_each_model_and_each_test(dbt: InProcessDbt) -> None:
    events = build(dbt, dbt_build_arguments(), month=MONTH_1.isoformat())
    assert BUILD_MONTH_VARIABLE not in os.environ  # the month was there during the build only
    materialised = {event.asset_key for event in events if isinstance(event, AssetMaterialization)}
    checks = [event for event in events if isinstance(event, AssetCheckEvaluation)]
    assert AssetKey(["marts", "fct_orders"]) in materialised
    assert AssetKey(["marts", "customer_features"]) in materialised
    assert AssetKey(["reference", "offers"]) in materialised  # seeds too
    assert len(checks) >= 100 and all(check.passed for check in checks)
    assert "not_null_columns_fct_orders" in {check.check_name for check in checks}


def test_a_failing_test_is_reported_and_stops_the_build_naming_it(dbt: InProcessDbt, database: Path) -> None:
    dbt.run(dbt_build_arguments(), "test", month=MONTH_1.isoformat())  # an earlier month of a backfill: no events
    with duckdb.connect(str(database)) as con:
        first_line = "select min(order_id) from marts.fct_orders"
        con.execute(f"update marts.fct_orders set revenue = null where order_id in ({first_line})")
    command = ["test", "--select", "test_name:not_null_columns,fct_orders", "--vars", f"{{as_of_month: '{MONTH_1}'}}"]
    events: list = []
    with pytest.raises(DbtBuildFailed, match="not_null_columns_fct_orders"):
        build(dbt, command, events)
    failed = [event.check_name for event in events if isinstance(event, AssetCheckEvaluation) and not event.passed]
    assert failed == ["not_null_columns_fct_orders"]
    with pytest.raises(DbtBuildFailed, match="not_null_columns_fct_orders"):
        dbt.run(command, "test")
