"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV.

The analyse stage asks three questions of every customer's order history: is the customer still alive, how
many orders will they place, and what is an order of theirs worth. They are answered by two probability
models fitted by maximum likelihood on the customers' RFM summary (frequency, recency, age):

- BG/NBD (:class:`BetaGeoNBD`): Fader, Hardie & Lee (2005a), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284; with the derivations in Hardie's
  notes http://brucehardie.com/notes/004/ (likelihood) and /notes/021/ (P(alive)).
  While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; after every
  repeat purchase the customer drops out for good with probability ``p ~ Beta(a, b)``.
- Gamma-Gamma (:class:`GammaGamma`): Fader, Hardie & Lee (2005b), "RFM and CLV: Using Iso-Value Curves for
  Customer Base Analysis", Journal of Marketing Research 42(4), 415-430; Hardie's note
  http://brucehardie.com/notes/025/. The value of a customer's orders is Gamma(p, nu) around a customer mean,
  with ``nu ~ Gamma(q, gamma)``; spend is independent of the purchase process.

Both are implemented with numpy/scipy only (the ``lifetimes`` package is archived and is used by the tests as
an oracle, never here). Fits minimise the mean negative log-likelihood over the logarithm of the parameters
with L-BFGS-B and an analytic gradient; identical rows are grouped into weights, and special functions that
depend only on the purchase count are evaluated once per distinct count, so a fit on a million customers takes
seconds. Time is rescaled internally (``alpha`` is fitted in units of the largest age, as lifetimes does)
so that the optimiser sees parameters of order one; the reported parameters are in the caller's time unit.

Conventions (the CDNOW literature's and lifetimes'): ``frequency`` x is the number of repeat purchase days
(distinct purchase days minus one), ``recency`` t_x is the time from the first to the last purchase, ``T`` the
time from the first purchase to the end of the calibration period, all in one time unit (weeks in the
literature). ``monetary_value`` is the mean value of the repeat purchases.
"""

from __future__ import annotations

import calendar
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

__all__ = [
    "BetaGeoNBD",
    "GammaGamma",
    "LifetimeValueModel",
    "ModelFitError",
    "bgnbd_features",
    "bgnbd_snapshot_summary",
    "bgnbd_view",
    "fit_snapshot_bgnbd",
    "customer_lifetime_value",
    "fit_lifetime_value",
    "purchase_values",
    "rfm_summary",
    "score_customers",
]

DAYS_PER_TIME_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0}
"""Length of one time unit in days for :func:`rfm_summary` (a month is the average Gregorian month)."""

WEEKS_PER_MONTH = 365.25 / 12.0 / 7.0
"""Average month in weeks (4.348), the period of the CLV horizon in :func:`score_customers`."""

_LOG_PARAM_BOUND = 25.0
"""Box bound on every log-parameter (in the rescaled units): keeps degenerate data from running to inf."""

_STATIONARY_GRADIENT = 1e-6
"""Largest |gradient| of the mean negative log-likelihood (per log-parameter) accepted as converged."""

_RIDGE_LOG_PARAM = 12.0
"""|log-parameter| beyond which a fitted value is reported as running off to 0 or infinity."""


class ModelFitError(RuntimeError):
    """Raised when maximum likelihood does not converge or the data cannot identify the model."""


def _as_float_array(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _minimise_mean_nll(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    starting_points: list[np.ndarray],
    model_name: str,
) -> np.ndarray:
    """Minimise ``objective(log_params) -> (value, gradient)`` with L-BFGS-B; return the log-parameters.

    Starting points are tried in order; the first run that converges wins: L-BFGS-B reports success, or it
    stopped because the line search could not improve further (a flat likelihood) at a point where the
    (projected) gradient is below ``_STATIONARY_GRADIENT``. If no run converges, :class:`ModelFitError`
    names the model and the optimiser's messages. A parameter that runs off to 0 or infinity (e.g. a and b of
    the BG/NBD when every customer has the same dropout probability: only a / (a + b) is identified) is
    reported with a ``RuntimeWarning``; predictions are then those of the limiting model.
    """
    bounds = [(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * len(starting_points[0])
    messages = []
    for start in starting_points:
        # One BLAS thread: SciPy's L-BFGS-B (>= 1.15) slows down by orders of magnitude when OpenBLAS threads
        # contend for the CPUs on tiny vector operations (scipy/scipy#22438, #23191).
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            result = minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20},
            )
            finite = bool(np.isfinite(result.fun) and np.all(np.isfinite(result.x)))
            stationary = False
            if finite and not result.success:
                _, gradient = objective(result.x)
                at_lower = (result.x <= -_LOG_PARAM_BOUND + 1e-9) & (gradient > 0)
                at_upper = (result.x >= _LOG_PARAM_BOUND - 1e-9) & (gradient < 0)
                projected = np.where(at_lower | at_upper, 0.0, gradient)
                stationary = bool(np.max(np.abs(projected)) <= _STATIONARY_GRADIENT)
        if finite and (result.success or stationary):
            if np.any(np.abs(result.x) >= _RIDGE_LOG_PARAM):
                warnings.warn(
                    f"{model_name}: a parameter runs off to 0 or infinity (log-parameters in internal "
                    f"units {np.round(result.x, 2).tolist()}): the data do not identify it; predictions are "
                    "those of the limiting model (a penalizer > 0 keeps the parameters finite).",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return np.asarray(result.x)
        messages.append(f"{result.message} (mean negative log-likelihood {result.fun})")
    raise ModelFitError(
        f"{model_name} maximum likelihood did not converge from {len(starting_points)} starting points: "
        + "; ".join(messages)
    )


def _group_identical_rows(columns: dict[str, np.ndarray], weights: np.ndarray | None) -> pd.DataFrame:
    """Collapse identical rows into one row with the summed weight (Fader & Hardie fit on such counts)."""
    table = pd.DataFrame(columns)
    table["weight"] = 1.0 if weights is None else _as_float_array(weights)
    return table.groupby(list(columns), sort=False, as_index=False)["weight"].sum()


def _check_summary(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> None:
    if not (frequency.shape == recency.shape == age.shape) or frequency.ndim != 1 or frequency.size == 0:
        raise ValueError("frequency, recency and T must be non-empty 1-d arrays of the same length")
    if not (np.all(np.isfinite(frequency)) and np.all(np.isfinite(recency)) and np.all(np.isfinite(age))):
        raise ValueError("frequency, recency and T must be finite")
    if np.any(frequency < 0) or np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must be a non-negative whole number of repeat purchases")
    if np.any(recency < 0) or np.any(recency > age):
        raise ValueError("recency must lie in [0, T] (time of last purchase minus first, within the age T)")
    if np.any(recency[frequency == 0] != 0):
        raise ValueError("recency must be 0 for customers without repeat purchases (frequency == 0)")
    if not np.any(age > 0):
        raise ValueError("T (time since first purchase) is 0 for every customer: nothing to learn from")


class BetaGeoNBD:
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005a), fitted by maximum likelihood.

    Parameters
    ----------
    penalizer:
        L2 penalty ``penalizer * (r^2 + alpha'^2 + a^2 + b^2)`` added to the *mean* negative
        log-likelihood, with alpha' the rate in the internal time unit (largest age = 1): lifetimes'
        ``penalizer_coef`` convention, so values tuned there carry over. 0 gives the maximum likelihood
        estimate.

    Attributes (after :meth:`fit`)
    ------------------------------
    params_: dict with ``r``, ``alpha`` (Gamma shape and rate of the purchase rate, alpha in the caller's
        time unit) and ``a``, ``b`` (Beta parameters of the dropout probability).
    log_likelihood_: the maximised log-likelihood summed over customers (eq. 6), without the penalty.
    n_customers_: total weight fitted.
    """

    PARAM_NAMES = ("r", "alpha", "a", "b")

    def __init__(self, penalizer: float = 0.0) -> None:
        if penalizer < 0:
            raise ValueError("penalizer must be >= 0")
        self.penalizer = float(penalizer)
        self.params_: dict[str, float] = {}
        self.log_likelihood_: float = float("nan")
        self.n_customers_: float = 0.0

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float) -> BetaGeoNBD:
        """A model with given parameters (e.g. stored from an earlier fit or published)."""
        model = cls()
        model.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        return model

    # ----------------------------------------------------------------------------------------------- fit
    @staticmethod
    def _log_likelihood_terms(
        params: np.ndarray,
        distinct_frequency: np.ndarray,
        frequency_index: np.ndarray,
        frequency: np.ndarray,
        recency: np.ndarray,
        age: np.ndarray,
        with_gradient: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Individual log-likelihood (FHL 2005a eq. 6) and its gradient w.r.t. (r, alpha, a, b).

        ln L = ln G(r+x) - ln G(r) + r ln(alpha) + ln B(a, b+x) - ln B(a, b)
               + ln[ (alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x) ]
        The last term is a log-sum-exp of A3 = -(r+x) ln(alpha+T) and
        A4 = ln a - ln(b+x-1) - (r+x) ln(alpha+t_x); the gradient weights each by its softmax share.
        Functions of x alone (log-gamma, digamma) are evaluated once per distinct x.
        """
        r, alpha, a, b = params
        xs = distinct_frequency
        per_x = gammaln(r + xs) - gammaln(r) + gammaln(a + b) + gammaln(b + xs) - gammaln(b) - gammaln(a + b + xs)
        has_repeat = frequency > 0
        log_alpha_age = np.log(alpha + age)
        log_alpha_recency = np.log(alpha + recency)
        shape = r + frequency
        b_x_1 = b + np.maximum(frequency, 1.0) - 1.0
        term_alive = -shape * log_alpha_age
        term_dropped = np.where(has_repeat, np.log(a) - np.log(b_x_1) - shape * log_alpha_recency, -np.inf)
        log_sum = np.logaddexp(term_alive, term_dropped)
        log_likelihood = per_x[frequency_index] + r * np.log(alpha) + log_sum
        if not with_gradient:
            return log_likelihood, None

        share_dropped = np.exp(term_dropped - log_sum)
        share_alive = 1.0 - share_dropped
        d_r_x = digamma(r + xs) - digamma(r)
        d_a_x = digamma(a + b) - digamma(a + b + xs)
        d_b_x = digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs)
        gradient = np.empty((4, frequency.size))
        gradient[0] = (
            d_r_x[frequency_index] + np.log(alpha) - share_alive * log_alpha_age - share_dropped * log_alpha_recency
        )
        gradient[1] = r / alpha - shape * (share_alive / (alpha + age) + share_dropped / (alpha + recency))
        gradient[2] = d_a_x[frequency_index] + share_dropped / a
        gradient[3] = d_b_x[frequency_index] - share_dropped / b_x_1
        return log_likelihood, gradient

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803 - the literature's name for the customer's age
        weights: ArrayLike | None = None,
    ) -> BetaGeoNBD:
        """Maximum likelihood fit on customers' (x, t_x, T); ``weights`` counts customers per row.

        Identical (x, t_x, T) rows are grouped (their weights summed) before the fit.
        Raises :class:`ModelFitError` if the optimiser does not converge, ``ValueError`` on invalid input or
        when no customer has a repeat purchase (then the dropout process is not identified).
        """
        frequency_all = _as_float_array(frequency).ravel()
        recency_all = _as_float_array(recency).ravel()
        age_all = _as_float_array(T).ravel()
        _check_summary(frequency_all, recency_all, age_all)
        if weights is not None and (np.shape(weights) != frequency_all.shape or np.any(_as_float_array(weights) < 0)):
            raise ValueError("weights must be non-negative counts, one per row")
        grouped = _group_identical_rows(
            {"frequency": frequency_all, "recency": recency_all, "age": age_all},
            None if weights is None else _as_float_array(weights).ravel(),
        )
        grouped = grouped[grouped["weight"] > 0]
        if not np.any(grouped["frequency"].to_numpy() > 0):
            raise ValueError("BG/NBD needs customers with repeat purchases (all frequencies are 0)")

        x = grouped["frequency"].to_numpy()
        weight = grouped["weight"].to_numpy()
        total_weight = float(weight.sum())
        # Rescale time so that the largest age is 1 (lifetimes' convention): alpha becomes O(1).
        time_scale = 1.0 / float(grouped["age"].max())
        recency_scaled = grouped["recency"].to_numpy() * time_scale
        age_scaled = grouped["age"].to_numpy() * time_scale
        distinct_x, x_index = np.unique(x, return_inverse=True)
        penalizer = self.penalizer

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = self._log_likelihood_terms(
                params, distinct_x, x_index, x, recency_scaled, age_scaled, with_gradient=True
            )
            value = -np.sum(weight * ll) / total_weight
            grad_log = -np.sum(grad * weight, axis=1) / total_weight * params
            if penalizer:
                value += penalizer * float(np.sum(params**2))
                grad_log = grad_log + 2.0 * penalizer * params**2
            if not np.isfinite(value):
                return float("inf"), np.zeros(4)
            return float(value), grad_log

        mean_rate = float(np.sum(weight * x)) / float(np.sum(weight * age_scaled))
        starts = [
            np.log([1.0, 1.0 / max(mean_rate, 1e-6), 1.0, 3.0]),
            np.zeros(4),
            np.log([0.3, 0.3 / max(mean_rate, 1e-6), 0.5, 5.0]),
        ]
        params = np.exp(_minimise_mean_nll(objective, starts, "BG/NBD"))
        self.params_ = {
            "r": float(params[0]),
            "alpha": float(params[1] / time_scale),
            "a": float(params[2]),
            "b": float(params[3]),
        }
        self.n_customers_ = total_weight
        ll_original_units, _ = self._log_likelihood_terms(
            self._param_array(),
            distinct_x,
            x_index,
            x,
            grouped["recency"].to_numpy(),
            grouped["age"].to_numpy(),
            with_gradient=False,
        )
        self.log_likelihood_ = float(np.sum(weight * ll_original_units))
        return self

    # ---------------------------------------------------------------------------------------- predictions
    def _param_array(self) -> np.ndarray:
        if not self.params_:
            raise RuntimeError("BetaGeoNBD is not fitted: call fit() or from_params() first")
        return np.array([self.params_[name] for name in self.PARAM_NAMES])

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:  # noqa: N803
        """P(customer still alive at T | x, t_x, T) (Hardie, note 021, the stable logistic form).

        P(alive) = 1 / (1 + 1{x>0} * a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)), evaluated as
        expit(-log of the odds term) so that it neither overflows for large x nor loses precision.
        Customers without repeat purchases cannot have dropped out (dropout follows a repeat purchase): 1.
        """
        r, alpha, a, b = self._param_array()
        x, recency, age = np.broadcast_arrays(_as_float_array(frequency), _as_float_array(recency), _as_float_array(T))
        log_odds_dropped = (
            np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) + (r + x) * (np.log(alpha + age) - np.log(alpha + recency))
        )
        return np.asarray(np.where(x > 0, expit(-log_odds_dropped), 1.0), dtype=np.float64)

    def _expected_purchases_if_alive(self, t: np.ndarray, x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)], z=t/(alpha+T+t).

        The hypergeometric factor is evaluated after Euler's transformation
        2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z), which turns the bracket into
        1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): its upper parameters no longer grow with x, so the
        series stays well conditioned (and never overflows) for heavy buyers.
        """
        r, alpha, a, b = self._param_array()
        c = a + b + x - 1.0
        z = t / (alpha + age + t)
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        return c / (a - 1.0) * bracket

    def conditional_expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
    ) -> np.ndarray:
        """E[repeat purchases in (T, T+t] | x, t_x, T]: FHL 2005a eq. (10).

        E = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
            / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
        i.e. the expectation for a customer known to be alive times P(alive).
        """
        t_, x, recency_, age = np.broadcast_arrays(
            _as_float_array(t), _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
        )
        if_alive = self._expected_purchases_if_alive(t_, x, age)
        return np.asarray(if_alive * self.probability_alive(x, recency_, age), dtype=np.float64)

    def probability_no_purchase(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
    ) -> np.ndarray:
        """P(no repeat purchase in (T, T+t] | x, t_x, T): the BG/NBD's own churn probability over a horizon t.

        P = (1 - P(alive)) + P(alive) * ((alpha+T)/(alpha+T+t))^(r+x).
        A customer who is alive at T has purchase rate lambda ~ Gamma(r+x, alpha+T) a posteriori (FHL 2005a,
        section 3), and since dropout can only follow a purchase, she makes no purchase in the next t exactly
        when her Poisson process has no event, which has probability E[exp(-lambda t)] (the Gamma Laplace
        transform above). Unlike P(alive) alone, it ranks customers without repeat purchases (for whom
        P(alive) = 1 by construction) by how long they have been silent.
        """
        r, alpha, _, _ = self._param_array()
        t_, x, recency_, age = np.broadcast_arrays(
            _as_float_array(t), _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
        )
        p_alive = self.probability_alive(x, recency_, age)
        silent_if_alive = np.exp((r + x) * (np.log(alpha + age) - np.log(alpha + age + t_)))
        return np.asarray(1.0 - p_alive + p_alive * silent_if_alive, dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> np.ndarray:
        """E[X(t)], repeat purchases in (0, t] of a randomly chosen new customer: FHL 2005a eq. (9).

        E = (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))], i.e. eq. (10) at
        x = t_x = T = 0.
        """
        t_ = _as_float_array(t)
        zeros = np.zeros_like(t_)
        return np.asarray(self._expected_purchases_if_alive(t_, zeros, zeros), dtype=np.float64)


class GammaGamma:
    """Gamma-Gamma model of the average order value (Fader, Hardie & Lee 2005b; Hardie note 025).

    A customer's order values are Gamma(p, nu); across customers nu ~ Gamma(q, gamma). Fitted on repeat
    buyers only (x >= 1 repeat purchases with mean value m > 0). E[order value] over the population is
    p * gamma / (q - 1) (finite when q > 1).

    Parameters
    ----------
    penalizer:
        L2 penalty ``penalizer * (p^2 + q^2 + gamma^2)`` added to the mean negative log-likelihood
        (lifetimes' ``penalizer_coef`` convention). 0 gives the maximum likelihood estimate.

    Attributes (after :meth:`fit`): ``params_`` dict with ``p``, ``q``, ``gamma`` (gamma in money units);
    ``log_likelihood_`` summed over customers, without the penalty.
    """

    PARAM_NAMES = ("p", "q", "gamma")

    def __init__(self, penalizer: float = 0.0) -> None:
        if penalizer < 0:
            raise ValueError("penalizer must be >= 0")
        self.penalizer = float(penalizer)
        self.params_: dict[str, float] = {}
        self.log_likelihood_: float = float("nan")
        self.n_customers_: float = 0.0

    @classmethod
    def from_params(cls, p: float, q: float, gamma: float) -> GammaGamma:
        """A model with given parameters."""
        model = cls()
        model.params_ = {"p": float(p), "q": float(q), "gamma": float(gamma)}
        return model

    @staticmethod
    def _log_likelihood_terms(
        params: np.ndarray,
        distinct_frequency: np.ndarray,
        frequency_index: np.ndarray,
        x: np.ndarray,
        mean_value: np.ndarray,
        log_mean_value: np.ndarray,
        with_gradient: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Density of the mean of x order values (Hardie note 025, eq. 1a) and its gradient in (p, q, gamma).

        ln f(m | x) = ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln m + px ln x
                      - (px+q) ln(gamma + x m)
        Functions of x alone (log-gamma, digamma, ln x) are evaluated once per distinct x.
        """
        p, q, gamma = params
        xs = distinct_frequency
        pxs = p * xs
        per_x = gammaln(pxs + q) - gammaln(pxs) - gammaln(q) + q * np.log(gamma) + pxs * np.log(xs)
        px = p * x
        log_total = np.log(gamma + x * mean_value)
        log_likelihood = per_x[frequency_index] + (px - 1.0) * log_mean_value - (px + q) * log_total
        if not with_gradient:
            return log_likelihood, None
        psi_sum = digamma(pxs + q)
        d_p_x = xs * (psi_sum - digamma(pxs) + np.log(xs))
        d_q_x = psi_sum - digamma(q) + np.log(gamma)
        gradient = np.empty((3, x.size))
        gradient[0] = d_p_x[frequency_index] + x * (log_mean_value - log_total)
        gradient[1] = d_q_x[frequency_index] - log_total
        gradient[2] = q / gamma - (px + q) / (gamma + x * mean_value)
        return log_likelihood, gradient

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None = None) -> GammaGamma:
        """Maximum likelihood fit on repeat buyers: every frequency >= 1 and monetary_value > 0.

        Raises ``ValueError`` if other rows are passed (filter ``frequency > 0`` first, as the literature
        does), :class:`ModelFitError` if the optimiser does not converge.
        """
        x_all = _as_float_array(frequency).ravel()
        value_all = _as_float_array(monetary_value).ravel()
        if x_all.shape != value_all.shape or x_all.size == 0:
            raise ValueError("frequency and monetary_value must be non-empty arrays of the same length")
        if np.any(x_all < 1) or np.any(x_all != np.round(x_all)):
            raise ValueError("Gamma-Gamma is fitted on repeat buyers only: frequency must be an integer >= 1")
        if not np.all(np.isfinite(value_all)) or np.any(value_all <= 0):
            raise ValueError("Gamma-Gamma needs a positive, finite mean order value for every repeat buyer")
        if weights is not None and (np.shape(weights) != x_all.shape or np.any(_as_float_array(weights) < 0)):
            raise ValueError("weights must be non-negative counts, one per row")
        grouped = _group_identical_rows(
            {"frequency": x_all, "monetary_value": value_all},
            None if weights is None else _as_float_array(weights).ravel(),
        )
        grouped = grouped[grouped["weight"] > 0]
        x = grouped["frequency"].to_numpy()
        value = grouped["monetary_value"].to_numpy()
        weight = grouped["weight"].to_numpy()
        total_weight = float(weight.sum())
        # Fit in units of the mean order value (p, q are scale free; gamma scales with money).
        money_scale = float(np.sum(weight * value)) / total_weight
        value_scaled = value / money_scale
        log_value_scaled = np.log(value_scaled)
        distinct_x, x_index = np.unique(x, return_inverse=True)
        penalizer = self.penalizer
        unit = np.array([1.0, 1.0, money_scale])

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll, grad = self._log_likelihood_terms(
                params, distinct_x, x_index, x, value_scaled, log_value_scaled, with_gradient=True
            )
            value_ = -np.sum(weight * ll) / total_weight
            grad_log = -np.sum(grad * weight, axis=1) / total_weight * params
            if penalizer:
                natural = params * unit
                value_ += penalizer * float(np.sum(natural**2))
                grad_log = grad_log + 2.0 * penalizer * natural**2
            if not np.isfinite(value_):
                return float("inf"), np.zeros(3)
            return float(value_), grad_log

        # Start at p = 1, q = 2 and the gamma matching the mean order value (E[m] = p gamma / (q - 1)).
        starts = [np.log([1.0, 2.0, 1.0]), np.zeros(3), np.log([5.0, 3.0, 2.0])]
        params = np.exp(_minimise_mean_nll(objective, starts, "Gamma-Gamma"))
        self.params_ = {"p": float(params[0]), "q": float(params[1]), "gamma": float(params[2] * money_scale)}
        self.n_customers_ = total_weight
        ll, _ = self._log_likelihood_terms(
            self._param_array(), distinct_x, x_index, x, value, np.log(value), with_gradient=False
        )
        self.log_likelihood_ = float(np.sum(weight * ll))
        return self

    def _param_array(self) -> np.ndarray:
        if not self.params_:
            raise RuntimeError("GammaGamma is not fitted: call fit() or from_params() first")
        return np.array([self.params_[name] for name in self.PARAM_NAMES])

    @property
    def population_mean_value(self) -> float:
        """E[order value] of a random customer: p * gamma / (q - 1); requires q > 1."""
        p, q, gamma = self._param_array()
        if q <= 1:
            raise ValueError(f"Gamma-Gamma q = {q:.3f} <= 1: the population mean order value is infinite")
        return float(p * gamma / (q - 1.0))

    def conditional_expected_average_value(self, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
        """E[order value | x, m] (FHL 2005b eq. 5; note 025 eq. 5): a credibility-weighted average.

        E = (q-1)/(px+q-1) * p*gamma/(q-1) + px/(px+q-1) * m = p (gamma + x m) / (px + q - 1).
        With x = 0 it is the population mean p*gamma/(q-1) (``monetary_value`` is then ignored).
        """
        p, q, gamma = self._param_array()
        x, value = np.broadcast_arrays(_as_float_array(frequency), _as_float_array(monetary_value))
        if np.any(x == 0) and q <= 1:
            raise ValueError(f"Gamma-Gamma q = {q:.3f} <= 1: no finite expected value for customers with x = 0")
        observed = np.where(x > 0, value, 0.0)
        return np.asarray(p * (gamma + x * observed) / (p * x + q - 1.0), dtype=np.float64)


# ------------------------------------------------------------------------------------------- RFM summary
def rfm_summary(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_col: str | None,
    calibration_end: date | pd.Timestamp | str,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Per-customer frequency, recency, T and monetary value as of ``calibration_end`` (inclusive).

    The CDNOW literature's definitions (and those of lifetimes' ``summary_data_from_transaction_data`` with
    daily periods, divided by the length of the unit):

    - transactions after the calibration end are ignored; transactions on the same calendar day are one
      purchase (their values summed);
    - ``frequency`` = number of distinct purchase days - 1 (repeat purchases);
    - ``recency`` = last purchase day - first purchase day, ``T`` = calibration end - first purchase day,
      both in ``time_unit``: "D" days, "W" weeks (7 days), "M" average months (365.25 / 12 days);
    - ``monetary_value`` = mean value of the repeat purchase days (the first is excluded), 0 without repeats.

    Returns a DataFrame indexed by customer id (named ``customer_id_col``), sorted by it, with ``frequency``
    (int64), ``recency``, ``T`` and, if ``monetary_col`` is given, ``monetary_value`` (float64).
    """
    if time_unit not in DAYS_PER_TIME_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_TIME_UNIT)}, got {time_unit!r}")
    columns = [customer_id_col, datetime_col] + ([monetary_col] if monetary_col else [])
    missing = [column for column in columns if column not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack column(s) {missing}")
    if transactions[columns].isna().to_numpy().any():
        raise ValueError(f"transactions have missing values in {columns}")
    end_day = pd.Timestamp(calibration_end).normalize().to_datetime64().astype("datetime64[D]").astype(np.int64)
    timestamps = pd.to_datetime(transactions[datetime_col])
    if timestamps.dt.tz is not None:
        timestamps = timestamps.dt.tz_localize(None)  # the calendar day where the purchase happened
    day = timestamps.dt.normalize().to_numpy().astype("datetime64[D]").astype(np.int64)
    in_calibration = day <= end_day
    customer_code, customer_ids = pd.factorize(transactions[customer_id_col], sort=True)
    customer_code = customer_code[in_calibration].astype(np.int64)
    day = day[in_calibration]
    value = (
        transactions[monetary_col].to_numpy(dtype=np.float64)[in_calibration] if monetary_col else np.zeros(day.size)
    )

    # Sort by (customer, day); one purchase per customer and day, its value the day's total.
    by_customer_day = np.lexsort((day, customer_code))
    customer_code, day, value = customer_code[by_customer_day], day[by_customer_day], value[by_customer_day]
    if day.size == 0:
        empty = pd.DataFrame(
            {"frequency": np.zeros(0, np.int64), "recency": np.zeros(0), "T": np.zeros(0)},
            index=pd.Index(customer_ids[:0], name=customer_id_col),
        )
        return empty.assign(monetary_value=np.zeros(0)) if monetary_col else empty

    new_purchase = np.ones(day.size, dtype=bool)
    new_purchase[1:] = (customer_code[1:] != customer_code[:-1]) | (day[1:] != day[:-1])
    purchase_start = np.flatnonzero(new_purchase)
    purchase_customer = customer_code[purchase_start]
    purchase_day = day[purchase_start]
    purchase_value = np.add.reduceat(value, purchase_start)

    new_customer = np.ones(purchase_customer.size, dtype=bool)
    new_customer[1:] = purchase_customer[1:] != purchase_customer[:-1]
    customer_start = np.flatnonzero(new_customer)
    customer_end = np.append(customer_start[1:], purchase_customer.size) - 1
    first_day = purchase_day[customer_start]
    frequency = (customer_end - customer_start).astype(np.int64)

    days_per_unit = DAYS_PER_TIME_UNIT[time_unit]
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (purchase_day[customer_end] - first_day) / days_per_unit,
            "T": (end_day - first_day) / days_per_unit,
        },
        index=pd.Index(customer_ids.take(purchase_customer[customer_start]), name=customer_id_col),
    )
    if monetary_col:
        repeat_purchase_value = purchase_value.copy()
        repeat_purchase_value[customer_start] = 0.0  # the first purchase day is not a repeat purchase
        repeat_value = np.add.reduceat(repeat_purchase_value, customer_start)
        summary["monetary_value"] = np.where(frequency > 0, repeat_value / np.maximum(frequency, 1), 0.0)
    return summary


# --------------------------------------------------------------------------------------------------- CLV
def _expected_purchases_by_period(
    bgnbd: BetaGeoNBD,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    horizon_periods: int,
    discount_rate_per_period: float,
    period_length: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases over the horizon: (undiscounted total, sum_k purchases in period k / (1+d)^k).

    Eq. (10) is P(alive | x, t_x, T) times an expectation that depends on (x, T) only, so the hypergeometric
    part is evaluated once per distinct (x, T) pair (found by factorising x + iT) and P(alive) once per
    customer. Loops over the H periods (not over customers): memory stays proportional to the customers.
    """
    if horizon_periods < 0 or int(horizon_periods) != horizon_periods:
        raise ValueError("horizon_periods must be a non-negative integer")
    if discount_rate_per_period <= -1:
        raise ValueError("discount_rate_per_period must be > -1")
    x, recency_, age = np.broadcast_arrays(frequency, recency, age)
    pair_index, distinct_pairs = pd.factorize((x + 1j * age).ravel())
    pair_index = pair_index.reshape(x.shape)
    distinct_x, distinct_age = distinct_pairs.real, distinct_pairs.imag
    p_alive = bgnbd.probability_alive(x, recency_, age)
    discounted = np.zeros(x.shape)
    previous = np.zeros(x.shape)
    for period in range(1, int(horizon_periods) + 1):
        if_alive = bgnbd._expected_purchases_if_alive(
            np.full(distinct_x.shape, period * period_length), distinct_x, distinct_age
        )
        cumulative = if_alive[pair_index] * p_alive
        discounted += (cumulative - previous) / (1.0 + discount_rate_per_period) ** period
        previous = cumulative
    return previous, discounted


def customer_lifetime_value(
    bgnbd: BetaGeoNBD,
    gg: GammaGamma,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,  # noqa: N803
    monetary_value: ArrayLike,
    horizon_periods: int,
    discount_rate_per_period: float,
    margin_rate: float = 1.0,
    period_length: float = 1.0,
) -> np.ndarray:
    """Discounted value of each customer's purchases over the next ``horizon_periods`` periods.

    CLV = sum_{k=1..H} (E[X(t_k)] - E[X(t_{k-1})]) * E[value | x, m] * margin_rate / (1 + d)^k,
    with t_k = k * ``period_length`` (in the models' time unit), E[X(t)] the BG/NBD conditional expectation
    (FHL 2005a eq. 10), E[value | x, m] the Gamma-Gamma conditional mean (FHL 2005b eq. 5) and d the discount
    rate per period: the purchases expected in period k are valued at the period's end. This is lifetimes'
    ``GammaGammaFitter.customer_lifetime_value`` convention: there ``time`` is H in months, ``discount_rate``
    is d per month and, with weekly data (``freq="W"``), a month is ``period_length`` = 4.345 weeks.
    ``margin_rate`` turns a revenue value into a margin (1 when the monetary value already is a margin).
    """
    x, recency_, age, value = np.broadcast_arrays(
        _as_float_array(frequency),
        _as_float_array(recency),
        _as_float_array(T),
        _as_float_array(monetary_value),
    )
    value_per_purchase = gg.conditional_expected_average_value(x, value) * margin_rate
    _, discounted_purchases = _expected_purchases_by_period(
        bgnbd, x, recency_, age, horizon_periods, discount_rate_per_period, period_length
    )
    return np.asarray(discounted_purchases * value_per_purchase, dtype=np.float64)


# ------------------------------------------------------------------------------ order values and returns
VALUE_BASES = ("margin", "revenue")
"""What a CLV is measured in: gross margin when the orders carry it, else revenue (a plain transaction log)."""


@dataclass(frozen=True)
class PurchaseValues:
    """The sale lines the CLV models count, in the value basis chosen, and each customer's return rate.

    ``sales``: customer_id, order_date, value (sale lines only: a return is not a purchase).
    ``net_ratio``: per customer, (sales + returns) / sales of the value basis, clipped to [0, 1] (1 without
    returns): the share of what a customer buys that she keeps.
    ``basis``: "margin" or "revenue". ``notes``: what was imputed or dropped, for the metadata.
    """

    sales: pd.DataFrame
    net_ratio: pd.Series
    basis: str
    notes: tuple[str, ...]


def _return_lines(orders: pd.DataFrame) -> np.ndarray:
    """Which lines are returns: ``is_return`` when the orders carry it, else a negative revenue."""
    if "is_return" in orders.columns:
        return orders["is_return"].fillna(False).to_numpy(dtype=bool)
    if "revenue" in orders.columns:
        return orders["revenue"].to_numpy(dtype=np.float64, na_value=np.nan) < 0
    return np.zeros(len(orders), dtype=bool)


def purchase_values(orders: pd.DataFrame, calibration_end: date | pd.Timestamp | None = None) -> PurchaseValues:
    """Sale lines with their value in the CLV basis, up to ``calibration_end`` (inclusive).

    Basis: ``margin`` when the column exists and is known for at least one line; a line with unknown margin
    (a product missing from the catalogue) is valued at the known lines' margin rate (sum of margin / sum of
    revenue) times its revenue. Without any known margin the basis is ``revenue`` (a plain transaction log:
    CLV is then a revenue value, and the notes say so). Returns (``is_return``, or a negative revenue) are
    not purchases; they lower the customer's ``net_ratio``.
    """
    missing = {"customer_id", "order_date"} - set(orders.columns)
    if missing:
        raise ValueError(f"orders lack column(s) {sorted(missing)}")
    has_margin = "margin" in orders.columns and bool(orders["margin"].notna().any())
    if not has_margin and "revenue" not in orders.columns:
        raise ValueError("orders need a margin or a revenue column to value purchases")
    if calibration_end is not None:
        day = pd.to_datetime(orders["order_date"])
        if day.dt.tz is not None:
            day = day.dt.tz_localize(None)
        orders = orders.loc[(day.dt.normalize() <= pd.Timestamp(calibration_end).normalize()).to_numpy()]
    notes: list[str] = []
    revenue = orders["revenue"].to_numpy(dtype=np.float64, na_value=np.nan) if "revenue" in orders.columns else None
    if has_margin:
        basis = "margin"
        value = orders["margin"].to_numpy(dtype=np.float64, na_value=np.nan)
        unknown = np.isnan(value)
        if unknown.any():
            known_revenue = revenue is not None and not np.all(np.isnan(revenue[unknown]))
            if known_revenue:
                both = ~unknown & ~np.isnan(revenue)
                rate = float(value[both].sum() / revenue[both].sum()) if revenue[both].sum() else 0.0
                value = np.where(unknown, np.nan_to_num(revenue) * rate, value)
                notes.append(f"{int(unknown.sum())} lines without a margin valued at the margin rate {rate:.3f}")
            else:
                value = np.where(unknown, 0.0, value)
                notes.append(f"{int(unknown.sum())} lines without a margin or revenue valued at 0")
    else:
        basis = "revenue"
        value = np.nan_to_num(revenue)
        notes.append("no margin data: CLV and customer equity are in revenue, not margin")
    is_return = _return_lines(orders)
    frame = pd.DataFrame(
        {
            "customer_id": orders["customer_id"].astype("str").to_numpy(),
            "order_date": orders["order_date"].to_numpy(),
            "value": value,
        }
    )
    sales = frame.loc[~is_return].reset_index(drop=True)
    # Per customer (in id order): one factorisation of the ids, then sums by integer code.
    code, customers = pd.factorize(frame["customer_id"].to_numpy(), sort=True)
    gross = np.bincount(code, weights=np.where(is_return, 0.0, value), minlength=len(customers))
    returned = np.bincount(code, weights=np.where(is_return, -np.abs(value), 0.0), minlength=len(customers))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gross > 0, (gross + returned) / gross, 1.0)
    net_ratio = pd.Series(np.clip(ratio, 0.0, 1.0), index=pd.Index(customers, dtype="str"), name="net_ratio")
    if is_return.any():
        notes.append(f"{int(is_return.sum())} return lines: not purchases; values kept net of each customer's returns")
    return PurchaseValues(sales=sales, net_ratio=net_ratio, basis=basis, notes=tuple(notes))


# --------------------------------------------------------------------------------------- fitted models
SCORE_COLUMNS = [
    "customer_id",
    "frequency",
    "recency",
    "T",
    "p_alive",
    "expected_purchases_next_month",
    "expected_purchases_horizon",
    "expected_value_per_order",
    "clv",
]


def _month_bounds(as_of: date | pd.Timestamp) -> tuple[pd.Timestamp, float]:
    """(last day of the month ``as_of``, length of the next month in weeks); ``as_of`` must be a month start."""
    month_start = pd.Timestamp(as_of)
    if month_start.day != 1:
        raise ValueError(f"as_of must be the first day of a month, got {as_of}")
    days_in_month = calendar.monthrange(month_start.year, month_start.month)[1]
    calibration_end = month_start + pd.Timedelta(days=days_in_month - 1)
    following = calibration_end + pd.Timedelta(days=1)
    return calibration_end, calendar.monthrange(following.year, following.month)[1] / 7.0


def _summary(values: PurchaseValues, calibration_end: pd.Timestamp) -> pd.DataFrame:
    summary = rfm_summary(values.sales, "customer_id", "order_date", "value", calibration_end, time_unit="W")
    summary["monetary_value"] = summary["monetary_value"] * values.net_ratio.reindex(summary.index).fillna(1.0)
    return summary


@dataclass
class LifetimeValueModel:
    """BG/NBD and Gamma-Gamma fitted on the order history up to a month end, ready to score (weeks).

    ``value_basis`` is "margin" or "revenue" (see :func:`purchase_values`); the CLV is
    :func:`customer_lifetime_value` over ``horizon_months`` monthly periods discounted at the monthly rate
    (1 + annual)^(1/12) - 1.
    """

    bgnbd: BetaGeoNBD
    gamma_gamma: GammaGamma
    as_of_month: date
    value_basis: str
    horizon_months: int = 12
    annual_discount_rate: float = 0.10
    n_customers: int = 0
    n_value_customers: int = 0
    notes: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, float]:
        """BG/NBD (r, alpha in weeks, a, b) and Gamma-Gamma (p, q, gamma) parameters in one dict."""
        return {**self.bgnbd.params_, **self.gamma_gamma.params_}

    def score(self, orders: pd.DataFrame, as_of: date | None = None) -> pd.DataFrame:
        """One row per customer with a purchase by the end of ``as_of`` (default: the fit month), sorted.

        Columns :data:`SCORE_COLUMNS`: frequency, recency, T (weeks; :func:`rfm_summary` on the sale lines),
        p_alive, expected_purchases_next_month (eq. 10 over the next calendar month), expected_purchases_horizon
        (``horizon_months`` average months), expected_value_per_order (Gamma-Gamma eq. 5 on the net repeat
        value; customers without repeats or with a non-positive one get the population mean) and clv.
        """
        calibration_end, weeks_next_month = _month_bounds(as_of or self.as_of_month)
        values = purchase_values(orders, calibration_end)
        summary = _summary(values, calibration_end)
        if summary.empty:
            raise ValueError(f"no orders on or before {calibration_end.date()}: nothing to score")
        x = summary["frequency"].to_numpy(dtype=np.float64)
        recency = summary["recency"].to_numpy()
        age = summary["T"].to_numpy()
        mean_value = summary["monetary_value"].to_numpy()
        valued = (x > 0) & (mean_value > 0)
        value_per_order = self.gamma_gamma.conditional_expected_average_value(np.where(valued, x, 0.0), mean_value)
        monthly_discount_rate = (1.0 + self.annual_discount_rate) ** (1.0 / 12.0) - 1.0
        purchases_horizon, discounted_purchases = _expected_purchases_by_period(
            self.bgnbd, x, recency, age, self.horizon_months, monthly_discount_rate, WEEKS_PER_MONTH
        )
        scores = pd.DataFrame(
            {
                "customer_id": summary.index.to_numpy(),
                "frequency": summary["frequency"].to_numpy(),
                "recency": recency,
                "T": age,
                "p_alive": self.bgnbd.probability_alive(x, recency, age),
                "expected_purchases_next_month": self.bgnbd.conditional_expected_purchases(
                    weeks_next_month, x, recency, age
                ),
                "expected_purchases_horizon": purchases_horizon,
                "expected_value_per_order": value_per_order,
                # customer_lifetime_value() with the population mean for customers without a usable value.
                "clv": discounted_purchases * value_per_order,
            }
        )
        scores["customer_id"] = scores["customer_id"].astype("str")
        return scores[SCORE_COLUMNS]


def fit_lifetime_value(
    orders: pd.DataFrame,
    as_of: date,
    horizon_months: int = 12,
    annual_discount_rate: float = 0.10,
) -> LifetimeValueModel:
    """Fit BG/NBD (every customer) and Gamma-Gamma (repeat buyers with a positive net mean value) as of the
    end of month ``as_of``; later orders are ignored. Identical (x, t_x, T) rows are grouped, so a million
    customers with daily order dates fit in seconds."""
    calibration_end, _ = _month_bounds(as_of)
    values = purchase_values(orders, calibration_end)
    summary = _summary(values, calibration_end)
    if summary.empty:
        raise ValueError(f"no orders on or before {calibration_end.date()}: nothing to score")
    x = summary["frequency"].to_numpy(dtype=np.float64)
    bgnbd = BetaGeoNBD().fit(x, summary["recency"].to_numpy(), summary["T"].to_numpy())
    mean_value = summary["monetary_value"].to_numpy()
    valued = (x > 0) & (mean_value > 0)
    if not np.any(valued):
        raise ValueError(f"no repeat buyer with a positive mean {values.basis}: Gamma-Gamma cannot be fitted")
    gamma_gamma = GammaGamma().fit(x[valued], mean_value[valued])
    return LifetimeValueModel(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        as_of_month=pd.Timestamp(as_of).date(),
        value_basis=values.basis,
        horizon_months=horizon_months,
        annual_discount_rate=annual_discount_rate,
        n_customers=len(summary),
        n_value_customers=int(valued.sum()),
        notes=values.notes,
    )


def score_customers(
    orders: pd.DataFrame,
    as_of: date,
    horizon_months: int = 12,
    annual_discount_rate: float = 0.10,
) -> pd.DataFrame:
    """Fit BG/NBD and Gamma-Gamma on the orders up to the end of month ``as_of`` and score every customer.

    ``orders`` has ``customer_id``, ``order_date`` and ``margin`` and/or ``revenue`` (one row per order or
    order line; lines of the same day are one purchase with their values summed). See
    :func:`fit_lifetime_value` and :meth:`LifetimeValueModel.score`.
    """
    model = fit_lifetime_value(orders, as_of, horizon_months, annual_discount_rate)
    return model.score(orders, as_of)


def bgnbd_snapshot_summary(orders: pd.DataFrame, as_of_month: date) -> pd.DataFrame:
    """The BG/NBD summary of a snapshot: ``frequency``, ``recency`` and ``T`` (weeks) of every customer with a
    sale by the end of ``as_of_month`` (:func:`rfm_summary`; returns are not purchases); index customer_id."""
    calibration_end, _ = _month_bounds(pd.Timestamp(as_of_month).replace(day=1))
    sales = orders.loc[~_return_lines(orders), ["customer_id", "order_date"]]
    summary = rfm_summary(sales, "customer_id", "order_date", None, calibration_end, time_unit="W")
    summary.index = summary.index.astype("str")
    summary.index.name = "customer_id"
    return summary


def fit_snapshot_bgnbd(summary: pd.DataFrame) -> BetaGeoNBD | None:
    """The BG/NBD fitted on one snapshot's summary (:func:`bgnbd_snapshot_summary`), or None when it has no
    repeat purchase yet (the model is then not identified)."""
    x = summary["frequency"].to_numpy(dtype=np.float64)
    if summary.empty or not np.any(x > 0):
        return None
    with warnings.catch_warnings():
        # A parameter running off to its limit (e.g. everyone drops out alike) still gives the limiting
        # model's predictions, which is all a model input needs.
        warnings.filterwarnings("ignore", message="BG/NBD: a parameter runs off", category=RuntimeWarning)
        return BetaGeoNBD().fit(x, summary["recency"].to_numpy(), summary["T"].to_numpy())


def bgnbd_view(summary: pd.DataFrame, bgnbd: BetaGeoNBD | None, horizon_days: int) -> pd.DataFrame:
    """The BG/NBD columns of :func:`bgnbd_features` from a snapshot's summary and its fitted model (NaN
    columns when ``bgnbd`` is None: the snapshot has no repeat purchase)."""
    if bgnbd is None:
        nan = np.full(len(summary), np.nan)
        return pd.DataFrame(
            {"bgnbd_p_alive": nan, "bgnbd_p_no_purchase": nan, "bgnbd_expected_purchases": nan},
            index=summary.index,
        )
    x = summary["frequency"].to_numpy(dtype=np.float64)
    recency = summary["recency"].to_numpy()
    age = summary["T"].to_numpy()
    t = horizon_days / 7.0
    return pd.DataFrame(
        {
            "bgnbd_p_alive": bgnbd.probability_alive(x, recency, age),
            "bgnbd_p_no_purchase": bgnbd.probability_no_purchase(t, x, recency, age),
            "bgnbd_expected_purchases": bgnbd.conditional_expected_purchases(t, x, recency, age),
        },
        index=summary.index,
    )


def bgnbd_features(
    orders: pd.DataFrame, as_of_month: date, horizon_days: int, bgnbd: BetaGeoNBD | None = None
) -> pd.DataFrame:
    """BG/NBD view of every customer as of the end of ``as_of_month``, as model inputs (index customer_id).

    ``bgnbd_p_alive``, ``bgnbd_p_no_purchase`` (:meth:`BetaGeoNBD.probability_no_purchase` over
    ``horizon_days``) and ``bgnbd_expected_purchases`` (eq. 10 over ``horizon_days``). The model is fitted on
    the snapshot itself unless ``bgnbd`` is given (it needs no labels, so it never looks ahead). When the
    snapshot has no repeat purchase yet the BG/NBD is not identified and the columns are NaN. The fit depends
    on the snapshot only, not on the horizon: :mod:`models.snapshots` fits it once per month and derives the
    view of each horizon with :func:`bgnbd_view`.
    """
    summary = bgnbd_snapshot_summary(orders, as_of_month)
    if bgnbd is None:
        bgnbd = fit_snapshot_bgnbd(summary)
    return bgnbd_view(summary, bgnbd, horizon_days)
