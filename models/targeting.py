"""The targeting policy: which customers a campaign should contact, learned from measured campaigns.

Cold start: while an offer has no measured campaign with enough test and control customers, nobody knows
who it changes, so its whole budget is spent on a randomised pilot (customers drawn at random from the
eligible ones, with a control group). Once measured, a T-learner uplift model (Kunzel et al. 2019) trained
on every measured test and control customer predicts each candidate's incremental margin and response, and
the campaign contacts the customers with the highest expected incremental profit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.features import FEATURE_COLUMNS
from models.uplift import TLearnerUplift, expected_incremental_profit

# What the uplift model sees of a customer at design time: the behavioural features and the analyse
# stage's scores (all point-in-time as of the design month).
UPLIFT_FEATURES = [*FEATURE_COLUMNS, "churn_probability", "p_alive", "expected_purchases_next_month"]
MIN_TEST_CUSTOMERS = 100
MIN_CONTROL_CUSTOMERS = 30


@dataclass
class OfferPolicy:
    """How one offer's audience is chosen."""

    offer_id: str
    kind: str  # "uplift_model" or "randomised_pilot"
    model: TLearnerUplift | None = None
    evidence: dict = field(default_factory=dict)


def learn_offer_policies(measured: pd.DataFrame, offer_ids: list[str], random_state: int = 0) -> dict[str, OfferPolicy]:
    """One policy per offer from every measured customer (columns: offer_id, campaign_id, group, responded,
    margin and the design-time UPLIFT_FEATURES)."""
    policies: dict[str, OfferPolicy] = {}
    for offer_id in offer_ids:
        rows = measured[measured["offer_id"] == offer_id] if len(measured) else measured
        n_test = int((rows["group"] == "test").sum()) if len(rows) else 0
        n_control = int((rows["group"] == "control").sum()) if len(rows) else 0
        evidence = {
            "n_test": n_test,
            "n_control": n_control,
            "campaigns": sorted(rows["campaign_id"].unique().tolist()) if len(rows) else [],
        }
        if n_test < MIN_TEST_CUSTOMERS or n_control < MIN_CONTROL_CUSTOMERS:
            evidence["reason"] = (
                f"needs >= {MIN_TEST_CUSTOMERS} test and >= {MIN_CONTROL_CUSTOMERS} control customers measured"
            )
            policies[offer_id] = OfferPolicy(offer_id, "randomised_pilot", None, evidence)
            continue
        model = TLearnerUplift(random_state=random_state).fit(
            rows[UPLIFT_FEATURES],
            (rows["group"] == "test").astype(int).to_numpy(),
            rows["responded"].astype(int).to_numpy(),
            rows["margin"].astype(float).to_numpy(),
        )
        policies[offer_id] = OfferPolicy(offer_id, "uplift_model", model, evidence)
    return policies


def score_candidates(
    policy: OfferPolicy, candidates: pd.DataFrame, contact_cost: float, incentive_cost: float
) -> pd.Series:
    """Expected incremental profit of contacting each candidate (NaN under a randomised pilot)."""
    if policy.kind != "uplift_model" or candidates.empty:
        return pd.Series(np.nan, index=candidates.index, name="expected_incremental_profit")
    predicted = policy.model.predict(candidates[UPLIFT_FEATURES])
    profit = expected_incremental_profit(
        predicted["margin_uplift"].to_numpy(),
        predicted["p_response_treated"].to_numpy(),
        contact_cost,
        incentive_cost,
    )
    return pd.Series(profit, index=candidates.index, name="expected_incremental_profit")
