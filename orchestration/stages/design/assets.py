"""Design: next month's campaigns within budget, with a randomised control group, exploration and a decision log."""

import zlib

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from models.artefacts import load_artefact
from models.campaign_design import plan_content_hash, plan_cycle
from models.eligibility import consented, global_control_group, objective_setting
from orchestration.lib.campaign_records import write_rows
from orchestration.lib.months import next_month, partition_month
from orchestration.lib.queries import (
    DECISIONS_TABLE,
    PLAN_CAMPAIGNS_TABLE,
    PLAN_EXTRA_COLUMNS,
    PLAN_SCHEMA,
    PLAN_TABLE,
    SCORES_TABLE,
    campaign_objectives,
    customer_value,
    offers_with_expected_redemptions,
    recent_contacts,
)
from orchestration.partitions import monthly_partitions
from orchestration.resources import LoopSettingsResource, WarehouseResource
from orchestration.stages.improve.assets import policy_dir

GLOBAL_CONTROL_SALT = "crm-loop-global-control"

# campaigns.decision_log: one row per scored customer, objective and cycle.
DECISION_SCHEMA = {
    "designed_in_month": "timestamp",
    "delivery_month": "timestamp",
    "customer_id": "varchar",
    "objective": "varchar",
    "priority": "integer",
    "campaign_id": "varchar",
    "offer_id": "varchar",
    "eligible": "boolean",
    "decision": "varchar",
    "rule": "varchar",
    "expected_incremental_profit": "double",
    "profit_lower_bound": "double",
    "churn_probability": "double",
    "p_alive": "double",
    "clv": "double",
    "expected_purchases_next_month": "double",
    "profit_12m": "double",
    "pyramid_tier": "varchar",
    "segment": "varchar",
    "next_best_product": "varchar",
    "next_best_product_expected_margin": "double",
    "policy": "varchar",
    "policy_version": "varchar",
    "churn_model_version": "varchar",
}
CAMPAIGN_SUMMARY_SCHEMA = {
    "designed_in_month": "timestamp",
    "delivery_month": "timestamp",
    "campaign_id": "varchar",
    "objective": "varchar",
    "offer_id": "varchar",
    "policy": "varchar",
    "eligible": "bigint",
    "test": "bigint",
    "control": "bigint",
    "explored": "bigint",
    "committed_cost": "double",
    "budget": "double",
    "cost_per_contact": "double",
    "redemptions_per_contact": "double",
    "expected_incremental_profit": "double",
    "expected_base_response": "double",
    "minimum_detectable_uplift": "double",
    "plan_hash": "varchar",
    "global_control_share": "double",
}


#: `campaigns.campaign_plan` as the warehouse's dbt models read it back (the dbt source `campaigns.campaign_plan`):
#: the plans designed in earlier months, which the next month's build turns into the campaign history. Declared
#: here, in the design group, because the design stage writes it; no edge joins it to `campaign_plan`, since the
#: history feeds the features the plan is designed from (the loop closes through data, not through the graph).
campaign_plan_read_back_by_dbt = AssetSpec(
    key=AssetKey(["raw", "campaign_plan"]),
    group_name="design",
    description="campaigns.campaign_plan as the warehouse's dbt models read it back (written by campaign_plan).",
    kinds={"duckdb"},
)


def campaign_seed(campaign_id: str) -> int:
    """A stable seed per campaign, so a re-run draws the same pilot and control group."""
    return zlib.crc32(campaign_id.encode())


class CampaignDesignConfig(Config):
    """Settings of the design stage that hold across objectives (objectives themselves are the seed's rows)."""

    # Share of all customers held out of every campaign (a universal holdout); unset: the loop's setting
    # (CRM_GLOBAL_CONTROL_SHARE, 0 by default: no global control group). The share used is recorded with the plan.
    global_control_share: float | None = None


def scores_for_design(warehouse: WarehouseResource, month) -> pd.DataFrame:
    """The analyse stage's scores as of `month`, with the pyramid tier and 12-month profit of the warehouse."""
    scores = warehouse.query(f"select * from {SCORES_TABLE} where as_of_month = ?", [pd.Timestamp(month)])
    value = customer_value(warehouse, month)
    extra = [c for c in ("pyramid_tier", "profit_12m") if c in value.columns and c not in scores.columns]
    if extra:
        scores = scores.merge(value[["customer_id", *extra]], on="customer_id", how="left")
    return scores


@asset(
    key="campaign_plan",
    group_name="design",
    partitions_def=monthly_partitions,
    deps=[
        AssetKey("customer_scores"),
        AssetKey("targeting_policy"),
        AssetKey(["marts", "dim_customers"]),
        AssetKey(["marts", "customer_value"]),
    ],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def campaign_plan(
    context: AssetExecutionContext,
    config: CampaignDesignConfig,
    warehouse: WarehouseResource,
    loop_settings: LoopSettingsResource,
) -> MaterializeResult:
    """`campaigns.campaign_plan` (who gets which offer at the start of next month) and `campaigns.decision_log`.

    Objectives, budgets, audiences, suppression rules and control shares come from the `campaign_objectives`
    seed, costs from `offers`. Eligibility: consent, the global control group, the objective's audience,
    unprofitable customers where the objective says so, contact fatigue, one campaign per customer and cycle
    (models.eligibility). Selection maximises expected incremental profit within the budget; a seeded control
    group, stratified by pyramid tier, is held out of every campaign (models.campaign_design). The decision log
    holds one row per scored customer and objective: the decision, the rule behind it, the scores and the
    model version.
    """
    month = partition_month(context.partition_key)
    delivery_month = pd.Timestamp(next_month(month))
    scores = scores_for_design(warehouse, month)
    consent = warehouse.query(
        "select customer_id, email_consent from marts.dim_customers where email_consent is not null"
    )
    allowed = consented(scores, consent)
    share = loop_settings.global_control_share if config.global_control_share is None else config.global_control_share
    holdout = global_control_group(scores["customer_id"], share, GLOBAL_CONTROL_SALT)
    objectives = campaign_objectives(warehouse)
    window = max([int(objective_setting(row, "contact_window_months")) for _, row in objectives.iterrows()] + [0])
    policies, policy_metadata = load_artefact(policy_dir(warehouse, context.partition_key))
    cycle = plan_cycle(
        scores,
        objectives,
        offers_with_expected_redemptions(warehouse, month),
        policies,
        delivery_month=delivery_month,
        allowed=allowed,
        in_global_control=holdout,
        contacts=recent_contacts(warehouse, delivery_month.date(), window),
        policy_version=str(policy_metadata.get("model_version", "")),
        seed_of=campaign_seed,
    )
    stamp = {"delivery_month": delivery_month, "designed_in_month": pd.Timestamp(month)}
    plan = cycle.plan.assign(**stamp)
    warehouse.ensure_table(PLAN_TABLE, {**PLAN_SCHEMA, **PLAN_EXTRA_COLUMNS})
    warehouse.replace_rows(PLAN_TABLE, plan, {"designed_in_month": pd.Timestamp(month)})
    churn_version = scores["churn_model_version"] if "churn_model_version" in scores.columns else None
    decisions = cycle.decisions.assign(**stamp)
    if churn_version is not None:
        decisions["churn_model_version"] = decisions["customer_id"].map(
            scores.set_index("customer_id")["churn_model_version"]
        )
    key = {"designed_in_month": pd.Timestamp(month)}
    write_rows(warehouse, DECISIONS_TABLE, decisions, DECISION_SCHEMA, key)
    campaigns = cycle.campaigns.assign(**stamp, plan_hash=plan_content_hash(plan), global_control_share=share)
    write_rows(warehouse, PLAN_CAMPAIGNS_TABLE, campaigns, CAMPAIGN_SUMMARY_SCHEMA, key)

    rules = (
        decisions.groupby(["objective", "decision", "rule"], sort=False).size().rename("customers").reset_index()
        if len(decisions)
        else pd.DataFrame()
    )
    metadata = {
        "dagster/row_count": len(plan),
        "delivery_month": f"{delivery_month:%Y-%m}",
        "plan_hash": plan_content_hash(plan),
        "policy_version": str(policy_metadata.get("model_version", "")),
        "campaigns": MetadataValue.md(
            cycle.campaigns.drop(columns=["objective"]).to_markdown(index=False, floatfmt=".3f")
            if len(cycle.campaigns)
            else "(no objectives)"
        ),
        "decision_rules": MetadataValue.md(rules.to_markdown(index=False) if len(rules) else "(nobody scored)"),
        "consenting_customers": int(allowed.sum()),
        "global_control_share": share,
        "global_control_customers": int(holdout.sum()),
    }
    if len(cycle.campaigns):
        mde = cycle.campaigns.set_index("campaign_id")["minimum_detectable_uplift"]
        metadata["minimum_detectable_uplift"] = MetadataValue.json(
            {campaign: None if pd.isna(value) else float(value) for campaign, value in mde.items()}
        )
    if not allowed.any():
        metadata["why_empty"] = "no customer has consent to be contacted (or the source has no consent data)"
    return MaterializeResult(metadata=metadata)
