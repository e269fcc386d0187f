"""The simulated world's hidden truth: traits and exact expected outcomes with and without a contact.

For tests and benchmarks only; the platform never reads it. Expectations are closed form over the
month's randomness (see `simulator.behaviour`). With p0 = (1 - W) exp(-Lambda) the probability of no
usual order, E[K] = W + Lambda the expected usual orders, h the sleeping-dog suppression probability,
delta the persuasion (or reactivation) probability of the offer and rho the redemption probability:
  not contacted: P(response) = 1 - p0,                       E[orders] = E[K]
  contacted:     P(response) = 1 - (1 - (1 - h)(1 - p0))(1 - delta),   E[orders] = (1 - h) E[K] + delta
                 P(voucher redeemed) = delta + (1 - delta)(1 - h)(1 - p0) rho
Revenue and margin are the usual orders times the customer's expected order value, (1 + theta_i) *
sum_l affinity_il * E[unit price (margin) | line l], plus delta times the extra order's value: the same for a
generic offer, (1 + theta_i) * E[unit price (margin) | line l] for a cross-sell offer of line l.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.behaviour import (
    alive_in,
    expected_order_value,
    persuasion_probability,
    redemption_probability,
    suppression_probability,
    usual_order_intensity,
)
from simulator.months import as_month, month_index
from simulator.world import SimulatedWorld

OUTCOME_COLUMNS = [
    "customer_id",
    "offer_id",
    "p_response_contacted",
    "p_response_not_contacted",
    "expected_margin_contacted",
    "expected_margin_not_contacted",
    "expected_revenue_contacted",
    "expected_revenue_not_contacted",
    "p_redeem_contacted",
]


def traits_dir(world: SimulatedWorld) -> Path:
    """Where the world stores its hidden traits (`home/simulator/ground_truth/`), apart from its
    observable state."""
    return world._ground_truth_dir


def hidden_traits(world: SimulatedWorld, month: date) -> pd.DataFrame:
    """Hidden traits of every customer existing in `month` (read from `home/simulator/ground_truth/`)."""
    return world._population(_index(world, month)).reset_index(drop=True)


def expected_outcomes(
    world: SimulatedWorld,
    month: date,
    customer_ids: Sequence[str] | pd.Series | np.ndarray,
    offer_ids: str | Sequence[str] | pd.Series | np.ndarray,
) -> pd.DataFrame:
    """Exact expected response, margin and revenue in `month` of each customer if contacted at the start of
    the month with its offer, and if not contacted. One row per input customer, in input order;
    `offer_ids` is one offer for all or one per customer."""
    m = _index(world, month)
    config = world._config
    ids = pd.Series(np.asarray(customer_ids, dtype=object), dtype="str")
    offers = (
        pd.Series(offer_ids, index=ids.index, dtype="str")
        if isinstance(offer_ids, str)
        else pd.Series(np.asarray(offer_ids, dtype=object), dtype="str")
    )
    if len(offers) != len(ids):
        raise ValueError(f"{len(ids)} customer ids but {len(offers)} offer ids")
    unknown_offers = sorted(set(offers) - set(config.offers))
    if unknown_offers:
        raise ValueError(f"unknown offer_id(s) {unknown_offers}; known: {sorted(config.offers)}")
    traits = world._population(m)
    position = _positions(ids, len(traits), month)

    intensity, signup_order = usual_order_intensity(traits, m, config)
    p_no_usual_order = (1 - signup_order) * np.exp(-intensity)
    expected_usual_orders = signup_order + intensity
    revenue_per_order, margin_per_order = expected_order_value(traits, config)
    history = world._purchase_history(m)
    suppression = suppression_probability(traits, history)

    revenue, margin = revenue_per_order[position], margin_per_order[position]
    delta = np.zeros(len(ids))
    extra_revenue, extra_margin = revenue.copy(), margin.copy()
    items = 1.0 + traits["extra_items_rate"].to_numpy()[position]
    offer_values = offers.to_numpy()
    for offer_id in np.unique(offer_values):
        rows = offer_values == offer_id
        effect = config.offers[offer_id]
        delta[rows] = persuasion_probability(traits, history, m, effect, config)[position[rows]]
        if effect.product_line is not None:
            extra_revenue[rows] = items[rows] * config.expected_line_value("unit_price")[effect.product_line]
            extra_margin[rows] = items[rows] * config.expected_line_value("unit_margin")[effect.product_line]

    p0, usual, h = p_no_usual_order[position], expected_usual_orders[position], suppression[position]
    rho = redemption_probability(traits, config.traces)[position]
    return pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "offer_id": offer_values,
            "p_response_contacted": 1.0 - (1.0 - (1.0 - h) * (1.0 - p0)) * (1.0 - delta),
            "p_response_not_contacted": 1.0 - p0,
            "expected_margin_contacted": (1.0 - h) * usual * margin + delta * extra_margin,
            "expected_margin_not_contacted": usual * margin,
            "expected_revenue_contacted": (1.0 - h) * usual * revenue + delta * extra_revenue,
            "expected_revenue_not_contacted": usual * revenue,
            "p_redeem_contacted": delta + (1.0 - delta) * (1.0 - h) * (1.0 - p0) * rho,
        }
    ).astype({"customer_id": "str", "offer_id": "str"})


def customer_states(world: SimulatedWorld, month: date) -> pd.DataFrame:
    """Per customer at the start of `month`: alive, sleeping dog, persuasion probability per offer and the
    purchase-history state it was computed from (for benchmarks and diagnostics)."""
    m = _index(world, month)
    traits = world._population(m)
    history = world._purchase_history(m)
    frame = pd.DataFrame(
        {
            "customer_id": traits["customer_id"].to_numpy(),
            "alive": alive_in(traits, m),
            "sleeping_dog": traits["sleeping_dog"].to_numpy(),
            "months_since_last_purchase": history.months_since_last_purchase,
            "orders_last_12_months": history.orders_last_12_months,
            "never_purchased": history.never_purchased,
            "signed_up_before_month": history.signed_up_before,
        }
    )
    for offer_id, effect in world._config.offers.items():
        frame[f"persuasion_{offer_id}"] = persuasion_probability(traits, history, m, effect, world._config)
    return frame.astype({"customer_id": "str"})


def _index(world: SimulatedWorld, month: date) -> int:
    return month_index(as_month(month), world._origin)


def _positions(ids: pd.Series, population: int, month: date) -> np.ndarray:
    well_formed = ids.str.fullmatch(r"C\d{7}")
    number = ids.str.slice(1).where(well_formed, "0").astype(np.int64).to_numpy()
    known = well_formed.to_numpy() & (number >= 1) & (number <= population)
    if not known.all():
        examples = ids[~known].head(5).tolist()
        raise ValueError(f"{int((~known).sum())} customer id(s) do not exist in {month:%Y-%m}: {examples}")
    return number - 1
