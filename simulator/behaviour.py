"""How simulated customers buy, and how a campaign contact changes that: the closed-form pieces shared
by the world (which samples them) and the ground truth (which takes their expectations).

In month m a customer i who is alive places W_i + Poisson(Lambda_i) usual orders, where
  Lambda_i = lambda_i * season(m) * exposure_i(m)   (exposure = share of the month after sign-up)
  W_i      = 1 if m is the sign-up month and the sign-up was a first order, else 0.
Each order has 1 + Poisson(theta_i) items of one product: line ~ Categorical(affinity_i), product within
the line by fixed weights. A contact in month m
  * suppresses all usual orders of a sleeping dog with probability h_i,
  * adds one extra order with probability delta_{i,o} (see effects.yaml and `persuasion_probability`): for
    a customer who is alive the persuasion, for one who has dropped out the offer's reactivation; a
    line-specific offer's extra order is of its line, and
  * has its voucher redeemed on the first order of the month with probability rho_i, or always on the extra
    order it caused (`redemption_probability`).
Usual orders carry the traces of the hidden traits (`promotion_probability`, `email_order_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.config import OfferEffect, SimulatorConfig, Traces
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
    orders_before: np.ndarray  # every usual order before month m
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
    all_orders = np.zeros(size, dtype=np.int64)
    for month, counts in enumerate(usual_orders_by_month[:month_index]):
        bought = np.zeros(size, dtype=bool)
        bought[: len(counts)] = counts > 0
        last_purchase[bought] = month
        all_orders[: len(counts)] += counts
        if month >= month_index - 12:
            recent_orders[: len(counts)] += counts
    signup = traits["signup_month_index"].to_numpy()
    never = last_purchase < 0
    reference = np.where(never, signup, last_purchase)
    return PurchaseHistory(
        months_since_last_purchase=month_index - reference,
        orders_last_12_months=recent_orders,
        orders_before=all_orders,
        never_purchased=never,
        signed_up_before=signup < month_index,
    )


def _sigmoid(score: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-score))


def persuasion_probability(
    traits: pd.DataFrame, history: PurchaseHistory, month_index: int, effect: OfferEffect, config: SimulatorConfig
) -> np.ndarray:
    """delta_{i,o}: probability that a contact with offer o adds one order in month `month_index`.

    For a customer who is alive, delta = max_uplift * line_fit * (1 - sleeping_dog) * sigmoid(intercept
    + b_r z_resp + b_p z_price + recency(r) + b_f min(f12, cap) + b_n never_purchased); for one who has dropped
    out, the offer's reactivation probability (0 without one); 0 for customers who were not signed up before
    the month (they cannot be contacted). See effects.yaml.
    """
    recency_step = np.searchsorted(
        np.asarray(effect.recency_upper_bounds), history.months_since_last_purchase, side="left"
    )
    responsiveness = traits["responsiveness"].to_numpy()
    score = (
        effect.intercept
        + effect.responsiveness * responsiveness
        + effect.price_sensitivity * traits["price_sensitivity"].to_numpy()
        + np.asarray(effect.recency_effects)[recency_step]
        + effect.frequency * np.minimum(history.orders_last_12_months, effect.frequency_cap)
        + effect.never_purchased * history.never_purchased
    )
    reachable = ~traits["sleeping_dog"].to_numpy() & history.signed_up_before
    alive = alive_in(traits, month_index)
    delta = np.where(reachable & alive, effect.max_uplift * _sigmoid(score), 0.0)
    if effect.product_line is not None:
        column = f"affinity_{config.line_keys()[effect.product_line]}"
        popularity = config.line_popularity[effect.product_line]
        delta = delta * np.minimum(traits[column].to_numpy() / popularity, effect.line_fit_cap) / effect.line_fit_cap
    if effect.reactivation is not None:
        react = effect.reactivation
        dropped_out = (
            reachable & ~alive & ~history.never_purchased & (traits["signup_month_index"].to_numpy() < month_index)
        )
        reactivation = react.max_reactivation * _sigmoid(
            react.intercept
            + react.responsiveness * responsiveness
            + react.past_orders * np.log1p(history.orders_before)
            + react.months_since_last_purchase * history.months_since_last_purchase / 12.0
        )
        delta = np.where(dropped_out, reactivation, delta)
    return delta


def redemption_probability(traits: pd.DataFrame, traces: Traces) -> np.ndarray:
    """rho_i: probability that a contacted customer who orders anyway redeems the voucher (effects.yaml)."""
    return _sigmoid(
        traces.redemption_intercept + traces.redemption_price_sensitivity * traits["price_sensitivity"].to_numpy()
    )


def promotion_probability(traits: pd.DataFrame, traces: Traces) -> np.ndarray:
    """Probability that a usual order is paid with the promotional code (the price-sensitivity trace)."""
    return _sigmoid(
        traces.promotion_intercept + traces.promotion_price_sensitivity * traits["price_sensitivity"].to_numpy()
    )


def email_order_probability(traits: pd.DataFrame, traces: Traces) -> np.ndarray:
    """Probability that a usual order is placed from a newsletter link (the responsiveness trace)."""
    return _sigmoid(
        traces.email_order_intercept + traces.email_order_responsiveness * traits["responsiveness"].to_numpy()
    )


def engagement_probabilities(traits: pd.DataFrame, traces: Traces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(open), P(click | open), P(unsubscribe)) of a delivered e-mail contact, per customer."""
    responsiveness = traits["responsiveness"].to_numpy()
    sleeping_dog = traits["sleeping_dog"].to_numpy()
    opened = _sigmoid(
        traces.open_intercept + traces.open_responsiveness * responsiveness + traces.open_sleeping_dog * sleeping_dog
    )
    clicked = _sigmoid(traces.click_intercept + traces.click_responsiveness * responsiveness)
    unsubscribed = np.where(sleeping_dog, traces.unsubscribe_sleeping_dog, traces.unsubscribe)
    return opened, clicked, unsubscribed


def suppression_probability(traits: pd.DataFrame, history: PurchaseHistory) -> np.ndarray:
    """h_i: probability that a contact suppresses a sleeping dog's usual orders (0 for everyone else)."""
    return np.where(history.signed_up_before, traits["suppression_probability"].to_numpy(), 0.0)
