"""Collect: land one month of raw customer data in the warehouse exactly as the source delivered it."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from orchestration.partitions import monthly_partitions, partition_month
from orchestration.queries import PLAN_SCHEMA, PLAN_TABLE
from orchestration.raw_tables import LOADED_MONTH, RAW_SCHEMAS, RAW_TABLES, empty_table, warehouse_columns
from orchestration.resources import SourceResource, WarehouseResource

RAW_DESCRIPTIONS = {
    "customers": "Customer master as delivered each month (a full snapshot; personal data stays in raw).",
    "orders": (
        "Order lines as delivered; the loop's first month carries the history (the simulator's burn-in, "
        "or every file of the files source up to that month)."
    ),
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

    Every raw table exists with its full schema afterwards, empty when the source does not have it, and so
    does an empty `campaigns.campaign_plan`: the warehouse builds from orders alone. The first partition
    owns every month up to it (the history it loads); later partitions own their month. Re-running a month
    replaces what it owns (no duplicates); other months are untouched.
    """
    month = partition_month(context.partition_key)
    first_month = partition_month(monthly_partitions.get_first_partition_key())
    with_history = month == first_month
    deliveries = source.extract(month, with_history=with_history)
    warehouse.ensure_table(PLAN_TABLE, PLAN_SCHEMA)
    for table in RAW_TABLES:
        delivery = deliveries[table]
        if delivery is None:
            rows = empty_table(table).assign(**{LOADED_MONTH: pd.Series(dtype="datetime64[us]")})
        else:
            rows = delivery.rows
        warehouse.ensure_table(f"raw.{table}", warehouse_columns(table))
        written = warehouse.replace_rows_between(
            f"raw.{table}", rows, LOADED_MONTH, None if with_history else pd.Timestamp(month), pd.Timestamp(month)
        )
        metadata = {"dagster/row_count": written, "source": source.kind, "delivered_by_source": delivery is not None}
        if delivery is not None:
            months = rows[LOADED_MONTH]
            metadata["delivered_months"] = (
                f"{months.min():%Y-%m} .. {months.max():%Y-%m}" if len(rows) else f"{month:%Y-%m}"
            )
            origins = delivery.origins
            metadata["read_from"] = (
                ", ".join(origins) if len(origins) <= 3 else f"{len(origins)} files: {origins[0]} .. {origins[-1]}"
            )
            if delivery.absent_columns:
                metadata["columns_not_delivered"] = ", ".join(delivery.absent_columns)
                context.log.warning(
                    f"raw.{table} {month:%Y-%m}: the source has no column(s) {', '.join(delivery.absent_columns)}; "
                    "they are NULL, and what needs them degrades (see the warehouse's docs)"
                )
        else:
            context.log.warning(f"raw.{table} {month:%Y-%m}: the source has no {table}; the table is empty")
        yield MaterializeResult(asset_key=raw_table_key(table), metadata=metadata)
