"""Design: next month's campaigns within budget, with a randomised control group and exploration."""

import zlib

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from models.artefacts import load_artefact
from models.campaign_design import design_campaign, minimum_detectable_effect
from models.eligibility import consented, eligible_for_objective
from models.targeting import score_candidates
from orchestration.assets.improve import policy_dir
from orchestration.partitions import monthly_partitions, next_month, partition_month
from orchestration.queries import PLAN_TABLE, SCORES_TABLE, campaign_objectives, offers
from orchestration.resources import WarehouseResource


def campaign_seed(campaign_id: str) -> int:
    """A stable seed per campaign, so a re-run draws the same pilot and control group."""
    return zlib.crc32(campaign_id.encode())


@asset(
    key="campaign_plan",
    group_name="design",
    partitions_def=monthly_partitions,
    deps=[AssetKey("customer_scores"), AssetKey("targeting_policy"), AssetKey(["marts", "dim_customers"])],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def campaign_plan(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`campaigns.campaign_plan`: who gets which offer at the start of next month.

    Objectives, budgets and control shares come from the `campaign_objectives` seed. Only consenting
    customers are eligible, each customer joins at most one campaign per cycle, and every assignment is
    stored with its selection and treatment probabilities (the decision log later models learn from).
    """
    month = partition_month(context.partition_key)
    delivery_month = next_month(month)
    scores = warehouse.query(f"select * from {SCORES_TABLE} where as_of_month = ?", [pd.Timestamp(month)])
    consent = warehouse.query(
        "select customer_id, email_consent from marts.dim_customers where email_consent is not null"
    )
    allowed = consented(scores, consent)
    policies, _ = load_artefact(policy_dir(warehouse, context.partition_key))
    offer_costs = offers(warehouse).set_index("offer_id")
    plans, summary, taken = [], [], pd.Series(False, index=scores.index)
    for _, objective in campaign_objectives(warehouse).iterrows():
        campaign_id = f"{delivery_month:%Y-%m}-{objective['objective']}"
        offer = offer_costs.loc[objective["offer_id"]]
        eligible = allowed & ~taken & eligible_for_objective(scores, objective)
        candidates = scores.loc[eligible, ["customer_id"]].copy()
        policy = policies[objective["offer_id"]]
        candidates["expected_incremental_profit"] = score_candidates(
            policy, scores.loc[eligible], offer["contact_cost"], offer["incentive_cost"]
        )
        candidates["stratum"] = scores.loc[eligible, "is_lapsed"].astype(str)
        exploration_share = 1.0 if policy.kind == "randomised_pilot" else float(objective["exploration_share"])
        plan = design_campaign(
            candidates,
            campaign_id=campaign_id,
            offer_id=objective["offer_id"],
            budget=float(objective["budget"]),
            cost_per_contact=float(offer["contact_cost"] + offer["incentive_cost"]),
            control_share=float(objective["control_share"]),
            exploration_share=exploration_share,
            seed=campaign_seed(campaign_id),
        )
        taken |= scores["customer_id"].isin(plan["customer_id"])
        plans.append(plan.assign(objective=objective["objective"], policy=policy.kind))
        n_test = int((plan["group"] == "test").sum())
        n_control = int((plan["group"] == "control").sum())
        summary.append(
            {
                "campaign_id": campaign_id,
                "policy": policy.kind,
                "eligible": int(eligible.sum()),
                "test": n_test,
                "control": n_control,
                "committed_cost": n_test * float(offer["contact_cost"] + offer["incentive_cost"]),
                "budget": float(objective["budget"]),
                "mde_at_10pct_base": minimum_detectable_effect(n_test, n_control, 0.10) if n_control else None,
            }
        )
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame()
    plan = plan.assign(delivery_month=pd.Timestamp(delivery_month), designed_in_month=pd.Timestamp(month))
    warehouse.replace_rows(PLAN_TABLE, plan, {"designed_in_month": pd.Timestamp(month)})
    metadata = {
        "dagster/row_count": len(plan),
        "delivery_month": f"{delivery_month:%Y-%m}",
        "campaigns": MetadataValue.md(pd.DataFrame(summary).to_markdown(index=False, floatfmt=".3f")),
        "consenting_customers": int(allowed.sum()),
    }
    if not allowed.any():
        metadata["why_empty"] = "no customer has consent to be contacted (or the source has no consent data)"
    return MaterializeResult(metadata=metadata)
