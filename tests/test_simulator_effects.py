"""The simulator's true treatment effect is only partly observable (simulator/effects.yaml, frozen).

Protected property (issue 5): the true effect of a contact on a customer's response depends on hidden traits as
well as on observable behaviour. Over the customers the platform scores (everyone with an order history), for
each offer of the default world:

- no single observable column explains more than 30% of the variance of the true effect (cross-fitted
  R^2 of the best function of that column alone: its mean per quantile bin);
- all the observable features together explain at most 70% (cross-fitted gradient boosting);
- the same learner given the hidden traits as well explains more than 90%: the limit is the hidden traits,
  not the learner;
- the observable features explain some of it: targeting on observables is not hopeless by construction.

The observables are what the analyse stage computes from the order history (models.features and the BG/NBD +
Gamma-Gamma scores of models.clv); the true effect is P(response | contacted) - P(response | not contacted)
from the ground truth (simulator.evaluation.true_individual_profit).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

FIRST, DELIVERY = date(2025, 1, 1), date(2025, 2, 1)
OFFERS = pd.DataFrame(
    {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
)
HIDDEN = ["responsiveness", "price_sensitivity", "purchase_rate", "suppression_probability", "extra_items_rate"]


def r_squared(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def binned_mean_r_squared(column: pd.Series, y: np.ndarray, folds: np.ndarray, bins: int = 20) -> float:
    """Cross-fitted R^2 of the per-bin mean of y (quantile bins of the column; one bin per value when few)."""
    values = column.to_numpy(dtype="float64")
    edges = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1)))
    codes = np.digitize(values, edges[1:-1]) if len(np.unique(values)) > bins else pd.factorize(values)[0]
    predicted = np.empty(len(y))
    for fold in np.unique(folds):
        train = folds != fold
        means = pd.Series(y[train]).groupby(codes[train]).mean()
        predicted[~train] = pd.Series(codes[~train]).map(means).fillna(y[train].mean()).to_numpy()
    return r_squared(y, predicted)


def boosted_r_squared(features: pd.DataFrame, y: np.ndarray, folds: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from models.parallelism import fit_threads

    predicted = np.empty(len(y))
    matrix = features.to_numpy(dtype="float64")
    for fold in np.unique(folds):
        train = folds != fold
        model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_depth=4, random_state=0)
        with fit_threads(int(train.sum())):
            model.fit(matrix[train], y[train])
        predicted[~train] = model.predict(matrix[~train])
    return r_squared(y, predicted)


@pytest.fixture(scope="module")
def world_effects(tmp_path_factory):
    from models.clv import score_customers
    from models.features import customer_features
    from simulator import SimulatedWorld
    from simulator.evaluation import true_individual_profit
    from simulator.ground_truth import customer_states, hidden_traits

    world = SimulatedWorld(tmp_path_factory.mktemp("effects"), seed=11, n_customers=20_000)
    raw = world.orders(FIRST)
    products = world.products().set_index("product_id")
    orders = pd.DataFrame(
        {
            "order_id": raw["order_id"],
            "customer_id": raw["customer_id"],
            "order_date": raw["order_date"],
            "product_line": raw["product_id"].map(products["product_line"]),
            "revenue": raw["amount"],
            "margin": raw["amount"] - raw["quantity"] * raw["product_id"].map(products["unit_cost"]),
        }
    )
    features = customer_features(orders, FIRST)
    if "customer_id" in features.columns:
        features = features.set_index("customer_id")
    value = score_customers(orders, FIRST).set_index("customer_id")
    observed = features.join(value, rsuffix="_clv")
    observed = observed[[c for c in observed.columns if observed[c].dtype.kind in "fiub"]].astype("float64")
    traits = hidden_traits(world, DELIVERY).set_index("customer_id").loc[observed.index, HIDDEN]
    alive = customer_states(world, DELIVERY).set_index("customer_id").loc[observed.index, ["alive", "sleeping_dog"]]
    hidden = pd.concat([observed, traits.astype("float64"), alive.astype("float64")], axis=1)
    effects = {
        offer: true_individual_profit(world, DELIVERY, observed.index, offer, OFFERS)["true_uplift"].to_numpy()
        for offer in OFFERS["offer_id"]
    }
    folds = np.random.default_rng(0).integers(0, 5, len(observed))
    return observed, hidden, effects, folds


@pytest.mark.parametrize("offer", ["retain_voucher", "winback_voucher"])
def test_true_effect_is_partly_observable_and_partly_hidden(world_effects, offer: str) -> None:
    observed, hidden, effects, folds = world_effects
    effect = effects[offer]
    assert len(effect) > 5000 and effect.std() > 0
    single = {column: binned_mean_r_squared(observed[column], effect, folds) for column in observed.columns}
    best = max(single, key=single.get)
    together = boosted_r_squared(observed, effect, folds)
    with_hidden = boosted_r_squared(hidden, effect, folds)
    report = f"{offer}: best single column {best} R2={single[best]:.3f}, observables R2={together:.3f}, "
    report += f"observables + hidden traits R2={with_hidden:.3f}"
    print(report)
    assert single[best] <= 0.30, report
    assert together <= 0.70, report
    assert with_hidden >= 0.90, report
    assert max(single[best], together) > 0.02, report
