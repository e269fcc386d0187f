"""Blocking gates on the campaign plan: consent, budget, control groups, the decision log and the plan suite.

Each gate records its verdict for the plan's content hash (`campaigns.plan_gates`); execute sends only a plan
whose hash passed every gate listed in `plan_gate_rules`."""

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    asset_check,
)

from expectations import (
    campaign_plan,
)
from expectations.adapter import validate
from models.campaign_design import plan_content_hash
from models.campaign_rules import (
    campaigns_over_budget,
    committed_cost,
    consenting_customers,
    control_share_deviation,
    in_another_campaign,
)
from models.eligibility import global_control_group
from models.ids import is_member
from orchestration.gates import (
    derived_gate_check,
    gate_result,
    rule_counts_result,
)
from orchestration.lib.campaign_records import gates_not_passed, record_gate
from orchestration.lib.months import partition_month
from orchestration.lib.queries import (
    DECISIONS_TABLE,
    PLAN_TABLE,
    campaign_objectives,
    designed_global_control_share,
    offers_with_expected_redemptions,
    plan_designed_in,
)
from orchestration.lib.warehouse import Warehouse
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource
from orchestration.stages.design.assets import GLOBAL_CONTROL_SALT


def plan_violations(warehouse: WarehouseResource, month: date) -> dict[str, int]:
    """Rows of the plan designed in `month` breaking each rule of `plan_respects_consent_budget_and_control`
    (the rules of models.campaign_rules)."""
    plan = warehouse.query(f"select * from {PLAN_TABLE} where designed_in_month = ?", [pd.Timestamp(month)])
    if plan.empty:
        return {}
    consent = warehouse.query("select customer_id, email_consent from marts.dim_customers")
    per_campaign = plan.groupby("campaign_id")["group"].agg(lambda g: (g == "control").sum())
    sizes = plan.groupby("campaign_id").size()
    return {
        "customer without consent": int((~is_member(plan["customer_id"], consenting_customers(consent))).sum()),
        "customer in two campaigns": int(in_another_campaign(plan).sum()),
        "campaign over budget": int(
            campaigns_over_budget(
                plan, offers_with_expected_redemptions(warehouse, month), campaign_objectives(warehouse)
            ).sum()
        ),
        "campaign of 2+ customers without control group": int(((per_campaign == 0) & (sizes >= 2)).sum()),
    }


@asset_check(asset="campaign_plan", blocking=True, partitions_def=monthly_partitions)
def plan_respects_consent_budget_and_control(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """No customer without consent, none in two campaigns, the test group within budget, and a control group.

    Records its verdict for the plan's content hash (a gate execute requires)."""
    month = partition_month(context.partition_key)
    plan_hash = plan_content_hash(
        warehouse.query(f"select * from {PLAN_TABLE} where designed_in_month = ?", [pd.Timestamp(month)])
    )
    result = rule_counts_result(plan_violations(warehouse, month), plan_hash=plan_hash)
    gate = "plan_respects_consent_budget_and_control"
    record_gate(warehouse, month, plan_hash, gate, result.passed, context.run.run_id)
    return result


def decision_log_violations(warehouse: WarehouseResource, month) -> dict[str, int]:
    """Rows of the plan designed in `month` breaking each rule of `plan_matches_its_decision_log`."""
    plan = plan_designed_in(warehouse, month)
    if plan.empty:
        return {}
    decisions = warehouse.query(
        f"select campaign_id, customer_id, eligible, decision from {DECISIONS_TABLE} where designed_in_month = ?",
        [pd.Timestamp(month)],
    )
    joined = plan.merge(decisions, on=["campaign_id", "customer_id"], how="left")
    return {
        "planned customer missing from the decision log": int(joined["decision"].isna().sum()),
        "planned customer not eligible": int((~joined["eligible"].fillna(False).astype(bool)).sum()),
        "group differs from the decision log": int((joined["decision"].fillna("") != joined["group"]).sum()),
        "probability outside (0, 1]": int(
            (~plan["selection_probability"].between(0, 1, inclusive="right")).sum()
            + (~plan["treatment_probability"].between(0, 1, inclusive="right")).sum()
        ),
    }


@asset_check(asset="campaign_plan", blocking=True, partitions_def=monthly_partitions)
def plan_matches_its_decision_log(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every planned customer was eligible and is logged with the same group; probabilities are in (0, 1]."""
    month = partition_month(context.partition_key)
    plan_hash = plan_content_hash(plan_designed_in(warehouse, month))
    failures = decision_log_violations(warehouse, month)
    passed = not any(failures.values())
    record_gate(warehouse, month, plan_hash, "plan_matches_its_decision_log", passed, context.run.run_id)
    return AssetCheckResult(
        passed=passed,
        metadata={**{f"violations: {rule}": count for rule, count in failures.items()}, "plan_hash": plan_hash},
        description="; ".join(f"{rule}: {n} rows" for rule, n in failures.items() if n) or "all rules hold",
    )


def global_control_members(customer_ids: pd.Series, share: float) -> pd.Series:
    """True for the customers of the design stage's global control group of `share` (its salt)."""
    return global_control_group(customer_ids.astype("str"), share, GLOBAL_CONTROL_SALT)


def plan_frame(warehouse: Warehouse, month: date, global_control_share: float | None = None) -> pd.DataFrame:
    """The plan designed in `month` with the columns the campaign_plan suite reads (see its module). The global
    control group is the one of the share the design run used (recorded with the plan), unless one is given."""
    plan = warehouse.query(
        f"select * from {PLAN_TABLE} where designed_in_month = ? order by campaign_id, customer_id",
        [pd.Timestamp(month)],
    )
    consent = warehouse.query("select customer_id, email_consent from marts.dim_customers")
    plan["_without_consent"] = plan["customer_id"].where(~is_member(plan["customer_id"], consenting_customers(consent)))
    share = designed_global_control_share(warehouse, month) if global_control_share is None else global_control_share
    holdout = (
        global_control_members(plan["customer_id"], share).to_numpy(dtype=bool) if len(plan) else np.zeros(0, bool)
    )
    plan["_in_global_control"] = plan["customer_id"].where(holdout)
    objectives = warehouse.query("select * from reference.campaign_objectives")
    plan["budget"] = plan["objective"].map(objectives.set_index("objective")["budget"]).astype(float)
    plan["committed_cost"] = committed_cost(plan, offers_with_expected_redemptions(warehouse, month))
    plan["control_share_deviation"], plan["control_share_tolerance"] = control_share_deviation(plan, objectives)
    return plan


def plan_gate(
    warehouse: WarehouseResource, month: date, global_control_share: float | None = None
) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame = plan_frame(warehouse, month, global_control_share)
    validation = validate(frame, campaign_plan.suite)
    return gate_result(
        validation,
        frame,
        f"campaign plan designed in {month:%Y-%m}",
        ["campaign_id", "customer_id", "group", "budget", "committed_cost", "control_share_deviation"],
        campaigns=int(frame["campaign_id"].nunique()),
    )


suite_campaign_plan = derived_gate_check(
    "campaign_plan",
    "suite_campaign_plan",
    plan_gate,
    "Great Expectations suite campaign_plan: consent, no global control customer, control share within tolerance, "
    "budget respected, no customer in two campaigns.",
)


def plan_gate_rules() -> dict[str, Callable[[WarehouseResource, date], bool]]:
    """Every blocking gate of `campaign_plan`, by check name, as a function that re-validates the current plan."""
    return {
        "plan_respects_consent_budget_and_control": lambda w, m: not any(plan_violations(w, m).values()),
        "plan_matches_its_decision_log": lambda w, m: not any(decision_log_violations(w, m).values()),
        "suite_campaign_plan": lambda w, m: bool(plan_gate(w, m)[0].passed),
    }


def clear_plan_gates(warehouse: WarehouseResource, month: date, plan_hash: str, run_id: str = "") -> list[str]:
    """Make sure every gate has judged exactly this plan: a gate without a passing record for `plan_hash` (a
    check that does not record hashes, or a plan changed since its checks ran) validates the current plan now,
    and its verdict is recorded. Returns the gates that fail."""
    rules = plan_gate_rules()
    failed = []
    for name in gates_not_passed(warehouse, month, plan_hash, list(rules)):
        passed = rules[name](warehouse, month)
        record_gate(warehouse, month, plan_hash, name, passed, run_id)
        if not passed:
            failed.append(name)
    return failed
