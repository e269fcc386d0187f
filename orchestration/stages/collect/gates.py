"""Blocking gates on the collected month: the raw files and rows against the raw suites (expectations/)."""

import json
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    MetadataValue,
    asset_check,
)

from expectations import (
    raw_contact_log,
    raw_customers,
    raw_files,
    raw_orders,
    raw_products,
)
from expectations.adapter import RuleBreak, Validation, check_result, validate
from orchestration.gates import (
    MESSAGE_PARTS,
    row_count,
    shown_value,
    stop_if_failed,
)
from orchestration.lib.months import next_month, partition_month
from orchestration.lib.raw_tables import (
    DELIVERY_LOG,
    EVENT_TABLES,
    LOADED_MONTH,
    QUARANTINE_SCHEMA,
    RAW_SCHEMAS,
    SOURCE_FILE,
    SOURCE_LINE,
    TYPED_COLUMNS,
    UNREADABLE_LINE,
    quarantine_table,
    unreadable_column,
)
from orchestration.lib.warehouse import Warehouse
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource
from orchestration.stages.collect.assets import raw_table_key

RAW_SUITES = {
    "orders": raw_orders.suite,
    "customers": raw_customers.suite,
    "products": raw_products.suite,
    "contact_log": raw_contact_log.suite,
}

# Columns that identify a person: never shown in a gate's message or metadata (Dagster's run history keeps
# them); the quarantine, inside the warehouse, keeps the rows whole (and `crm-loop forget` reaches it).
PERSONAL_COLUMNS = ("full_name", "email", "phone")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")


def raw_month_bounds(month: date) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    """The `_loaded_month` range a partition owns: the first partition every month up to it (its history)."""
    first = partition_month(monthly_partitions.get_first_partition_key())
    return (None if month == first else pd.Timestamp(month)), pd.Timestamp(month)


def raw_parameters(month: date) -> dict:
    """The suite parameters of a raw gate (see the raw suites' modules)."""
    lower, _ = raw_month_bounds(month)
    return {"month_start": lower, "next_month_start": pd.Timestamp(next_month(month)), "now": _now()}


def delivered_files(warehouse: Warehouse, table: str, month: date) -> pd.DataFrame:
    """The files collect read for `table` in the partition, each with `same_content_as` (see raw_files)."""
    if not warehouse.table_exists(DELIVERY_LOG):
        return pd.DataFrame(columns=["origin", "file_month", "rows", "problems", "same_content_as"])
    event_tables = ", ".join(f"'{name}'" for name in EVENT_TABLES)
    return warehouse.query(
        f"""
        select
            d.origin, d.file_month, d.rows, d.problems,
            (
                select min(e.origin) from {DELIVERY_LOG} as e
                where e.table_name = d.table_name and e.sha256 = d.sha256 and e.rows > 0 and d.rows > 0
                    and e.file_month < d.file_month and d.table_name in ({event_tables})
            ) as same_content_as
        from {DELIVERY_LOG} as d
        where d.partition_month = ? and d.table_name = ?
        order by d.origin
        """,
        [pd.Timestamp(month), table],
    )


def raw_rows(warehouse: Warehouse, table: str, month: date) -> pd.DataFrame:
    """The partition's rows of `raw.<table>`, with the references its suite checks (see its module), in file
    and line order. A reference is checked only when the source delivers what it refers to."""
    lower, upper = raw_month_bounds(month)
    in_month = f"{LOADED_MONTH} <= ?" + (f" and {LOADED_MONTH} >= ?" if lower is not None else "")
    parameters: list = [upper, upper, upper] + ([lower] if lower is not None else [])
    unknown = """
        case when m.{column} is not null and (select count(*) from {known}) > 0
            and m.{column} not in (select {column} from {known}) then m.{column} end as _unknown_{column}"""
    references = ""
    if table in ("orders", "contact_log"):
        references += "," + unknown.format(column="customer_id", known="known_customers")
    if table == "orders":
        references += "," + unknown.format(column="product_id", known="known_products")
        references += f""",
        case when m.order_id in (
            select order_id from raw.orders where {LOADED_MONTH} < ? and order_id is not null
        ) then m.order_id end as _order_id_collected_before"""
        parameters.append(lower if lower is not None else pd.Timestamp("1900-01-01"))
    return warehouse.query(
        f"""
        with
        known_customers as (
            select distinct customer_id from raw.customers where {LOADED_MONTH} <= ? and customer_id is not null
        ),
        known_products as (
            select distinct product_id from raw.products where {LOADED_MONTH} <= ? and product_id is not null
        ),
        m as (select * from raw.{table} where {in_month})
        select m.*{references}
        from m
        order by m.{SOURCE_FILE}, m.{SOURCE_LINE}
        """,
        parameters,
    )


def _row_values(frame: pd.DataFrame, table: str) -> list[str]:
    """Each row as delivered (the contract's columns and what could not be read), as JSON text."""
    columns = [*RAW_SCHEMAS[table], UNREADABLE_LINE, *(unreadable_column(c) for c in TYPED_COLUMNS[table])]
    shown = frame[[c for c in columns if c in frame.columns]].astype("object")
    shown = shown.where(shown.notna(), None)
    return [
        json.dumps({key: value for key, value in record.items() if value is not None}, default=str)
        for record in shown.to_dict(orient="records")
    ]


def _quarantine_rows(
    frame: pd.DataFrame, table: str, rule: str, column: str | None, values: list[str | None], gate: str
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rejected_by": gate,
            "file": frame[SOURCE_FILE].astype("str").to_numpy(),
            "line": pd.array(frame[SOURCE_LINE], dtype="Int64"),
            "rule": rule,
            "column_name": column,
            "value": pd.array(values, dtype="str"),
            "row_values": _row_values(frame, table),
        }
    )


def _file_without_rows(origin: str, rule: str, reason: str, gate: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rejected_by": [gate],
            "file": [origin],
            "line": pd.array([None], dtype="Int64"),
            "rule": [rule],
            "column_name": [None],
            "value": [reason],
            "row_values": [None],
        }
    )


def _value_column(rule_break: RuleBreak) -> str | None:
    """The column whose value a rule judges (None for a rule on several columns)."""
    return rule_break.column if rule_break.column and "," not in rule_break.column else None


def _named_column(column: str | None) -> str | None:
    """The contract column a helper column speaks of (`_unreadable_amount` and `_unknown_customer_id` speak of
    amount and customer_id)."""
    if column is None or column == UNREADABLE_LINE:
        return column
    if column == "_order_id_collected_before":
        return "order_id"
    for prefix in ("_unreadable_", "_unknown_"):
        if column.startswith(prefix):
            return column.removeprefix(prefix)
    return column


def _shareable(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """`frame` as a gate may show it: without personal columns, and for a table that holds personal data, lines
    kept as delivered reduced to why they could not be read."""
    shown = frame.drop(columns=[c for c in PERSONAL_COLUMNS if c in frame.columns])
    if table == "customers" and UNREADABLE_LINE in shown.columns:
        reasons = shown[UNREADABLE_LINE].str.split(": ", n=1).str[0]
        shown = shown.assign(**{UNREADABLE_LINE: reasons.where(shown[UNREADABLE_LINE].notna(), None)})
    return shown


def _cell_text(frame: pd.DataFrame, column: str | None) -> list[str | None]:
    if column is None or column not in frame.columns:
        return [None] * len(frame)
    return [None if pd.isna(value) else str(value) for value in frame[column].astype("object")]


def raw_gate(warehouse: WarehouseResource, table: str, month: date, run_id: str) -> tuple[AssetCheckResult, str]:
    """Validate the partition of `raw.<table>`: its files (raw_files), then the rows of the files that pass
    (raw_<table>). On failure the rejected rows are appended to `quarantine.<table>`.

    Returns the check result and the message that stops the run (empty when the gate passes).
    """
    gate = f"suite_raw_{table}"
    with warehouse.session():
        files = delivered_files(warehouse, table, month)
        rows = raw_rows(warehouse, table, month)
        file_check = validate(files, raw_files.suite)
        rejected_files = set(files["origin"].iloc[file_check.bad_positions()]) if len(files) else set()
        judged = rows[~rows[SOURCE_FILE].isin(rejected_files)].reset_index(drop=True)
        row_check = validate(judged, RAW_SUITES[table], raw_parameters(month))

        found: dict[str, list[str]] = {}  # what is wrong, by file
        rejected: list[pd.DataFrame] = []
        by_file_and_rule: list[dict] = []
        for rule_break in file_check.breaks:
            for position in rule_break.positions:
                origin = files["origin"].iloc[position]
                of_file = rows[rows[SOURCE_FILE] == origin]
                reason = files["problems"].iloc[position]
                if rule_break.column == "same_content_as":
                    reason = f"repeats {files['same_content_as'].iloc[position]} (a month delivered twice)"
                found.setdefault(origin, []).append(f"{reason}: {row_count(len(of_file))} not accepted")
                by_file_and_rule.append(
                    {"file": origin, "rule": rule_break.rule, "bad_rows": len(of_file), "example": reason}
                )
                rejected.append(
                    _quarantine_rows(of_file, table, rule_break.rule, None, [reason] * len(of_file), gate)
                    if len(of_file)
                    else _file_without_rows(origin, rule_break.rule, reason, gate)
                )
        for rule_break in row_check.breaks:
            if not rule_break.positions.size:  # a rule on the table as a whole
                found.setdefault(f"raw.{table}", []).append(f"{rule_break.rule} (found {rule_break.observed})")
                by_file_and_rule.append({"file": f"raw.{table}", "rule": rule_break.rule, "bad_rows": len(judged)})
                continue
            broken = judged.iloc[rule_break.positions]
            column = _value_column(rule_break)
            rejected.append(
                _quarantine_rows(
                    broken, table, rule_break.rule, _named_column(column), _cell_text(broken, column), gate
                )
            )
            for origin, of_file in broken.groupby(SOURCE_FILE, sort=True):
                first = _shareable(of_file.iloc[[0]], table).iloc[0]
                shown_columns = [column] if column else rule_break.column.split(", ")
                example = f"line {first[SOURCE_LINE]}: " + ", ".join(shown_value(first[c]) for c in shown_columns)
                found.setdefault(origin, []).append(f"{rule_break.rule}: {row_count(len(of_file))} (e.g. {example})")
                by_file_and_rule.append(
                    {"file": origin, "rule": rule_break.rule, "bad_rows": len(of_file), "example": example}
                )

        passed = file_check.success and row_check.success
        metadata: dict = {"month": f"{month:%Y-%m}", "files_checked": len(files), "files_rejected": len(rejected_files)}
        message = ""
        if not passed:
            quarantined = pd.concat(rejected, ignore_index=True).assign(
                run_id=run_id, rejected_at=_now(), partition_month=pd.Timestamp(month)
            )[list(QUARANTINE_SCHEMA)]
            target = quarantine_table(table)
            warehouse.ensure_table(target, QUARANTINE_SCHEMA)
            warehouse.append_rows(target, quarantined)
            metadata["quarantined_rows"] = len(quarantined)
            metadata["quarantine"] = MetadataValue.md(
                f"`select * from {target} where run_id = '{run_id}'` ({row_count(len(quarantined))})"
            )
            metadata["bad_rows_by_file_and_rule"] = MetadataValue.md(
                pd.DataFrame(by_file_and_rule).to_markdown(index=False)
            )
            parts = [f"{origin}: {'; '.join(problems)}" for origin, problems in found.items()]
            if len(parts) > MESSAGE_PARTS:
                parts = parts[:MESSAGE_PARTS] + [f"... and {len(parts) - MESSAGE_PARTS} more files"]
            message = f"raw.{table} {month:%Y-%m} rejected ({row_count(len(quarantined))} in {target}). " + " | ".join(
                parts
            )

    both = Validation(
        suite=f"{raw_files.suite.name} + {RAW_SUITES[table].name}",
        rows=len(rows),
        rules_checked=file_check.rules_checked + row_check.rules_checked,
        breaks=file_check.breaks + row_check.breaks,
        seconds=file_check.seconds + row_check.seconds,
    )
    shown_check, shown_frame = (row_check, _shareable(judged, table)) if row_check.breaks else (file_check, files)
    result = check_result(
        shown_check,
        shown_frame,
        description=message or f"{len(files)} files and {row_count(len(rows))} pass every rule of {both.suite}",
        metadata={
            **metadata,
            "suite": both.suite,
            "rows_validated": both.rows,
            "rules_checked": both.rules_checked,
            "rules_broken": len(both.breaks),
            "validation_seconds": round(both.seconds, 3),
        },
    )
    return result, message


def _raw_gate_check(table: str):
    @asset_check(
        asset=raw_table_key(table),
        name=f"suite_raw_{table}",
        blocking=True,
        partitions_def=monthly_partitions,
        pool="duckdb",
        description=(
            f"Great Expectations suites raw_files and raw_{table} on the month's files and rows of raw.{table}. "
            f"Blocking: on failure nothing downstream runs; rejected rows go to quarantine.{table} with the rule."
        ),
    )
    def gate(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        month = partition_month(context.partition_key)
        yield from stop_if_failed(*raw_gate(warehouse, table, month, context.op_execution_context.run_id))

    return gate


suite_raw_orders = _raw_gate_check("orders")

suite_raw_customers = _raw_gate_check("customers")

suite_raw_products = _raw_gate_check("products")

suite_raw_contact_log = _raw_gate_check("contact_log")
