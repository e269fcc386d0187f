"""Who may receive which campaign: consent, the objective's audience rule, one campaign per cycle."""

from __future__ import annotations

import pandas as pd

AUDIENCES = ("active", "lapsed")


def eligible_for_objective(scores: pd.DataFrame, objective: pd.Series) -> pd.Series:
    """Boolean mask over `scores` rows for one objective row of the campaign_objectives seed.

    audience `active`: bought in the last six months and churn_probability >= min_churn_probability
    (retain valuable customers at risk); `lapsed`: no order in six months but P(alive) >= min_p_alive
    (win back the lapsed customers who are still reachable). Consent is applied separately.
    """
    audience = objective["audience"]
    if audience not in AUDIENCES:
        raise ValueError(f"campaign_objectives: objective {objective['objective']!r} has unknown audience {audience!r}")
    lapsed = scores["is_lapsed"].astype(bool)
    if audience == "active":
        return ~lapsed & (scores["churn_probability"] >= float(objective["min_churn_probability"]))
    return lapsed & (scores["p_alive"] >= float(objective["min_p_alive"]))


def consented(scores: pd.DataFrame, consent: pd.DataFrame | None) -> pd.Series:
    """Customers who currently allow contact; with no consent data at all, nobody does."""
    if consent is None or consent.empty:
        return pd.Series(False, index=scores.index)
    allowed = set(consent.loc[consent["email_consent"].fillna(False).astype(bool), "customer_id"])
    return scores["customer_id"].isin(allowed)
