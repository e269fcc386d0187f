"""Blocking checks on what the Python stages write: bad scores or plans never reach a customer."""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, asset_check

from orchestration.partitions import monthly_partitions, next_month, partition_month
from orchestration.queries import DELIVERIES_TABLE, PLAN_TABLE, SCORES_TABLE, campaign_objectives, offers
from orchestration.resources import WarehouseResource

PROBABILITY_COLUMNS = ("churn_probability", "p_alive")


def _result(failures: dict[str, int], **metadata) -> AssetCheckResult:
    failed = {rule: count for rule, count in failures.items() if count}
    return AssetCheckResult(
        passed=not failed,
        metadata={**{f"violations: {rule}": count for rule, count in failures.items()}, **metadata},
        description="; ".join(f"{rule}: {count} rows" for rule, count in failed.items()) or "all rules hold",
    )


@asset_check(asset="customer_scores", blocking=True, partitions_def=monthly_partitions)
def every_customer_scored_with_valid_probabilities(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every customer with an order by the month end has exactly one score row; probabilities are in [0, 1]."""
    month = pd.Timestamp(partition_month(context.partition_key))
    month_end = pd.Timestamp(next_month(month.date())) - pd.Timedelta(days=1)
    counts = warehouse.query(
        f"""
        with buyers as (select distinct customer_id from marts.fct_orders where order_date <= ?),
        scored as (select * from {SCORES_TABLE} where as_of_month = ?)
        select
            (select count(*) from buyers where customer_id not in (select customer_id from scored)) as unscored,
            (select count(*) - count(distinct customer_id) from scored) as duplicated,
            (select count(*) from scored where not (churn_probability between 0 and 1)
                or churn_probability is null) as churn_out_of_range,
            (select count(*) from scored where not (p_alive between 0 and 1) or p_alive is null) as p_alive_out_of_range
        """,
        [month_end, month],
    ).iloc[0]
    return _result({rule: int(value) for rule, value in counts.items()})


@asset_check(asset="campaign_plan", blocking=True, partitions_def=monthly_partitions)
def plan_respects_consent_budget_and_control(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """No customer without consent, none in two campaigns, the test group within budget, and a control group."""
    month = pd.Timestamp(partition_month(context.partition_key))
    plan = warehouse.query(f"select * from {PLAN_TABLE} where designed_in_month = ?", [month])
    if plan.empty:
        return _result({}, campaigns=0)
    consent = warehouse.query("select customer_id, email_consent from marts.dim_customers")
    allowed = set(consent.loc[consent["email_consent"].fillna(False).astype(bool), "customer_id"])
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
    return _result(
        {
            "customer without consent": int((~plan["customer_id"].isin(allowed)).sum()),
            "customer in two campaigns": int(plan["customer_id"].duplicated().sum()),
            "campaign over budget": over_budget,
            "campaign of 2+ customers without control group": int(((per_campaign == 0) & (sizes >= 2)).sum()),
        },
        campaigns=len(sizes),
    )


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
