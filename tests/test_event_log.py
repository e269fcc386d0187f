"""The instance's event log (orchestration/event_log.py): Dagster's SQLite files, written and read as Dagster's own
class does, with the engines kept."""

from __future__ import annotations

import inspect
from importlib.metadata import version as installed

import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    DagsterInstance,
    Definitions,
    asset,
    asset_check,
    define_asset_job,
    materialize,
)
from dagster._core.storage.event_log import SqliteEventLogStorage

from orchestration.event_log import ENGINES_KEPT, ReusedEngineSqliteEventLogStorage
from orchestration.lib.prepare import prepare_instance
from orchestration.lib.settings import load_settings


@asset
def customers() -> int:
    return 3


@asset_check(asset=customers, blocking=True)
def customers_exist() -> AssetCheckResult:
    return AssetCheckResult(passed=True, metadata={"rows": 3})


@pytest.fixture
def instance(crm_home):
    prepare_instance(load_settings())
    with DagsterInstance.get() as instance:
        yield instance


def test_the_loop_instance_uses_it_on_dagsters_files(instance, crm_home):
    storage = instance.event_log_storage
    assert isinstance(storage, ReusedEngineSqliteEventLogStorage)
    result = materialize([customers, customers_exist], instance=instance)
    assert result.success
    # Dagster's files, where a default instance keeps them: one database per run and the index
    runs = crm_home / "dagster" / "history" / "runs"
    assert (runs / f"{result.run_id}.db").exists() and (runs / "index.db").exists()

    # what it wrote reads the same through Dagster's own class (the UI of an older release, a plain instance)
    plain = SqliteEventLogStorage(str(runs))
    mine = [(e.dagster_event_type, e.step_key) for e in storage.get_logs_for_run(result.run_id)]
    theirs = [(e.dagster_event_type, e.step_key) for e in plain.get_logs_for_run(result.run_id)]
    assert mine == theirs and len(mine) > 10
    materialization = plain.get_latest_materialization_events([AssetKey("customers")])[AssetKey("customers")]
    assert materialization is not None and materialization.run_id == result.run_id
    check = instance.event_log_storage.get_asset_check_execution_history(customers_exist.check_key, limit=1)
    assert check and check[0].run_id == result.run_id


def test_a_long_history_keeps_a_bounded_number_of_engines(instance):
    job = define_asset_job("customers_job", selection=[customers])
    resolved = Definitions(assets=[customers], jobs=[job]).resolve_job_def("customers_job")
    run_ids = [resolved.execute_in_process(instance=instance).run_id for _ in range(ENGINES_KEPT + 3)]
    storage = instance.event_log_storage
    assert all(len(storage.get_logs_for_run(run_id)) > 3 for run_id in run_ids)
    assert len(storage._engines) <= ENGINES_KEPT


def test_the_members_it_overrides_are_those_of_the_pinned_release():
    """`_connect` and `has_table` are outside Dagster's public API: an upgrade that changes them must fail here."""
    assert installed("dagster") == "1.13.27", "re-read SqliteEventLogStorage._connect and has_table, then this pin"
    assert list(inspect.signature(SqliteEventLogStorage._connect).parameters) == ["self", "shard"]
    assert list(inspect.signature(SqliteEventLogStorage.has_table).parameters) == ["self", "table_name"]
    source = inspect.getsource(SqliteEventLogStorage._connect)
    assert "_initialized_dbs" in source and "_db_lock" in source and "conn.begin()" in source
    assert "run_connection" in vars(SqliteEventLogStorage) and "index_connection" in vars(SqliteEventLogStorage)
