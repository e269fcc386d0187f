"""Learn from measured campaigns: who does a contact actually change?

T-learner (Kunzel, Sekhon, Bickel & Yu 2019, "Metalearners for estimating heterogeneous treatment effects
using machine learning", PNAS 116(10)): one response model fitted on the test (treated) customers, one on the
control customers; the uplift of a customer is the difference of the two predictions,

    response_uplift(x) = P(respond | x, treated) - P(respond | x, control).

Base learner: shallow, heavily shrunk gradient-boosted trees (``HistGradientBoostingClassifier``: depth 2,
learning rate 0.05, 100 trees, L2 penalty 10, leaves of at least max(20, n/20) customers, no early stopping).
Why: control groups are small (10% of a campaign: tens to a few hundred customers) and a T-learner's uplift
is the difference of two separately fitted models, so the variance of the small (control) model dominates the
error; but a contact's effect is typically non-linear in the inputs (it peaks for customers who are drifting
away, not for the very recent nor the long gone; it steps with recency), which a linear-logistic arm cannot
represent and a deep tree ensemble over-fits. Depth-2 trees (pairwise interactions at most) with large leaves
and a fixed, small number of shrunk steps are the compromise; early stopping is off because a validation split
of a 100-customer control group is noise. On the simulated benchmarks of ``tests/test_uplift.py`` (and on
step-shaped and bump-shaped effects, 1k-20k customers, 10% control) it ranked the true uplift better than
cross-validated L2 logistic regression and than deeper or less regularised boosting; only for an effect that
is linear in the logit does the logistic arm win, by a small margin. ``base_learner="logistic"`` (L2 logistic
regression on signed-log, standardised inputs, penalty by 5-fold cross-validated log-loss) remains available.

Margin. The response-window margin is zero for non-responders and skewed for responders, so it is modelled as
a hurdle: ``E[margin | x, arm] = P(respond | x, arm) * E[margin | x, responded, arm]``. The spend of a
responder is fitted on the responders of *both* arms with a treatment indicator (ridge regression, penalty by
cross-validation): responders are few in a control group, and pooling lets the control arm borrow the shape of
spend while the indicator still lets a voucher shift it.

One estimator for every learner: :class:`UpliftModel` (``learner="t" | "x" | "dr" | "auto"``), sklearn style,
``fit(X, treatment, response, value=None, propensity=None)`` and ``predict(X)``:

- ``"t"``: the T-learner above (:class:`TLearnerUplift`).
- ``"x"``: the X-learner (Kunzel et al. 2019): the two arms' outcome models impute each customer's effect
  (a treated customer's outcome minus the control model's prediction for her, and the reverse for a control),
  two effect models learn those imputations, and their predictions are averaged with the propensity score as
  weight, ``tau(x) = e(x) tau_0(x) + (1 - e(x)) tau_1(x)``. The imputations are cross-fitted: each customer's
  comes from outcome models fitted without her fold, so they do not over-fit her own outcome.
- ``"dr"``: the DR-learner (Kennedy 2023, "Towards optimal doubly robust estimation of heterogeneous causal
  effects", EJS 17(2)): with cross-fitted outcome models ``mu_0, mu_1`` and propensity ``e`` (each customer's
  from models fitted on the other folds), the doubly robust pseudo-outcome
  ``phi = mu_1(x) - mu_0(x) + T (Y - mu_1(x)) / e(x) - (1 - T) (Y - mu_0(x)) / (1 - e(x))`` is regressed on x.
- ``"auto"``: per fit (so per offer), the learner whose out-of-fold predictions have the largest Qini
  coefficient, averaged over stratified folds, on the outcome that decides (the value when given, else the
  response); every learner's score is kept in ``cv_qini_``.

The propensity ``e(x) = P(treated | x)``: the assignment probabilities stored with the campaigns when given
(``propensity``), else estimated (cross-fitted L2 logistic regression); clipped to [0.02, 0.98] either way.

Evaluation: :func:`qini_auc` (Radcliffe 2007) on held-out test and control customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from models.parallelism import fit_threads

BASE_LEARNERS = ("logistic", "gradient_boosting")

PREDICTION_COLUMNS = [
    "p_response_treated",
    "p_response_control",
    "response_uplift",
    "margin_treated",
    "margin_control",
    "margin_uplift",
]


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: tames heavy-tailed inputs (revenue, tenure) before a linear model."""
    return np.sign(values) * np.log1p(np.abs(values))


class _ConstantProbability:
    """Fallback response model for an arm with a single outcome class (e.g. no control responder yet).

    Predicts the arm's response rate shrunk towards 1/2 by one pseudo-observation per class (Laplace's rule
    of succession), so a control group with 0 responders does not claim a certain non-response.
    """

    def __init__(self, responses: np.ndarray) -> None:
        self.probability = (float(np.sum(responses)) + 1.0) / (len(responses) + 2.0)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 (sklearn API)
        n = len(X)
        return np.column_stack([np.full(n, 1 - self.probability), np.full(n, self.probability)])


def shallow_boosting(n_rows: int, random_state: int) -> dict[str, Any]:
    """The base learner's settings (module docstring): depth 2, learning rate 0.05, 100 trees, L2 penalty 10,
    leaves of at least max(20, n/20) rows, no early stopping."""
    return {
        "learning_rate": 0.05,
        "max_iter": 100,
        "max_depth": 2,
        "min_samples_leaf": max(20, n_rows // 20),
        "l2_regularization": 10.0,
        "early_stopping": False,
        "random_state": random_state,
    }


class EmptyFeaturesAsZero(TransformerMixin, BaseEstimator):
    """Sets the features that were missing in every training row to 0, and passes every other value through
    (missing values included: the trees route them). A feature nobody has yet (the e-mail open rate before any
    campaign) carries no information, and scikit-learn's histogram binning fails on a column with no value
    (``HistGradientBoosting*``, 1.9: "window shape cannot be larger than input array shape")."""

    def fit(self, X, y=None):  # noqa: N803 (sklearn API)
        matrix = validate_data(self, X, ensure_all_finite="allow-nan", dtype="float64", reset=True)
        self.empty_features_ = np.isnan(matrix).all(axis=0)
        return self

    def transform(self, X):  # noqa: N803 (sklearn API)
        check_is_fitted(self, "empty_features_")
        matrix = validate_data(self, X, ensure_all_finite="allow-nan", dtype="float64", reset=False, copy=True)
        matrix[:, self.empty_features_] = 0.0
        return matrix


def shallow_boosted_classifier(n_rows: int, random_state: int) -> Pipeline:
    """The base learner as a classifier (:func:`shallow_boosting`), features missing in every row set to 0."""
    return make_pipeline(
        EmptyFeaturesAsZero(), HistGradientBoostingClassifier(**shallow_boosting(n_rows, random_state))
    )


def _as_matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:  # noqa: N803 (sklearn API)
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(X, dtype="float64")


def _prediction_inputs(model: Any, X: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, pd.Index | None]:  # noqa: N803
    """The matrix to predict on, its columns taken by the names `model` was fitted with, and the frame's index."""
    if isinstance(X, pd.DataFrame) and hasattr(model, "feature_names_in_"):
        missing = [c for c in model.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing feature column(s) {missing}")
        X = X[list(model.feature_names_in_)]  # noqa: N806
    return _as_matrix(X), (X.index if isinstance(X, pd.DataFrame) else None)


class TLearnerUplift:
    """Two-model uplift estimator for response and margin (see module docstring).

    ``fit(X, treatment, responded, margin)`` with ``treatment`` 1 = test (contacted), 0 = control;
    ``predict(X)`` returns :data:`PREDICTION_COLUMNS`.
    """

    def __init__(self, random_state: int = 0, base_learner: str = "gradient_boosting", cv_folds: int = 5) -> None:
        if base_learner not in BASE_LEARNERS:
            raise ValueError(f"base_learner must be one of {BASE_LEARNERS}, got {base_learner!r}")
        self.random_state = random_state
        self.base_learner = base_learner
        self.cv_folds = cv_folds

    # ------------------------------------------------------------------------------------------ models
    def _response_model(self, n_rows: int) -> Pipeline:
        if self.base_learner == "gradient_boosting":
            return shallow_boosted_classifier(n_rows, self.random_state)
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            FunctionTransformer(signed_log1p),
            StandardScaler(),
            LogisticRegressionCV(
                Cs=np.logspace(-3, 1, 9),
                l1_ratios=(0.0,),
                cv=self.cv_folds,
                scoring="neg_log_loss",
                max_iter=2000,
                use_legacy_attributes=False,
            ),
        )

    def _spend_model(self) -> Pipeline:
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            FunctionTransformer(signed_log1p),
            StandardScaler(),
            RidgeCV(alphas=np.logspace(-2, 4, 13)),
        )

    def _fit_response(self, X: np.ndarray, responded: np.ndarray) -> Any:  # noqa: N803
        counts = np.bincount(responded.astype("int64"), minlength=2)
        if counts.min() < max(2, self.cv_folds):
            return _ConstantProbability(responded)
        return self._response_model(len(responded)).fit(X, responded)

    # -------------------------------------------------------------------------------------------- API
    def fit(
        self,
        X: pd.DataFrame | np.ndarray,  # noqa: N803 (sklearn API)
        treatment: Sequence[int] | np.ndarray,
        responded: Sequence[int] | np.ndarray,
        margin: Sequence[float] | np.ndarray,
    ) -> TLearnerUplift:
        """Fit the treated and control response models and the pooled responder-spend model."""
        features = _as_matrix(X)
        treated = np.asarray(treatment).astype("int64")
        response = np.asarray(responded).astype("int64")
        value = np.asarray(margin, dtype="float64")
        if not (len(features) == len(treated) == len(response) == len(value)):
            raise ValueError("X, treatment, responded and margin must have the same number of rows")
        if not np.isin(treated, (0, 1)).all() or not np.isin(response, (0, 1)).all():
            raise ValueError("treatment and responded must be 0/1")
        if np.isnan(value).any():
            raise ValueError("margin must not contain NaN (0 for customers without orders)")
        n_treated, n_control = int(treated.sum()), int((1 - treated).sum())
        if n_treated == 0 or n_control == 0:
            raise ValueError(f"both arms are needed (treated {n_treated}, control {n_control})")
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_treated_, self.n_control_ = n_treated, n_control

        with fit_threads(len(features)):
            self._fit_arms(features, treated, response, value)
        return self

    def _fit_arms(self, features: np.ndarray, treated: np.ndarray, response: np.ndarray, value: np.ndarray) -> None:
        self.response_treated_ = self._fit_response(features[treated == 1], response[treated == 1])
        self.response_control_ = self._fit_response(features[treated == 0], response[treated == 0])

        responders = response == 1
        if responders.sum() >= 2:
            spend_inputs = np.column_stack([features[responders], treated[responders]])
            self.spend_ = self._spend_model().fit(spend_inputs, value[responders])
            self.mean_spend_ = float(value[responders].mean())
        else:
            self.spend_ = None
            self.mean_spend_ = float(value[responders].mean()) if responders.any() else 0.0
        # Margin of non-responders (normally 0: returns or adjustments without an order).
        self.non_responder_margin_ = float(value[~responders].mean()) if (~responders).any() else 0.0

    def _spend(self, features: np.ndarray, arm: int) -> np.ndarray:
        if self.spend_ is None:
            return np.full(len(features), self.mean_spend_)
        inputs = np.column_stack([features, np.full(len(features), arm)])
        return self.spend_.predict(inputs)

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:  # noqa: N803 (sklearn API)
        """Per-customer response probabilities, expected margins and their uplifts (treated - control)."""
        features, index = _prediction_inputs(self, X)
        if len(features) == 0:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in PREDICTION_COLUMNS}, index=index)
        p_treated = self.response_treated_.predict_proba(features)[:, 1]
        p_control = self.response_control_.predict_proba(features)[:, 1]
        margin_treated = p_treated * self._spend(features, 1) + (1 - p_treated) * self.non_responder_margin_
        margin_control = p_control * self._spend(features, 0) + (1 - p_control) * self.non_responder_margin_
        return pd.DataFrame(
            {
                "p_response_treated": p_treated,
                "p_response_control": p_control,
                "response_uplift": p_treated - p_control,
                "margin_treated": margin_treated,
                "margin_control": margin_control,
                "margin_uplift": margin_treated - margin_control,
            },
            index=index,
        )


# ------------------------------------------------------------------------------------ one estimator
LEARNERS = ("t", "x", "dr")
#: Propensity scores are kept inside [PROPENSITY_CLIP, 1 - PROPENSITY_CLIP] (inverse weights at most 50).
PROPENSITY_CLIP = 0.02
RESPONSE_COLUMNS = ["p_response_treated", "p_response_control", "response_uplift"]


class _ConstantValue:
    """Fallback regression for too few rows: the mean (0 without rows)."""

    def __init__(self, values: np.ndarray) -> None:
        self.value = float(np.mean(values)) if len(values) else 0.0

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803 (sklearn API)
        return np.full(len(X), self.value)


def _shallow_regressor(n_rows: int, random_state: int) -> Pipeline:
    """The regression counterpart of the T-learner's base learner: depth 2, shrunk, large leaves."""
    return make_pipeline(EmptyFeaturesAsZero(), HistGradientBoostingRegressor(**shallow_boosting(n_rows, random_state)))


def _check_uplift_inputs(features, treated, response, value, propensity) -> None:
    rows = {len(features), len(treated), len(response)} | ({len(value)} if value is not None else set())
    if propensity is not None:
        rows.add(len(propensity))
    if len(rows) != 1:
        raise ValueError("X, treatment, response, value and propensity must have the same number of rows")
    if not np.isin(treated, (0, 1)).all() or not np.isin(response, (0, 1)).all():
        raise ValueError("treatment and response must be 0/1")
    if value is not None and np.isnan(value).any():
        raise ValueError("value must not contain NaN (0 for customers without orders)")
    if propensity is not None and not ((propensity > 0) & (propensity < 1)).all():
        raise ValueError("propensity must be a probability strictly between 0 and 1 (the chance of being treated)")
    n_treated, n_control = int(treated.sum()), int((1 - treated).sum())
    if n_treated == 0 or n_control == 0:
        raise ValueError(f"both arms are needed (treated {n_treated}, control {n_control})")


class UpliftModel:
    """Uplift of a contact on response (and on value, e.g. margin), by the T-, X- or DR-learner, or the best of
    them by cross-validated Qini (``learner="auto"``); see the module docstring.

    ``fit(X, treatment, response, value=None, propensity=None)``: ``treatment`` 1 = contacted, 0 = not;
    ``response`` 0/1; ``value`` the outcome in money (0 without an order); ``propensity`` each customer's
    probability of having been treated, when the assignment recorded it.
    ``predict(X)``: ``response_uplift`` with ``p_response_treated`` and ``p_response_control``, and, when fitted
    with a value, ``margin_treated``, ``margin_control`` and ``margin_uplift``.
    Fitted attributes: ``learner_`` (the learner used), ``cv_qini_`` (with ``"auto"``: each learner's score).
    """

    def __init__(self, learner: str = "auto", random_state: int = 0, cv_folds: int = 3) -> None:
        if learner not in (*LEARNERS, "auto"):
            raise ValueError(f"learner must be one of {(*LEARNERS, 'auto')}, got {learner!r}")
        if cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, got {cv_folds}")
        self.learner = learner
        self.random_state = random_state
        self.cv_folds = cv_folds

    # ------------------------------------------------------------------------------------------ API
    def fit(
        self,
        X: pd.DataFrame | np.ndarray,  # noqa: N803 (sklearn API)
        treatment: Sequence[int] | np.ndarray,
        response: Sequence[int] | np.ndarray,
        value: Sequence[float] | np.ndarray | None = None,
        propensity: Sequence[float] | np.ndarray | None = None,
    ) -> UpliftModel:
        features = _as_matrix(X)
        treated = np.asarray(treatment).astype("int64")
        responded = np.asarray(response).astype("int64")
        values = None if value is None else np.asarray(value, dtype="float64")
        known = None if propensity is None else np.asarray(propensity, dtype="float64")
        _check_uplift_inputs(features, treated, responded, values, known)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_treated_, self.n_control_ = int(treated.sum()), int((1 - treated).sum())
        self.has_value_ = values is not None
        with fit_threads(len(features)):
            if self.learner == "auto":
                self.cv_qini_ = {
                    learner: self._cross_validated_qini(learner, features, treated, responded, values, known)
                    for learner in LEARNERS
                }
                scored = {learner: q for learner, q in self.cv_qini_.items() if np.isfinite(q)}
                self.learner_ = max(scored, key=scored.get) if scored else "t"
            else:
                self.cv_qini_ = {}
                self.learner_ = self.learner
            self.fitted_ = self._fit_learner(self.learner_, features, treated, responded, values, known)
        return self

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:  # noqa: N803 (sklearn API)
        features, index = _prediction_inputs(self, X)
        columns = PREDICTION_COLUMNS if self.has_value_ else RESPONSE_COLUMNS
        if len(features) == 0:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}, index=index)
        return pd.DataFrame(self.fitted_.predict(features), index=index)[columns]

    # ------------------------------------------------------------------------------------ internals
    def _fit_learner(self, learner, features, treated, responded, values, known):
        if learner == "t":
            return _TArms(self.random_state).fit(features, treated, responded, values)
        return _EffectLearner(learner, self.random_state, self.cv_folds).fit(
            features, treated, responded, values, known
        )

    def _cross_validated_qini(self, learner, features, treated, responded, values, known) -> float:
        """Mean Qini coefficient of `learner`'s predictions on each held-out fold (stratified by arm and
        response), on the value when given, else on the response."""
        outcome = values if values is not None else responded.astype("float64")
        decision = "margin_uplift" if values is not None else "response_uplift"
        folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        scores = []
        for train, held_out in folds.split(features, 2 * treated + responded):
            try:
                fitted = self._fit_learner(
                    learner,
                    features[train],
                    treated[train],
                    responded[train],
                    None if values is None else values[train],
                    None if known is None else known[train],
                )
            except ValueError:  # a fold without one of the arms: no score from it
                continue
            predicted = fitted.predict(features[held_out])[decision]
            scores.append(qini_auc(treated[held_out], outcome[held_out], predicted))
        finite = [score for score in scores if np.isfinite(score)]
        return float(np.mean(finite)) if finite else float("nan")


class _TArms:
    """The T-learner behind :class:`UpliftModel` (the value, when absent, is left out of the predictions)."""

    def __init__(self, random_state: int) -> None:
        self.random_state = random_state

    def fit(self, features, treated, responded, values) -> _TArms:
        margin = values if values is not None else np.zeros(len(responded))
        self.model_ = TLearnerUplift(random_state=self.random_state).fit(features, treated, responded, margin)
        return self

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return {column: values.to_numpy() for column, values in self.model_.predict(features).items()}


class _EffectLearner:
    """The X- or DR-learner on the response and, when given, on the value (see the module docstring)."""

    def __init__(self, learner: str, random_state: int, cv_folds: int) -> None:
        self.learner = learner
        self.random_state = random_state
        self.cv_folds = cv_folds

    # nuisance models
    def _classifier(self, features, labels):
        counts = np.bincount(labels.astype("int64"), minlength=2)
        if counts.min() < 2:
            return _ConstantProbability(labels)
        return shallow_boosted_classifier(len(labels), self.random_state).fit(features, labels)

    def _regressor(self, features, targets):
        if len(targets) < 40:
            return _ConstantValue(targets)
        return _shallow_regressor(len(targets), self.random_state).fit(features, targets)

    def _propensity_model(self, features, treated):
        counts = np.bincount(treated, minlength=2)
        if counts.min() < 2 * self.cv_folds:
            return _ConstantProbability(treated)
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            FunctionTransformer(signed_log1p),
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=2000),
        ).fit(features, treated)

    def _outcome_model(self, features, outcome, binary: bool):
        return self._classifier(features, outcome) if binary else self._regressor(features, outcome)

    @staticmethod
    def _predict_outcome(model, features, binary: bool) -> np.ndarray:
        return model.predict_proba(features)[:, 1] if binary else model.predict(features)

    def _cross_fitted(self, features, treated, outcomes, known):
        """Out-of-fold mu_0, mu_1 per outcome, and e (the known propensity when given)."""
        n = len(treated)
        mu0 = {name: np.empty(n) for name in outcomes}
        mu1 = {name: np.empty(n) for name in outcomes}
        propensity = np.empty(n) if known is None else known.copy()
        folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        for train, held_out in folds.split(features, treated):
            control, test = train[treated[train] == 0], train[treated[train] == 1]
            for name, (outcome, binary) in outcomes.items():
                mu0[name][held_out] = self._predict_outcome(
                    self._outcome_model(features[control], outcome[control], binary), features[held_out], binary
                )
                mu1[name][held_out] = self._predict_outcome(
                    self._outcome_model(features[test], outcome[test], binary), features[held_out], binary
                )
            if known is None:
                model = self._propensity_model(features[train], treated[train])
                propensity[held_out] = model.predict_proba(features[held_out])[:, 1]
        return mu0, mu1, np.clip(propensity, PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)

    def fit(self, features, treated, responded, values, known) -> _EffectLearner:
        outcomes = {"response": (responded, True)}
        if values is not None:
            outcomes["margin"] = (values, False)
        mu0, mu1, propensity = self._cross_fitted(features, treated, outcomes, known)
        control, test = treated == 0, treated == 1
        self.effects_: dict[str, Any] = {}
        self.baseline_: dict[str, Any] = {}
        for name, (outcome, binary) in outcomes.items():
            self.baseline_[name] = (self._outcome_model(features[control], outcome[control], binary), binary)
            if self.learner == "x":
                imputed_treated = outcome[test] - mu0[name][test]
                imputed_control = mu1[name][control] - outcome[control]
                self.effects_[name] = (
                    self._regressor(features[control], imputed_control),
                    self._regressor(features[test], imputed_treated),
                )
            else:
                pseudo = (
                    mu1[name]
                    - mu0[name]
                    + treated * (outcome - mu1[name]) / propensity
                    - (1 - treated) * (outcome - mu0[name]) / (1 - propensity)
                )
                self.effects_[name] = self._regressor(features, pseudo)
        if self.learner == "x":
            self.propensity_ = self._propensity_model(features, treated)
        return self

    def _effect(self, name: str, features: np.ndarray) -> np.ndarray:
        if self.learner == "dr":
            return self.effects_[name].predict(features)
        from_control, from_treated = self.effects_[name]
        weight = np.clip(self.propensity_.predict_proba(features)[:, 1], PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)
        return weight * from_control.predict(features) + (1 - weight) * from_treated.predict(features)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        model, binary = self.baseline_["response"]
        p_control = self._predict_outcome(model, features, binary)
        p_treated = np.clip(p_control + self._effect("response", features), 0.0, 1.0)
        predicted = {
            "p_response_treated": p_treated,
            "p_response_control": p_control,
            "response_uplift": p_treated - p_control,
        }
        if "margin" in self.effects_:
            model, binary = self.baseline_["margin"]
            margin_control = self._predict_outcome(model, features, binary)
            margin_uplift = self._effect("margin", features)
            predicted |= {
                "margin_treated": margin_control + margin_uplift,
                "margin_control": margin_control,
                "margin_uplift": margin_uplift,
            }
        return predicted


# ------------------------------------------------------------------------------------------- evaluation
def qini_curve(
    treatment: Sequence[int] | np.ndarray,
    responded: Sequence[float] | np.ndarray,
    uplift_score: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Radcliffe's (2007) Qini curve: incremental responders when targeting the top fraction by score.

    Customers sorted by decreasing score; after the top ``k`` (of ``N``), with ``R_t, N_t`` (``R_c, N_c``)
    the responders and customers of the treated (control) group among them,

        Q(k) = R_t(k) - R_c(k) * N_t(k) / N_c(k)     (0 while N_c(k) = 0),

    expressed per customer of the whole sample (divided by ``N``). Tied scores are one step (the curve is
    evaluated only at the end of each tie group), so the order within ties cannot flatter a model.
    Returns ``(fraction_targeted, incremental_responders_per_customer)`` starting at ``(0, 0)``.
    """
    counts = _cumulative_counts_at_ties(treatment, responded, uplift_score)
    if counts is None:
        return np.zeros(1), np.zeros(1)
    top, n_t, n_c, r_t, r_c, n = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled_control = np.where(n_c > 0, r_c * n_t / n_c, 0.0)
    return np.r_[0.0, top / n], np.r_[0.0, (r_t - scaled_control) / n]


def _cumulative_counts_at_ties(treatment, responded, uplift_score):
    """Customers sorted by decreasing score, at the end of every tie group: the number targeted ``k``, the
    treated and control customers ``N_t, N_c`` and responders ``R_t, R_c`` among them, and ``N``; None when empty.
    """
    t = np.asarray(treatment, dtype="float64")
    y = np.asarray(responded, dtype="float64")
    s = np.asarray(uplift_score, dtype="float64")
    if not (t.shape == y.shape == s.shape) or t.ndim != 1:
        raise ValueError("treatment, responded and uplift_score must be 1-d arrays of the same length")
    if len(s) == 0:
        return None
    order = np.argsort(-s, kind="stable")
    t, y, s = t[order], y[order], s[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return (
        ends + 1.0,
        np.cumsum(t)[ends],
        np.cumsum(1 - t)[ends],
        np.cumsum(t * y)[ends],
        np.cumsum((1 - t) * y)[ends],
        len(s),
    )


def qini_auc(
    treatment: Sequence[int] | np.ndarray,
    responded: Sequence[float] | np.ndarray,
    uplift_score: Sequence[float] | np.ndarray,
) -> float:
    """Area between the Qini curve and the random-targeting line (Radcliffe 2007's Qini coefficient, unnormalised).

    Both curves run from (0, 0) to (1, Q(N)/N); the area (trapezoidal rule) is in incremental responders per
    customer, so it compares models on the same held-out sample: > 0 ranks persuadable customers first,
    about 0 is no better than random, < 0 is worse.
    """
    fractions, gains = qini_curve(treatment, responded, uplift_score)
    if len(fractions) < 2:
        return float("nan")
    random_line = fractions * gains[-1]
    return float(np.trapezoid(gains - random_line, fractions))


def uplift_curve(
    treatment: Sequence[int] | np.ndarray,
    responded: Sequence[float] | np.ndarray,
    uplift_score: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The uplift curve (Rzepakowski & Jaroszewicz 2012; Gutierrez & Gerardy 2017): after the top ``k`` by score,

        U(k) = (R_t(k) / N_t(k) - R_c(k) / N_c(k)) * k       (0 while either group is empty),

    per customer of the whole sample (divided by ``N``); tied scores are one step, as in :func:`qini_curve`.
    Unlike the Qini curve it compares response *rates*, so it does not depend on the test/control split.
    """
    counts = _cumulative_counts_at_ties(treatment, responded, uplift_score)
    if counts is None:
        return np.zeros(1), np.zeros(1)
    top, n_t, n_c, r_t, r_c, n = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = np.where((n_t > 0) & (n_c > 0), r_t / n_t - r_c / n_c, 0.0)
    return np.r_[0.0, top / n], np.r_[0.0, difference * top / n]


def auuc(
    treatment: Sequence[int] | np.ndarray,
    responded: Sequence[float] | np.ndarray,
    uplift_score: Sequence[float] | np.ndarray,
) -> float:
    """Area between the uplift curve and the random-targeting line (incremental responders per customer): > 0
    ranks the customers a contact changes first, about 0 is random, < 0 worse than random."""
    fractions, gains = uplift_curve(treatment, responded, uplift_score)
    if len(fractions) < 2:
        return float("nan")
    return float(np.trapezoid(gains - fractions * gains[-1], fractions))


def expected_incremental_profit(
    margin_uplift: Any, p_response_treated: Any, contact_cost: float, incentive_cost: float
) -> np.ndarray:
    """Expected incremental profit of contacting a customer.

    ``margin_uplift - contact_cost - incentive_cost * p_response_treated``: the extra gross margin the contact
    causes, minus the contact, minus the voucher paid to every treated responder (including those who would
    have bought anyway). Vectorised over customers.
    """
    return (
        np.asarray(margin_uplift, dtype="float64")
        - float(contact_cost)
        - float(incentive_cost) * np.asarray(p_response_treated, dtype="float64")
    )
