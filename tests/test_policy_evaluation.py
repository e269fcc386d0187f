"""Champion/challenger evidence (models/policy_evaluation.py, models/targeting.py, models/uplift.py AUUC).

Protected properties: the held-out value of a selection is an unbiased estimate of its true incremental profit
on randomised data; a calibration of predictions with no information has a slope near zero and a negative
lower bound when contacts lose money on average, so such a policy contacts nobody, while informative
predictions are recovered; the held-out gain of one selection over another has an interval that covers the true
gain; the challenger replaces the champion only when that interval lies above zero; the
improve step ends a randomised pilot with the first calibrated model and records calibration evidence; the
uplift curve and AUUC are right at their endpoints and reward a good ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.policy_evaluation import (
    OFF_POLICY_COLUMNS,
    HeldOutGain,
    PolicyValue,
    ProfitCalibration,
    decide,
    doubly_robust_value,
    evaluate_policies,
    evaluate_policy,
    held_out_gain,
    profit_outcome,
    selection_value,
)
from models.uplift import auuc, uplift_curve


def randomised_campaign(
    n: int, seed: int, p_test: float = 0.9, max_uplift: float = 0.3
) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers whose true incremental profit of a contact is `true_profit` (contact 0.5, voucher 10)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.3, n)
    uplift = rng.uniform(0.0, max_uplift, n)
    spend = 40.0
    treated = rng.random(n) < p_test
    responded = rng.random(n) < base + treated * uplift
    margin = np.where(responded, rng.gamma(4.0, spend / 4.0, n), 0.0)
    frame = pd.DataFrame(
        {
            "group": np.where(treated, "test", "control"),
            "treatment_probability": p_test,
            "responded": responded,
            "margin": margin,
        }
    )
    true_profit = uplift * spend - 0.5 - 10.0 * (base + uplift)
    return frame, true_profit


def test_held_out_value_is_unbiased_for_the_true_profit_of_the_selection() -> None:
    estimates, truths = [], []
    for seed in range(300):
        frame, true_profit = randomised_campaign(600, seed)
        selected = true_profit > 0
        value, standard_error, _, _ = selection_value(frame, selected, 0.5, 10.0)
        estimates.append(value)
        truths.append(true_profit[selected].sum())
    error = np.asarray(estimates) - np.asarray(truths)
    # Mean error within 3 standard errors of zero (Hajek's ratio estimator has an O(1/n) bias only).
    assert abs(error.mean()) < 3 * error.std() / np.sqrt(len(error))
    assert selection_value(frame, np.zeros(len(frame), bool), 0.5, 10.0)[0] == 0.0


def test_calibration_finds_no_information_in_noise_and_recovers_real_signal() -> None:
    frame, true_profit = randomised_campaign(20_000, seed=1, max_uplift=0.1)  # a contact loses money on average
    assert true_profit.mean() < 0
    outcome = profit_outcome(frame, 0.5, 10.0)
    noise = np.random.default_rng(2).normal(0, 2, len(frame))
    useless = ProfitCalibration.fit(noise, outcome)
    assert abs(useless.slope) < 3 * np.sqrt(useless.covariance[1, 1])
    assert (useless.lower_bound(noise) < 0).mean() > 0.95  # contacts lose money on average: nobody is contacted
    informative = ProfitCalibration.fit(true_profit, outcome)
    assert informative.slope == pytest.approx(1.0, abs=4 * np.sqrt(informative.covariance[1, 1]))
    mean_se = np.sqrt(informative.covariance[0, 0])  # the IPW outcome is noisy: judge within its standard error
    assert informative.expected(true_profit).mean() == pytest.approx(true_profit.mean(), abs=3 * mean_se)
    assert ProfitCalibration.fit(np.ones(100), outcome[:100]) is None  # no variation, no calibration


def test_the_gain_interval_of_one_selection_over_another_covers_the_true_gain() -> None:
    """At 3,000 customers (300 in control) the 95% interval covers the true gain in 94.5% of 200 campaigns. With
    fewer controls the normal approximation of skewed margins covers less: about 0.93 at 1,500 customers and 0.89
    at 600 (60 controls)."""
    covered, paired, unpaired = [], [], []
    for seed in range(200):
        frame, true_profit = randomised_campaign(3000, seed)
        challenger = true_profit > 0  # the customers a contact pays for
        champion = np.ones(len(frame), dtype=bool)  # everyone
        gain = held_out_gain(frame, challenger, champion, 0.5, 10.0)
        truth = true_profit[challenger].sum() - true_profit.sum()
        covered.append(gain.ci_low <= truth <= gain.ci_high)
        paired.append(gain.standard_error)
        unpaired.append(
            np.hypot(selection_value(frame, challenger, 0.5, 10.0)[1], selection_value(frame, champion, 0.5, 10.0)[1])
        )
        assert gain.estimate == pytest.approx(
            selection_value(frame, challenger, 0.5, 10.0)[0] - selection_value(frame, champion, 0.5, 10.0)[0]
        )
    assert 0.93 <= np.mean(covered) <= 0.98, np.mean(covered)
    # the customers both select cancel: pairing gives a tighter interval than two independent estimates would
    assert np.median(np.asarray(paired) / np.asarray(unpaired)) < 0.9
    same = held_out_gain(frame, challenger, challenger, 0.5, 10.0)
    assert (same.estimate, same.standard_error) == (0.0, 0.0)


def test_the_challenger_replaces_the_champion_only_when_its_gain_is_surely_positive() -> None:
    champion, better = PolicyValue(100.0, 50, 10, 9, 1), PolicyValue(150.0, 50, 8, 7, 1)
    sure = HeldOutGain(50.0, 10.0, 30.4, 69.6)
    noisy = HeldOutGain(50.0, 40.0, -28.4, 128.4)  # a higher point estimate, within the noise
    assert decide("o", ["c1"], champion, better, sure).promoted
    held = decide("o", ["c1"], champion, better, noisy)
    assert not held.promoted and "not surely above zero" in held.reason and "-28.40" in held.reason
    assert not decide("o", ["c1"], champion, better, HeldOutGain(-5.0, 1.0, -7.0, -3.0)).promoted
    assert not decide("o", ["c1"], champion, better, None).promoted  # no gain computed, no promotion
    assert not decide("o", ["c1"], champion, None, sure).promoted
    assert not decide("o", [], champion, better, sure).promoted
    row = decide("o", ["c1"], champion, better, sure).as_row()
    assert row["champion_value"] == 100.0 and row["challenger_value"] == 150.0 and row["promoted"]
    assert (row["gain_estimate"], row["gain_ci_low"], row["gain_ci_high"]) == (50.0, 30.4, 69.6)
    assert np.isnan(decide("o", ["c1"], champion, None).as_row()["gain_ci_low"])


def logged_campaign(n: int, seed: int, p_test: float = 0.9) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A randomised campaign whose customers' response and effect follow a visible feature (`recency_score`):
    the logged rows, and per customer the true expected gain if treated, margin if not, and profit (contact
    0.5, voucher 10, responder spend 40)."""
    rng = np.random.default_rng(seed)
    score, noise = rng.uniform(0, 1, n), rng.normal(size=n)
    base, uplift = 0.05 + 0.2 * score, np.where(score > 0.5, 0.3, 0.02)
    treated = rng.random(n) < p_test
    responded = rng.random(n) < base + treated * uplift
    margin = np.where(responded, rng.gamma(4.0, 10.0, n), 0.0)
    frame = pd.DataFrame(
        {
            "group": np.where(treated, "test", "control"),
            "treatment_probability": p_test,
            "responded": responded,
            "margin": margin,
            "recency_score": score,
            "noise": noise,
        }
    )
    gain_if_treated = (base + uplift) * 40.0 - 10.0 * (base + uplift)
    margin_if_not = base * 40.0
    return frame, {
        "treated": gain_if_treated,
        "control": margin_if_not,
        "profit": gain_if_treated - margin_if_not - 0.5,
    }


def test_the_doubly_robust_value_is_unbiased_whatever_the_outcome_model_and_covers_with_a_good_one() -> None:
    """With the true expectations as the outcome model the estimate is closer (what is left is each customer's
    own chance: here a responder's spend varies a lot, so about 10% closer); with a useless one (zeros: the
    Horvitz-Thompson sum) it is still unbiased, since the design's probabilities are known."""
    errors = {"useless": [], "true": []}
    covered = []
    for seed in range(300):
        frame, truth = logged_campaign(3000, seed)
        selected = truth["profit"] > 0
        target = truth["profit"][selected].sum()
        zeros = np.zeros(len(frame))
        useless, _ = doubly_robust_value(frame, selected, zeros, zeros, 0.5, 10.0)
        good, good_se = doubly_robust_value(frame, selected, truth["treated"], truth["control"], 0.5, 10.0)
        errors["useless"].append(useless - target)
        errors["true"].append(good - target)
        covered.append(abs(good - target) <= 1.96 * good_se)
    for model, error in errors.items():  # double robustness: the known probabilities alone remove the bias
        error = np.asarray(error)
        assert abs(error.mean()) < 3 * error.std() / np.sqrt(len(error)), model
    assert np.std(errors["true"]) < 0.95 * np.std(errors["useless"])
    assert 0.93 <= np.mean(covered) <= 0.98, np.mean(covered)
    assert doubly_robust_value(frame, np.zeros(len(frame), bool), zeros, zeros, 0.5, 10.0) == (0.0, 0.0)


def test_policies_are_valued_on_logged_campaigns_with_both_estimators() -> None:
    frame, truth = logged_campaign(4000, seed=11)
    model = (frame["recency_score"] > 0.5).to_numpy()  # whom a good model would contact
    table = evaluate_policies(frame, {"champion": model}, 0.5, 10.0, features=["recency_score", "noise"])
    assert list(table.columns) == OFF_POLICY_COLUMNS
    assert table[["policy", "estimator"]].apply(tuple, axis=1).tolist() == [
        ("champion", "ipw"),
        ("champion", "dr"),
        ("contact all", "ipw"),
        ("contact all", "dr"),
        ("random (champion's size)", "ipw"),
        ("random (champion's size)", "dr"),
    ]
    by = table.set_index(["policy", "estimator"])
    for estimator in ("ipw", "dr"):
        champion, everyone = by.loc[("champion", estimator)], by.loc[("contact all", estimator)]
        assert abs(champion["incremental_profit"] - truth["profit"][model].sum()) < 3 * champion["standard_error"]
        assert abs(everyone["incremental_profit"] - truth["profit"].sum()) < 3 * everyone["standard_error"]
        assert champion["ci_low"] < champion["incremental_profit"] < champion["ci_high"]
        random = by.loc[("random (champion's size)", estimator)]
        share = model.sum() / len(frame)
        assert random["incremental_profit"] == pytest.approx(share * everyone["incremental_profit"])
        assert random["n_selected"] == model.sum()
    assert by.loc[("champion", "ipw"), "n_selected"] == model.sum()
    assert by.loc[("champion", "dr"), "incremental_profit"] > by.loc[("random (champion's size)", "dr"), "ci_high"]


def test_a_pilot_is_judged_on_contacting_everyone() -> None:
    frame, true_profit = randomised_campaign(2000, seed=4)
    pilot = evaluate_policy(frame, np.full(len(frame), np.nan), 0.5, 10.0)
    everyone = selection_value(frame, np.ones(len(frame), bool), 0.5, 10.0)[0]
    assert pilot.value == pytest.approx(everyone) and pilot.n_selected == len(frame)
    model = evaluate_policy(frame, true_profit, 0.5, 10.0)
    assert model.n_selected == int((true_profit > 0).sum()) and np.isfinite(model.qini)


def test_uplift_curve_endpoints_and_auuc_reward_a_good_ranking() -> None:
    treatment = np.array([1, 1, 0, 0, 1, 0])
    responded = np.array([1, 0, 0, 1, 1, 0])
    fractions, gains = uplift_curve(treatment, responded, np.arange(6)[::-1])
    assert fractions[0] == 0 and gains[0] == 0 and fractions[-1] == 1
    assert gains[-1] == pytest.approx(2 / 3 - 1 / 3)  # overall rate difference times the whole sample
    rng = np.random.default_rng(5)
    n = 5000
    uplift = rng.uniform(0, 0.4, n)
    treated = rng.random(n) < 0.5
    response = rng.random(n) < 0.1 + treated * uplift
    assert auuc(treated, response, uplift) > 0.01
    assert auuc(treated, response, -uplift) < -0.01


def _measured(n_months: int = 3, n: int = 1500) -> pd.DataFrame:
    from models.targeting import UPLIFT_FEATURES

    rng = np.random.default_rng(7)
    frames = []
    for month in range(n_months):
        features = pd.DataFrame({column: rng.uniform(0, 1, n) for column in UPLIFT_FEATURES})
        group = np.where(rng.random(n) < 0.85, "test", np.where(rng.random(n) < 0.5, "control", "not selected"))
        responded = rng.random(n) < 0.1 + (group == "test") * 0.2 * features["recency_days"].to_numpy()
        frames.append(
            features.assign(
                campaign_id=f"2025-0{month + 2}-retention",
                customer_id=[f"C{month}{i:06d}" for i in range(n)],
                offer_id="retain_voucher",
                delivery_month=pd.Timestamp(f"2025-0{month + 2}-01"),
                group=group,
                treatment_probability=np.where(group == "not selected", 0.0, 0.85 / (0.85 + 0.075)),
                responded=responded,
                margin=np.where(responded, rng.gamma(4, 10, n), 0.0),
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_improve_ends_the_pilot_with_the_first_calibrated_model_and_records_evidence() -> None:
    from models.targeting import improve_policies

    offers = pd.DataFrame(
        {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
    )
    measured = _measured(n_months=1)
    policies, decisions, evidence = improve_policies(measured, offers, None)
    assert policies["retain_voucher"].kind == "randomised_pilot"  # one month: nothing to train and test on
    assert evidence.empty
    measured = _measured(n_months=2)
    policies, decisions, evidence = improve_policies(measured, offers, None)
    retain = next(d for d in decisions if d.offer_id == "retain_voucher")
    assert retain.promoted and policies["retain_voucher"].kind == "uplift_model"
    assert policies["retain_voucher"].calibration is not None
    assert set(evidence["campaign_id"]) == {"2025-03-retention"}  # the held-out month, predicted out of sample
    assert not evidence["customer_id"].isin(measured.loc[measured["group"] == "not selected", "customer_id"]).any()
    assert policies["winback_voucher"].kind == "randomised_pilot"  # no winback campaign measured yet
    # Next month the deployed model is the champion; the evidence accumulates.
    later, decisions, more = improve_policies(_measured(n_months=3), offers, policies, evidence)
    retain = next(d for d in decisions if d.offer_id == "retain_voucher")
    assert retain.champion is not None and retain.evidence["calibration_rows"] > len(evidence)
    # the gain over the champion and what each policy would have earned on the held-out campaign are recorded
    assert retain.gain is not None and retain.gain.ci_low <= retain.gain.estimate <= retain.gain.ci_high
    values = retain.off_policy.set_index(["policy", "estimator"])
    assert {policy for policy, _ in values.index} == {
        "champion",
        "challenger",
        "contact all",
        "random (champion's size)",
    }
    assert (values["offer_id"] == "retain_voucher").all() and (values["ci_low"] <= values["ci_high"]).all()
    assert values.loc[("champion", "ipw"), "incremental_profit"] == pytest.approx(retain.champion.value)
    assert values.loc[("challenger", "ipw"), "incremental_profit"] == pytest.approx(retain.challenger.value)
    winback = next(d for d in decisions if d.offer_id == "winback_voucher")
    assert winback.off_policy is None  # no winback campaign held out


def test_off_policy_values_of_a_campaign_with_a_handful_of_controls_fall_back_to_the_weighted_sum() -> None:
    frame, _ = logged_campaign(60, seed=2, p_test=0.97)
    assert (frame["group"] == "control").sum() < 6
    table = evaluate_policies(frame, {"champion": np.ones(60, bool)}, 0.5, 10.0, features=["recency_score"])
    dr = table.set_index(["policy", "estimator"]).loc[("champion", "dr")]
    zeros = np.zeros(60)
    assert dr["incremental_profit"] == pytest.approx(
        doubly_robust_value(frame, np.ones(60, bool), zeros, zeros, 0.5, 10.0)[0]
    )
