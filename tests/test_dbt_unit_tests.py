"""The dbt unit tests (the `unit_tests:` of dbt_project/models/**/*.yml) on an empty warehouse, for the fast tier.

A unit test checks one model's SQL on the rows it gives; dbt still reads the column types of the model's
parents from the warehouse. So the source tables are created empty, with the types the collect stage gives
them, and `dbt build --empty` builds seeds and models without rows and runs every unit test before its model.
The data tests of a month's build run in tests/test_dbt_warehouse.py (marked slow).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from orchestration.lib.queries import PLAN_SCHEMA, PLAN_TABLE
from orchestration.lib.raw_tables import RAW_TABLES, warehouse_columns
from orchestration.resources import DuckDBWarehouseResource
from orchestration.stages.collect.assets import DELIVERY_LOG, DELIVERY_LOG_SCHEMA
from tests.test_dbt_warehouse import run_dbt

MIN_UNIT_TESTS = 17


def _empty_sources(database: Path) -> None:
    """The tables dbt reads, created as the collect stage creates them, without rows."""
    warehouse = DuckDBWarehouseResource(path=str(database))
    warehouse.ensure_table(PLAN_TABLE, PLAN_SCHEMA)
    warehouse.ensure_table(DELIVERY_LOG, DELIVERY_LOG_SCHEMA)
    for table in RAW_TABLES:
        warehouse.ensure_table(f"raw.{table}", warehouse_columns(table))


def test_every_dbt_unit_test_passes(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    _empty_sources(database)

    # the models need a month to compile; each unit test gives its own
    run_dbt(["build", "--empty", "--exclude-resource-type", "test"], database, tmp_path, month=date(2025, 1, 1))

    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    defined = {unique_id for unique_id in manifest["unit_tests"]}
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    ran = {result["unique_id"]: result["status"] for result in results if result["unique_id"].startswith("unit_test.")}
    assert len(defined) >= MIN_UNIT_TESTS, sorted(defined)
    assert set(ran) == defined, sorted(defined - set(ran))
    failed = {unique_id: status for unique_id, status in ran.items() if status != "pass"}
    assert not failed, failed
