"""True effects of campaigns and targeting policies in the simulated world, from the ground truth.

Economics follow the offers catalogue: a contacted customer costs `contact_cost`; a contacted customer
who redeems the voucher (always on an order the contact caused, with probability rho_i on an order placed
anyway: simulator.ground_truth) costs `incentive_cost`, so
  incremental profit = sum_test(E[margin | contacted] - E[margin | not contacted])
                       - n_test * contact_cost - incentive_cost * sum_test P(voucher redeemed | contacted).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from simulator.ground_truth import expected_outcomes
from simulator.months import as_month
from simulator.world import SimulatedWorld

PLAN_COLUMNS = ["campaign_id", "delivery_month", "customer_id", "offer_id", "group"]


def true_campaign_effects(world: SimulatedWorld, plan: pd.DataFrame, offers: pd.DataFrame) -> pd.DataFrame:
    """One row per campaign of `plan` (campaign_id, delivery_month, customer_id, offer_id, group in
    {'test', 'control'}) with its true effects.

    true_uplift: mean over all the campaign's customers (test and control) of P(response | contacted) -
    P(response | not contacted), i.e. the average treatment effect on the randomised audience, which an
    unbiased test-vs-control estimate targets. true_incremental_profit: over the test customers (see the
    module docstring). Also reports the test group's true incremental responses, revenue and margin.
    """
    missing = set(PLAN_COLUMNS) - set(plan.columns)
    if missing:
        raise ValueError(f"plan needs columns {PLAN_COLUMNS}; missing {sorted(missing)}")
    groups = set(plan["group"].astype(str))
    if not groups <= {"test", "control"}:
        raise ValueError(f"plan group must be 'test' or 'control', found {sorted(groups - {'test', 'control'})}")
    plan = plan.reset_index(drop=True)
    costs = _offer_costs(offers, plan["offer_id"])
    rows = []
    for campaign_id, campaign in plan.groupby("campaign_id", sort=True):
        months = {as_month(value) for value in pd.to_datetime(campaign["delivery_month"]).dt.date}
        if len(months) != 1:
            raise ValueError(f"campaign {campaign_id} has several delivery months: {sorted(months)}")
        month = months.pop()
        outcomes = expected_outcomes(world, month, campaign["customer_id"], campaign["offer_id"])
        test = (campaign["group"].astype(str) == "test").to_numpy()
        uplift = outcomes["p_response_contacted"] - outcomes["p_response_not_contacted"]
        contact_cost = costs.loc[campaign.index, "contact_cost"].to_numpy()
        incentive_cost = costs.loc[campaign.index, "incentive_cost"].to_numpy()
        summary = _profit(outcomes[test], contact_cost[test], incentive_cost[test])
        rows.append(
            {
                "campaign_id": str(campaign_id),
                "delivery_month": pd.Timestamp(month),
                "n_customers": len(campaign),
                "n_test": int(test.sum()),
                "n_control": int((~test).sum()),
                "true_uplift": float(uplift.mean()),
                "true_uplift_test": float(uplift[test].mean()) if test.any() else np.nan,
                **summary,
            }
        )
    return pd.DataFrame(rows).astype({"campaign_id": "str"})


def policy_true_profit(
    world: SimulatedWorld,
    month: date,
    customer_ids: Sequence[str] | pd.Series | np.ndarray,
    offer_id: str,
    offers: pd.DataFrame,
) -> float:
    """True expected incremental profit of contacting `customer_ids` with `offer_id` at the start of
    `month` (e.g. to compare random, model-based, oracle and contact-everyone target lists)."""
    return policy_true_outcome(world, month, customer_ids, offer_id, offers)["true_incremental_profit"]


def policy_true_outcome(
    world: SimulatedWorld,
    month: date,
    customer_ids: Sequence[str] | pd.Series | np.ndarray,
    offer_id: str,
    offers: pd.DataFrame,
) -> dict[str, float]:
    """Like `policy_true_profit`, with the parts: n_contacted, incremental responses, revenue, margin,
    contact and incentive costs, and profit."""
    ids = pd.Series(np.asarray(customer_ids, dtype=object), dtype="str")
    outcomes = expected_outcomes(world, as_month(month), ids, offer_id)
    costs = _offer_costs(offers, pd.Series(offer_id, index=ids.index))
    return _profit(outcomes, costs["contact_cost"].to_numpy(), costs["incentive_cost"].to_numpy())


def true_individual_profit(
    world: SimulatedWorld,
    month: date,
    customer_ids: Sequence[str] | pd.Series | np.ndarray,
    offer_id: str,
    offers: pd.DataFrame,
) -> pd.DataFrame:
    """Per customer: true uplift in response and true expected incremental profit of a contact; ranking
    by it gives the oracle policy."""
    outcomes = expected_outcomes(world, as_month(month), customer_ids, offer_id)
    costs = _offer_costs(offers, outcomes["offer_id"])
    profit = (
        outcomes["expected_margin_contacted"]
        - outcomes["expected_margin_not_contacted"]
        - costs["contact_cost"].to_numpy()
        - costs["incentive_cost"].to_numpy() * outcomes["p_redeem_contacted"]
    )
    return pd.DataFrame(
        {
            "customer_id": outcomes["customer_id"],
            "offer_id": outcomes["offer_id"],
            "true_uplift": outcomes["p_response_contacted"] - outcomes["p_response_not_contacted"],
            "true_incremental_profit": profit,
        }
    )


def _offer_costs(offers: pd.DataFrame, offer_ids: pd.Series) -> pd.DataFrame:
    """contact_cost and incentive_cost for each row of `offer_ids` (same index)."""
    missing = {"offer_id", "contact_cost", "incentive_cost"} - set(offers.columns)
    if missing:
        raise ValueError(f"offers need offer_id, contact_cost, incentive_cost; missing {sorted(missing)}")
    table = offers.astype({"offer_id": "str"}).drop_duplicates("offer_id").set_index("offer_id")
    unknown = sorted(set(offer_ids.astype(str)) - set(table.index))
    if unknown:
        raise ValueError(f"offer_id(s) {unknown} are not in the offers table")
    found = table.loc[offer_ids.astype(str).to_numpy(), ["contact_cost", "incentive_cost"]].astype(float)
    return found.set_axis(offer_ids.index)


def _profit(outcomes: pd.DataFrame, contact_cost: np.ndarray, incentive_cost: np.ndarray) -> dict[str, float]:
    margin = float((outcomes["expected_margin_contacted"] - outcomes["expected_margin_not_contacted"]).sum())
    revenue = float((outcomes["expected_revenue_contacted"] - outcomes["expected_revenue_not_contacted"]).sum())
    responses = float((outcomes["p_response_contacted"] - outcomes["p_response_not_contacted"]).sum())
    contact_costs = float(np.sum(contact_cost))
    incentive_costs = float(np.sum(incentive_cost * outcomes["p_redeem_contacted"].to_numpy()))
    return {
        "n_contacted": len(outcomes),
        "true_incremental_responses": responses,
        "true_incremental_revenue": revenue,
        "true_incremental_margin": margin,
        "contact_costs": contact_costs,
        "expected_incentive_costs": incentive_costs,
        "true_incremental_profit": margin - contact_costs - incentive_costs,
    }
