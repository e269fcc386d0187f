"""Score every customer as of a month: behavioural features, churn risk and lifetime value in one table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from models.churn import train_churn_model
from models.clv import score_customers as score_lifetime_value
from models.features import customer_features


@dataclass
class CustomerScores:
    """The scored customer base and the evidence behind it."""

    scores: pd.DataFrame
    churn_metrics: dict = field(default_factory=dict)
    churn_model: object | None = None


def score_customer_base(
    orders: pd.DataFrame,
    as_of_month: date,
    contacted: pd.DataFrame | None = None,
    churn_horizon_months: int = 3,
) -> CustomerScores:
    """One row per customer with any order by the month end (lapsed customers included).

    Columns: the point-in-time features of `models.features`, `churn_probability` (P(no order in the next
    `churn_horizon_months` months), a model trained on earlier snapshots), and the BG/NBD + Gamma-Gamma
    outputs of `models.clv.score_customers` (`p_alive`, `expected_purchases_next_month`, `clv`, ...).
    `contacted` lists (customer_id, month) of test-group contacts: their rows are left out of churn training,
    because a contact changes the label.
    """
    features = customer_features(orders, as_of_month)
    lifetime_value = score_lifetime_value(orders, as_of_month).set_index("customer_id")
    churn = train_churn_model(orders, as_of_month, horizon_months=churn_horizon_months, exclude=contacted)
    scores = features.join(lifetime_value, how="left", rsuffix="_clv")
    scores.insert(0, "churn_probability", churn.predict_proba(features))
    scores.index.name = "customer_id"
    return CustomerScores(scores=scores.reset_index(), churn_metrics=churn.metrics, churn_model=churn)
