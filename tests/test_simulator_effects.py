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

from simulator.learnability import (
    DEFAULT_OFFERS as OFFERS,
)
from simulator.learnability import (
    binned_mean_r_squared,
    boosted_r_squared,
    learnability,
    observable_features,
    targeting_ceiling,
)

pytestmark = pytest.mark.slow

FIRST, DELIVERY = date(2025, 1, 1), date(2025, 2, 1)
HIDDEN = ["responsiveness", "price_sensitivity", "purchase_rate", "suppression_probability", "extra_items_rate"]


@pytest.fixture(scope="module")
def world_effects(tmp_path_factory):
    from simulator import SimulatedWorld
    from simulator.evaluation import true_individual_profit
    from simulator.ground_truth import customer_states, hidden_traits

    home = tmp_path_factory.mktemp("effects")
    world = SimulatedWorld(home, seed=11, n_customers=20_000)
    observed = observable_features(world, FIRST)
    observed.attrs["home"] = home
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


def test_targeting_ceiling_is_one_with_perfect_information_and_contact_nobody_without_any() -> None:
    rng = np.random.default_rng(3)
    profit = rng.normal(-1.0, 2.0, 4000)
    folds = rng.integers(0, 2, len(profit))
    perfect = targeting_ceiling(pd.DataFrame({"profit": profit}), profit, folds, budget_share=0.15)
    assert perfect["ceiling"] > 0.97, perfect
    assert perfect["random_profit"] < 0 < perfect["oracle_profit"]
    noise = targeting_ceiling(pd.DataFrame({"noise": rng.normal(size=len(profit))}), profit, folds, 0.15)
    # Nothing to learn: the fitted model predicts the (negative) mean and contacts (almost) nobody.
    assert abs(noise["ceiling"] - noise["contact_nobody"]) < 0.1, noise


def test_learnability_report_of_a_small_world(tmp_path) -> None:
    from simulator import SimulatedWorld

    world = SimulatedWorld(tmp_path, seed=5, n_customers=3000)
    report = learnability(world, FIRST).set_index("offer_id")
    assert list(report.index) == list(OFFERS["offer_id"])
    active, lapsed = report.loc["retain_voucher"], report.loc["winback_voucher"]
    assert active["audience"] == "active" and lapsed["audience"] == "lapsed"
    assert active["audience_customers"] + lapsed["audience_customers"] == active["customers"]
    assert (report["oracle_profit"] >= 0).all() and (report["oracle_profit"] >= report["truth_fitted_profit"]).all()
    assert report[["uplift_r2_all", "audience_uplift_r2", "audience_profit_r2"]].le(1).all().all()


# ---------------------------------------------------------------- learnability within each audience (world v2)
@pytest.fixture(scope="module")
def audience_learnability(world_effects) -> pd.DataFrame:
    """simulator.learnability's report on the same default-size world (seed 11, 20,000 customers)."""
    from simulator import SimulatedWorld

    observed = world_effects[0]
    world = SimulatedWorld(observed.attrs["home"], seed=11, n_customers=20_000)
    report = learnability(world, FIRST).set_index("offer_id")
    report["nobody_share_of_ceiling_gap"] = -report["random_profit"] / (
        report["truth_fitted_profit"] - report["random_profit"]
    )
    print("\n" + report.T.to_string(float_format=lambda v: f"{v:.3f}"))
    return report


def test_within_each_audience_the_observables_explain_a_quarter_to_a_half_of_the_uplift(audience_learnability):
    for offer, row in audience_learnability.iterrows():
        assert 0.25 <= row["audience_uplift_r2"] <= 0.50, (offer, row["audience_uplift_r2"])
        assert row["uplift_r2_best_single"] <= 0.30, (offer, row["uplift_r2_best_column"], row["uplift_r2_best_single"])


@pytest.mark.xfail(
    strict=True,
    reason="measured (seed 11, 20,000 customers): profit R^2 0.296 (retain) and 0.138 (win-back) against 0.30-0.60; "
    "order value and sleeping dogs leave no trace in a first month's history",
)
def test_within_each_audience_the_observables_explain_30_to_60_percent_of_a_contacts_profit(audience_learnability):
    for offer, row in audience_learnability.iterrows():
        assert 0.30 <= row["audience_profit_r2"] <= 0.60, (offer, row["audience_profit_r2"])


@pytest.mark.xfail(
    strict=True,
    reason="measured (seed 11, 20,000 customers): contacting nobody earns 0.210 (retain) and 0.209 (win-back) of "
    "the random-to-ceiling gap, against at most 0.2",
)
def test_contacting_nobody_earns_at_most_a_fifth_of_the_gap_to_the_observables_ceiling(audience_learnability):
    for offer, row in audience_learnability.iterrows():
        assert row["nobody_share_of_ceiling_gap"] <= 0.2, (offer, row["nobody_share_of_ceiling_gap"])


def test_a_targeting_model_on_the_observables_beats_random_and_contacting_nobody(audience_learnability):
    for offer, row in audience_learnability.iterrows():
        assert row["truth_fitted_profit"] > max(0.0, row["random_profit"]), offer
        assert row["random_profit"] < 0, offer  # contacting at random loses money: targeting must pay
