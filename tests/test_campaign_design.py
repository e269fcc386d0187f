"""Campaign design (models/campaign_design.py): who is contacted, who is held out, and with what probability.

Protected properties: the test group never costs more than the budget (whatever the shares, strata and
profits); each stratum gets its proportional share of the control group to within one customer and every
selected customer has the same recorded probability of control (a design probability, never 0 or 1);
exploitation takes only customers with a positive expected profit (and lower bound), best first; exploration
draws its share uniformly at random from everyone else and records ``selection_probability = n_drawn / n_pool``;
without any model (all profits NaN) a full-exploration campaign is a uniform random pilot; a plan depends on the
seed and the candidate set only (not on row order); duplicate candidates are rejected by name; the minimum
detectable effect is the closed-form two-proportion formula; a cycle contacts each customer once within every
budget, logs a decision and its rule for every customer and objective, and does not send a campaign too small
to measure; the plan hash names the plan's content.
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
    n_control = int((plan["group"] == "control").sum())
    assert round(control_share * len(plan)) == n_control
    for stratum, rows in plan.groupby("stratum"):
        in_stratum = int((rows["group"] == "control").sum())
        assert abs(in_stratum - n_control * len(rows) / len(plan)) <= 1, stratum
    # P(test | selected) recorded on every row is the design probability, the same for every stratum.
    np.testing.assert_allclose(plan["treatment_probability"], 1 - n_control / len(plan))


def test_every_selected_customer_has_the_same_chance_of_control_whatever_the_stratum() -> None:
    """Systematic sampling: even a stratum of one customer is held out with probability k / n (never 0)."""
    candidates = make_candidates(40, seed=13, n_strata=3)
    candidates.loc[0, "stratum"] = "tiny"  # a stratum of a single customer
    candidates["expected_incremental_profit"] = np.nan
    draws = [
        design(candidates, budget=36.0, cost_per_contact=1.0, exploration_share=1.0, seed=seed) for seed in range(400)
    ]
    control = pd.concat(draws).groupby("customer_id")["group"].apply(lambda g: (g == "control").mean())
    assert control["cust0000"] == pytest.approx(4 / 40, abs=0.05)
    assert control.between(0.04, 0.18).all()


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


# ------------------------------------------------------------------------------- profit lower bound
def test_exploitation_needs_a_positive_lower_bound_as_well() -> None:
    candidates = make_candidates(200, seed=11)
    candidates["profit_lower_bound"] = candidates["expected_incremental_profit"] - 2.0
    plan = design(candidates, budget=1000.0, cost_per_contact=1.0, exploration_share=0.0)
    exploited = plan[plan["selection"] == "exploit"]
    assert (exploited["profit_lower_bound"] > 0).all()
    assert len(exploited) == int((candidates["profit_lower_bound"] > 0).sum())


def test_a_selection_of_two_still_holds_out_one_control_customer() -> None:
    candidates = make_candidates(2, seed=12)
    candidates["expected_incremental_profit"] = np.nan
    plan = design(candidates, budget=100.0, cost_per_contact=1.0, exploration_share=1.0)
    assert sorted(plan["group"]) == ["control", "test"]


# ---------------------------------------------------------------------------------------- the cycle
class _StubModel:
    """An uplift model whose predictions are the candidates' `signal` column (for the plan tests)."""

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        signal = features["recency_days"].to_numpy(dtype=float) / 100.0
        return pd.DataFrame({"margin_uplift": signal, "p_response_treated": np.full(len(signal), 0.1)})


def _cycle_inputs(n: int = 400, seed: int = 0):
    from models.targeting import UPLIFT_FEATURES

    rng = np.random.default_rng(seed)
    scores = pd.DataFrame({column: rng.uniform(0, 1, n) for column in UPLIFT_FEATURES})
    scores["recency_days"] = rng.uniform(-300, 600, n)
    scores["customer_id"] = [f"C{i:07d}" for i in range(n)]
    scores["is_lapsed"] = rng.random(n) < 0.4
    scores["churn_probability"] = rng.random(n)
    scores["p_alive"] = rng.random(n)
    scores["clv"] = rng.gamma(2, 30, n)
    scores["pyramid_tier"] = rng.choice(["gold", "silver", "iron", "lead"], n)
    scores["expected_purchases_next_month"] = rng.gamma(1, 0.2, n)
    objectives = pd.DataFrame(
        {
            "objective": ["retention", "upsell", "winback"],
            "priority": [1, 2, 3],
            "offer_id": ["retain_voucher", "retain_voucher", "winback_voucher"],
            "audience": ["active", "active", "lapsed"],
            "min_churn_probability": [0.5, 0.0, 0.0],
            "min_p_alive": [0.0, 0.0, 0.1],
            "budget": [600.0, 200.0, 300.0],
            "control_share": [0.1, 0.1, 0.2],
            "exploration_share": [0.1, 0.1, 0.1],
            "pyramid_tiers": ["", "silver|iron", ""],
        }
    )
    offers = pd.DataFrame(
        {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
    )
    return scores, objectives, offers


def _cycle_arguments(scores: pd.DataFrame) -> dict:
    """plan_cycle's keyword arguments for a March delivery: everyone allowed, no global control, no history."""
    return {
        "delivery_month": pd.Timestamp("2025-03-01"),
        "allowed": pd.Series(True, index=scores.index),
        "in_global_control": pd.Series(False, index=scores.index),
        "contacts": None,
        "policy_version": "v1",
        "seed_of": lambda campaign: len(campaign),
    }


def _plan(policies: dict, **overrides):
    from models.campaign_design import plan_cycle

    scores, objectives, offers = _cycle_inputs()
    return scores, plan_cycle(scores, objectives, offers, policies, **{**_cycle_arguments(scores), **overrides})


def _policies(model_for_retain: bool = False) -> dict:
    from models.policy_evaluation import ProfitCalibration
    from models.targeting import OfferPolicy, pilot_policy

    policies = {offer: pilot_policy(offer, "test") for offer in ("retain_voucher", "winback_voucher")}
    if model_for_retain:
        identity = ProfitCalibration(0.0, 1.0, np.zeros((2, 2)), 1000)
        policies["retain_voucher"] = OfferPolicy("retain_voucher", "uplift_model", _StubModel(), {}, "stub", identity)
    return policies


def test_a_cycle_contacts_each_customer_once_within_every_budget() -> None:
    scores, cycle = _plan(_policies())
    plan = cycle.plan
    assert not plan["customer_id"].duplicated().any()
    costs = {"retain_voucher": 10.5, "winback_voucher": 15.5}
    budgets = {"retention": 600.0, "upsell": 200.0, "winback": 300.0}
    for objective_name, rows in plan.groupby("objective"):
        n_test = int((rows["group"] == "test").sum())
        assert n_test * costs[rows["offer_id"].iloc[0]] <= budgets[objective_name]
        assert (rows["group"] == "control").sum() >= 1
    assert set(plan["policy"]) == {"randomised_pilot"}
    assert (cycle.campaigns["minimum_detectable_uplift"] > 0).all()


def test_the_decision_log_explains_every_customer_and_objective() -> None:
    scores, cycle = _plan(_policies(), in_global_control=pd.Series(np.arange(400) % 10 == 0))
    decisions = cycle.decisions
    assert len(decisions) == 3 * len(scores)
    assert not decisions.duplicated(["customer_id", "objective"]).any()
    planned = cycle.plan.merge(decisions, on=["campaign_id", "customer_id"])
    assert len(planned) == len(cycle.plan)
    assert (planned["group"] == planned["decision"]).all() and planned["eligible"].all()
    assert set(decisions.loc[~decisions["eligible"], "decision"]) == {"excluded"}
    held_out = decisions[decisions["customer_id"].isin(scores.loc[np.arange(400) % 10 == 0, "customer_id"])]
    assert (held_out["rule"] == "global control group").all()
    assert {"churn_probability", "clv", "policy_version", "rule", "expected_incremental_profit"} <= set(decisions)
    # An upsell customer taken by retention is logged as such.
    taken = decisions[(decisions["objective"] == "upsell") & decisions["customer_id"].isin(cycle.plan["customer_id"])]
    assert (taken["rule"] == "in an earlier campaign this cycle").any()


def test_a_model_policy_exploits_only_customers_with_a_positive_lower_bound() -> None:
    scores, cycle = _plan(_policies(model_for_retain=True))
    retention = cycle.plan[cycle.plan["objective"] == "retention"]
    exploited = retention[retention["selection"] == "exploit"]
    assert len(exploited) > 0
    assert (exploited["profit_lower_bound"] > 0).all()
    assert exploited.sort_values("rank")["expected_incremental_profit"].is_monotonic_decreasing
    log = cycle.decisions[(cycle.decisions["objective"] == "retention") & cycle.decisions["eligible"]]
    unproven = log[~(log["profit_lower_bound"] > 0)]
    assert unproven["decision"].isin(["not selected", "test", "control"]).all()
    assert unproven.loc[unproven["decision"] == "not selected", "rule"].str.contains("lower bound").all()


def test_a_campaign_too_small_to_measure_is_not_sent() -> None:
    from models.campaign_design import RULE_TOO_SMALL

    scores, objectives, offers = _cycle_inputs()
    objectives.loc[objectives["objective"] == "winback", "budget"] = 15.5  # one contact
    from models.campaign_design import plan_cycle

    cycle = plan_cycle(
        scores,
        objectives,
        offers,
        _policies(),
        delivery_month=pd.Timestamp("2025-03-01"),
        allowed=pd.Series(True, index=scores.index),
        in_global_control=pd.Series(False, index=scores.index),
        contacts=None,
        policy_version="v1",
        seed_of=lambda campaign: 0,
    )
    assert "winback" not in set(cycle.plan["objective"])
    winback = cycle.decisions[(cycle.decisions["objective"] == "winback") & cycle.decisions["eligible"]]
    assert (winback["rule"] == RULE_TOO_SMALL).all() and (winback["decision"] == "not selected").all()


def test_the_plan_hash_names_the_content_not_the_row_order() -> None:
    from models.campaign_design import plan_content_hash

    _, cycle = _plan(_policies())
    plan = cycle.plan.assign(delivery_month=pd.Timestamp("2025-03-01"))
    shuffled = plan.sample(frac=1.0, random_state=3)
    assert plan_content_hash(plan) == plan_content_hash(shuffled)
    changed = plan.copy()
    changed.loc[changed.index[0], "group"] = "control" if changed.loc[changed.index[0], "group"] == "test" else "test"
    assert plan_content_hash(changed) != plan_content_hash(plan)
    assert plan_content_hash(plan.iloc[1:]) != plan_content_hash(plan)


# ---------------------------------------------------------------------------- expected cost of a contact
def test_the_redemption_rates_start_at_one_and_approach_the_measured_ones() -> None:
    from models.campaign_rules import REDEMPTION_PRIOR_CONTACTS, with_expected_redemptions

    offers = _cycle_inputs()[2]
    k = REDEMPTION_PRIOR_CONTACTS
    nothing = with_expected_redemptions(
        offers, pd.DataFrame(columns=["offer_id", "n_test", "responders_test", "redemptions"])
    )
    assert (nothing["redemptions_per_contact"] == 1.0).all() and (nothing["redemptions_per_responder"] == 1.0).all()
    measured = pd.DataFrame(
        {
            "offer_id": ["retain_voucher", "retain_voucher", "winback_voucher"],
            "n_test": [600, 400, 50],
            "responders_test": [200, 100, 5],
            "redemptions": [90.0, 40.0, np.nan],  # the win-back campaign's orders recorded no discounts
        }
    )
    rates = with_expected_redemptions(offers, measured).set_index("offer_id")
    assert rates.loc["retain_voucher", "redemptions_per_contact"] == pytest.approx((130 + k) / (1000 + k))
    assert rates.loc["retain_voucher", "redemptions_per_responder"] == pytest.approx((130 + k) / (300 + k))
    assert rates.loc["retain_voucher", "redemption_evidence"] == 1000
    assert rates.loc["winback_voucher", "redemptions_per_contact"] == 1.0  # no recorded evidence yet


def test_the_budget_buys_contacts_at_their_expected_cost() -> None:
    from models.campaign_design import plan_cycle
    from models.campaign_rules import campaigns_over_budget, cost_per_contact, with_expected_redemptions

    scores, objectives, offers = _cycle_inputs(n=3000)
    measured = pd.DataFrame(
        {"offer_id": ["retain_voucher"], "n_test": [2000], "responders_test": [600], "redemptions": [180.0]}
    )
    learned = with_expected_redemptions(offers, measured)
    price = cost_per_contact(learned).to_dict()
    assert price["retain_voucher"] == pytest.approx(0.5 + 10.0 * (180 + 20) / (2000 + 20))
    assert price["winback_voucher"] == 15.5
    arguments = _cycle_arguments(scores)
    whole_voucher = plan_cycle(scores, objectives, offers, _policies(), **arguments).campaigns.set_index("objective")
    expected = plan_cycle(scores, objectives, learned, _policies(), **arguments)
    campaigns = expected.campaigns.set_index("objective")
    # The retention budget (600 EUR) buys 57 contacts at a whole voucher each, about 3.8 times as many at the
    # expected cost, and the plan records the price it counted with; the gate counts with the same rates.
    assert whole_voucher.loc["retention", "test"] == 57
    assert campaigns.loc["retention", "test"] == math.floor(600 / price["retain_voucher"])
    assert campaigns.loc["retention", "cost_per_contact"] == pytest.approx(price["retain_voucher"])
    assert campaigns.loc["retention", "committed_cost"] <= 600
    assert not campaigns_over_budget(expected.plan, learned, objectives).any()
    assert campaigns_over_budget(expected.plan, offers, objectives)["2025-03-retention"]


def test_a_responder_is_charged_the_expected_voucher() -> None:
    from models.campaign_rules import incentive_per_responder, with_expected_redemptions

    offers = _cycle_inputs()[2]
    assert incentive_per_responder(offers).to_dict() == {"retain_voucher": 10.0, "winback_voucher": 15.0}
    measured = pd.DataFrame(
        {"offer_id": ["winback_voucher"], "n_test": [980], "responders_test": [180], "redemptions": [70.0]}
    )
    learned = incentive_per_responder(with_expected_redemptions(offers, measured))
    assert learned["winback_voucher"] == pytest.approx(15.0 * 90 / 200)
