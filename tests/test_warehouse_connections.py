"""Warehouse connections: reused while a run holds the warehouse lock, closed when it lets go."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from orchestration.resources import WarehouseResource
from orchestration.resources.lock import warehouse_lock
from orchestration.resources.warehouse import close_shared_connections


@pytest.fixture
def warehouse(tmp_path) -> WarehouseResource:
    resource = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    resource.append_rows("marts.orders", pd.DataFrame({"order_id": [1, 2, 3]}))
    return resource


def _another_process_counts(path: str) -> int:
    """Open the warehouse from another process, as dbt does (DuckDB refuses while this process has it open)."""
    code = f"import duckdb; print(duckdb.connect({path!r}).execute('select count(*) from marts.orders').fetchone()[0])"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_a_run_holding_the_lock_reuses_one_connection_until_it_lets_go(warehouse) -> None:
    with warehouse_lock(warehouse.file, "a loop run"):
        with warehouse.connect() as first:
            pass
        with warehouse.connect() as second:
            assert second is first
            assert second.execute("select count(*) from marts.orders").fetchone()[0] == 3
        warehouse.append_rows("marts.orders", pd.DataFrame({"order_id": [4]}))
        assert warehouse.query("select count(*) as n from marts.orders")["n"].iloc[0] == 4
    with pytest.raises(duckdb.ConnectionException):
        first.execute("select 1")  # closed with the lock: other processes may open the file
    assert _another_process_counts(str(warehouse.file)) == 4


def test_the_connection_is_closed_before_another_process_opens_the_file(warehouse) -> None:
    with warehouse_lock(warehouse.file, "a loop run"):
        warehouse.query("select 1")
        close_shared_connections(warehouse.file)  # what the dbt step does before dbt starts
        assert _another_process_counts(str(warehouse.file)) == 3


def test_an_error_drops_the_connection_and_rolls_back_its_transaction(warehouse) -> None:
    with warehouse_lock(warehouse.file, "a loop run"):
        with pytest.raises(duckdb.Error), warehouse.connect() as broken:
            broken.execute("begin transaction")
            broken.execute("insert into marts.orders values (99)")
            broken.execute("select * from no_such_table")
        with warehouse.connect() as fresh:
            assert fresh is not broken
            assert fresh.execute("select count(*) from marts.orders").fetchone()[0] == 3


def test_without_a_run_holding_the_lock_every_use_has_its_own_connection(warehouse) -> None:
    with warehouse.connect() as first:
        pass
    with warehouse.connect() as second:
        assert second is not first
    with pytest.raises(duckdb.ConnectionException):
        first.execute("select 1")
    assert _another_process_counts(str(warehouse.file)) == 3
