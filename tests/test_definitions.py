"""The Dagster definitions load and read as the loop."""

from __future__ import annotations

import os

import pytest
from dagster import AssetKey, Definitions

STAGES = {"collect", "warehouse", "analyse", "measure", "improve", "design", "execute"}


def test_definitions_load(dbt_manifest):
    from orchestration import definitions

    Definitions.validate_loadable(definitions.defs)


def test_asset_groups_are_the_loop_stages(dbt_manifest):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.materializable_asset_keys}
    assert groups == STAGES
    expected = {
        AssetKey(["raw", "orders"]): "collect",
        AssetKey(["marts", "fct_orders"]): "warehouse",
        AssetKey(["marts", "customer_rfm"]): "warehouse",
        AssetKey(["marts", "customer_value"]): "warehouse",
        AssetKey(["marts", "dim_customers"]): "warehouse",
        AssetKey("customer_scores"): "analyse",
        AssetKey("churn_model"): "analyse",
        AssetKey("clv_model"): "analyse",
        AssetKey("product_propensity"): "analyse",
        AssetKey("customer_segments"): "analyse",
        AssetKey("customer_equity"): "analyse",
        AssetKey("campaign_results"): "measure",
        AssetKey("targeting_policy"): "improve",
        AssetKey("campaign_plan"): "design",
        AssetKey("campaign_delivery"): "execute",
    }
    for key, stage in expected.items():
        assert graph.get(key).group_name == stage, key


def test_dbt_tests_and_plan_checks_are_blocking(dbt_manifest):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    checks = {key: graph.get_check_spec(key) for key in graph.asset_check_keys}
    dbt_checks = [spec for key, spec in checks.items() if key.asset_key == AssetKey(["marts", "fct_orders"])]
    assert dbt_checks, "dbt tests on fct_orders appear as asset checks"
    assert all(spec.blocking for spec in dbt_checks)
    for asset in ("customer_scores", "campaign_plan", "campaign_delivery"):
        specs = [spec for key, spec in checks.items() if key.asset_key == AssetKey(asset)]
        gates = [spec for spec in specs if spec.name != "score_distributions_stable_month_to_month"]
        assert gates and all(spec.blocking for spec in gates), asset
    # Score drift warns but never stops the loop.
    drift = [spec for spec in checks.values() if spec.name == "score_distributions_stable_month_to_month"]
    assert [spec.asset_key for spec in drift] == [AssetKey("customer_scores")] and not drift[0].blocking


def test_loop_job_is_monthly_and_in_process(dbt_manifest):
    from orchestration.definitions import defs

    job = defs.resolve_job_def("crm_loop")
    assert job.partitions_def is not None
    assert job.partitions_def.get_first_partition_key() == "2025-01-01"
    assert job.executor_def.name == "in_process"


def test_the_warehouse_engine_chooses_the_warehouse_resource(dbt_manifest, tmp_path, monkeypatch):
    """CRM_WAREHOUSE_ENGINE binds the DuckDB file (default) or the Spark warehouse to every stage's `warehouse`;
    the Spark tables and metastore default to $CRM_HOME/spark; any other engine is refused by name."""
    from orchestration.definitions import build_resources
    from orchestration.lib.settings import ConfigurationError, load_settings
    from orchestration.resources.spark import SparkWarehouseResource
    from orchestration.resources.warehouse import DuckDBWarehouseResource

    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    for name in ("CRM_SPARK_HOME", "CRM_WAREHOUSE_ENGINE"):  # unset here, and as before once the test is done
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    duckdb_warehouse = build_resources(load_settings())["warehouse"]
    assert isinstance(duckdb_warehouse, DuckDBWarehouseResource)
    assert (duckdb_warehouse.engine, duckdb_warehouse.home, duckdb_warehouse.dbt_target) == ("duckdb", tmp_path, "dev")

    monkeypatch.setenv("CRM_WAREHOUSE_ENGINE", "Spark")
    spark_warehouse = build_resources(load_settings())["warehouse"]
    assert isinstance(spark_warehouse, SparkWarehouseResource)
    assert (spark_warehouse.engine, spark_warehouse.home, spark_warehouse.dbt_target) == ("spark", tmp_path, "spark")
    assert os.environ["CRM_SPARK_HOME"] == str(tmp_path / "spark")  # where the dbt profile puts the tables

    monkeypatch.setenv("CRM_WAREHOUSE_ENGINE", "postgres")
    with pytest.raises(ConfigurationError, match="CRM_WAREHOUSE_ENGINE='postgres' is not one of duckdb, spark"):
        load_settings()


def test_the_analyse_scale_settings_reach_the_warehouse_resource(dbt_manifest, tmp_path, monkeypatch):
    """CRM_CUSTOMERS_PER_CHUNK and CRM_TRAINING_CUSTOMERS set how much of the base the analyse stage holds in
    memory (defaults 200,000 and 400,000, on either engine); a value below 1 is refused by name."""
    from orchestration.definitions import build_resources
    from orchestration.lib.settings import ConfigurationError, load_settings

    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    for name in ("CRM_CUSTOMERS_PER_CHUNK", "CRM_TRAINING_CUSTOMERS", "CRM_WAREHOUSE_ENGINE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    warehouse = build_resources(load_settings())["warehouse"]
    assert (warehouse.customers_per_chunk, warehouse.training_customers) == (200_000, 400_000)

    monkeypatch.setenv("CRM_CUSTOMERS_PER_CHUNK", "50000")
    monkeypatch.setenv("CRM_TRAINING_CUSTOMERS", "120000")
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("CRM_WAREHOUSE_ENGINE", engine)
        warehouse = build_resources(load_settings())["warehouse"]
        assert (warehouse.engine, warehouse.customers_per_chunk, warehouse.training_customers) == (
            engine,
            50_000,
            120_000,
        )

    monkeypatch.setenv("CRM_CUSTOMERS_PER_CHUNK", "0")
    with pytest.raises(ConfigurationError, match="CRM_CUSTOMERS_PER_CHUNK=0 must be at least 1"):
        load_settings()
