"""Collect: land one month of raw customer data in the warehouse exactly as the source delivered it.

Collect never judges the data: every row a file holds lands in `raw.<table>`, typed where it can be, with the
file and line it came from and, kept aside, any value that could not be read (see orchestration.lib.raw_tables);
every file read is recorded in the delivery log `audit.deliveries` with what breaks it as a whole. The blocking
gates (orchestration/stages/collect/gates.py) then validate the month against the suites in expectations/: a
failure stops everything downstream and puts the rejected rows, with the rule each breaks, in
`quarantine.<table>`.
"""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from orchestration.lib.months import partition_month
from orchestration.lib.privacy import apply_erasures, erasure_key, forgotten_customers
from orchestration.lib.queries import PLAN_SCHEMA, PLAN_TABLE
from orchestration.lib.raw_tables import (
    DELIVERY_LOG,
    DELIVERY_LOG_SCHEMA,
    LOADED_MONTH,
    RAW_SCHEMAS,
    RAW_TABLES,
    UNREADABLE_LINE,
    UNREADABLE_PREFIX,
    delivered_frame,
    warehouse_columns,
)
from orchestration.partitions import monthly_partitions
from orchestration.resources import SourceResource, WarehouseResource
from orchestration.resources.source import Delivery

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


def delivery_log_rows(
    table: str, delivery: Delivery | None, month, run_id: str, collected_at: pd.Timestamp
) -> pd.DataFrame:
    """The delivery log's rows for one table of one partition (none when the source has no such table)."""
    records = delivery.files if delivery is not None else ()
    frame = pd.DataFrame(
        {
            "partition_month": pd.Timestamp(month),
            "table_name": table,
            "origin": [record.origin for record in records],
            "file_month": pd.to_datetime([record.month for record in records]).astype("datetime64[us]"),
            "rows": pd.array([record.rows for record in records], dtype="Int64"),
            "columns": [", ".join(record.columns) for record in records],
            "problems": [" | ".join(record.problems) or None for record in records],
            "sha256": [record.sha256 for record in records],
            "bytes": pd.array([record.size for record in records], dtype="Int64"),
            "collected_at": collected_at,
            "run_id": run_id,
        },
        columns=list(DELIVERY_LOG_SCHEMA),
    )
    return frame.astype({"partition_month": "datetime64[us]", "collected_at": "datetime64[us]"})


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
    replaces what it owns (no duplicates); other months are untouched. The files are only read. A customer
    forgotten with `crm-loop forget` arrives under their anonymous token, without personal data.
    """
    month = partition_month(context.partition_key)
    first_month = partition_month(monthly_partitions.get_first_partition_key())
    with_history = month == first_month
    deliveries = source.extract(month, with_history=with_history)
    collected_at = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")
    forgotten = forgotten_customers(warehouse)
    key = erasure_key(warehouse.home) if forgotten else b""
    warehouse.ensure_table(PLAN_TABLE, PLAN_SCHEMA)
    warehouse.ensure_table(DELIVERY_LOG, DELIVERY_LOG_SCHEMA)
    log = pd.concat(
        [delivery_log_rows(t, deliveries[t], month, context.run_id, collected_at) for t in RAW_TABLES],
        ignore_index=True,
    )
    warehouse.replace_rows(DELIVERY_LOG, log, {"partition_month": pd.Timestamp(month)})
    for table in RAW_TABLES:
        delivery = deliveries[table]
        if delivery is None:
            rows = delivered_frame(table, pd.DataFrame(), "").assign(
                **{LOADED_MONTH: pd.Series(dtype="datetime64[us]")}
            )
        else:
            rows = apply_erasures(delivery.rows, forgotten, key)
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
            unreadable = [c for c in rows.columns if c.startswith(UNREADABLE_PREFIX)]
            metadata["rows_with_unreadable_values"] = int(rows[unreadable].notna().any(axis=1).sum())
            metadata["unreadable_lines"] = int(rows[UNREADABLE_LINE].notna().sum())
            metadata["files_with_problems"] = sum(1 for record in delivery.files if record.problems)
            if delivery.absent_columns:
                metadata["columns_not_delivered"] = ", ".join(delivery.absent_columns)
                context.log.warning(
                    f"raw.{table} {month:%Y-%m}: the source has no column(s) {', '.join(delivery.absent_columns)}; "
                    "they are NULL, and what needs them degrades (see the warehouse's docs)"
                )
        else:
            context.log.warning(f"raw.{table} {month:%Y-%m}: the source has no {table}; the table is empty")
        yield MaterializeResult(asset_key=raw_table_key(table), metadata=metadata)
