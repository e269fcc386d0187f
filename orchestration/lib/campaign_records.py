"""What the loop records about its campaigns besides the plan: gate results, approvals and executions.

A plan is identified by its content hash (models.campaign_design.plan_content_hash). Every blocking check of
the plan records whether that hash passed (`campaigns.plan_gates`); an approval names the hash it approves
(`campaigns.plan_approvals`); execute sends a plan only when the hash it reads passed every gate and is
approved, and records the execution of the month (`campaigns.executions`) so that nothing is sent for that
month again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from models.campaign_design import plan_content_hash
from orchestration.lib.queries import PLAN_TABLE, columns_of
from orchestration.lib.warehouse import Warehouse

GATES_TABLE = "campaigns.plan_gates"
APPROVALS_TABLE = "campaigns.plan_approvals"
EXECUTIONS_TABLE = "campaigns.executions"

#: The blocking checks of `campaign_plan` that must pass, for the plan's hash, before it is approved or sent.
PLAN_GATES = ("plan_respects_consent_budget_and_control", "plan_matches_its_decision_log")

GATE_SCHEMA = {
    "designed_in_month": "timestamp",
    "plan_hash": "varchar",
    "gate": "varchar",
    "passed": "boolean",
    "run_id": "varchar",
    "checked_at": "timestamp",
}
APPROVAL_SCHEMA = {
    "designed_in_month": "timestamp",
    "plan_hash": "varchar",
    "approved_by": "varchar",
    "mode": "varchar",
    "approved_at": "timestamp",
}
EXECUTION_SCHEMA = {
    "delivery_month": "timestamp",
    "designed_in_month": "timestamp",
    "plan_hash": "varchar",
    "channel": "varchar",
    "contacts": "bigint",
    "suppressed_at_send_time": "bigint",
    "run_id": "varchar",
    "completed_at": "timestamp",
}

AUTOMATIC_SIMULATION = "automatic (simulation)"
MANUAL = "manual"

_PANDAS_TYPES = {
    "timestamp": "datetime64[us]",
    "varchar": "string",
    "boolean": "boolean",
    "double": "float64",
    "bigint": "Int64",
    "integer": "Int64",
}


class PlanNotCleared(RuntimeError):
    """The plan cannot be sent: a gate did not pass for its hash, or it awaits approval."""


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")


def typed_frame(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """`frame` with exactly the schema's columns (missing ones NULL), each cast to its type."""
    out = pd.DataFrame(index=frame.index)
    for column, sql_type in schema.items():
        values = frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index)
        dtype = _PANDAS_TYPES[sql_type]
        if dtype == "datetime64[us]":
            out[column] = pd.to_datetime(values).astype(dtype)
        elif dtype == "string":
            out[column] = values.astype("string")
        else:
            out[column] = values.astype(dtype)
    return out


def write_rows(
    warehouse: Warehouse, table: str, frame: pd.DataFrame, schema: Mapping[str, str], where: Mapping[str, Any]
) -> int:
    """Replace the rows of `table` matching `where` with `frame`, the table keeping the fixed `schema` (a table
    written before a column joined the schema gains it, NULL in its older rows)."""
    warehouse.ensure_table(table, schema)
    typed = typed_frame(frame, schema)
    _add_missing_columns(warehouse, table, typed)
    return warehouse.replace_rows(table, typed, where)


def sql_type(series: pd.Series) -> str:
    """The warehouse type of a pandas column."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "bigint"
    if pd.api.types.is_float_dtype(series):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "varchar"


def replace_rows_growing(warehouse: Warehouse, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int:
    """Replace the rows of `table` matching `where` with `frame`, first adding any column the table lacks
    (existing rows get NULL there): a results table gains columns as the measurements grow."""
    _add_missing_columns(warehouse, table, frame)
    return warehouse.replace_rows(table, frame, where)


def append_rows_growing(warehouse: Warehouse, table: str, frame: pd.DataFrame) -> int:
    """Append `frame` to `table`, first adding any column the table lacks (as `replace_rows_growing`)."""
    _add_missing_columns(warehouse, table, frame)
    return warehouse.append_rows(table, frame)


def _add_missing_columns(warehouse: Warehouse, table: str, frame: pd.DataFrame) -> None:
    if warehouse.table_exists(table):
        existing = columns_of(warehouse, table)
        missing = {column: sql_type(frame[column]) for column in frame.columns if column not in existing}
        if missing:
            warehouse.ensure_table(table, missing)


def record_gate(warehouse: Warehouse, month: date, plan_hash: str, gate: str, passed: bool, run_id: str = "") -> None:
    """Record that `gate` passed (or failed) for the plan designed in `month` with content `plan_hash`."""
    row = pd.DataFrame(
        {
            "designed_in_month": [pd.Timestamp(month)],
            "plan_hash": [plan_hash],
            "gate": [gate],
            "passed": [bool(passed)],
            "run_id": [run_id],
            "checked_at": [_now()],
        }
    )
    write_rows(warehouse, GATES_TABLE, row, GATE_SCHEMA, {"designed_in_month": pd.Timestamp(month), "gate": gate})


def gates_not_passed(warehouse: Warehouse, month: date, plan_hash: str, gates: Sequence[str] = PLAN_GATES) -> list[str]:
    """The `gates` that have not passed for this plan hash (all of them when none was recorded)."""
    warehouse.ensure_table(GATES_TABLE, GATE_SCHEMA)
    passed = warehouse.query(
        f"select gate from {GATES_TABLE} where designed_in_month = ? and plan_hash = ? and passed",
        [pd.Timestamp(month), plan_hash],
    )
    return [gate for gate in gates if gate not in set(passed["gate"])]


def approval_of(warehouse: Warehouse, month: date, plan_hash: str) -> dict | None:
    """The recorded approval of this plan hash, or None."""
    warehouse.ensure_table(APPROVALS_TABLE, APPROVAL_SCHEMA)
    found = warehouse.query(
        f"select * from {APPROVALS_TABLE} where designed_in_month = ? and plan_hash = ? order by approved_at limit 1",
        [pd.Timestamp(month), plan_hash],
    )
    return None if found.empty else found.iloc[0].to_dict()


def record_approval(
    warehouse: Warehouse,
    month: date,
    plan_hash: str,
    approved_by: str,
    mode: str = MANUAL,
    gates: Sequence[str] = PLAN_GATES,
) -> dict:
    """Approve the plan designed in `month` whose content hash is `plan_hash` (idempotent per hash).

    Refuses a hash that has not passed every gate: an approval never overrides a failed check.
    """
    missing = gates_not_passed(warehouse, month, plan_hash, gates)
    if missing:
        raise PlanNotCleared(
            f"the plan designed in {month:%Y-%m} (hash {plan_hash[:12]}) has not passed {', '.join(missing)}; "
            "it cannot be approved"
        )
    existing = approval_of(warehouse, month, plan_hash)
    if existing is not None:
        return existing
    row = pd.DataFrame(
        {
            "designed_in_month": [pd.Timestamp(month)],
            "plan_hash": [plan_hash],
            "approved_by": [approved_by],
            "mode": [mode],
            "approved_at": [_now()],
        }
    )
    warehouse.append_rows(APPROVALS_TABLE, typed_frame(row, APPROVAL_SCHEMA))
    return row.iloc[0].to_dict()


def execution_of(warehouse: Warehouse, delivery_month: date) -> dict | None:
    """The completed execution of the campaigns delivered in `delivery_month`, or None."""
    warehouse.ensure_table(EXECUTIONS_TABLE, EXECUTION_SCHEMA)
    found = warehouse.query(
        f"select * from {EXECUTIONS_TABLE} where delivery_month = ?", [pd.Timestamp(delivery_month)]
    )
    return None if found.empty else found.iloc[0].to_dict()


def record_execution(warehouse: Warehouse, row: Mapping[str, Any]) -> None:
    frame = pd.DataFrame([{**row, "completed_at": _now()}])
    write_rows(
        warehouse, EXECUTIONS_TABLE, frame, EXECUTION_SCHEMA, {"delivery_month": pd.Timestamp(row["delivery_month"])}
    )


def approve_from_command_line(
    warehouse: Warehouse,
    month: date,
    approved_by: str,
    plan_hash: str | None,
    clear_gates: Callable[[Warehouse, date, str], list[str]] | None = None,
) -> str:
    """`crm-loop approve`: approve the plan designed in `month` (delivered the month after); returns a summary.

    With `plan_hash` (or a prefix of it), only that exact plan is approved: a plan changed since the person
    reviewed it is refused.
    """

    if not warehouse.table_exists(PLAN_TABLE):
        raise PlanNotCleared(f"no campaign plan exists yet (run the loop for {month:%Y-%m} first)")
    plan = warehouse.query(f"select * from {PLAN_TABLE} where designed_in_month = ?", [pd.Timestamp(month)])
    current = plan_content_hash(plan)
    if plan_hash and not current.startswith(plan_hash):
        raise PlanNotCleared(
            f"the plan designed in {month:%Y-%m} now has hash {current[:12]}, not {plan_hash}: review it again"
        )
    gates = PLAN_GATES
    if clear_gates is not None:
        failed = clear_gates(warehouse, month, current)
        if failed:
            raise PlanNotCleared(f"the plan designed in {month:%Y-%m} fails {', '.join(failed)}: it cannot be approved")
        gates = ()
    approval = record_approval(warehouse, month, current, approved_by, MANUAL, gates)
    sizes = (
        plan.groupby(["campaign_id", "group"]).size().unstack(fill_value=0).to_string()
        if len(plan)
        else "(an empty plan: nobody is contacted)"
    )
    return (
        f"approved plan {current[:12]} designed in {month:%Y-%m} by {approval['approved_by']} "
        f"at {approval['approved_at']}\n{sizes}"
    )
