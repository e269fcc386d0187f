"""How simulated customers buy, and how a campaign contact changes that: the closed-form pieces shared
by the world (which samples them) and the ground truth (which takes their expectations).

In month m a customer i who is alive places W_i + Poisson(Lambda_i) usual orders, where
  Lambda_i = lambda_i * season(m) * exposure_i(m)   (exposure = share of the month after sign-up)
  W_i      = 1 if m is the sign-up month and the sign-up was a first order, else 0.
Each order has 1 + Poisson(theta_i) items of one product: line ~ Categorical(affinity_i), product within
the line by fixed weights. A contact in month m
  * suppresses all usual orders of a sleeping dog with probability h_i, and
  * adds one extra order with probability delta_{i,o} (see effects.yaml and `persuasion_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.config import OfferEffect, SimulatorConfig
from simulator.months import days_in_months, month_at
from simulator.population import affinity_columns


def alive_in(traits: pd.DataFrame, month_index: int) -> np.ndarray:
    """True for customers signed up by month `month_index` whose latent lifetime has not ended."""
    signup = traits["signup_month_index"].to_numpy()
    return (signup <= month_index) & (month_index < traits["death_month_index"].to_numpy())


def usual_order_intensity(
    traits: pd.DataFrame, month_index: int, config: SimulatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(Lambda_i, W_i): Poisson mean of repeat orders and the 0/1 sign-up order in month `month_index`."""
    burn_in_start = month_at(-config.burn_in_months, config.first_month)
    month = month_at(month_index, burn_in_start)
    season = config.seasonality[month.month - 1]
    signup = traits["signup_month_index"].to_numpy()
    signs_up_now = signup == month_index
    length = days_in_months(np.array([month_index]), burn_in_start)[0]
    exposure = np.where(signs_up_now, (length - traits["signup_day"].to_numpy() + 1) / length, 1.0)
    alive = alive_in(traits, month_index)
    intensity = np.where(alive, traits["purchase_rate"].to_numpy() * season * exposure, 0.0)
    signup_order = (signs_up_now & traits["first_order_at_signup"].to_numpy()).astype(np.int64)
    return intensity, signup_order


def expected_order_value(traits: pd.DataFrame, config: SimulatorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(expected revenue, expected gross margin) of one order of each customer.

    E[items] * sum_l affinity_il * E[unit value | line l], with E[items] = 1 + theta_i.
    """
    affinity = traits[affinity_columns(config)].to_numpy()
    items = 1.0 + traits["extra_items_rate"].to_numpy()
    revenue = items * (affinity @ config.expected_line_value("unit_price"))
    margin = items * (affinity @ config.expected_line_value("unit_margin"))
    return revenue, margin


@dataclass(frozen=True)
class PurchaseHistory:
    """What the platform sees of a customer's uncontacted purchases before month m."""

    months_since_last_purchase: np.ndarray  # 1 = bought last month; since sign-up if never bought
    orders_last_12_months: np.ndarray
    never_purchased: np.ndarray
    signed_up_before: np.ndarray  # signed up before month m starts (contactable)


def purchase_history(
    usual_orders_by_month: list[np.ndarray], traits: pd.DataFrame, month_index: int
) -> PurchaseHistory:
    """Recency and frequency at the start of month `month_index` from usual order counts of months
    0 .. month_index-1 (each array covers the first len(array) customers of `traits`)."""
    size = len(traits)
    last_purchase = np.full(size, -1, dtype=np.int64)
    recent_orders = np.zeros(size, dtype=np.int64)
    for month, counts in enumerate(usual_orders_by_month[:month_index]):
        bought = np.zeros(size, dtype=bool)
        bought[: len(counts)] = counts > 0
        last_purchase[bought] = month
        if month >= month_index - 12:
            recent_orders[: len(counts)] += counts
    signup = traits["signup_month_index"].to_numpy()
    never = last_purchase < 0
    reference = np.where(never, signup, last_purchase)
    return PurchaseHistory(
        months_since_last_purchase=month_index - reference,
        orders_last_12_months=recent_orders,
        never_purchased=never,
        signed_up_before=signup < month_index,
    )


def persuasion_probability(
    traits: pd.DataFrame, history: PurchaseHistory, month_index: int, effect: OfferEffect
) -> np.ndarray:
    """delta_{i,o}: probability that a contact with offer o adds one order in month `month_index`.

    delta = max_uplift * alive * (1 - sleeping_dog) * sigmoid(intercept + b_r z_resp + b_p z_price
            + recency(r) + b_f min(f12, cap) + b_n never_purchased); 0 for customers who were not
    signed up before the month (they cannot be contacted).
    """
    recency_step = np.searchsorted(
        np.asarray(effect.recency_upper_bounds), history.months_since_last_purchase, side="left"
    )
    score = (
        effect.intercept
        + effect.responsiveness * traits["responsiveness"].to_numpy()
        + effect.price_sensitivity * traits["price_sensitivity"].to_numpy()
        + np.asarray(effect.recency_effects)[recency_step]
        + effect.frequency * np.minimum(history.orders_last_12_months, effect.frequency_cap)
        + effect.never_purchased * history.never_purchased
    )
    eligible = alive_in(traits, month_index) & ~traits["sleeping_dog"].to_numpy() & history.signed_up_before
    return np.where(eligible, effect.max_uplift / (1.0 + np.exp(-score)), 0.0)


def suppression_probability(traits: pd.DataFrame, history: PurchaseHistory) -> np.ndarray:
    """h_i: probability that a contact suppresses a sleeping dog's usual orders (0 for everyone else)."""
    return np.where(history.signed_up_before, traits["suppression_probability"].to_numpy(), 0.0)
