"""The rules every campaign plan keeps, each written once: the design stage applies them, the plan's gates check
them and the reports count with them.

- budget: a campaign's test group costs its expected cost per customer, ``contact_cost + incentive_cost *
  redemptions_per_contact`` (the share of contacted customers who redeemed the offer's voucher in the campaigns
  measured so far, from the redemptions the orders record; every contact is charged a voucher until there is
  such evidence), and never more than its budget;
- consent: only customers whose current ``email_consent`` is true may be contacted; with no consent data at all,
  nobody may;
- control share: each campaign holds out its objective's ``control_share`` of the customers it selects (within
  one customer, or a tolerance for small campaigns);
- one campaign per customer: a customer is in at most one campaign of a cycle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: How far a campaign's control share may be from its objective's (at least one customer's worth).
CONTROL_SHARE_TOLERANCE = 0.02


#: Pseudo-contacts at a redemption rate of one that the measured redemptions are pooled with: a few campaigns'
#: low rates do not at once let a budget buy many times the contacts (a Beta prior worth this many contacts).
REDEMPTION_PRIOR_CONTACTS = 20.0


def with_expected_redemptions(offers: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """``offers`` with the redemption rates learned from the campaigns measured so far (``measured``: per
    campaign ``offer_id``, ``n_test``, ``responders_test`` and ``redemptions``, the test customers who redeemed
    the voucher as the orders record it; rows without recorded redemptions are ignored):

    - ``redemptions_per_contact = (redemptions + k) / (n_test + k)``,
    - ``redemptions_per_responder = (redemptions + k) / (responders_test + k)``,

    pooled over the offer's campaigns, as if ``k = REDEMPTION_PRIOR_CONTACTS`` more contacts had all redeemed:
    1 without evidence (every contact charged a voucher) and the measured rate once many contacts are measured.
    ``redemption_evidence`` counts the measured contacts.
    """
    recorded = measured.dropna(subset=["redemptions"]) if "redemptions" in measured.columns else measured.iloc[0:0]
    pooled = recorded.groupby("offer_id")[["n_test", "responders_test", "redemptions"]].sum()
    pooled = pooled.reindex(offers["offer_id"].astype(str)).fillna(0.0)
    k = REDEMPTION_PRIOR_CONTACTS
    return offers.assign(
        redemptions_per_contact=((pooled["redemptions"] + k) / (pooled["n_test"] + k)).to_numpy(),
        redemptions_per_responder=(
            (pooled["redemptions"] + k) / (pooled["responders_test"].clip(lower=pooled["redemptions"]) + k)
        ).to_numpy(),
        redemption_evidence=pooled["n_test"].astype("int64").to_numpy(),
    )


def cost_per_contact(offers: pd.DataFrame) -> pd.Series:
    """What the budget expects to pay per test-group customer, by ``offer_id``: the contact cost plus the
    incentive times the expected redemptions per contact (``with_expected_redemptions``; one when the offers
    carry no learned rate)."""
    by_offer = offers.set_index("offer_id")
    rate = by_offer["redemptions_per_contact"].astype(float) if "redemptions_per_contact" in by_offer else 1.0
    return (by_offer["contact_cost"].astype(float) + by_offer["incentive_cost"].astype(float) * rate).rename(
        "cost_per_contact"
    )


def incentive_per_responder(offers: pd.DataFrame) -> pd.Series:
    """The expected voucher cost of a contacted customer who orders, by ``offer_id``: the incentive times the
    expected redemptions per responder (one when the offers carry no learned rate). Expected profits charge it
    for every treated responder."""
    by_offer = offers.set_index("offer_id")
    rate = by_offer["redemptions_per_responder"].astype(float) if "redemptions_per_responder" in by_offer else 1.0
    return (by_offer["incentive_cost"].astype(float) * rate).rename("incentive_per_responder")


def _campaign_sizes(plan: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per plan row: how many customers its campaign selected, and how many of them are in its control group."""
    by_campaign = plan.groupby("campaign_id")["group"]
    return by_campaign.transform("size"), by_campaign.transform(lambda groups: int((groups == "control").sum()))


def committed_cost(plan: pd.DataFrame, offers: pd.DataFrame) -> pd.Series:
    """Per plan row: the cost its campaign commits (test-group size x cost per contact), rounded to cents."""
    selected, control = _campaign_sizes(plan)
    return ((selected - control) * plan["offer_id"].map(cost_per_contact(offers)).astype(float)).round(2)


def campaigns_over_budget(plan: pd.DataFrame, offers: pd.DataFrame, objectives: pd.DataFrame) -> pd.Series:
    """Per campaign of ``plan``: True when its committed cost exceeds its objective's budget."""
    if plan.empty:
        return pd.Series(dtype=bool)
    budget = plan["objective"].map(objectives.set_index("objective")["budget"]).astype(float)
    over = committed_cost(plan, offers) > budget + 1e-6
    return over.groupby(plan["campaign_id"]).any()


def consenting_customers(consent: pd.DataFrame | None) -> pd.Series:
    """The ids of the customers who currently allow contact (``customer_id``, ``email_consent``); none without
    consent data."""
    if consent is None or consent.empty:
        return pd.Series([], dtype="str", name="customer_id")
    allowed = consent["email_consent"].astype("boolean").fillna(False).astype(bool)
    return consent.loc[allowed, "customer_id"]


def control_share_deviation(plan: pd.DataFrame, objectives: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per plan row: how far its campaign's control share is from the objective's, and the tolerance allowed
    (``CONTROL_SHARE_TOLERANCE``, or one customer's share in a small campaign)."""
    selected, control = _campaign_sizes(plan)
    share = plan["objective"].map(objectives.set_index("objective")["control_share"]).astype(float)
    return (control / selected - share).abs(), pd.Series(np.maximum(CONTROL_SHARE_TOLERANCE, 1 / selected), plan.index)


def in_another_campaign(plan: pd.DataFrame) -> pd.Series:
    """Per plan row: True when the customer already has a row of another campaign earlier in the plan."""
    return plan["customer_id"].duplicated()
