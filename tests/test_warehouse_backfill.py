"""A dbt-only backfill from the UI: one Dagster run over a range of months, each month its own snapshot.

(That rebuilding twelve months twice gives identical marts is tested on the dbt project in test_dbt_marts.)"""

from __future__ import annotations

import duckdb
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, define_asset_job

from orchestration.definitions import build_definitions
from orchestration.settings import load_settings
from tests.test_dbt_warehouse import make_raw_world, write_raw

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
