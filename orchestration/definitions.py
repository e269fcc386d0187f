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

from orchestration.jobs import build_schedules, build_sensors, crm_loop_job
from orchestration.lib.dbt_project import dbt_executable
from orchestration.lib.settings import Settings, load_settings
from orchestration.resources import ChannelResource, LoopSettingsResource, SourceResource, warehouse_resource
from orchestration.resources.dbt import WarehouseDbtResource
from orchestration.stages.analyse import assets as analyse_assets
from orchestration.stages.analyse import charts as analyse_charts
from orchestration.stages.analyse import checks as analyse_checks
from orchestration.stages.collect import assets as collect_assets
from orchestration.stages.collect import gates as collect_gates
from orchestration.stages.design import assets as design_assets
from orchestration.stages.design import checks as design_checks
from orchestration.stages.execute import assets as execute_assets
from orchestration.stages.execute import checks as execute_checks
from orchestration.stages.improve import assets as improve_assets
from orchestration.stages.measure import assets as measure_assets
from orchestration.stages.warehouse import assets as warehouse_assets
from orchestration.stages.warehouse import gates as warehouse_gates
from orchestration.stages.warehouse.assets import dbt_project

# The stages in loop order: each folder of orchestration/stages holds a stage's assets and the checks on them.
ASSET_MODULES = [
    collect_assets,
    warehouse_assets,
    analyse_assets,
    analyse_charts,
    measure_assets,
    improve_assets,
    design_assets,
    execute_assets,
]
# Tables a stage writes outside an asset's own materialisation, shown in that stage's group.
ASSET_SPECS = [design_assets.campaign_plan_read_back_by_dbt]
CHECK_MODULES = [collect_gates, warehouse_gates, analyse_checks, design_checks, execute_checks]


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
        "loop_settings": LoopSettingsResource(global_control_share=settings.global_control_share),
        "channel": ChannelResource(
            kind=settings.channel,
            exports_dir=str(settings.exports_dir),
            home=str(settings.home),
            sim_seed=settings.sim_seed,
            sim_customers=settings.sim_customers,
        ),
        # The loop's dbt builds go to its warehouse engine whatever $CRM_DBT_TARGET says (that variable selects the
        # target of dbt commands run by hand): this resource runs dbt on DuckDB; on Spark the warehouse asset runs
        # dbt inside the run's process (orchestration.stages.warehouse.dbt_in_process).
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
    checks = load_asset_checks_from_modules(CHECK_MODULES)
    suites = [check for check in checks if all(key.name.startswith("suite_") for key in check.check_keys)]
    return Definitions(
        assets=with_gate_kind([*load_assets_from_modules(ASSET_MODULES), *ASSET_SPECS], suites),
        asset_checks=checks,
        jobs=[crm_loop_job],
        schedules=build_schedules(settings),
        sensors=build_sensors(settings),
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
