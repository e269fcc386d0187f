"""Blocking checks on what the Python stages write: bad scores or plans never reach a customer."""

from datetime import date

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from models.campaign_design import plan_content_hash
from models.drift import SIGNIFICANT_SHIFT, score_drift
from models.ids import is_member
from orchestration.campaign_records import record_gate
from orchestration.partitions import monthly_partitions, next_month, partition_month, previous_month
from orchestration.queries import DELIVERIES_TABLE, PLAN_TABLE, SCORES_TABLE, campaign_objectives, offers
from orchestration.resources import WarehouseResource

PROBABILITY_COLUMNS = ("churn_probability", "p_alive", "next_best_product_probability")
DRIFT_COLUMNS = ("churn_probability", "p_alive", "expected_purchases_next_month", "clv")


def _result(failures: dict[str, int], **metadata) -> AssetCheckResult:
    failed = {rule: count for rule, count in failures.items() if count}
    return AssetCheckResult(
        passed=not failed,
        metadata={**{f"violations: {rule}": count for rule, count in failures.items()}, **metadata},
        description="; ".join(f"{rule}: {count} rows" for rule, count in failed.items()) or "all rules hold",
    )


def score_violations(warehouse: WarehouseResource, month: date) -> dict[str, int]:
    """Rows breaking each rule of the scores gate for `month` (see the check below); all 0 when it holds."""
    as_of = pd.Timestamp(month)
    month_end = pd.Timestamp(next_month(month)) - pd.Timedelta(days=1)
    columns = set(warehouse.query(f"select * from {SCORES_TABLE} limit 0").columns)
    optional = [c for c in PROBABILITY_COLUMNS if c not in ("churn_probability", "p_alive") and c in columns]
    optional_rules = "".join(
        f""",
            (select count(*) from scored where {c} is not null and not ({c} between 0 and 1)) as "{c} out of [0, 1]"
        """
        for c in optional
    )
    counts = warehouse.query(
        f"""
        with buyers as (select distinct customer_id from marts.fct_orders where order_date <= ?),
        scored as (select * from {SCORES_TABLE} where as_of_month = ?)
        select
            (select count(*) from buyers where customer_id not in (select customer_id from scored)) as unscored,
            (select count(*) - count(distinct customer_id) from scored) as duplicated,
            (select count(*) from scored where not (churn_probability between 0 and 1)
                or churn_probability is null) as churn_out_of_range,
            (select count(*) from scored where not (p_alive between 0 and 1)
                or p_alive is null) as p_alive_out_of_range,
            (select count(*) from scored where clv is null or isnan(clv) or clv < 0) as clv_missing_or_negative
            {optional_rules}
        """,
        [month_end, as_of],
    ).iloc[0]
    return {rule: int(value) for rule, value in counts.items()}


@asset_check(asset="customer_scores", blocking=True, partitions_def=monthly_partitions)
def every_customer_scored_with_valid_probabilities(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every customer with an order by the month end has exactly one score row, with a churn probability,
    P(alive) and CLV; every probability is in [0, 1] (the next best product's may be NULL: no product data, or
    every line held)."""
    return _result(score_violations(warehouse, partition_month(context.partition_key)))


@asset_check(asset="customer_scores", blocking=False, partitions_def=monthly_partitions)
def score_distributions_stable_month_to_month(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Drift warning (non-blocking): the population stability index of each score's distribution against the
    previous month's; a PSI above 0.25 is a significant shift (inputs changed, or the model needs a look)."""
    month = partition_month(context.partition_key)
    previous = previous_month(month)
    columns = ", ".join(DRIFT_COLUMNS)
    query = f"select {columns} from {SCORES_TABLE} where as_of_month = ?"
    current = warehouse.query(query, [pd.Timestamp(month)])
    reference = warehouse.query(query, [pd.Timestamp(previous)])
    if reference.empty:
        return AssetCheckResult(
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description=f"no scores of {previous:%Y-%m} to compare with",
        )
    drift = score_drift(reference, current, DRIFT_COLUMNS)
    worst = float(drift["psi"].max())
    shifted = drift.loc[drift["psi"] >= SIGNIFICANT_SHIFT, "score"].tolist()
    return AssetCheckResult(
        passed=not shifted,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"significant shift against {previous:%Y-%m} in {', '.join(shifted)}"
            if shifted
            else f"every score stable against {previous:%Y-%m} (max PSI {worst:.3f})"
        ),
        metadata={
            "max_psi": worst,
            "reference_month": f"{previous:%Y-%m}",
            "psi": MetadataValue.md(drift.to_markdown(index=False, floatfmt=".4f")),
        },
    )


def plan_violations(warehouse: WarehouseResource, month: date) -> dict[str, int]:
    """Rows of the plan designed in `month` breaking each rule of `plan_respects_consent_budget_and_control`."""
    plan = warehouse.query(f"select * from {PLAN_TABLE} where designed_in_month = ?", [pd.Timestamp(month)])
    if plan.empty:
        return {}
    consent = warehouse.query("select customer_id, email_consent from marts.dim_customers")
    allowed = consent.loc[consent["email_consent"].fillna(False).astype(bool), "customer_id"]
    costs = offers(warehouse).set_index("offer_id")
    budgets = campaign_objectives(warehouse).set_index("objective")["budget"]
    test = plan[plan["group"] == "test"]
    spend = test.groupby(["objective", "offer_id"]).size().reset_index(name="n_test")
    spend["cost"] = spend["n_test"] * (
        spend["offer_id"].map(costs["contact_cost"]) + spend["offer_id"].map(costs["incentive_cost"])
    )
    over_budget = int((spend["cost"] > spend["objective"].map(budgets) + 1e-6).sum())
    per_campaign = plan.groupby("campaign_id")["group"].agg(lambda g: (g == "control").sum())
    sizes = plan.groupby("campaign_id").size()
    return {
        "customer without consent": int((~is_member(plan["customer_id"], allowed)).sum()),
        "customer in two campaigns": int(plan["customer_id"].duplicated().sum()),
        "campaign over budget": over_budget,
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
    result = _result(plan_violations(warehouse, month), plan_hash=plan_hash)
    gate = "plan_respects_consent_budget_and_control"
    record_gate(warehouse, month, plan_hash, gate, result.passed, context.run.run_id)
    return result


@asset_check(asset="campaign_delivery", blocking=True, partitions_def=monthly_partitions)
def only_test_group_contacted_once(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Delivered contacts are test-group customers of the plan, each at most once per campaign."""
    delivery_month = pd.Timestamp(next_month(partition_month(context.partition_key)))
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return _result({})
    counts = warehouse.query(
        f"""
        with delivered as (select * from {DELIVERIES_TABLE} where delivery_month = ?),
        test as (select campaign_id, customer_id from {PLAN_TABLE} where delivery_month = ? and "group" = 'test')
        select
            (select count(*) from delivered d where not exists (
                select 1 from test t where t.campaign_id = d.campaign_id and t.customer_id = d.customer_id
            )) as not_in_test_group,
            (select count(*) - count(distinct (campaign_id, customer_id)) from delivered) as duplicate_contacts
        """,
        [delivery_month, delivery_month],
    ).iloc[0]
    return _result({rule: int(value) for rule, value in counts.items()})
