"""Campaign design (models/campaign_design.py): who is contacted, who is held out, and with what probability.

Protected properties: the test group never costs more than the budget (whatever the shares, strata and
profits); each stratum's control group is the configured share of its selected customers to within one
customer, and the recorded treatment probability is the realised split of the stratum; exploitation takes only
customers with a positive expected profit, best first; exploration draws its share of the budget uniformly at
random from everyone else and records ``selection_probability = n_drawn / n_pool``; without any model (all
profits NaN) a full-exploration campaign is a uniform random pilot; a plan depends on the seed and the candidate
set only (not on row order); duplicate candidates are rejected by name; the minimum detectable effect is the
closed-form two-proportion formula.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.campaign_design import PLAN_COLUMNS, design_campaign, minimum_detectable_effect, selection_size


def make_candidates(n: int, seed: int = 0, nan_share: float = 0.0, n_strata: int = 3) -> pd.DataFrame:
    """Candidates with expected profits around zero (about half positive) in ``n_strata`` strata."""
    rng = np.random.default_rng(seed)
    profit = rng.normal(0.5, 3.0, n)
    profit[rng.random(n) < nan_share] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"cust{i:04d}" for i in range(n)],
            "expected_incremental_profit": profit,
            "stratum": rng.choice([f"tier{k}" for k in range(n_strata)], size=n),
        }
    )


def design(candidates: pd.DataFrame, **overrides: object) -> pd.DataFrame:
    arguments: dict[str, object] = {
        "campaign_id": "cmp1",
        "offer_id": "o1",
        "budget": 100.0,
        "cost_per_contact": 2.0,
        "control_share": 0.1,
        "exploration_share": 0.2,
        "seed": 0,
    }
    return design_campaign(candidates, **{**arguments, **overrides})


# -------------------------------------------------------------------------------------------------- budget
def test_test_group_cost_never_exceeds_the_budget() -> None:
    grid = itertools.product(
        [0.0, 7.5, 10.0, 33.0, 100.0],  # budget
        [1.0, 2.5],  # cost per contact
        [0.05, 0.1, 0.15, 0.3, 0.5],  # control share
        [0.0, 0.1, 0.5, 1.0],  # exploration share
    )
    candidates = make_candidates(60, seed=1, nan_share=0.2)
    for budget, cost, control_share, exploration_share in grid:
        plan = design(
            candidates,
            budget=budget,
            cost_per_contact=cost,
            control_share=control_share,
            exploration_share=exploration_share,
        )
        n_test = int((plan["group"] == "test").sum())
        assert n_test * cost <= budget + 1e-9, (budget, cost, control_share, exploration_share, n_test)


def test_budget_holds_when_exploit_and_explore_controls_round_together() -> None:
    """Regression: 6 exploited + 6 explored customers at a 10% control share used to give 11 tests for 10 contacts.

    (Each part alone rounds its 0.6 control customer up to 1; together 1.2 rounds to 1.)
    """
    candidates = make_candidates(100, seed=2)
    plan = design(candidates, budget=10.0, cost_per_contact=1.0, control_share=0.1, exploration_share=0.5)
    assert (plan["group"] == "test").sum() == 10  # the whole budget, and not a contact more


def test_selection_size_is_the_largest_selection_whose_test_group_fits() -> None:
    for max_test, control_share, available in itertools.product(range(0, 25), [0.05, 0.1, 0.25, 0.5, 0.75], [3, 200]):
        fits = [n for n in range(available + 1) if n - round(control_share * n) <= max_test]
        assert selection_size(max_test, control_share, available) == max(fits), (max_test, control_share, available)


def test_zero_budget_gives_an_empty_plan() -> None:
    plan = design(make_candidates(20), budget=0.0)
    assert plan.empty
    assert list(plan.columns) == PLAN_COLUMNS


# ------------------------------------------------------------------------------------------ control group
@pytest.mark.parametrize("control_share", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_control_share_per_stratum_and_recorded_treatment_probability(control_share: float, seed: int) -> None:
    candidates = make_candidates(400, seed=seed, n_strata=4)
    plan = design(candidates, budget=300.0, cost_per_contact=1.0, control_share=control_share, seed=seed)
    assert round(control_share * len(plan)) == (plan["group"] == "control").sum()
    for stratum, rows in plan.groupby("stratum"):
        n_control = int((rows["group"] == "control").sum())
        assert abs(n_control - control_share * len(rows)) <= 1, stratum
        # P(test | selected, stratum) recorded on every row is the stratum's realised test share.
        realised = (rows["group"] == "test").mean()
        np.testing.assert_allclose(rows["treatment_probability"], realised)


def test_control_is_drawn_from_exploited_and_explored_customers_alike() -> None:
    plans = [design(make_candidates(300, seed=4), seed=seed) for seed in range(40)]
    control_rate = pd.concat(plans).groupby("selection")["group"].apply(lambda g: (g == "control").mean())
    assert control_rate["exploit"] == pytest.approx(0.1, abs=0.03)
    assert control_rate["explore"] == pytest.approx(0.1, abs=0.03)


# ------------------------------------------------------------------------------------------ exploitation
def test_exploitation_takes_only_positive_profits_best_first() -> None:
    candidates = make_candidates(200, seed=5, nan_share=0.1)
    candidates.loc[:9, "expected_incremental_profit"] = -0.01  # barely unprofitable: still never exploited
    profitable = candidates[candidates["expected_incremental_profit"] > 0]
    # Budget for 60 contacts or for more than all the profitable customers.
    for budget in (60.0, 1000.0):
        plan = design(candidates, budget=budget, cost_per_contact=1.0, exploration_share=0.2)
        exploited = plan[plan["selection"] == "exploit"].sort_values("rank")
        assert 0 < len(exploited) <= len(profitable)
        assert (exploited["expected_incremental_profit"] > 0).all()
        assert exploited["expected_incremental_profit"].is_monotonic_decreasing
        assert list(exploited["rank"]) == list(range(1, len(exploited) + 1))  # exploited customers rank first
        assert (exploited["selection_probability"] == 1.0).all()
        # Nobody better was left out: the exploited are exactly the top of the profitable candidates.
        best = candidates.nlargest(len(exploited), "expected_incremental_profit")["customer_id"]
        assert set(exploited["customer_id"]) == set(best)


def test_exploitation_leaves_its_unspent_budget_unspent() -> None:
    candidates = make_candidates(200, seed=6)
    candidates["expected_incremental_profit"] = -0.5
    candidates.loc[:4, "expected_incremental_profit"] = 5.0  # only 5 profitable customers
    plan = design(candidates, budget=100.0, cost_per_contact=1.0, exploration_share=0.2)
    assert (plan["selection"] == "exploit").sum() == 5
    explored = plan[plan["selection"] == "explore"]
    assert len(explored) - round(0.1 * len(explored)) <= 20  # exploration keeps its 20% of 100 contacts


# ------------------------------------------------------------------------------------------- exploration
def test_exploration_is_a_uniform_draw_with_the_recorded_probability() -> None:
    candidates = make_candidates(120, seed=7)
    n_seeds = 150
    draws = []
    for seed in range(n_seeds):
        plan = design(candidates, budget=40.0, cost_per_contact=1.0, exploration_share=0.25, seed=seed)
        explored = plan[plan["selection"] == "explore"]
        n_pool = len(candidates) - int((plan["selection"] == "exploit").sum())
        np.testing.assert_allclose(explored["selection_probability"], len(explored) / n_pool)
        assert len(explored) - round(0.1 * len(explored)) <= math.floor(40 * 0.25)
        draws.append(explored["customer_id"])
    probability = float(explored["selection_probability"].iloc[0])
    exploited = set(plan.loc[plan["selection"] == "exploit", "customer_id"])  # the same for every seed
    pool = candidates.loc[~candidates["customer_id"].isin(exploited), "customer_id"]
    counts = pd.concat(draws).value_counts().reindex(pool, fill_value=0)
    assert set(pd.concat(draws)) <= set(pool)  # never an exploited customer twice
    assert counts.sum() == pytest.approx(probability * len(pool) * n_seeds)
    # Every pool customer (negative and unknown profits included) is drawn about equally often.
    expected = probability * n_seeds
    chi_square = float((((counts - expected) ** 2) / (expected * (1 - probability))).sum())
    assert stats.chi2.sf(chi_square, df=len(pool) - 1) > 0.001


def test_without_a_model_full_exploration_is_a_uniform_random_pilot() -> None:
    candidates = make_candidates(50, seed=8)
    candidates["expected_incremental_profit"] = np.nan
    plans = [
        design(candidates, budget=20.0, cost_per_contact=1.0, exploration_share=1.0, seed=seed) for seed in range(100)
    ]
    for plan in plans:
        assert (plan["selection"] == "explore").all()
        assert (plan["group"] == "test").sum() == 20  # the whole budget
        np.testing.assert_allclose(plan["selection_probability"], len(plan) / len(candidates))
    counts = pd.concat(plans)["customer_id"].value_counts().reindex(candidates["customer_id"], fill_value=0)
    probability = len(plans[0]) / len(candidates)
    expected = probability * len(plans)
    chi_square = float((((counts - expected) ** 2) / (expected * (1 - probability))).sum())
    assert stats.chi2.sf(chi_square, df=len(candidates) - 1) > 0.001


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_plan_whatever_the_row_order() -> None:
    candidates = make_candidates(150, seed=9, nan_share=0.2)
    shuffled = candidates.sample(frac=1.0, random_state=1).set_index(pd.Index(np.arange(150) * 7))
    pd.testing.assert_frame_equal(design(candidates, seed=42), design(shuffled, seed=42))


def test_a_different_seed_gives_a_different_control_group() -> None:
    candidates = make_candidates(300, seed=10)

    def control(seed: int) -> set[str]:
        plan = design(candidates, seed=seed)
        return set(plan.loc[plan["group"] == "control", "customer_id"])

    assert control(1) != control(2)
    assert control(1) == control(1)


def test_duplicate_customer_is_rejected_by_name() -> None:
    candidates = make_candidates(10)
    duplicated = pd.concat([candidates, candidates.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match="cust0003"):
        design(duplicated)


def test_missing_candidate_column_is_named() -> None:
    with pytest.raises(ValueError, match="stratum"):
        design(make_candidates(10).drop(columns="stratum"))


# ---------------------------------------------------------------------------------------- detectable effect
def test_minimum_detectable_effect_matches_the_closed_form() -> None:
    # (z_0.975 + z_0.8) * sqrt(p (1 - p) (1/n_t + 1/n_c)) = (1.959964 + 0.841621) * sqrt(0.09 * (1/900 + 1/100)).
    assert minimum_detectable_effect(900, 100, 0.10) == pytest.approx(2.801585 * math.sqrt(0.09 * (1 / 900 + 1 / 100)))
    assert minimum_detectable_effect(900, 100, 0.10) == pytest.approx(0.08859, abs=1e-5)
    # A stricter test or more power needs a larger effect.
    assert minimum_detectable_effect(900, 100, 0.1, alpha=0.01) > minimum_detectable_effect(900, 100, 0.1)
    assert minimum_detectable_effect(900, 100, 0.1, power=0.9) > minimum_detectable_effect(900, 100, 0.1)


def test_minimum_detectable_effect_shrinks_with_sample_size() -> None:
    sizes = [(90, 10), (900, 100), (9000, 1000)]
    effects = [minimum_detectable_effect(n_test, n_control, 0.05) for n_test, n_control in sizes]
    assert effects[0] > effects[1] > effects[2]
    assert effects[1] / effects[2] == pytest.approx(math.sqrt(10))  # 1 / sqrt(n)


def test_minimum_detectable_effect_needs_both_groups_and_a_rate() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        minimum_detectable_effect(100, 0, 0.1)
    with pytest.raises(ValueError, match="base_rate"):
        minimum_detectable_effect(100, 10, 0.0)
