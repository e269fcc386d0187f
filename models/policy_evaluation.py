"""Champion and challenger: is a newly trained targeting policy better than the one in use?

Both policies are judged on campaigns neither was trained on: for each offer, the campaigns of the most recent
delivery month are held out, the challenger is trained on the earlier ones, and the champion (trained a month
before) has never seen them either. A held-out campaign is a randomised experiment: among its selected
customers, test and control were assigned at random with a known probability. So for any subset ``S`` a policy
would contact, the incremental profit of contacting ``S`` is estimated without a model (Hajek's ratio form of
inverse-propensity weighting; Horvitz & Thompson 1952, Hajek 1971):

    value(S) = |S| * ( sum_{S,test} w (margin - incentive * responded) / sum_{S,test} w
                       - sum_{S,control} w margin / sum_{S,control} w ) - |S| * contact_cost,

with ``w = 1 / P(test)`` for test and ``1 / P(control)`` for control customers. A policy contacts the
customers whose expected incremental profit is positive (a randomised pilot contacts everyone it is shown);
contacting nobody is worth 0. The challenger replaces the champion only when its held-out *gain* over the
champion, ``value(S_challenger) - value(S_champion)`` on the same customers, has a 95% interval above zero: a
point estimate that wins by noise keeps the champion. The gain's standard error comes from the influence
function of the two Hajek estimates (delta method), paired on the same customers, so the customers both policies
select cancel out. The decision records the estimate and its interval. Qini coefficient and AUUC of both on
the held-out customers are recorded as evidence of ranking quality.

This evaluates selections *within* the held-out campaigns' audience (customers an earlier policy selected or
explored); it is the standard off-policy evaluation with logged randomised data (Li et al. 2011, "Unbiased
offline evaluation of contextual-bandit-based news article recommendation algorithms", WSDM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from models.uplift import UpliftModel, auuc, qini_auc


@dataclass
class PolicyValue:
    """A policy's estimated incremental profit on held-out campaigns, and the evidence behind it."""

    value: float  # EUR, estimated incremental profit of contacting the customers the policy selects
    standard_error: float
    n_selected: int
    n_selected_test: int
    n_selected_control: int
    qini: float = float("nan")
    auuc: float = float("nan")

    def as_dict(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}_{key}": value for key, value in self.__dict__.items()}


def _small_sample(n: int) -> float:
    return float(np.sqrt(n / (n - 1))) if n > 1 else 1.0


def selection_influence(
    held_out: pd.DataFrame, selected: np.ndarray, contact_cost: float, incentive_cost: float
) -> tuple[float, np.ndarray, int, int]:
    """Hajek estimate (module docstring) of the incremental profit of contacting the ``selected`` rows of
    ``held_out`` (columns ``group``, ``treatment_probability``, ``responded``, ``margin``), each held-out row's
    contribution to its error (the influence function, 0 outside the selection: the variance is the sum of their
    squares), and the selected test and control counts. NaN when the selection has no test or no control
    customer; 0 for an empty selection."""
    chosen = np.asarray(selected, dtype=bool)
    influence = np.zeros(len(held_out))
    rows = held_out[chosen]
    treated = (rows["group"] == "test").to_numpy()
    n_test, n_control = int(treated.sum()), int((~treated).sum())
    if len(rows) == 0:
        return 0.0, influence, 0, 0
    if n_test == 0 or n_control == 0:
        return float("nan"), np.full(len(held_out), np.nan), n_test, n_control
    probability = rows["treatment_probability"].astype(float).clip(1e-6, 1 - 1e-6).to_numpy()
    margin = rows["margin"].astype(float).to_numpy()
    responded = rows["responded"].astype(float).to_numpy()
    gain_treated = margin - incentive_cost * responded
    w_t, w_c = 1.0 / probability[treated], 1.0 / (1.0 - probability[~treated])
    mean_t = float(np.sum(w_t * gain_treated[treated]) / np.sum(w_t))
    mean_c = float(np.sum(w_c * margin[~treated]) / np.sum(w_c))
    size = len(rows)
    # A weighted mean's influence: w (y - mean) / sum w (its variance, sum w^2 (y - mean)^2 / (sum w)^2), with
    # each arm's small-sample factor sqrt(n / (n - 1)) (a control group holds a tenth of a campaign).
    of_rows = np.empty(size)
    of_rows[treated] = size * w_t * (gain_treated[treated] - mean_t) / np.sum(w_t) * _small_sample(n_test)
    of_rows[~treated] = -size * w_c * (margin[~treated] - mean_c) / np.sum(w_c) * _small_sample(n_control)
    influence[chosen] = of_rows
    return size * (mean_t - mean_c - contact_cost), influence, n_test, n_control


def selection_value(
    held_out: pd.DataFrame, selected: np.ndarray, contact_cost: float, incentive_cost: float
) -> tuple[float, float, int, int]:
    """:func:`selection_influence`'s estimate with its standard error (delta method) instead of the influence."""
    value, influence, n_test, n_control = selection_influence(held_out, selected, contact_cost, incentive_cost)
    return value, float(np.sqrt(np.sum(influence**2))), n_test, n_control


@dataclass(frozen=True)
class HeldOutGain:
    """What the challenger's selection earns over the champion's on the same held-out customers (EUR)."""

    estimate: float
    standard_error: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return {
            "gain_estimate": self.estimate,
            "gain_standard_error": self.standard_error,
            "gain_ci_low": self.ci_low,
            "gain_ci_high": self.ci_high,
        }


def held_out_gain(
    held_out: pd.DataFrame,
    challenger_selected: np.ndarray,
    champion_selected: np.ndarray,
    contact_cost: float,
    incentive_cost: float,
    confidence: float = 0.95,
) -> HeldOutGain:
    """``value(challenger) - value(champion)`` on ``held_out`` with its two-sided ``confidence`` interval: the
    standard error of the difference of the two Hajek estimates from their paired influence functions (the rows
    both select cancel). NaN when either value is not estimable."""
    challenger, of_challenger, _, _ = selection_influence(held_out, challenger_selected, contact_cost, incentive_cost)
    champion, of_champion, _, _ = selection_influence(held_out, champion_selected, contact_cost, incentive_cost)
    estimate = challenger - champion
    standard_error = float(np.sqrt(np.sum((of_challenger - of_champion) ** 2)))
    half_width = stats.norm.ppf(0.5 + confidence / 2) * standard_error
    return HeldOutGain(estimate, standard_error, estimate - half_width, estimate + half_width, confidence)


def evaluate_policy(
    held_out: pd.DataFrame,
    expected_profit: np.ndarray,
    contact_cost: float,
    incentive_cost: float,
    selected: np.ndarray | None = None,
) -> PolicyValue:
    """The held-out value of a policy that contacts the ``selected`` held-out rows (default: those with a
    positive ``expected_profit``; NaN everywhere is a randomised pilot, which contacts everyone), with Qini and
    AUUC of its ranking by ``expected_profit``."""
    profit = np.asarray(expected_profit, dtype="float64")
    pilot = np.isnan(profit).all()
    if selected is None:
        selected = np.ones(len(profit), dtype=bool) if pilot else np.nan_to_num(profit, nan=-np.inf) > 0
    selected = np.asarray(selected, dtype=bool)
    value, standard_error, n_test, n_control = selection_value(held_out, selected, contact_cost, incentive_cost)
    result = PolicyValue(value, standard_error, int(selected.sum()), n_test, n_control)
    if not pilot and len(held_out):
        treatment = (held_out["group"] == "test").astype(int).to_numpy()
        responded = held_out["responded"].astype(float).to_numpy()
        score = np.nan_to_num(profit, nan=-np.inf)
        result.qini = qini_auc(treatment, responded, score)
        result.auuc = auuc(treatment, responded, score)
    return result


def profit_outcome(rows: pd.DataFrame, contact_cost: float, incentive_cost: float) -> np.ndarray:
    """The inverse-propensity transformed profit outcome of randomised rows (Athey & Imbens 2016, "Recursive
    partitioning for heterogeneous causal effects", PNAS, section 2.3):

        Z = T (margin - incentive * responded) / p - (1 - T) margin / (1 - p) - contact_cost,

    with ``p = P(test)``. Its expectation given the customer's features is the customer's expected incremental
    profit of a contact, so a regression of Z on a model's predictions calibrates them."""
    treated = (rows["group"] == "test").to_numpy()
    probability = rows["treatment_probability"].astype(float).clip(1e-6, 1 - 1e-6).to_numpy()
    margin = rows["margin"].astype(float).to_numpy()
    responded = rows["responded"].astype(float).to_numpy()
    gain = np.where(treated, (margin - incentive_cost * responded) / probability, -margin / (1 - probability))
    return gain - contact_cost


@dataclass
class ProfitCalibration:
    """A linear calibration of predicted incremental profit, ``E[profit | prediction] = a + b * prediction``.

    Fitted by least squares of the transformed outcome (:func:`profit_outcome`) on *out-of-sample* predictions
    (each made by a model that had not seen the customer's campaign), with a heteroskedasticity-consistent
    covariance (HC1; White 1980). An uplift model whose predictions carry no information gets ``b`` near 0 and
    the calibrated profit becomes the average profit of a contact. ``lower_bound`` is the one-sided
    ``confidence`` bound of the calibrated expectation: a policy contacts a customer only when it is positive,
    i.e. only when the evidence says the contact pays (high-confidence policy improvement; Thomas, Theocharous
    & Ghavamzadeh 2015, AAAI).
    """

    intercept: float
    slope: float
    covariance: np.ndarray
    n_rows: int
    confidence: float = 0.95

    @classmethod
    def fit(cls, predicted: np.ndarray, outcome: np.ndarray, confidence: float = 0.95) -> ProfitCalibration | None:
        x = np.asarray(predicted, dtype="float64")
        z = np.asarray(outcome, dtype="float64")
        keep = np.isfinite(x) & np.isfinite(z)
        x, z = x[keep], z[keep]
        if len(x) < 30 or np.var(x) == 0:
            return None
        design = np.column_stack([np.ones(len(x)), x])
        gram_inverse = np.linalg.inv(design.T @ design)
        coefficients = gram_inverse @ design.T @ z
        residual = z - design @ coefficients
        meat = (design * residual[:, None] ** 2).T @ design
        covariance = gram_inverse @ meat @ gram_inverse * len(x) / (len(x) - 2)
        return cls(float(coefficients[0]), float(coefficients[1]), covariance, int(len(x)), confidence)

    def expected(self, predicted: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(predicted, dtype="float64")

    def lower_bound(self, predicted: np.ndarray) -> np.ndarray:
        x = np.asarray(predicted, dtype="float64")
        variance = self.covariance[0, 0] + 2 * x * self.covariance[0, 1] + x**2 * self.covariance[1, 1]
        return self.expected(x) - stats.norm.ppf(self.confidence) * np.sqrt(np.maximum(variance, 0.0))

    def as_dict(self) -> dict[str, float]:
        return {
            "calibration_intercept": self.intercept,
            "calibration_slope": self.slope,
            "calibration_slope_se": float(np.sqrt(self.covariance[1, 1])),
            "calibration_rows": self.n_rows,
        }


@dataclass
class ChampionDecision:
    """The outcome of one champion/challenger comparison for one offer."""

    offer_id: str
    held_out_campaigns: list[str]
    champion: PolicyValue | None
    challenger: PolicyValue | None
    promoted: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    gain: HeldOutGain | None = None
    off_policy: pd.DataFrame | None = None  # evaluate_policies on the held-out campaigns (None without any)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "offer_id": self.offer_id,
            "held_out_campaigns": ", ".join(self.held_out_campaigns),
            "promoted": self.promoted,
            "reason": self.reason,
        }
        for prefix, value in (("champion", self.champion), ("challenger", self.challenger)):
            fields = PolicyValue(np.nan, np.nan, 0, 0, 0).as_dict(prefix) if value is None else value.as_dict(prefix)
            row.update(fields)
        gain = self.gain or HeldOutGain(np.nan, np.nan, np.nan, np.nan)
        return {**row, **gain.as_dict(), **self.evidence}


def decide(
    offer_id: str,
    held_out_campaigns: list[str],
    champion: PolicyValue | None,
    challenger: PolicyValue | None,
    gain: HeldOutGain | None = None,
) -> ChampionDecision:
    """Promote the challenger only when it exists and its held-out gain over the champion has a 95% interval
    above zero (:func:`held_out_gain`)."""
    campaigns = held_out_campaigns
    if challenger is None:
        return ChampionDecision(offer_id, campaigns, champion, None, False, "no challenger could be trained", gain=gain)
    if champion is None or not held_out_campaigns:
        return ChampionDecision(
            offer_id, campaigns, champion, challenger, False, "no held-out campaign to compare on", gain=gain
        )
    if not np.isfinite(challenger.value):
        return ChampionDecision(
            offer_id, campaigns, champion, challenger, False, "challenger's value is not estimable", gain=gain
        )
    if gain is None or not np.isfinite(gain.estimate):
        return ChampionDecision(
            offer_id, campaigns, champion, challenger, False, "the gain over the champion is not estimable", gain=gain
        )
    interval = f"{gain.estimate:.2f} EUR, 95% CI {gain.ci_low:.2f} to {gain.ci_high:.2f}"
    if gain.ci_low > 0:
        reason = f"challenger earns more on the held-out campaigns: gain {interval}"
        return ChampionDecision(offer_id, campaigns, champion, challenger, True, reason, gain=gain)
    reason = f"champion holds: the challenger's held-out gain {interval} is not surely above zero"
    return ChampionDecision(offer_id, campaigns, champion, challenger, False, reason, gain=gain)


# ------------------------------------------------------------------------------------ off-policy values
#: The columns of :func:`evaluate_policies`.
OFF_POLICY_COLUMNS = ["policy", "estimator", "n_selected", "incremental_profit", "standard_error", "ci_low", "ci_high"]


def cross_fitted_outcomes(
    logged: pd.DataFrame,
    features: list[str],
    incentive_cost: float,
    folds: int = 3,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per logged row, the expected gain if treated (margin minus the voucher of a responder) and the expected
    margin if not, from a T-learner (models.uplift.UpliftModel) fitted on the *other* folds: each row's
    prediction never saw its own outcome, as the doubly robust estimator needs (Chernozhukov et al. 2018). With
    fewer than ``2 * folds`` customers in an arm, zeros: the doubly robust value is then the inverse-propensity
    (Horvitz-Thompson) sum."""
    treated = (logged["group"] == "test").astype(int).to_numpy()
    responded = logged["responded"].astype(int).to_numpy()
    margin = logged["margin"].astype(float).to_numpy()
    gain_if_treated, margin_if_not = np.zeros(len(logged)), np.zeros(len(logged))
    if min(treated.sum(), (1 - treated).sum()) < 2 * folds:
        return gain_if_treated, margin_if_not  # too few of an arm to fit on: no outcome model (the IPW sum)
    splits = StratifiedKFold(folds, shuffle=True, random_state=random_state).split(logged, 2 * treated + responded)
    for train, held_out in splits:
        model = UpliftModel("t", random_state=random_state).fit(
            logged[features].iloc[train], treated[train], responded[train], margin[train]
        )
        predicted = model.predict(logged[features].iloc[held_out])
        gain_if_treated[held_out] = (
            predicted["margin_treated"].to_numpy() - incentive_cost * predicted["p_response_treated"].to_numpy()
        )
        margin_if_not[held_out] = predicted["margin_control"].to_numpy()
    return gain_if_treated, margin_if_not


def doubly_robust_value(
    logged: pd.DataFrame,
    selected: np.ndarray,
    gain_if_treated: np.ndarray,
    margin_if_not: np.ndarray,
    contact_cost: float,
    incentive_cost: float,
) -> tuple[float, float]:
    """The doubly robust estimate (Dudik, Langford & Li 2011, "Doubly robust policy evaluation and learning",
    ICML) of the incremental profit of contacting the ``selected`` logged rows, and its standard error:

        V = sum_{i in S} [ mu_1(x_i) - mu_0(x_i) - c
                           + T_i (G_i - mu_1(x_i)) / p_i - (1 - T_i) (M_i - mu_0(x_i)) / (1 - p_i) ],

    with ``G`` the treated gain (margin - incentive * responded), ``M`` the margin, ``p`` the recorded
    ``treatment_probability`` and ``mu`` cross-fitted outcome predictions. Unbiased when either the
    probabilities (known here: the design randomised) or the outcome model is right; an informative outcome
    model narrows the interval. The rows are independent, so the variance is ``|S|`` times the variance of the
    bracket."""
    chosen = np.asarray(selected, dtype=bool)
    if not chosen.any():
        return 0.0, 0.0
    rows = logged[chosen]
    treated = (rows["group"] == "test").to_numpy()
    probability = rows["treatment_probability"].astype(float).clip(1e-6, 1 - 1e-6).to_numpy()
    margin = rows["margin"].astype(float).to_numpy()
    gain = margin - incentive_cost * rows["responded"].astype(float).to_numpy()
    mu_1, mu_0 = np.asarray(gain_if_treated)[chosen], np.asarray(margin_if_not)[chosen]
    bracket = (
        mu_1
        - mu_0
        - contact_cost
        + np.where(treated, (gain - mu_1) / probability, 0.0)
        - np.where(treated, 0.0, (margin - mu_0) / (1 - probability))
    )
    spread = float(np.var(bracket, ddof=1)) if len(bracket) > 1 else 0.0
    return float(bracket.sum()), float(np.sqrt(len(bracket) * spread))


def evaluate_policies(
    logged: pd.DataFrame,
    selections: dict[str, np.ndarray],
    contact_cost: float,
    incentive_cost: float,
    features: list[str],
    confidence: float = 0.95,
    random_state: int = 0,
) -> pd.DataFrame:
    """Off-policy values on logged randomised campaigns (columns ``group``, ``treatment_probability``,
    ``responded``, ``margin`` and ``features``): for each named selection, and for contacting every logged
    customer and a random draw of as many customers as the first selection, the inverse-propensity (Hajek) and
    doubly robust estimates of the incremental profit with their ``confidence`` intervals
    (:data:`OFF_POLICY_COLUMNS`). A random draw of ``k`` of ``n`` customers is worth ``k / n`` of contacting all
    in expectation; that expectation is what is reported, not one draw."""
    gain_if_treated, margin_if_not = cross_fitted_outcomes(logged, features, incentive_cost, random_state=random_state)
    everyone = np.ones(len(logged), dtype=bool)
    named = {**selections, "contact all": everyone}
    z = stats.norm.ppf(0.5 + confidence / 2)
    rows = []

    def add(policy: str, estimator: str, n_selected: int, value: float, standard_error: float) -> None:
        interval = (value - z * standard_error, value + z * standard_error)
        rows.append(
            dict(
                zip(OFF_POLICY_COLUMNS, (policy, estimator, n_selected, value, standard_error, *interval), strict=True)
            )
        )

    for policy, selected in named.items():
        chosen = np.asarray(selected, dtype=bool)
        value, standard_error, _, _ = selection_value(logged, chosen, contact_cost, incentive_cost)
        add(policy, "ipw", int(chosen.sum()), value, standard_error)
        add(
            policy,
            "dr",
            int(chosen.sum()),
            *doubly_robust_value(logged, chosen, gain_if_treated, margin_if_not, contact_cost, incentive_cost),
        )
    if selections and len(logged):
        first = next(iter(selections))
        share = float(np.asarray(selections[first], dtype=bool).sum()) / len(logged)
        for estimator in ("ipw", "dr"):
            total = next(row for row in rows if row["policy"] == "contact all" and row["estimator"] == estimator)
            add(
                f"random ({first}'s size)",
                estimator,
                round(share * len(logged)),
                share * total["incremental_profit"],
                share * total["standard_error"],
            )
    return pd.DataFrame(rows, columns=OFF_POLICY_COLUMNS)
