"""The DuckDB warehouse resource keeps its database open while this process holds the warehouse lock, and lets
go of it for dbt (another process) and whenever the lock is released."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestration.lib.lock import warehouse_lock
from orchestration.resources import DuckDBWarehouseResource

OTHER_PROCESS_WRITES = """
import sys, duckdb
try:
    with duckdb.connect(sys.argv[1]) as connection:
        connection.execute("insert into main.visits values (2)")
except duckdb.IOException as error:
    print("refused:", str(error).splitlines()[0])
    sys.exit(3)
"""


def _other_process_writes(database: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS_WRITES, str(database)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouseResource:
    resource = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    resource.append_rows("main.visits", pd.DataFrame({"n": [1]}))
    return resource


def test_the_database_stays_open_while_the_lock_is_held_and_dbt_gets_it_when_asked(warehouse) -> None:
    with warehouse_lock(warehouse.file, "a loop run"):
        assert warehouse.query("select count(*) as n from main.visits")["n"][0] == 1
        held = _other_process_writes(warehouse.file)
        assert held.returncode == 3 and "refused" in held.stdout, held.stdout + held.stderr
        warehouse.close_database()  # what the warehouse stage does before dbt runs
        let_go = _other_process_writes(warehouse.file)
        assert let_go.returncode == 0, let_go.stdout + let_go.stderr
        # the next call opens the database again and reads what the other process wrote
        assert sorted(warehouse.query("select n from main.visits")["n"]) == [1, 2]


def test_nothing_is_left_open_once_the_lock_is_let_go(warehouse) -> None:
    with warehouse_lock(warehouse.file, "a loop run"), warehouse.transaction():
        warehouse.append_rows("main.visits", pd.DataFrame({"n": [5]}))
    after = _other_process_writes(warehouse.file)
    assert after.returncode == 0, after.stdout + after.stderr
    assert sorted(warehouse.query("select n from main.visits")["n"]) == [1, 2, 5]


def test_the_database_cannot_be_let_go_inside_a_session(warehouse) -> None:
    with warehouse.session(), pytest.raises(RuntimeError, match="session"):
        warehouse.close_database()
