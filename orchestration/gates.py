"""How a Great Expectations suite becomes a blocking Dagster gate (the stages' gates use this).

Every gate is a blocking asset check: when it fails, nothing downstream of its asset runs in that run, and the
run fails with the gate's message (each failing rule, where, and how many rows). The gates, by stage:

| gate (check)            | asset                   | suite (expectations/)   | in orchestration/stages/ |
|-------------------------|-------------------------|-------------------------|--------------------------|
| suite_raw_<table>       | raw/<table>             | raw_files + raw_<table> | collect/gates.py         |
| suite_customer_features | marts/customer_features | customer_features       | warehouse/gates.py       |
| suite_customer_scores   | customer_scores         | customer_scores         | analyse/checks.py        |
| suite_campaign_plan     | campaign_plan           | campaign_plan           | design/checks.py         |
| suite_contact_list      | campaign_delivery       | contact_list            | execute/checks.py        |

Each gate reads what it validates in one warehouse session (on DuckDB one connection: each costs tens of
milliseconds), through the warehouse resource whatever the engine, and validates it in memory with
expectations.adapter.
"""

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, Failure, MetadataValue, asset_check

from expectations.adapter import Validation, check_result
from orchestration.lib.months import next_month, partition_month
from orchestration.lib.warehouse import Warehouse
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource

MESSAGE_PARTS = 12


class GateFailed(Failure):
    """A blocking gate failed: the message names where, the rule and how many rows."""


def row_count(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def shown_value(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    if isinstance(value, pd.Timestamp):
        return repr(value.isoformat(sep=" ").removesuffix(" 00:00:00"))
    return repr(value.item() if isinstance(value, np.generic) else value)


def stop_if_failed(result: AssetCheckResult, message: str):
    """Report the check's result; when it failed, stop the run with the gate's message (blocking)."""
    yield result
    if not result.passed:
        raise GateFailed(description=message, metadata={"gate": MetadataValue.text(message)})


def gate_result(
    validation: Validation, frame: pd.DataFrame, what: str, sample_columns: list[str], **metadata
) -> tuple[AssetCheckResult, str]:
    """The result of a gate on a derived table, and the message that stops the run when it fails."""
    parts = []
    for rule_break in validation.breaks:
        examples = ", ".join(shown_value(value) for value in rule_break.examples)
        observed = f" (found {rule_break.observed})" if not rule_break.positions.size else ""
        parts.append(
            f"{rule_break.rule}: {row_count(rule_break.count)}{observed}" + (f" (e.g. {examples})" * bool(examples))
        )
    message = f"{what} rejected: " + "; ".join(parts) if parts else ""
    result = check_result(
        validation,
        frame,
        description=message or f"{what}: all {validation.rules_checked} rules hold on {row_count(validation.rows)}",
        sample_columns=[column for column in sample_columns if column in frame.columns] or None,
        metadata=metadata,
    )
    return result, message


def buyers_sql(sales_only: bool) -> str:
    """Customers with an order (or a sale) dated before the parameter, from the warehouse's order facts."""
    sale = " and not is_return" if sales_only else ""
    return f"select distinct customer_id from marts.fct_orders where order_date < ?{sale}"


def rows_with_buyers(
    warehouse: Warehouse, table: str, month: date, sales_only: bool, columns: Sequence[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """The month's rows of `table` (its `columns`, or all) with `_not_a_buyer`, and how many customers have an
    order (a sale) by the month end."""
    end = pd.Timestamp(next_month(month))
    selected = ", ".join(f't."{column}"' for column in columns) if columns is not None else "t.*"
    frame = warehouse.query(
        f"""
        with buyers as ({buyers_sql(sales_only)})
        select {selected}, case when b.customer_id is null then t.customer_id end as _not_a_buyer
        from {table} as t left join buyers as b on b.customer_id = t.customer_id
        where t.as_of_month = ?
        order by t.customer_id
        """,
        [end, pd.Timestamp(month)],
    )
    buyers = warehouse.query(f"select count(*) as buyers from ({buyers_sql(sales_only)})", [end])["buyers"].iloc[0]
    return frame, int(buyers)


def derived_gate_check(asset: AssetKey | str, name: str, gate, description: str):
    """A blocking check running `gate(warehouse, month)` on every month of the run (a dbt-only rebuild covers a
    range of months in one run); the first failing month stops it."""

    @asset_check(
        asset=asset, name=name, blocking=True, partitions_def=monthly_partitions, pool="duckdb", description=description
    )
    def check(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        results = [gate(warehouse, partition_month(key)) for key in sorted(context.partition_keys)]
        yield from stop_if_failed(*next((result for result in results if not result[0].passed), results[-1]))

    return check


def rule_counts_result(failures: dict[str, int], **metadata) -> AssetCheckResult:
    failed = {rule: count for rule, count in failures.items() if count}
    return AssetCheckResult(
        passed=not failed,
        metadata={**{f"violations: {rule}": count for rule, count in failures.items()}, **metadata},
        description="; ".join(f"{rule}: {count} rows" for rule, count in failed.items()) or "all rules hold",
    )
