"""The loop job: one run per month, every stage in order, in one process (DuckDB has one writer)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from orchestration.partitions import monthly_partitions

LOOP_JOB_NAME = "crm_loop"

crm_loop_job = define_asset_job(
    LOOP_JOB_NAME,
    selection=AssetSelection.all(),
    partitions_def=monthly_partitions,
    executor_def=in_process_executor,
    description="One monthly cycle: collect, warehouse, analyse, measure, improve, design, execute.",
)
