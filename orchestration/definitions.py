"""Assembles the loop's assets, checks, resources and jobs (no logic here)."""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules
from dagster_dbt import DbtCliResource

from orchestration import checks
from orchestration.assets import analyse, collect, design, execute, improve, measure, warehouse
from orchestration.assets.warehouse import dbt_project
from orchestration.dbt_cli import dbt_executable
from orchestration.jobs import crm_loop_job
from orchestration.resources import ChannelResource, SourceResource, WarehouseResource
from orchestration.settings import Settings, load_settings


def build_resources(settings: Settings) -> dict:
    """The resources for `settings` (the source, channel and warehouse the environment asks for)."""
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
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
        "dbt": DbtCliResource(
            project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir), dbt_executable=dbt_executable()
        ),
    }


def build_definitions(settings: Settings) -> Definitions:
    """The loop's definitions wired to the source, channel and warehouse of `settings`."""
    return Definitions(
        assets=load_assets_from_modules([collect, warehouse, analyse, measure, improve, design, execute]),
        asset_checks=load_asset_checks_from_modules([checks]),
        jobs=[crm_loop_job],
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
