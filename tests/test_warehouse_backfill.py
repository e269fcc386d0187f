"""The warehouse asset: a dbt-only backfill from the UI is one Dagster run over a range of months, each month its
own snapshot, the project parsed by the first month's build only; a failing dbt test is a failed blocking check.

(That rebuilding twelve months twice gives identical marts is tested on the dbt project in test_dbt_marts.)"""

from __future__ import annotations

import os

import duckdb
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, define_asset_job

from orchestration.definitions import build_definitions
from orchestration.lib.dbt_project import BUILD_MONTH_VARIABLE, DBT_PROJECT_DIR
from orchestration.lib.settings import load_settings
from tests.test_dbt_warehouse import assert_parsed_project_reused, make_raw_world, parse_reports, write_raw

pytestmark = pytest.mark.slow

RANGE = ("2025-02-01", "2025-03-01")
SNAPSHOTS = "select as_of_month, count(*) as customers from marts.customer_rfm group by 1 order by 1"


def _rebuild_range(settings, instance: DagsterInstance):
    defs = build_definitions(settings)
    job = define_asset_job("warehouse_rebuild", selection=AssetSelection.groups("warehouse")).resolve(
        asset_graph=defs.resolve_asset_graph(), resource_defs=defs.resources
    )
    return job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": RANGE[0], "dagster/asset_partition_range_end": RANGE[1]},
        raise_on_error=False,
    )


def test_a_range_of_months_rebuilds_in_one_run_with_a_snapshot_per_month(crm_home, dbt_manifest):
    settings = load_settings()
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    write_raw(settings.warehouse_path, make_raw_world())
    project_artefacts = set((DBT_PROJECT_DIR / "target").iterdir())
    with DagsterInstance.ephemeral() as instance:
        rebuild = _rebuild_range(settings, instance)
        assert rebuild.success, [event.message for event in rebuild.all_events if event.is_failure]
        assert len(instance.get_runs()) == 1
        materialized = instance.get_materialized_partitions(AssetKey(["marts", "customer_rfm"]))
        assert materialized == {"2025-02-01", "2025-03-01"}
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            months = con.execute(SNAPSHOTS).df()
        assert [f"{m:%Y-%m}" for m in months["as_of_month"]] == ["2025-02", "2025-03"]
        assert (months["customers"] > 0).all()
    # dbt's artefacts and logs stay under CRM_HOME: the project's own target/ holds only the parsed manifest.
    work = crm_home / "dbt" / "dev"
    assert (work / "target" / "run_results.json").is_file() and (work / "target" / "dbt.log").is_file()
    assert set((DBT_PROJECT_DIR / "target").iterdir()) <= project_artefacts
    # Each month's dbt process had its month in the environment, not in `--vars`: the second month's build
    # re-used the project as the first one parsed it. The month is not left behind in this process.
    builds = parse_reports(work / "target" / "dbt.log")
    assert len(builds) == 2, builds
    assert_parsed_project_reused(builds[1])
    assert BUILD_MONTH_VARIABLE not in os.environ


def test_a_failing_dbt_test_is_a_failed_blocking_check_and_tables_keep_their_row_counts(crm_home, dbt_manifest):
    settings = load_settings()
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    write_raw(settings.warehouse_path, make_raw_world())
    with duckdb.connect(str(settings.warehouse_path)) as con:  # the same order delivered twice
        con.execute("insert into raw.orders select * from raw.orders order by order_id limit 1")
    defs = build_definitions(settings)
    job = define_asset_job("warehouse_build", selection=AssetSelection.groups("warehouse")).resolve(
        asset_graph=defs.resolve_asset_graph(), resource_defs=defs.resources
    )
    with DagsterInstance.ephemeral() as instance:
        build = job.execute_in_process(instance=instance, partition_key=RANGE[0], raise_on_error=False)
        assert not build.success
        checks = {
            event.asset_check_evaluation_data.check_name: event.asset_check_evaluation_data.passed
            for event in build.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        assert checks["unique_stg_crm__orders_order_id"] is False
        assert checks["not_null_columns_stg_crm__orders"] is True
        assert not instance.get_materialized_partitions(AssetKey(["marts", "customer_rfm"]))  # downstream not built
        seeds = [
            event.step_materialization_data.materialization
            for event in build.all_events
            if event.event_type_value == "ASSET_MATERIALIZATION"
            and event.asset_key == AssetKey(["reference", "pyramid_tiers"])
        ]
        assert seeds and seeds[0].metadata["dagster/row_count"].value > 0
