"""Blocking gates: each stage's output validated against its Great Expectations suite (expectations/).

Every gate is a blocking Dagster asset check: when it fails, nothing downstream of its asset runs in that run,
and the run fails with the gate's message (each failing rule, where, and how many rows). The gates:

| gate (check)              | asset                    | suite (expectations/)                 |
|---------------------------|--------------------------|---------------------------------------|
| suite_raw_<table>         | raw/<table>              | raw_files + raw_<table>               |
| suite_customer_features   | marts/customer_features  | customer_features                     |
| suite_customer_scores     | customer_scores          | customer_scores                       |
| suite_campaign_plan       | campaign_plan            | campaign_plan                         |
| suite_contact_list        | campaign_delivery        | contact_list                          |

A raw gate validates the month as collected: the files (audit.deliveries: readable, one per month, the right
columns, not a copy of an earlier month) and the rows of `raw.<table>` (types, required values, keys, signs,
dates inside the month and not in the future, references to delivered customers and products). The rows it
rejects, and the rows of the files it rejects, are appended to `quarantine.<table>` with the rule each breaks;
the raw files and the raw rows are left as they are, so a corrected file and a re-run are all it takes.

Each gate reads what it validates in one warehouse session (on DuckDB one connection: each costs tens of
milliseconds), through the warehouse resource whatever the engine, and validates it in memory with
expectations.adapter.
"""

import json
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, Failure, MetadataValue, asset_check

from expectations import (
    campaign_plan,
    contact_list,
    customer_features,
    customer_scores,
    raw_contact_log,
    raw_customers,
    raw_files,
    raw_orders,
    raw_products,
)
from expectations.adapter import RuleBreak, Validation, check_result, validate
from models.ids import is_member
from orchestration.assets.collect import raw_table_key
from orchestration.partitions import monthly_partitions, next_month, partition_month
from orchestration.queries import DELIVERIES_TABLE, PLAN_TABLE, SCORES_TABLE
from orchestration.raw_tables import (
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
from orchestration.resources import WarehouseResource
from orchestration.resources.warehouse import Warehouse

RAW_SUITES = {
    "orders": raw_orders.suite,
    "customers": raw_customers.suite,
    "products": raw_products.suite,
    "contact_log": raw_contact_log.suite,
}
MESSAGE_PARTS = 12
# Columns that identify a person: never shown in a gate's message or metadata (Dagster's run history keeps
# them); the quarantine, inside the warehouse, keeps the rows whole (and `crm-loop forget` reaches it).
PERSONAL_COLUMNS = ("full_name", "email", "phone")
CONTROL_SHARE_TOLERANCE = 0.02


class GateFailed(Failure):
    """A blocking gate failed: the message names where, the rule and how many rows."""


# ------------------------------------------------------------------------------------------------ helpers
def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _shown(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    if isinstance(value, pd.Timestamp):
        return repr(value.isoformat(sep=" ").removesuffix(" 00:00:00"))
    return repr(value.item() if isinstance(value, np.generic) else value)


def _stop_if_failed(result: AssetCheckResult, message: str):
    """Report the check's result; when it failed, stop the run with the gate's message (blocking)."""
    yield result
    if not result.passed:
        raise GateFailed(description=message, metadata={"gate": MetadataValue.text(message)})


# ---------------------------------------------------------------------------------------------- raw gates
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
                found.setdefault(origin, []).append(f"{reason}: {_rows(len(of_file))} not accepted")
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
                example = f"line {first[SOURCE_LINE]}: " + ", ".join(_shown(first[c]) for c in shown_columns)
                found.setdefault(origin, []).append(f"{rule_break.rule}: {_rows(len(of_file))} (e.g. {example})")
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
                f"`select * from {target} where run_id = '{run_id}'` ({_rows(len(quarantined))})"
            )
            metadata["bad_rows_by_file_and_rule"] = MetadataValue.md(
                pd.DataFrame(by_file_and_rule).to_markdown(index=False)
            )
            parts = [f"{origin}: {'; '.join(problems)}" for origin, problems in found.items()]
            if len(parts) > MESSAGE_PARTS:
                parts = parts[:MESSAGE_PARTS] + [f"... and {len(parts) - MESSAGE_PARTS} more files"]
            message = f"raw.{table} {month:%Y-%m} rejected ({_rows(len(quarantined))} in {target}). " + " | ".join(
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
        description=message or f"{len(files)} files and {_rows(len(rows))} pass every rule of {both.suite}",
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
        yield from _stop_if_failed(*raw_gate(warehouse, table, month, context.op_execution_context.run_id))

    return gate


suite_raw_orders = _raw_gate_check("orders")
suite_raw_customers = _raw_gate_check("customers")
suite_raw_products = _raw_gate_check("products")
suite_raw_contact_log = _raw_gate_check("contact_log")


# ------------------------------------------------------------------------------- gates after the warehouse
def _gate_result(
    validation: Validation, frame: pd.DataFrame, what: str, sample_columns: list[str], **metadata
) -> tuple[AssetCheckResult, str]:
    """The result of a gate on a derived table, and the message that stops the run when it fails."""
    parts = []
    for rule_break in validation.breaks:
        examples = ", ".join(_shown(value) for value in rule_break.examples)
        observed = f" (found {rule_break.observed})" if not rule_break.positions.size else ""
        parts.append(
            f"{rule_break.rule}: {_rows(rule_break.count)}{observed}" + (f" (e.g. {examples})" * bool(examples))
        )
    message = f"{what} rejected: " + "; ".join(parts) if parts else ""
    result = check_result(
        validation,
        frame,
        description=message or f"{what}: all {validation.rules_checked} rules hold on {_rows(validation.rows)}",
        sample_columns=[column for column in sample_columns if column in frame.columns] or None,
        metadata=metadata,
    )
    return result, message


def _buyers(sales_only: bool) -> str:
    """Customers with an order (or a sale) dated before the parameter, from the warehouse's order facts."""
    sale = " and not is_return" if sales_only else ""
    return f"select distinct customer_id from marts.fct_orders where order_date < ?{sale}"


def _with_buyers(
    warehouse: Warehouse, table: str, month: date, sales_only: bool, columns: Sequence[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """The month's rows of `table` (its `columns`, or all) with `_not_a_buyer`, and how many customers have an
    order (a sale) by the month end."""
    end = pd.Timestamp(next_month(month))
    selected = ", ".join(f't."{column}"' for column in columns) if columns is not None else "t.*"
    frame = warehouse.query(
        f"""
        with buyers as ({_buyers(sales_only)})
        select {selected}, case when b.customer_id is null then t.customer_id end as _not_a_buyer
        from {table} as t left join buyers as b on b.customer_id = t.customer_id
        where t.as_of_month = ?
        order by t.customer_id
        """,
        [end, pd.Timestamp(month)],
    )
    buyers = warehouse.query(f"select count(*) as buyers from ({_buyers(sales_only)})", [end])["buyers"].iloc[0]
    return frame, int(buyers)


def features_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame, buyers = _with_buyers(warehouse, "marts.customer_features", month, sales_only=True)
    validation = validate(frame, customer_features.suite, {"customers_with_a_sale": buyers})
    return _gate_result(
        validation,
        frame,
        f"marts.customer_features {month:%Y-%m}",
        ["customer_id", *customer_features.NEEDED_BY_THE_MODELS],
        customers_with_a_sale=buyers,
    )


def _suite_columns(suite) -> list[str]:
    """The table columns a suite's expectations name (not the gate's own `_not_a_buyer`), in order."""
    named = [getattr(expectation, "column", None) for expectation in suite.expectations]
    return list(dict.fromkeys(column for column in named if column and column != "_not_a_buyer"))


def scores_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    """The month's scores through `suite_customer_scores`; only the columns it checks are read (the table has
    one row per customer and about forty columns)."""
    with warehouse.session():
        frame, buyers = _with_buyers(
            warehouse, SCORES_TABLE, month, sales_only=False, columns=_suite_columns(customer_scores.suite)
        )
    validation = validate(frame, customer_scores.suite, {"customers_with_an_order": buyers})
    return _gate_result(
        validation,
        frame,
        f"{SCORES_TABLE} {month:%Y-%m}",
        ["customer_id", "churn_probability", "p_alive", "clv", "expected_purchases_next_month", "segment"],
        customers_with_an_order=buyers,
    )


def global_control_members(customer_ids: pd.Series, share: float | None = None) -> pd.Series:
    """True for the customers of the design stage's global control group: its salt, and its configured share
    (CRM_GLOBAL_CONTROL_SHARE) unless `share` is given."""
    from models.eligibility import global_control_group
    from orchestration.assets import design

    share = float(design.CampaignDesignConfig().global_control_share) if share is None else share
    return global_control_group(customer_ids.astype("str"), share, design.GLOBAL_CONTROL_SALT)


def plan_frame(warehouse: Warehouse, month: date, global_control_share: float | None = None) -> pd.DataFrame:
    """The plan designed in `month` with the columns the campaign_plan suite reads (see its module)."""
    plan = warehouse.query(
        f"select * from {PLAN_TABLE} where designed_in_month = ? order by campaign_id, customer_id",
        [pd.Timestamp(month)],
    )
    consenting = warehouse.query("select customer_id from marts.dim_customers where coalesce(email_consent, false)")
    plan["_without_consent"] = plan["customer_id"].where(~is_member(plan["customer_id"], consenting["customer_id"]))
    holdout = (
        global_control_members(plan["customer_id"], global_control_share).to_numpy(dtype=bool)
        if len(plan)
        else np.zeros(0, bool)
    )
    plan["_in_global_control"] = plan["customer_id"].where(holdout)
    objectives = warehouse.query("select * from reference.campaign_objectives").set_index("objective")
    offers = warehouse.query("select * from reference.offers").set_index("offer_id")
    cost_per_contact = offers["contact_cost"] + offers["incentive_cost"]
    by_campaign = plan.groupby("campaign_id")["group"]
    selected = by_campaign.transform("size")
    control = by_campaign.transform(lambda groups: int((groups == "control").sum()))
    share = plan["objective"].map(objectives["control_share"]).astype(float)
    plan["budget"] = plan["objective"].map(objectives["budget"]).astype(float)
    plan["committed_cost"] = ((selected - control) * plan["offer_id"].map(cost_per_contact).astype(float)).round(2)
    plan["control_share_deviation"] = (control / selected - share).abs()
    plan["control_share_tolerance"] = np.maximum(CONTROL_SHARE_TOLERANCE, 1 / selected)
    return plan


def plan_gate(
    warehouse: WarehouseResource, month: date, global_control_share: float | None = None
) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame = plan_frame(warehouse, month, global_control_share)
    validation = validate(frame, campaign_plan.suite)
    return _gate_result(
        validation,
        frame,
        f"campaign plan designed in {month:%Y-%m}",
        ["campaign_id", "customer_id", "group", "budget", "committed_cost", "control_share_deviation"],
        campaigns=int(frame["campaign_id"].nunique()),
    )


def contact_list_frame(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """The contacts delivered for the month after `month`, with the columns the contact_list suite reads."""
    delivery_month = pd.Timestamp(next_month(month))
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return pd.DataFrame(
            {
                column: pd.Series(dtype="str")
                for column in (
                    "campaign_id",
                    "customer_id",
                    "idempotency_key",
                    "_not_in_test_group",
                    "_without_consent",
                )
            }
        )
    return warehouse.query(
        f"""
        with
        delivered as (select * from {DELIVERIES_TABLE} where delivery_month = ?),
        test as (
            select campaign_id, customer_id from {PLAN_TABLE} where delivery_month = ? and "group" = 'test'
        ),
        consenting as (select customer_id from marts.dim_customers where coalesce(email_consent, false))
        select
            d.*,
            case when t.customer_id is null then d.customer_id end as _not_in_test_group,
            case when c.customer_id is null then d.customer_id end as _without_consent
        from delivered as d
        left join test as t on t.campaign_id = d.campaign_id and t.customer_id = d.customer_id
        left join consenting as c on c.customer_id = d.customer_id
        order by d.campaign_id, d.customer_id
        """,
        [delivery_month, delivery_month],
    )


#: Columns a failed contact-list gate shows of its offending rows.
CONTACT_LIST_SAMPLE_COLUMNS = ["campaign_id", "customer_id", "_not_in_test_group", "_without_consent"]


def outgoing_contact_list_gate(
    contacts: pd.DataFrame, test: pd.DataFrame, consent: pd.DataFrame | None, delivery_month: date
) -> tuple[AssetCheckResult, str]:
    """The contact_list suite on the list execute is about to hand to the channel, before anything is sent.

    `contacts`: campaign_id, customer_id, idempotency_key; `test`: the approved plan's test-group assignments;
    `consent`: customer_id, email_consent as re-read at send time (None: no consent data, nobody may be contacted).
    """
    frame = contacts[["campaign_id", "customer_id", "idempotency_key"]].reset_index(drop=True)
    planned = pd.MultiIndex.from_frame(test[["campaign_id", "customer_id"]].astype(str))
    in_plan = pd.MultiIndex.from_frame(frame[["campaign_id", "customer_id"]].astype(str)).isin(planned)
    consenting = (
        consent.loc[consent["email_consent"].astype("boolean").fillna(False).astype(bool), "customer_id"]
        if consent is not None
        else pd.Series([], dtype="str")
    )
    frame["_not_in_test_group"] = frame["customer_id"].where(~in_plan)
    frame["_without_consent"] = frame["customer_id"].where(~is_member(frame["customer_id"], consenting))
    validation = validate(frame, contact_list.suite)
    return _gate_result(
        validation,
        frame,
        f"contact list for {delivery_month:%Y-%m} (nothing sent)",
        CONTACT_LIST_SAMPLE_COLUMNS,
    )


def contact_list_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame = contact_list_frame(warehouse, month)
    validation = validate(frame, contact_list.suite)
    return _gate_result(
        validation,
        frame,
        f"contacts delivered for {next_month(month):%Y-%m}",
        CONTACT_LIST_SAMPLE_COLUMNS,
    )


def _derived_gate_check(asset: AssetKey | str, name: str, gate, description: str):
    """A blocking check running `gate(warehouse, month)` on every month of the run (a dbt-only rebuild covers a
    range of months in one run); the first failing month stops it."""

    @asset_check(
        asset=asset, name=name, blocking=True, partitions_def=monthly_partitions, pool="duckdb", description=description
    )
    def check(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        results = [gate(warehouse, partition_month(key)) for key in sorted(context.partition_keys)]
        yield from _stop_if_failed(*next((result for result in results if not result[0].passed), results[-1]))

    return check


suite_customer_features = _derived_gate_check(
    AssetKey(["marts", "customer_features"]),
    "suite_customer_features",
    features_gate,
    "Great Expectations suite customer_features: no nulls a model needs, ranges, every buyer covered.",
)
suite_customer_scores = _derived_gate_check(
    "customer_scores",
    "suite_customer_scores",
    scores_gate,
    "Great Expectations suite customer_scores: probabilities in [0, 1], no missing score, every customer with an "
    "order scored once.",
)
suite_campaign_plan = _derived_gate_check(
    "campaign_plan",
    "suite_campaign_plan",
    plan_gate,
    "Great Expectations suite campaign_plan: consent, no global control customer, control share within tolerance, "
    "budget respected, no customer in two campaigns.",
)
suite_contact_list = _derived_gate_check(
    "campaign_delivery",
    "suite_contact_list",
    contact_list_gate,
    "Great Expectations suite contact_list: only test-group customers of the approved plan, each once, with consent.",
)
