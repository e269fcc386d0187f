"""Every dbt table's materialisation carries its row count, counted once dbt has exited; views are not counted."""

from __future__ import annotations

import duckdb
import pytest
from dagster import AssetCheckResult, AssetKey, AssetMaterialization, Output

from orchestration.resources import DuckDBWarehouseResource, WarehouseResource
from orchestration.stages.warehouse.dbt_row_counts import with_row_counts

MANIFEST = {
    "nodes": {
        "model.crm_warehouse.fct_orders": {
            "name": "fct_orders",
            "alias": "fct_orders",
            "schema": "marts",
            "config": {"materialized": "table"},
        },
        "model.crm_warehouse.customer_rfm": {
            "name": "customer_rfm",
            "alias": "customer_rfm",
            "schema": "marts",
            "config": {"materialized": "incremental"},
        },
        "model.crm_warehouse.stg_crm__orders": {
            "name": "stg_crm__orders",
            "alias": "stg_crm__orders",
            "schema": "staging",
            "config": {"materialized": "view"},
        },
    }
}


@pytest.fixture
def warehouse(tmp_path) -> WarehouseResource:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts; create schema staging")
        connection.execute("create table marts.fct_orders as select range as order_id from range(7)")
        connection.execute("create table marts.customer_rfm as select range as customer_id from range(3)")
        connection.execute("create view staging.stg_crm__orders as select * from marts.fct_orders")
    return DuckDBWarehouseResource(path=str(path))


def _events():
    return [
        Output(None, output_name="marts_fct_orders", metadata={"unique_id": "model.crm_warehouse.fct_orders"}),
        AssetMaterialization(
            AssetKey(["marts", "customer_rfm"]), metadata={"unique_id": "model.crm_warehouse.customer_rfm"}
        ),
        Output(
            None, output_name="staging_stg_crm__orders", metadata={"unique_id": "model.crm_warehouse.stg_crm__orders"}
        ),
        AssetCheckResult(passed=True, asset_key=AssetKey(["marts", "fct_orders"]), check_name="unique_order_id"),
    ]


def test_tables_get_their_row_count_and_views_none(warehouse) -> None:
    events = list(with_row_counts(iter(_events()), MANIFEST, warehouse))
    assert [type(event) for event in events] == [type(event) for event in _events()]  # same events, same order
    assert events[0].metadata["dagster/row_count"].value == 7
    assert events[1].metadata["dagster/row_count"].value == 3
    assert events[1].metadata["unique_id"].value == "model.crm_warehouse.customer_rfm"  # the build's metadata kept
    assert "dagster/row_count" not in events[2].metadata  # a view: counting it would run its whole query


def test_a_failed_build_still_yields_its_events_then_raises(warehouse) -> None:
    def failing_build():
        yield from _events()
        raise RuntimeError("dbt build failed: 1 test failed")

    seen = []
    with pytest.raises(RuntimeError, match="1 test failed"):
        for event in with_row_counts(failing_build(), MANIFEST, warehouse):
            seen.append(event)
    assert len(seen) == 4  # the failing check's result reaches Dagster before the error
    assert seen[0].metadata["dagster/row_count"].value == 7
