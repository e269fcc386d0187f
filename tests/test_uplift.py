"""Uplift model and its evaluation (models/uplift.py): does the model find the customers a contact changes?

Protected properties: on synthetic customers whose true contact effect is heterogeneous (a bump in recency,
unrelated to the baseline response), a T-learner fitted with a realistic 10% control group ranks held-out
customers far better than random by the Qini coefficient, close to the true effect, and its predicted uplifts
correlate with the true ones; the Qini curve starts at (0, 0), ends at the whole sample's incremental responders
per customer, and cannot be flattered by the order within tied scores; the expected incremental profit is the
documented arithmetic; input with one arm only, or malformed input, is rejected.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from models.uplift import (
    LEARNERS,
    PREDICTION_COLUMNS,
    RESPONSE_COLUMNS,
    TLearnerUplift,
    UpliftModel,
    expected_incremental_profit,
    qini_auc,
    qini_curve,
)


@pytest.fixture(scope="module", autouse=True)
def _single_openmp_thread() -> Iterator[None]:
    # Gradient boosting with OpenMP threads on a busy 2-core runner can stall for minutes; one thread is fast.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def synthetic_campaign(n: int, seed: int, control_share: float = 0.1) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Customers whose response to a contact rises by 25 points only at medium recency (90-240 days).

    The baseline response depends on frequency instead, so a response model alone ranks the wrong customers.
    """
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {
            "recency_days": rng.uniform(0, 360, n),
            "frequency": rng.poisson(3, n).astype("float64"),
            "noise": rng.normal(size=n),
        }
    )
    base_rate = 0.05 + 0.10 * (features["frequency"].to_numpy() > 3)
    true_uplift = np.where((features["recency_days"] > 90) & (features["recency_days"] < 240), 0.25, 0.0)
    treatment = (rng.random(n) >= control_share).astype("int64")
    responded = (rng.random(n) < base_rate + treatment * true_uplift).astype("int64")
    margin = np.where(responded == 1, rng.gamma(2.0, 20.0, n), 0.0)
    return features, {"treatment": treatment, "responded": responded, "margin": margin, "true_uplift": true_uplift}


@pytest.fixture(scope="module")
def fitted() -> TLearnerUplift:
    features, arms = synthetic_campaign(4000, seed=0)
    return TLearnerUplift(random_state=0).fit(features, arms["treatment"], arms["responded"], arms["margin"])


@pytest.fixture(scope="module")
def holdout() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    return synthetic_campaign(4000, seed=100)


# ------------------------------------------------------------------------------------------ the T-learner
def test_model_ranks_persuadable_customers_first_by_qini(
    fitted: TLearnerUplift, holdout: tuple[pd.DataFrame, dict[str, np.ndarray]]
) -> None:
    features, arms = holdout
    treatment, responded = arms["treatment"], arms["responded"]
    model_qini = qini_auc(treatment, responded, fitted.predict(features)["response_uplift"])
    rng = np.random.default_rng(0)
    random_qinis = [qini_auc(treatment, responded, rng.random(len(features))) for _ in range(20)]
    tie_break = 1e-9 * rng.random(len(features))
    oracle_qini = qini_auc(treatment, responded, arms["true_uplift"] + tie_break)

    assert model_qini > max(random_qinis) + 0.01
    assert model_qini > 0.6 * oracle_qini  # most of what knowing the true effect would give


def test_predicted_uplift_correlates_with_the_true_effect(
    fitted: TLearnerUplift, holdout: tuple[pd.DataFrame, dict[str, np.ndarray]]
) -> None:
    features, arms = holdout
    predictions = fitted.predict(features)
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert predictions.index.equals(features.index)
    true_uplift = arms["true_uplift"]
    assert np.corrcoef(predictions["response_uplift"], true_uplift)[0, 1] > 0.6
    # The margin uplift (response uplift x responder spend) ranks customers the same way.
    assert np.corrcoef(predictions["margin_uplift"], true_uplift)[0, 1] > 0.6
    # Persuadable customers get about the true +25 points on average, the others about nothing.
    persuadable = true_uplift > 0
    assert predictions.loc[persuadable, "response_uplift"].mean() == pytest.approx(0.25, abs=0.08)
    assert predictions.loc[~persuadable, "response_uplift"].mean() == pytest.approx(0.0, abs=0.05)
    for column in ("p_response_treated", "p_response_control"):
        assert predictions[column].between(0, 1).all()
    np.testing.assert_allclose(
        predictions["response_uplift"], predictions["p_response_treated"] - predictions["p_response_control"]
    )


def test_predict_selects_the_training_columns_by_name(
    fitted: TLearnerUplift, holdout: tuple[pd.DataFrame, dict[str, np.ndarray]]
) -> None:
    features, _ = holdout
    reordered = features[["noise", "frequency", "recency_days"]].assign(extra=1.0)
    pd.testing.assert_frame_equal(fitted.predict(reordered), fitted.predict(features))
    with pytest.raises(ValueError, match="frequency"):
        fitted.predict(features.drop(columns="frequency"))


def test_control_without_responders_does_not_claim_certain_non_response() -> None:
    features, arms = synthetic_campaign(400, seed=3)
    responded = np.where(arms["treatment"] == 1, arms["responded"], 0)
    n_control = int((arms["treatment"] == 0).sum())
    model = TLearnerUplift().fit(features, arms["treatment"], responded, np.where(responded == 1, 10.0, 0.0))
    p_control = model.predict(features)["p_response_control"]
    np.testing.assert_allclose(p_control, 1 / (n_control + 2))  # Laplace's rule of succession


# ----------------------------------------------------------------------- one estimator, every learner
@pytest.mark.parametrize("learner", LEARNERS)
def test_every_learner_ranks_persuadable_customers_first(
    learner: str, holdout: tuple[pd.DataFrame, dict[str, np.ndarray]]
) -> None:
    features, arms = synthetic_campaign(4000, seed=0)
    model = UpliftModel(learner, random_state=0).fit(features, arms["treatment"], arms["responded"], arms["margin"])
    assert model.learner_ == learner
    held_out, truth = holdout
    predicted = model.predict(held_out)
    assert list(predicted.columns) == PREDICTION_COLUMNS and predicted.index.equals(held_out.index)
    treatment, responded = truth["treatment"], truth["responded"]
    rng = np.random.default_rng(0)
    random_qinis = [qini_auc(treatment, responded, rng.random(len(held_out))) for _ in range(20)]
    oracle_qini = qini_auc(treatment, responded, truth["true_uplift"] + 1e-9 * rng.random(len(held_out)))
    model_qini = qini_auc(treatment, responded, predicted["response_uplift"])
    assert model_qini > max(random_qinis) + 0.01
    assert model_qini > 0.6 * oracle_qini
    assert np.corrcoef(predicted["response_uplift"], truth["true_uplift"])[0, 1] > 0.6
    assert np.corrcoef(predicted["margin_uplift"], truth["true_uplift"])[0, 1] > 0.5
    persuadable = truth["true_uplift"] > 0
    assert predicted.loc[persuadable, "response_uplift"].mean() == pytest.approx(0.25, abs=0.08)
    assert predicted.loc[~persuadable, "response_uplift"].mean() == pytest.approx(0.0, abs=0.06)
    assert predicted[["p_response_treated", "p_response_control"]].apply(lambda c: c.between(0, 1)).all().all()
    np.testing.assert_allclose(
        predicted["response_uplift"], predicted["p_response_treated"] - predicted["p_response_control"]
    )
    np.testing.assert_allclose(predicted["margin_uplift"], predicted["margin_treated"] - predicted["margin_control"])


def confounded_campaign(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Assignment on observables: heavy buyers are contacted with probability 0.85, others 0.25; heavy buyers
    also respond far more without a contact, and a contact moves mostly the light buyers at medium recency."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({"frequency": rng.poisson(3, n).astype("float64"), "recency_days": rng.uniform(0, 360, n)})
    heavy = features["frequency"].to_numpy() > 3
    propensity = np.where(heavy, 0.85, 0.25)
    treatment = (rng.random(n) < propensity).astype("int64")
    medium_recency = (features["recency_days"] > 90) & (features["recency_days"] < 240)
    true_uplift = np.where(medium_recency, 0.20, 0.0) * np.where(heavy, 0.2, 1.0)
    responded = (rng.random(n) < np.where(heavy, 0.40, 0.05) + treatment * true_uplift).astype("int64")
    return features, {"treatment": treatment, "responded": responded, "propensity": propensity, "true": true_uplift}


@pytest.mark.parametrize("learner", LEARNERS)
def test_with_assignment_on_observables_every_learner_recovers_the_average_effect(learner: str) -> None:
    features, arms = confounded_campaign(6000, seed=0)
    treated, responded = arms["treatment"], arms["responded"]
    naive = responded[treated == 1].mean() - responded[treated == 0].mean()
    true_average = arms["true"].mean()
    assert naive - true_average > 0.15  # the raw comparison credits the contact with the heavy buyers' habit
    for propensity in (None, arms["propensity"]):
        model = UpliftModel(learner).fit(features, treated, responded, propensity=propensity)
        predicted = model.predict(features)
        assert list(predicted.columns) == RESPONSE_COLUMNS  # no value, no margin columns
        assert predicted["response_uplift"].mean() == pytest.approx(true_average, abs=0.03)


def test_auto_picks_the_learner_with_the_best_cross_validated_qini() -> None:
    features, arms = synthetic_campaign(3000, seed=4)
    model = UpliftModel("auto", random_state=0).fit(features, arms["treatment"], arms["responded"], arms["margin"])
    assert set(model.cv_qini_) == set(LEARNERS) and all(np.isfinite(q) for q in model.cv_qini_.values())
    assert model.learner_ == max(model.cv_qini_, key=model.cv_qini_.get)
    assert all(q > 0 for q in model.cv_qini_.values())  # every learner finds the persuadable customers
    alone = UpliftModel(model.learner_, random_state=0).fit(
        features, arms["treatment"], arms["responded"], arms["margin"]
    )
    pd.testing.assert_frame_equal(model.predict(features), alone.predict(features))


def test_the_t_learner_of_the_estimator_is_the_t_learner(
    fitted: TLearnerUplift, holdout: tuple[pd.DataFrame, dict[str, np.ndarray]]
) -> None:
    features, arms = synthetic_campaign(4000, seed=0)
    model = UpliftModel("t", random_state=0).fit(features, arms["treatment"], arms["responded"], arms["margin"])
    pd.testing.assert_frame_equal(model.predict(holdout[0]), fitted.predict(holdout[0]))


def test_the_estimator_rejects_bad_input_naming_the_argument() -> None:
    features, arms = synthetic_campaign(300, seed=1)
    treatment, responded, margin = arms["treatment"], arms["responded"], arms["margin"]
    with pytest.raises(ValueError, match="learner must be one of"):
        UpliftModel("s")
    with pytest.raises(ValueError, match="both arms"):
        UpliftModel("dr").fit(features, np.ones(300, dtype=int), responded)
    with pytest.raises(ValueError, match="same number of rows"):
        UpliftModel("x").fit(features, treatment, responded, margin[:-1])
    with pytest.raises(ValueError, match="propensity must be a probability"):
        UpliftModel("dr").fit(features, treatment, responded, propensity=np.r_[np.full(299, 0.9), 1.0])
    with pytest.raises(ValueError, match="value must not contain NaN"):
        UpliftModel("t").fit(features, treatment, responded, np.full(300, np.nan))
    model = UpliftModel("x").fit(features, treatment, responded)
    with pytest.raises(ValueError, match="frequency"):
        model.predict(features.drop(columns="frequency"))
    assert model.predict(features.iloc[:0]).columns.tolist() == RESPONSE_COLUMNS


# -------------------------------------------------------------------------------------------------- Qini
def test_qini_curve_endpoints_against_hand_computation() -> None:
    treatment = np.array([1, 1, 0, 1, 0, 1, 1, 0])
    responded = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    fractions, gains = qini_curve(treatment, responded, score)
    assert (fractions[0], gains[0]) == (0.0, 0.0)
    # Whole sample: 3 of 5 treated responded, 1 of 3 controls: Q(N) = 3 - 1 * 5 / 3, per customer of 8.
    assert fractions[-1] == 1.0
    assert gains[-1] == pytest.approx((3 - 1 * 5 / 3) / 8)
    # After the top 3 (treated 1, treated 0, control 0): 1 - 0 * 2 / 1.
    assert gains[3] == pytest.approx(1 / 8)
    # Only treated customers so far: no control to scale, so Q is the treated responders.
    assert gains[1] == pytest.approx(1 / 8)


def test_qini_curve_cannot_be_flattered_by_the_order_within_ties() -> None:
    treatment = np.array([1, 0, 1, 0, 1, 0])
    responded = np.array([1, 0, 0, 1, 1, 0])
    tied = np.zeros(6)
    fractions, gains = qini_curve(treatment, responded, tied)
    np.testing.assert_array_equal(fractions, [0.0, 1.0])  # one tie group: a single step
    reordered = qini_curve(treatment[::-1], responded[::-1], tied)
    np.testing.assert_array_equal(gains, reordered[1])
    assert qini_auc(treatment, responded, tied) == pytest.approx(0.0)  # the same as random targeting


def test_qini_auc_sign_follows_the_ranking_quality() -> None:
    _, arms = synthetic_campaign(3000, seed=5)
    treatment, responded, true_uplift = arms["treatment"], arms["responded"], arms["true_uplift"]
    assert qini_auc(treatment, responded, true_uplift) > 0.01
    assert qini_auc(treatment, responded, -true_uplift) < -0.01


def test_qini_inputs_must_align() -> None:
    with pytest.raises(ValueError, match="same length"):
        qini_curve([1, 0], [1, 0, 1], [0.1, 0.2])


# ---------------------------------------------------------------------------------------------- profit
def test_expected_incremental_profit_arithmetic() -> None:
    profit = expected_incremental_profit(
        margin_uplift=[12.0, 3.0, 0.0], p_response_treated=[0.5, 0.2, 0.0], contact_cost=1.5, incentive_cost=4.0
    )
    # margin uplift - contact - voucher paid to every expected treated responder.
    np.testing.assert_allclose(profit, [12 - 1.5 - 4 * 0.5, 3 - 1.5 - 4 * 0.2, -1.5])


# -------------------------------------------------------------------------------------------- bad input
def test_single_arm_input_is_rejected() -> None:
    features, arms = synthetic_campaign(200, seed=1)
    for arm in (0, 1):
        with pytest.raises(ValueError, match="both arms"):
            TLearnerUplift().fit(features, np.full(200, arm), arms["responded"], arms["margin"])


def test_malformed_input_is_rejected() -> None:
    features, arms = synthetic_campaign(200, seed=1)
    treatment, responded, margin = arms["treatment"], arms["responded"], arms["margin"]
    with pytest.raises(ValueError, match="same number of rows"):
        TLearnerUplift().fit(features, treatment[:-1], responded, margin)
    with pytest.raises(ValueError, match="0/1"):
        TLearnerUplift().fit(features, treatment * 2, responded, margin)
    with pytest.raises(ValueError, match="NaN"):
        TLearnerUplift().fit(features, treatment, responded, np.where(responded == 1, np.nan, 0.0))
    with pytest.raises(ValueError, match="base_learner"):
        TLearnerUplift(base_learner="forest")


def test_a_saved_model_keeps_its_version_when_saved_again(tmp_path) -> None:
    """The version is a function of the model: the reloaded model (as another process sees it) has the same."""
    from models.artefacts import load_artefact, save_artefact

    features, truth = synthetic_campaign(2000, seed=5)
    model = TLearnerUplift(random_state=0).fit(features, truth["treatment"], truth["responded"], truth["margin"])
    version = save_artefact(model, tmp_path / "fresh", {"as_of_month": "2025-04-01"})
    reloaded, metadata = load_artefact(tmp_path / "fresh")
    assert metadata["model_version"] == version
    assert save_artefact(reloaded, tmp_path / "again", {"as_of_month": "2025-04-01"}) == version


@pytest.mark.parametrize("learner", ["t", "x", "dr", "auto"])
def test_a_feature_nobody_has_yet_is_ignored_not_an_error(learner: str) -> None:
    """The e-mail open rate is missing for every customer before the first campaign: each learner fits and
    predicts as without the column (scikit-learn's histogram binning alone fails on an all-missing column)."""
    from models.uplift import UpliftModel

    rng = np.random.default_rng(0)
    n = 400
    known = pd.DataFrame({"a": rng.normal(size=n), "partly": np.where(rng.random(n) < 0.5, np.nan, rng.random(n))})
    treated = rng.integers(0, 2, n)
    responded = (rng.random(n) < 0.2 + 0.2 * (known["a"] > 0) * treated).astype(int)
    value = rng.gamma(2, 10, n) * responded
    with_empty = known.assign(open_rate=np.nan)
    predicted = UpliftModel(learner, random_state=0).fit(with_empty, treated, responded, value).predict(with_empty)
    without = UpliftModel(learner, random_state=0).fit(known, treated, responded, value).predict(known)
    np.testing.assert_allclose(predicted.to_numpy(dtype=float), without.to_numpy(dtype=float), rtol=1e-9)
