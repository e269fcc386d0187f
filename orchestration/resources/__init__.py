"""Dagster resources: the warehouse (DuckDB or Spark), the data source and the delivery channel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orchestration.resources.channel import ChannelResource
from orchestration.resources.loop_settings import LoopSettingsResource
from orchestration.resources.source import SourceResource
from orchestration.resources.warehouse import DuckDBWarehouseResource, WarehouseResource

if TYPE_CHECKING:
    from orchestration.lib.settings import Settings

__all__ = [
    "ChannelResource",
    "DuckDBWarehouseResource",
    "LoopSettingsResource",
    "SourceResource",
    "WarehouseResource",
    "warehouse_resource",
]


def warehouse_resource(settings: Settings) -> WarehouseResource:
    """The warehouse of `settings`' engine: the DuckDB file under CRM_HOME, or the `spark` dbt target's Spark.

    For Spark, CRM_SPARK_HOME is set (default $CRM_HOME/spark) so that the dbt profile, which reads it, puts the
    tables and the metastore where the Python stages' session does.
    """
    scale = {
        "lock_timeout_seconds": settings.lock_timeout_seconds,
        "customers_per_chunk": settings.customers_per_chunk,
        "training_customers": settings.training_customers,
    }
    if settings.warehouse_engine == "spark":
        # pyspark (and sqlglot) only for the Spark engine, an optional extra: imported when it is chosen.
        from orchestration.resources.spark import SparkWarehouseResource

        os.environ["CRM_SPARK_HOME"] = str(settings.spark_home)
        return SparkWarehouseResource(crm_home=str(settings.home), **scale)
    return DuckDBWarehouseResource(path=str(settings.warehouse_path), **scale)
