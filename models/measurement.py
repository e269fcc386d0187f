"""Measure a campaign: randomised test versus control, with honest uncertainty.

Response-rate uplift. The interval is Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation
for the difference between independent proportions: comparison of eleven methods", Statistics in Medicine
17:873-890, method 10): Wilson score limits ``(l_i, u_i)`` of each proportion (Wilson 1927) are combined as

    L = d - sqrt((p_t - l_t)^2 + (u_c - p_c)^2),    U = d + sqrt((u_t - p_t)^2 + (p_c - l_c)^2),

with ``d = p_t - p_c``. It is chosen over the Wald interval because control groups are small (10% of a
campaign, often 50-500 customers) and response rates are low: there the Wald interval covers the true uplift
well below its nominal level (and collapses to a point at 0 responders), while Newcombe's interval keeps close
to nominal coverage, never leaves [-1, 1] and needs no iteration (Newcombe 1998, Table III; Brown & Li 2005).
The p-value is the two-sided two-proportion z test with the pooled variance under H0 (equivalently Pearson's
chi-square test of the 2x2 table without continuity correction; Agresti 2013, *Categorical Data Analysis*,
section 3.1).

Revenue and margin per customer. Welch's t interval and test (Welch 1947), degrees of freedom by the
Welch-Satterthwaite formula: the groups have unequal sizes and unequal variances by design.

Everything is vectorised over arrays, so a table of campaigns is measured without a Python loop over campaigns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

GROUPS = ("test", "control")

RESULT_COLUMNS: list[str] = [
    "campaign_id",
    "offer_id",
    "n_test",
    "n_control",
    "responders_test",
    "responders_control",
    "response_rate_test",
    "response_rate_control",
    "revenue_per_customer_test",
    "revenue_per_customer_control",
    "margin_per_customer_test",
    "margin_per_customer_control",
    "uplift",
    "ci_low",
    "ci_high",
    "p_value",
    "relative_uplift",
    "incremental_revenue",
    "incremental_margin",
    "incremental_margin_ci_low",
    "incremental_margin_ci_high",
    "campaign_cost",
    "incremental_profit",
    "roi",
    "redemptions",
    "redemption_rate",
    "voucher_cost",
    "planned_treatment_probability",
    "srm_p_value",
    "relative_uplift_ci_low",
    "relative_uplift_ci_high",
    "incremental_revenue_ci_low",
    "incremental_revenue_ci_high",
    "revenue_p_value",
    "margin_p_value",
    "incremental_profit_ci_low",
    "incremental_profit_ci_high",
]


# ---------------------------------------------------------------------------------------- proportions
def wilson_interval(successes: Any, n: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson (1927) score interval of a binomial proportion (vectorised; NaN where ``n == 0``).

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.
    """
    x = np.asarray(successes, dtype="float64")
    n = np.asarray(n, dtype="float64")
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half_width = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
    return np.clip(centre - half_width, 0.0, 1.0), np.clip(centre + half_width, 0.0, 1.0)


def _proportions_difference(
    successes_t: Any, n_t: Any, successes_c: Any, n_c: Any, confidence: float
) -> dict[str, np.ndarray]:
    """Vectorised core of :func:`difference_in_proportions` (NaN where a group is empty)."""
    x_t, n_t = np.asarray(successes_t, dtype="float64"), np.asarray(n_t, dtype="float64")
    x_c, n_c = np.asarray(successes_c, dtype="float64"), np.asarray(n_c, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t, p_c = x_t / n_t, x_c / n_c
        uplift = p_t - p_c
        low_t, high_t = wilson_interval(x_t, n_t, confidence)
        low_c, high_c = wilson_interval(x_c, n_c, confidence)
        ci_low = uplift - np.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
        ci_high = uplift + np.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
        pooled = (x_t + x_c) / (n_t + n_c)
        standard_error = np.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
        z = uplift / standard_error
        p_value = 2 * stats.norm.sf(np.abs(z))
    # Pooled rate 0 or 1: both groups identical (all or none responded), no evidence of a difference.
    p_value = np.where(standard_error == 0, 1.0, p_value)
    p_value = np.where(np.isnan(uplift), np.nan, p_value)
    return {
        "rate_test": p_t,
        "rate_control": p_c,
        "uplift": uplift,
        "ci_low": np.clip(ci_low, -1.0, 1.0),
        "ci_high": np.clip(ci_high, -1.0, 1.0),
        "p_value": p_value,
    }


def difference_in_proportions(
    successes_t: int, n_t: int, successes_c: int, n_c: int, confidence: float = 0.95
) -> dict[str, float]:
    """Response-rate uplift ``p_t - p_c`` with Newcombe's hybrid score interval and a two-proportion z test.

    Returns ``uplift``, ``ci_low``, ``ci_high``, ``p_value``, ``rate_test``, ``rate_control``. Raises
    ``ValueError`` for an empty group or impossible counts.
    """
    if min(n_t, n_c) <= 0:
        raise ValueError(f"both groups need customers (n_t={n_t}, n_c={n_c})")
    if not (0 <= successes_t <= n_t and 0 <= successes_c <= n_c):
        raise ValueError(f"successes must lie in [0, n] (got {successes_t}/{n_t} and {successes_c}/{n_c})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    result = _proportions_difference(successes_t, n_t, successes_c, n_c, confidence)
    return {key: float(value) for key, value in result.items()}


# ---------------------------------------------------------------------------------------------- means
def _welch(
    mean_t: Any, var_t: Any, n_t: Any, mean_c: Any, var_c: Any, n_c: Any, confidence: float
) -> dict[str, np.ndarray]:
    """Vectorised Welch interval and test from group summaries (sample variances, ddof=1)."""
    mean_t, var_t, n_t = (np.asarray(a, dtype="float64") for a in (mean_t, var_t, n_t))
    mean_c, var_c, n_c = (np.asarray(a, dtype="float64") for a in (mean_c, var_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = mean_t - mean_c
        v_t, v_c = var_t / n_t, var_c / n_c
        standard_error = np.sqrt(v_t + v_c)
        # Welch-Satterthwaite degrees of freedom.
        dof = (v_t + v_c) ** 2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))
        t_crit = stats.t.ppf(0.5 + confidence / 2, dof)
        ci_low = difference - t_crit * standard_error
        ci_high = difference + t_crit * standard_error
        p_value = 2 * stats.t.sf(np.abs(difference / standard_error), dof)
    # No variance in either group: the difference is known exactly.
    degenerate = standard_error == 0
    ci_low = np.where(degenerate, difference, ci_low)
    ci_high = np.where(degenerate, difference, ci_high)
    p_value = np.where(degenerate, np.where(difference == 0, 1.0, 0.0), p_value)
    return {
        "difference": difference,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": p_value,
        "dof": dof,
        "mean_test": mean_t,
        "mean_control": mean_c,
    }


def difference_in_means(
    values_t: Sequence[float] | np.ndarray, values_c: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> dict[str, float]:
    """Difference of means (test - control) with Welch's t interval and two-sided p-value (Welch 1947).

    Returns ``difference``, ``ci_low``, ``ci_high``, ``p_value``, ``dof``, ``mean_test``, ``mean_control``.
    Each group needs at least two values.
    """
    t = np.asarray(values_t, dtype="float64")
    c = np.asarray(values_c, dtype="float64")
    if len(t) < 2 or len(c) < 2:
        raise ValueError(f"each group needs at least 2 values (test {len(t)}, control {len(c)})")
    if np.isnan(t).any() or np.isnan(c).any():
        raise ValueError("values must not contain NaN")
    result = _welch(t.mean(), t.var(ddof=1), len(t), c.mean(), c.var(ddof=1), len(c), confidence)
    return {key: float(value) for key, value in result.items()}


# ------------------------------------------------------------------------------------------- campaigns
def sample_ratio_mismatch_p_value(n_test: Any, n_control: Any, expected_test: Any) -> np.ndarray:
    """Chi-square goodness-of-fit p-value (1 df) of the observed test/control split against the plan.

    ``expected_test`` = the planned number of test customers (sum of treatment probabilities). A small p-value
    means customers were lost or moved between groups after randomisation (a sample ratio mismatch; Fabijan et
    al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD).
    """
    n_test = np.asarray(n_test, dtype="float64")
    n_control = np.asarray(n_control, dtype="float64")
    expected_test = np.asarray(expected_test, dtype="float64")
    expected_control = n_test + n_control - expected_test
    with np.errstate(divide="ignore", invalid="ignore"):
        chi_square = (n_test - expected_test) ** 2 / expected_test + (
            n_control - expected_control
        ) ** 2 / expected_control
        p_value = stats.chi2.sf(chi_square, df=1)
    # A plan with everyone (or no one) in the test group: any other split is an exact mismatch.
    undefined = (expected_test <= 0) | (expected_control <= 0)
    exact = np.isclose(n_test, expected_test)
    return np.where(undefined, np.where(exact, 1.0, 0.0), p_value)


def measure_campaign(outcomes: pd.DataFrame, offers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Test-versus-control results, one row per campaign.

    ``outcomes``: one row per assigned customer with ``campaign_id``, ``customer_id``, ``offer_id``, ``group``
    (``'test'``/``'control'``), ``responded`` (bool), ``revenue``, ``margin`` (in the response window; 0 for
    customers without orders) and optionally ``treatment_probability`` (the planned P(test)) and
    ``voucher_cost`` (EUR of the campaign's vouchers the customer redeemed in the window, as recorded on the
    orders: 0 for a customer who redeemed none).
    ``offers``: ``offer_id``, ``contact_cost`` (per contacted test customer), ``incentive_cost`` (the voucher).

    Columns (see :data:`RESULT_COLUMNS`):

    - ``uplift = rate_test - rate_control`` with Newcombe's interval (``ci_low``, ``ci_high``) and the z-test
      ``p_value``; ``relative_uplift = uplift / rate_control`` (NaN when the control rate is 0) with the Katz
      log interval of the rate ratio (``relative_uplift_ci_low``, ``relative_uplift_ci_high``; Katz et al. 1978,
      a zero cell gets Haldane's 0.5 correction).
    - ``incremental_revenue = (revenue/customer_test - revenue/customer_control) * n_test``; the same for
      ``incremental_margin``; each with a Welch interval scaled by ``n_test`` and Welch's p-value.
    - ``campaign_cost = n_test * contact_cost + voucher_cost``: the vouchers the test group redeemed, as the
      orders record them (``redemptions``: test customers who redeemed one; ``redemption_rate`` =
      redemptions / responders_test). Without a ``voucher_cost`` column (orders that record no discounts) every
      test responder is assumed to have redeemed: ``voucher_cost = incentive_cost * responders_test``, and
      ``redemptions`` is NaN.
    - ``incremental_profit = incremental_margin - campaign_cost``; ``roi = incremental_profit / campaign_cost``.
      (Margin is gross margin before the incentive; a redeemed voucher is a cost, including those of the
      responders who would have bought anyway.) Its interval is the margin's shifted by the (observed) cost.
    - ``srm_p_value``: sample-ratio-mismatch test against the planned split when ``treatment_probability`` is
      given (NaN otherwise).

    A campaign without control (or test) customers gets NaN statistics rather than an error.
    """
    return _measure(_validated(outcomes, offers), ["campaign_id"], offers, confidence)


def measure_segments(
    outcomes: pd.DataFrame, offers: pd.DataFrame, segment: str = "segment", confidence: float = 0.95
) -> pd.DataFrame:
    """The same statistics as :func:`measure_campaign`, one row per campaign and value of ``outcomes[segment]``.

    Several segments of one campaign are several tests: ``p_value_holm`` (response uplift) and
    ``margin_p_value_holm`` are Holm's (1979) step-down adjusted p-values within each campaign, which keep the
    family-wise error rate at the nominal level whatever the dependence between segments.
    """
    frame = _validated(outcomes, offers)
    if segment not in frame.columns:
        raise ValueError(f"outcomes has no segment column {segment!r}")
    frame = frame.assign(**{segment: frame[segment].astype("string").fillna("unknown").astype(str)})
    result = _measure(frame, ["campaign_id", segment], offers, confidence)
    result = result.rename(columns={segment: "segment"})
    result["p_value_holm"] = result.groupby("campaign_id")["p_value"].transform(holm_adjust)
    result["margin_p_value_holm"] = result.groupby("campaign_id")["margin_p_value"].transform(holm_adjust)
    return result


def holm_adjust(p_values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): ``max_{j<=i} min(1, (m - j + 1) p_(j))`` in sorted order.

    NaN p-values (a segment without control customers) are left NaN and do not count as tests.
    """
    values = np.asarray(p_values, dtype="float64")
    adjusted = np.full(values.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    m = len(valid)
    if m == 0:
        return adjusted
    order = valid[np.argsort(values[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * values[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def measure_overall(results: pd.DataFrame, confidence: float = 0.95) -> dict[str, float]:
    """All campaigns of a table of :func:`measure_campaign` results together, stratified by campaign.

    Each campaign is its own randomised experiment, so the overall effect on the contacted customers is the
    test-size-weighted mean of the campaigns' uplifts, ``sum_k n_t,k d_k / sum_k n_t,k``, with the variance
    ``sum_k w_k^2 (p_t,k (1 - p_t,k) / n_t,k + p_c,k (1 - p_c,k) / n_c,k)`` (a normal interval; the campaigns are
    independent). Revenue, margin, cost and profit add up; ``roi = profit / cost``. Campaigns without a
    control group are left out.
    """
    valid = results[(results["n_control"] > 0) & (results["n_test"] > 0)]
    n_test = valid["n_test"].to_numpy("float64")
    if len(valid) == 0 or n_test.sum() == 0:
        return {"campaigns": 0}
    weights = n_test / n_test.sum()
    p_t = valid["response_rate_test"].to_numpy("float64")
    p_c = valid["response_rate_control"].to_numpy("float64")
    variance = np.sum(
        weights**2 * (p_t * (1 - p_t) / n_test + p_c * (1 - p_c) / valid["n_control"].to_numpy("float64"))
    )
    uplift = float(np.sum(weights * (p_t - p_c)))
    z = stats.norm.ppf(0.5 + confidence / 2)
    standard_error = float(np.sqrt(variance))
    cost = float(valid["campaign_cost"].sum())
    profit = float(valid["incremental_profit"].sum())
    return {
        "campaigns": len(valid),
        "n_test": int(n_test.sum()),
        "n_control": int(valid["n_control"].sum()),
        "response_rate_test": float(np.sum(weights * p_t)),
        "response_rate_control": float(np.sum(weights * p_c)),
        "uplift": uplift,
        "ci_low": uplift - z * standard_error,
        "ci_high": uplift + z * standard_error,
        "p_value": float(2 * stats.norm.sf(abs(uplift) / standard_error)) if standard_error > 0 else float("nan"),
        "incremental_revenue": float(valid["incremental_revenue"].sum()),
        "incremental_margin": float(valid["incremental_margin"].sum()),
        "campaign_cost": cost,
        "incremental_profit": profit,
        "roi": profit / cost if cost > 0 else float("nan"),
    }


def _validated(outcomes: pd.DataFrame, offers: pd.DataFrame) -> pd.DataFrame:
    required = ["campaign_id", "customer_id", "offer_id", "group", "responded", "revenue", "margin"]
    missing = [c for c in required if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes is missing column(s) {missing}")
    missing_offer_columns = [c for c in ("offer_id", "contact_cost", "incentive_cost") if c not in offers.columns]
    if missing_offer_columns:
        raise ValueError(f"offers is missing column(s) {missing_offer_columns}")
    if outcomes.empty:
        return outcomes
    unknown_groups = sorted(set(outcomes["group"].unique()) - set(GROUPS))
    if unknown_groups:
        raise ValueError(f"outcomes.group must be 'test' or 'control'; found {unknown_groups}")
    if outcomes[["revenue", "margin"]].isna().any().any():
        raise ValueError("outcomes.revenue/margin contain NaN; customers without orders must have 0")
    if outcomes.duplicated(["campaign_id", "customer_id"]).any():
        raise ValueError("a customer appears more than once in a campaign's outcomes")
    offers_per_campaign = outcomes.groupby("campaign_id")["offer_id"].nunique()
    if (offers_per_campaign > 1).any():
        raise ValueError(
            f"campaign(s) {sorted(offers_per_campaign[offers_per_campaign > 1].index)} have several offer_ids"
        )
    unknown_offers = sorted(set(outcomes["offer_id"]) - set(offers["offer_id"]))
    if unknown_offers:
        raise ValueError(f"offer_id(s) {unknown_offers} are not in the offers table")
    if "voucher_cost" in outcomes.columns:
        voucher = outcomes["voucher_cost"]
        bad = voucher.isna() | (voucher < 0)
        if bad.any():
            first = outcomes.loc[bad].iloc[0]
            raise ValueError(
                f"outcomes.voucher_cost must be >= 0 (0 for a customer who redeemed no voucher); {int(bad.sum())} "
                f"row(s) break it, e.g. campaign {first['campaign_id']}, customer {first['customer_id']}"
            )
        outcomes = outcomes.assign(voucher_cost=voucher.astype("float64"), redeemed=(voucher > 0).astype("float64"))
    return outcomes.assign(
        responded=outcomes["responded"].astype(bool).astype("float64"),
        revenue=outcomes["revenue"].astype("float64"),
        margin=outcomes["margin"].astype("float64"),
    )


def _relative_interval(x_t: np.ndarray, n_t: np.ndarray, x_c: np.ndarray, n_c: np.ndarray, confidence: float):
    """Katz log interval of the rate ratio p_t / p_c, minus 1 (Haldane's 0.5 added to every cell of a table
    with a zero cell)."""
    zero = (x_t == 0) | (x_c == 0) | (x_t == n_t) | (x_c == n_c)
    a, b = np.where(zero, x_t + 0.5, x_t), np.where(zero, x_c + 0.5, x_c)
    m, k = np.where(zero, n_t + 1.0, n_t), np.where(zero, n_c + 1.0, n_c)
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((a / m) / (b / k))
        standard_error = np.sqrt(1 / a - 1 / m + 1 / b - 1 / k)
        low, high = np.exp(log_ratio - z * standard_error) - 1, np.exp(log_ratio + z * standard_error) - 1
    empty = (n_t == 0) | (n_c == 0)
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def _measure(frame: pd.DataFrame, keys: list[str], offers: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The statistics of :func:`measure_campaign` for every group of ``keys`` (campaign_id first)."""
    columns = [*keys[1:], *RESULT_COLUMNS] if keys[1:] else RESULT_COLUMNS
    if frame.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        return empty.astype({c: "str" for c in ["campaign_id", "offer_id", *keys[1:]]})
    recorded = "voucher_cost" in frame.columns
    if not recorded:
        frame = frame.assign(voucher_cost=np.nan, redeemed=np.nan)
    by_group = frame.groupby([*keys, "group"], sort=True).agg(
        n=("customer_id", "size"),
        responders=("responded", "sum"),
        voucher_cost=("voucher_cost", "sum"),
        redemptions=("redeemed", "sum"),
        revenue=("revenue", "mean"),
        revenue_var=("revenue", "var"),
        margin=("margin", "mean"),
        margin_var=("margin", "var"),
    )
    wide = by_group.unstack("group")
    cells = wide.index
    test = {column: _group_column(wide, column, "test") for column in by_group.columns}
    control = {column: _group_column(wide, column, "control") for column in by_group.columns}

    proportions = _proportions_difference(
        test["responders"], test["n"], control["responders"], control["n"], confidence
    )
    revenue_welch = _welch(
        test["revenue"],
        test["revenue_var"],
        test["n"],
        control["revenue"],
        control["revenue_var"],
        control["n"],
        confidence,
    )
    margin_welch = _welch(
        test["margin"],
        test["margin_var"],
        test["n"],
        control["margin"],
        control["margin_var"],
        control["n"],
        confidence,
    )
    campaign_of_cell = cells.get_level_values("campaign_id") if isinstance(cells, pd.MultiIndex) else cells
    offer_by_campaign = frame.groupby("campaign_id", sort=True)["offer_id"].first()
    offer_of_cell = offer_by_campaign.reindex(campaign_of_cell).to_numpy()
    costs = offers.drop_duplicates("offer_id").set_index("offer_id").loc[offer_of_cell]
    contact_cost = costs["contact_cost"].to_numpy("float64")
    incentive_cost = costs["incentive_cost"].to_numpy("float64")

    n_test, n_control = test["n"], control["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        incremental_revenue = (test["revenue"] - control["revenue"]) * n_test
        incremental_margin = (test["margin"] - control["margin"]) * n_test
        voucher_cost = test["voucher_cost"] if recorded else incentive_cost * test["responders"]
        redemptions = test["redemptions"] if recorded else np.full(len(cells), np.nan)
        campaign_cost = n_test * contact_cost + voucher_cost
        incremental_profit = incremental_margin - campaign_cost
        roi = np.where(campaign_cost > 0, incremental_profit / campaign_cost, np.nan)
        relative_uplift = np.where(
            proportions["rate_control"] > 0, proportions["uplift"] / proportions["rate_control"], np.nan
        )
    relative_low, relative_high = _relative_interval(
        test["responders"], n_test, control["responders"], n_control, confidence
    )

    if "treatment_probability" in frame.columns:
        expected_test = frame.groupby(keys, sort=True)["treatment_probability"].sum().reindex(cells)
        n_assigned = n_test + n_control
        with np.errstate(divide="ignore", invalid="ignore"):
            planned_probability = expected_test.to_numpy("float64") / n_assigned
        srm_p_value = sample_ratio_mismatch_p_value(n_test, n_control, expected_test.to_numpy("float64"))
    else:
        planned_probability = np.full(len(cells), np.nan)
        srm_p_value = np.full(len(cells), np.nan)

    key_columns = {
        key: pd.array(
            cells.get_level_values(key).astype(str) if isinstance(cells, pd.MultiIndex) else cells.astype(str),
            dtype="str",
        )
        for key in keys
    }
    result = pd.DataFrame(
        {
            **key_columns,
            "offer_id": pd.array(pd.Series(offer_of_cell).astype(str).to_numpy(), dtype="str"),
            "n_test": n_test.astype("int64"),
            "n_control": n_control.astype("int64"),
            "responders_test": test["responders"].astype("int64"),
            "responders_control": control["responders"].astype("int64"),
            "response_rate_test": proportions["rate_test"],
            "response_rate_control": proportions["rate_control"],
            "revenue_per_customer_test": test["revenue"],
            "revenue_per_customer_control": control["revenue"],
            "margin_per_customer_test": test["margin"],
            "margin_per_customer_control": control["margin"],
            "uplift": proportions["uplift"],
            "ci_low": proportions["ci_low"],
            "ci_high": proportions["ci_high"],
            "p_value": proportions["p_value"],
            "relative_uplift": relative_uplift,
            "incremental_revenue": incremental_revenue,
            "incremental_margin": incremental_margin,
            "incremental_margin_ci_low": margin_welch["ci_low"] * n_test,
            "incremental_margin_ci_high": margin_welch["ci_high"] * n_test,
            "campaign_cost": campaign_cost,
            "incremental_profit": incremental_profit,
            "roi": roi,
            "redemptions": redemptions,
            "redemption_rate": np.where(
                test["responders"] > 0, redemptions / np.maximum(test["responders"], 1), np.nan
            ),
            "voucher_cost": voucher_cost,
            "planned_treatment_probability": planned_probability,
            "srm_p_value": srm_p_value,
            "relative_uplift_ci_low": relative_low,
            "relative_uplift_ci_high": relative_high,
            "incremental_revenue_ci_low": revenue_welch["ci_low"] * n_test,
            "incremental_revenue_ci_high": revenue_welch["ci_high"] * n_test,
            "revenue_p_value": revenue_welch["p_value"],
            "margin_p_value": margin_welch["p_value"],
            "incremental_profit_ci_low": margin_welch["ci_low"] * n_test - campaign_cost,
            "incremental_profit_ci_high": margin_welch["ci_high"] * n_test - campaign_cost,
        }
    )
    return result[columns].reset_index(drop=True)


def _group_column(wide: pd.DataFrame, column: str, group: str) -> np.ndarray:
    """One statistic of one group per campaign; counts of an absent group are 0, statistics NaN."""
    present = (column, group) in wide.columns
    values = wide[(column, group)].to_numpy("float64") if present else np.full(len(wide), np.nan)
    if column in ("n", "responders", "voucher_cost", "redemptions"):
        values = np.nan_to_num(values, nan=0.0)
    return values
