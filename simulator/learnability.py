"""How much of a contact's true effect can a targeting model see? A diagnostic of the simulated world.

The closed loop can only target on what the platform observes: the analyse stage's point-in-time features and
BG/NBD + Gamma-Gamma scores. This module measures, from the hidden ground truth (simulator.evaluation), how much
of each offer's true effect those observables carry, over every scored customer and within the offer's audience
(active customers for a retention voucher, lapsed ones for a win-back voucher):

- cross-fitted R^2 of the true response uplift and of the true incremental profit on the observables (gradient
  boosting, 2 folds) and of the best single observable column (its mean per quantile bin);
- the targeting ceiling: a model fitted to the customers' *true* incremental profits (on one half, applied to the
  other) contacts, within a budget of ``budget_share`` of the audience, the customers it predicts profitable.
  ``ceiling = (fitted - random) / (oracle - random)`` with random = that many customers drawn at random (their
  mean true profit times the count) and oracle = the customers of highest true profit, none unprofitable.
  A learned policy sees noisy randomised outcomes instead of true profits, so it cannot beat this ceiling:
  when it is below a bound such as issue 5's 0.5, no policy on these observables meets the bound.

Run ``python -m simulator.learnability --customers 20000 --seed 11`` (a fresh world in a temporary directory).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline

from models.clv import score_customers
from models.features import customer_features
from models.parallelism import fit_threads
from models.uplift import EmptyFeaturesAsZero
from simulator.evaluation import true_individual_profit
from simulator.months import month_at
from simulator.world import SimulatedWorld

#: The default world's offers (dbt_project/seeds/offers.csv) and the audience each objective gives them.
DEFAULT_OFFERS = pd.DataFrame(
    {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
)
DEFAULT_AUDIENCES = {"retain_voucher": "active", "winback_voucher": "lapsed"}


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


def cross_fitted_predictions(features: pd.DataFrame, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions of y by gradient-boosted trees (depth 4, 300 steps of 0.05)."""

    predicted = np.empty(len(y))
    matrix = features.to_numpy(dtype="float64")
    for fold in np.unique(folds):
        train = folds != fold
        model = make_pipeline(
            EmptyFeaturesAsZero(),
            HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_depth=4, random_state=0),
        )
        with fit_threads(int(train.sum())):
            model.fit(matrix[train], y[train])
        predicted[~train] = model.predict(matrix[~train])
    return predicted


def boosted_r_squared(features: pd.DataFrame, y: np.ndarray, folds: np.ndarray) -> float:
    """Cross-fitted R^2 of gradient-boosted trees on all the features."""
    return r_squared(y, cross_fitted_predictions(features, y, folds))


def observable_features(world: SimulatedWorld, as_of: date) -> pd.DataFrame:
    """What the analyse stage observes of every customer with an order by the end of ``as_of`` (index
    customer_id): the point-in-time features (models.features) and the BG/NBD + Gamma-Gamma scores (models.clv),
    numeric columns only. ``as_of`` must be the world's first month (its burn-in history)."""

    raw = world.orders(as_of)
    products = world.products().set_index("product_id")
    orders = pd.DataFrame(
        {
            "order_id": raw["order_id"],
            "customer_id": raw["customer_id"],
            "order_date": raw["order_date"],
            "product_line": raw["product_id"].map(products["product_line"]),
            "revenue": raw["amount"],
            "margin": raw["amount"] - raw["quantity"] * raw["product_id"].map(products["unit_cost"]),
            "is_promotion_order": raw["discount_code"].eq(world.promotion_code).fillna(False),
            "is_email_order": raw["order_source"].eq("email").fillna(False),
        }
    )
    features = customer_features(orders, as_of)
    if "customer_id" in features.columns:
        features = features.set_index("customer_id")
    value = score_customers(orders, as_of).set_index("customer_id")
    observed = features.join(value, rsuffix="_clv")
    return observed[[c for c in observed.columns if observed[c].dtype.kind in "fiub"]].astype("float64")


def truth_fitted_selection(features: pd.DataFrame, profit: np.ndarray, folds: np.ndarray, n: int) -> np.ndarray:
    """Whom the ceiling policy contacts: at most ``n`` customers, those of highest profit as predicted from the
    observables by a model fitted on the *true* profits of the other fold, none predicted unprofitable."""
    predicted = cross_fitted_predictions(features, profit, folds)
    chosen = np.zeros(len(profit), dtype=bool)
    top = np.argsort(-predicted, kind="stable")[:n]
    chosen[top[predicted[top] > 0]] = True
    return chosen


def targeting_ceiling(features: pd.DataFrame, profit: np.ndarray, folds: np.ndarray, budget_share: float) -> dict:
    """Random, oracle and true-profit-fitted targeting of ``budget_share`` of the customers (module docstring)."""
    n = max(1, int(budget_share * len(profit)))
    random = n * float(profit.mean())
    best = np.sort(profit)[::-1][:n]
    oracle = float(best[best > 0].sum())
    fitted = float(profit[truth_fitted_selection(features, profit, folds, n)].sum())
    gap = oracle - random
    return {
        "random_profit": random,
        "oracle_profit": oracle,
        "truth_fitted_profit": fitted,
        "ceiling": (fitted - random) / gap if gap > 0 else np.nan,
        "contact_nobody": -random / gap if gap > 0 else np.nan,
    }


def learnability(
    world: SimulatedWorld,
    as_of: date,
    offers: pd.DataFrame = DEFAULT_OFFERS,
    audiences: dict[str, str] | None = None,
    budget_share: float = 0.15,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per offer: how much of a contact delivered the month after ``as_of`` the observables explain,
    over every scored customer and within the offer's audience ('active', 'lapsed' or 'all'), and the targeting
    ceiling within the audience (module docstring)."""
    audiences = audiences or DEFAULT_AUDIENCES
    observed = observable_features(world, as_of)
    folds = np.random.default_rng(seed).integers(0, 2, len(observed))
    lapsed = observed["is_lapsed"].to_numpy() > 0
    delivery = month_at(1, as_of)
    rows = []
    for offer_id in offers["offer_id"]:
        truth = true_individual_profit(world, delivery, observed.index, offer_id, offers)
        uplift = truth["true_uplift"].to_numpy()
        profit = truth["true_incremental_profit"].to_numpy()
        audience = {"active": ~lapsed, "lapsed": lapsed, "all": np.ones(len(lapsed), dtype=bool)}[
            audiences.get(offer_id, "all")
        ]
        single = {column: binned_mean_r_squared(observed[column], uplift, folds) for column in observed.columns}
        best = max(single, key=single.get)
        inside, inside_folds = observed[audience], folds[audience]
        rows.append(
            {
                "offer_id": offer_id,
                "customers": len(observed),
                "uplift_r2_best_column": best,
                "uplift_r2_best_single": single[best],
                "uplift_r2_all": boosted_r_squared(observed, uplift, folds),
                "audience": audiences.get(offer_id, "all"),
                "audience_customers": int(audience.sum()),
                "audience_mean_uplift": float(uplift[audience].mean()),
                "audience_profitable_share": float((profit[audience] > 0).mean()),
                "audience_uplift_r2": boosted_r_squared(inside, uplift[audience], inside_folds),
                "audience_profit_r2": boosted_r_squared(inside, profit[audience], inside_folds),
                **targeting_ceiling(inside, profit[audience], inside_folds, budget_share),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.learnability", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-share", type=float, default=0.15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        world = SimulatedWorld(home, seed=args.seed, n_customers=args.customers)
        report = learnability(world, world.first_month, budget_share=args.budget_share)
    print(report.set_index("offer_id").T.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
