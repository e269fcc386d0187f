"""Assembles the loop's assets, checks, resources, job, schedule and sensors (no logic here)."""

from __future__ import annotations

from dagster import (
    AssetsDefinition,
    AssetSpec,
    Definitions,
    load_asset_checks_from_modules,
    load_assets_from_modules,
    map_asset_specs,
)

from orchestration import checks, gates
from orchestration.assets import analyse, charts, collect, design, execute, improve, measure, warehouse
from orchestration.assets.warehouse import dbt_project
from orchestration.dbt_cli import dbt_executable
from orchestration.jobs import build_schedules, build_sensors, crm_loop_job
from orchestration.resources import ChannelResource, SourceResource, warehouse_resource
from orchestration.resources.dbt import WarehouseDbtResource
from orchestration.settings import Settings, load_settings


def build_resources(settings: Settings) -> dict:
    """The resources for `settings` (the source, channel and warehouse the environment asks for)."""
    return {
        "warehouse": warehouse_resource(settings),
        "source": SourceResource(
            kind=settings.source,
            home=str(settings.home),
            files_dir=str(settings.files_dir),
            sim_seed=settings.sim_seed,
            sim_customers=settings.sim_customers,
        ),
        "channel": ChannelResource(
            kind=settings.channel,
            exports_dir=str(settings.exports_dir),
            home=str(settings.home),
            sim_seed=settings.sim_seed,
            sim_customers=settings.sim_customers,
        ),
        # The loop's dbt builds go to its warehouse engine whatever $CRM_DBT_TARGET says (that variable selects the
        # target of dbt commands run by hand): this resource runs dbt on DuckDB; on Spark the warehouse asset runs
        # dbt inside the run's process (orchestration.dbt_in_process).
        "dbt": WarehouseDbtResource(
            project_dir=dbt_project,
            profiles_dir=str(dbt_project.project_dir),
            target="dev",
            dbt_executable=dbt_executable(),
        ),
    }


def with_gate_kind(assets: list, gate_checks: list) -> list[AssetsDefinition]:
    """Adds the `great_expectations` kind to every asset a Great Expectations gate validates, so that the
    graph shows which outputs are gated."""
    gated = {check_key.asset_key for check in gate_checks for check_key in check.check_keys}

    def mark(spec: AssetSpec) -> AssetSpec:
        return spec.merge_attributes(kinds={"great_expectations"}) if spec.key in gated else spec

    return map_asset_specs(mark, assets)


def build_definitions(settings: Settings) -> Definitions:
    """The loop's definitions wired to the source, channel and warehouse of `settings`."""
    assets = load_assets_from_modules([collect, warehouse, analyse, charts, measure, improve, design, execute])
    return Definitions(
        assets=with_gate_kind(assets, load_asset_checks_from_modules([gates])),
        asset_checks=load_asset_checks_from_modules([checks, gates, design, execute, measure, improve]),
        jobs=[crm_loop_job],
        schedules=build_schedules(settings),
        sensors=build_sensors(settings),
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
