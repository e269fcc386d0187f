"""Collect: land one month of raw customer data in the warehouse exactly as the source delivered it."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from orchestration.partitions import monthly_partitions, partition_month
from orchestration.resources import SourceResource, WarehouseResource
from orchestration.resources.source import RAW_SCHEMAS, RAW_TABLES

RAW_DESCRIPTIONS = {
    "customers": "Customer master as delivered each month (a full snapshot; personal data stays in raw).",
    "orders": "Order lines as delivered; the first simulated month carries the burn-in history.",
    "products": "Product catalogue as delivered each month.",
    "contact_log": "The channel's delivery log: one row per contact delivered at the start of the month.",
}


def raw_table_key(table: str) -> AssetKey:
    return AssetKey(["raw", table])


@multi_asset(
    specs=[
        AssetSpec(
            raw_table_key(table),
            description=RAW_DESCRIPTIONS[table],
            group_name="collect",
            kinds={"duckdb", "python"},
            metadata={"columns": ", ".join(RAW_SCHEMAS[table])},
            skippable=False,
        )
        for table in RAW_TABLES
    ],
    partitions_def=monthly_partitions,
    pool="duckdb",
    name="collect_raw_tables",
)
def collect_raw_tables(context: AssetExecutionContext, source: SourceResource, warehouse: WarehouseResource):
    """Extract the partition's month from the source and replace that month's rows in `raw.*`.

    Re-running a month replaces its rows (no duplicates); other months are untouched.
    """
    month = partition_month(context.partition_key)
    tables = source.extract(month)
    for table in RAW_TABLES:
        frame = tables[table]
        if frame is None:
            frame = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in RAW_SCHEMAS[table].items()})
            available = False
        else:
            available = True
        frame = frame.assign(_loaded_month=pd.Timestamp(month))
        rows = warehouse.replace_rows(f"raw.{table}", frame, {"_loaded_month": pd.Timestamp(month)})
        yield MaterializeResult(
            asset_key=raw_table_key(table),
            metadata={"dagster/row_count": rows, "source": source.kind, "delivered_by_source": available},
        )
