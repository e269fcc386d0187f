"""Warehouse: the dbt project builds the customer warehouse as of the partition's month end."""

import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_cli import DBT_PROJECT_DIR
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource
from orchestration.resources.lock import warehouse_lock

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt sources are the collect stage's raw tables; every dbt node belongs to the warehouse stage."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    partitions_def=monthly_partitions,
    dagster_dbt_translator=WarehouseTranslator(),
    pool="duckdb",
    name="customer_warehouse",
)
def customer_warehouse(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """`dbt build` (seeds, models, tests) with the partition's month as `as_of_month`.

    dbt tests with severity `error` are blocking asset checks: a failure stops everything downstream.
    """
    os.environ["CRM_WAREHOUSE"] = warehouse.path  # read by dbt_project/profiles.yml in the dbt subprocess
    dbt_vars = {"as_of_month": context.partition_key}
    with warehouse_lock(warehouse.file, f"dbt build {context.partition_key}"):
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
