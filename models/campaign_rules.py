"""The rules every campaign plan keeps, each written once: the design stage applies them, the plan's gates check
them and the reports count with them.

- budget: a campaign's test group costs ``contact_cost + incentive_cost`` per customer (the incentive is
  committed for every contacted customer, whether or not it is redeemed) and never more than its budget;
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


def cost_per_contact(offers: pd.DataFrame) -> pd.Series:
    """What the budget pays per test-group customer, by ``offer_id``: contact cost plus the incentive."""
    by_offer = offers.set_index("offer_id")
    return (by_offer["contact_cost"].astype(float) + by_offer["incentive_cost"].astype(float)).rename(
        "cost_per_contact"
    )


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
