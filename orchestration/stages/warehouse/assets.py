"""Warehouse: the dbt project builds the customer warehouse as of the partition's month end.

Every dbt model is an asset of the `warehouse` group (kinds `dbt` and `duckdb`, a `layer` tag: staging,
intermediate, marts, reference for seeds). After the build each table's materialisation carries its row
count, its column schema and its column-level lineage (dagster-dbt reads them through the dbt adapter once
the dbt process has exited, because DuckDB admits one process); schema and lineage are computed once per
version of the project (orchestration.stages.warehouse.dbt_column_metadata).

On Spark (CRM_WAREHOUSE_ENGINE=spark) dbt runs inside the run's process, on the Spark session the Python stages
use (orchestration.stages.warehouse.dbt_in_process): the same builds, materialisations, checks and row counts.
"""

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets

from orchestration.lib.dbt_project import DBT_PROJECT_DIR, dbt_build_month, dbt_executable, manifest_is_stale
from orchestration.lib.lock import warehouse_lock
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource
from orchestration.resources.dbt import WarehouseDbtResource, release_dbt_adapter
from orchestration.stages.warehouse.dbt_column_metadata import ColumnMetadataStore, project_version
from orchestration.stages.warehouse.dbt_in_process import InProcessDbt
from orchestration.stages.warehouse.dbt_row_counts import with_row_counts

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


# Under `dagster dev` the manifest is re-parsed when the project changed (not in every run worker it starts).
if manifest_is_stale():
    if shutil.which("dbt") is None:
        # dagster-dbt prepares the project with the `dbt` on PATH: let it find the venv's without activating it.
        os.environ["PATH"] = os.pathsep.join([str(Path(dbt_executable()).parent), os.environ.get("PATH", "")])
    dbt_project.prepare_if_dev()


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt sources are the collect stage's raw tables; every dbt node belongs to the warehouse stage."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        """dbt tags, plus the layer of the model (staging, intermediate, marts; seeds are `reference`)."""
        tags = dict(super().get_tags(dbt_resource_props))
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "seed":
            tags["layer"] = "reference"
        elif dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            tags["layer"] = fqn[1]
        return tags


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    partitions_def=monthly_partitions,
    dagster_dbt_translator=WarehouseTranslator(),
    pool="duckdb",
    name="customer_warehouse",
    # A dbt-only backfill over a range of months (from the UI) is one run: the asset builds the months in
    # order, each as its own `as_of_month` snapshot. The loop itself runs one month per run (orchestration.jobs).
    backfill_policy=BackfillPolicy.single_run(),
)
def customer_warehouse(context: AssetExecutionContext, dbt: WarehouseDbtResource, warehouse: WarehouseResource):
    """`dbt build` (seeds, models, tests) as of the partition's month ($CRM_AS_OF_MONTH during the build).

    Over a range of months (a single-run backfill) every month is built in order as its own `as_of_month`;
    a failing month stops the run there. The last month's build reports the materialisations and checks.
    dbt data tests with severity `error` are blocking asset checks: a failure stops everything downstream.
    Tables get their row count, column schema and column-level lineage as metadata.
    """
    months = sorted(context.partition_keys)
    if warehouse.engine != "duckdb":
        yield from build_in_process(context, warehouse, months)
        return
    os.environ["CRM_WAREHOUSE"] = warehouse.path  # read by dbt_project/profiles.yml in the dbt subprocess
    # dbt's artefacts (run results, compiled SQL) and logs go under CRM_HOME, one folder reused by every build.
    target_path = warehouse.dbt_work_dir / "target"
    lock_purpose, lock_timeout = f"dbt build {months[0]}..{months[-1]}", warehouse.lock_timeout_seconds
    with warehouse_lock(warehouse.file, lock_purpose, lock_timeout):
        try:
            # The project version reads the raw tables' columns: before dbt opens the warehouse for writing.
            store = ColumnMetadataStore(warehouse.file.parent / "dbt_column_metadata", _project_version(warehouse))
            recorded = store.recorded()
            warehouse.close_database()  # dbt, another process, opens the file now
            # Each dbt process takes its month from the environment it starts with (orchestration.lib.dbt_project).
            for month in months[:-1]:
                context.log.info(f"dbt build as of {month} ({months.index(month) + 1} of {len(months)} months)")
                with dbt_build_month(month):
                    build = dbt.cli(dbt_build_arguments(), context=context, target_path=target_path, load_adapter=False)
                build.wait()
            # The dbt adapter is loaded in this process only to read column metadata.
            with dbt_build_month(months[-1]):
                invocation = dbt.cli(
                    dbt_build_arguments(), context=context, target_path=target_path, load_adapter=recorded is None
                )
            if recorded is None:
                # Once per project version: schema and lineage through the dbt adapter, which must then let go
                # of the warehouse before this process counts rows.
                events = invocation.stream().fetch_column_metadata()
                yield from store.record(with_row_counts(events, invocation.manifest, warehouse, release_dbt_adapter))
            else:
                yield from store.attach(with_row_counts(invocation.stream(), invocation.manifest, warehouse), recorded)
        finally:
            release_dbt_adapter()


def build_in_process(context: AssetExecutionContext, warehouse: WarehouseResource, months: list[str]):
    """The same builds on an engine that admits one process (Spark): dbt runs in this process, on the session the
    warehouse resource holds (orchestration.stages.warehouse.dbt_in_process). Tables get their row counts;
    the column schema and lineage, which dagster-dbt reads through a second adapter connection, are recorded on
    DuckDB only."""
    dbt = InProcessDbt(warehouse.dbt_target, warehouse.dbt_work_dir)
    manifest = json.loads(dbt_project.manifest_path.read_text())
    translator = WarehouseTranslator()
    with warehouse_lock(warehouse.lock_file, f"dbt build {months[0]}..{months[-1]}", warehouse.lock_timeout_seconds):
        version = _project_version(warehouse)
        for month in months[:-1]:
            context.log.info(f"dbt build as of {month} ({months.index(month) + 1} of {len(months)} months)")
            dbt.run(dbt_build_arguments(), version, month=month)
        events = dbt.build(dbt_build_arguments(), version, context, manifest, translator, month=months[-1])
        yield from with_row_counts(events, manifest, warehouse)


def _project_version(warehouse: WarehouseResource) -> str:
    """The version of the dbt project and of the raw tables it reads, for ColumnMetadataStore."""
    raw_columns = warehouse.table_columns("raw")[["table_name", "column_name", "data_type"]]
    return project_version(dbt_project.manifest_path, raw_columns.itertuples(index=False))


def dbt_build_arguments() -> list[str]:
    """`dbt build` of the whole project, as of the month `dbt_build_month` sets around it (not a `--vars`
    value, so that dbt's partial parsing lasts from one month to the next: orchestration.lib.dbt_project).

    dbt unit tests check the SQL logic, not the month's data: they run in the test suite, not every month.
    """
    return ["build", "--exclude-resource-type", "unit_test"]
