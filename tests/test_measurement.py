"""Campaign measurement (models/measurement.py): the numbers a campaign report shows are the textbook ones.

Protected properties: the response-uplift interval is Newcombe's hybrid score interval (published values of
Newcombe 1998, Table II, and an independent Wilson computation) and its p-value is Pearson's chi-square test of
the 2x2 table; the revenue/margin interval is Welch's (scipy as oracle); incremental margin, cost, profit and ROI
follow the documented arithmetic; the sample-ratio-mismatch p-value is the chi-square goodness-of-fit test; a
campaign without a control group reports NaN instead of a made-up effect; and the 95% interval covers a known
true uplift in about 95% of simulated campaigns with a small control group and a low response rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.measurement import (
    RESULT_COLUMNS,
    difference_in_means,
    difference_in_proportions,
    measure_campaign,
    sample_ratio_mismatch_p_value,
    wilson_interval,
)

OFFERS = pd.DataFrame({"offer_id": ["o1", "o2"], "contact_cost": [1.0, 0.5], "incentive_cost": [5.0, 2.0]})
Z95 = stats.norm.ppf(0.975)


def wilson_by_quadratic(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson limits as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n (Wilson 1927), solved for p."""
    p_hat = successes / n
    a = 1 + z**2 / n
    b = -(2 * p_hat + z**2 / n)
    c = p_hat**2
    roots = np.roots([a, b, c]).real
    return float(roots.min()), float(roots.max())


def outcomes_frame(campaign_id: str, offer_id: str, group: str, margins: list[float], **extra: object) -> pd.DataFrame:
    """One row per customer of one group; a customer responded when her margin is positive; revenue = 2 x margin."""
    margin = np.asarray(margins, dtype="float64")
    return pd.DataFrame(
        {
            "campaign_id": campaign_id,
            "customer_id": [f"{campaign_id}-{group}-{i}" for i in range(len(margin))],
            "offer_id": offer_id,
            "group": group,
            "responded": margin > 0,
            "revenue": 2 * margin,
            "margin": margin,
            **extra,
        }
    )


# ------------------------------------------------------------------------------------------ proportions
@pytest.mark.parametrize(
    ("counts", "published"),
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombe_interval_matches_published_values(counts: tuple[int, ...], published: tuple[float, float]) -> None:
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10."""
    result = difference_in_proportions(*counts)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(published, abs=1e-4)


@pytest.mark.parametrize("counts", [(30, 400, 2, 60), (120, 1000, 9, 100), (0, 50, 3, 40), (17, 17, 5, 9)])
def test_newcombe_interval_matches_the_hand_formula(counts: tuple[int, int, int, int]) -> None:
    x_t, n_t, x_c, n_c = counts
    p_t, p_c = x_t / n_t, x_c / n_c
    low_t, high_t = wilson_by_quadratic(x_t, n_t)
    low_c, high_c = wilson_by_quadratic(x_c, n_c)
    expected_low = (p_t - p_c) - np.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
    expected_high = (p_t - p_c) + np.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)

    result = difference_in_proportions(x_t, n_t, x_c, n_c)
    assert result["uplift"] == pytest.approx(p_t - p_c)
    assert result["ci_low"] == pytest.approx(expected_low, abs=1e-9)
    assert result["ci_high"] == pytest.approx(expected_high, abs=1e-9)
    np.testing.assert_allclose(np.ravel(wilson_interval(x_t, n_t)), (low_t, high_t), atol=1e-9)


@pytest.mark.parametrize("counts", [(30, 400, 2, 60), (120, 1000, 9, 100), (45, 300, 12, 50)])
def test_p_value_is_pearson_chi_square_without_continuity_correction(counts: tuple[int, int, int, int]) -> None:
    x_t, n_t, x_c, n_c = counts
    table = np.array([[x_t, n_t - x_t], [x_c, n_c - x_c]])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert difference_in_proportions(*counts)["p_value"] == pytest.approx(expected, rel=1e-9)


def test_identical_groups_with_no_responder_have_p_value_one() -> None:
    result = difference_in_proportions(0, 100, 0, 10)
    assert result["p_value"] == 1.0
    assert result["ci_low"] < 0 < result["ci_high"]  # no responders is still uncertain, not a point


def test_impossible_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="both groups"):
        difference_in_proportions(0, 10, 0, 0)
    with pytest.raises(ValueError, match=r"\[0, n\]"):
        difference_in_proportions(11, 10, 0, 5)


# ---------------------------------------------------------------------------------------------- means
def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    test = rng.gamma(1.5, 20.0, size=300)
    control = rng.gamma(1.5, 16.0, size=40)  # unequal sizes and variances, as in a campaign
    oracle = stats.ttest_ind(test, control, equal_var=False)
    oracle_interval = oracle.confidence_interval(0.95)

    result = difference_in_means(test, control)
    assert result["difference"] == pytest.approx(test.mean() - control.mean())
    assert result["p_value"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert result["dof"] == pytest.approx(oracle.df, rel=1e-9)
    assert result["ci_low"] == pytest.approx(oracle_interval.low, rel=1e-9)
    assert result["ci_high"] == pytest.approx(oracle_interval.high, rel=1e-9)


def test_welch_needs_two_values_per_group() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        difference_in_means([1.0, 2.0, 3.0], [1.0])


# ------------------------------------------------------------------------------------------- campaigns
@pytest.fixture
def campaign_a() -> pd.DataFrame:
    test = outcomes_frame("A", "o1", "test", [20, 30, 10, 40, 0, 0, 0, 0, 0, 0], treatment_probability=2 / 3)
    control = outcomes_frame("A", "o1", "control", [15, 0, 0, 0, 0], treatment_probability=2 / 3)
    return pd.concat([test, control], ignore_index=True)


def test_incremental_profit_and_roi_arithmetic(campaign_a: pd.DataFrame) -> None:
    row = measure_campaign(campaign_a, OFFERS).iloc[0]
    assert list(row.index) == RESULT_COLUMNS
    assert (row["n_test"], row["n_control"], row["responders_test"], row["responders_control"]) == (10, 5, 4, 1)
    assert row["uplift"] == pytest.approx(0.4 - 0.2)
    assert row["relative_uplift"] == pytest.approx(0.2 / 0.2)
    # margin per customer: test 100 / 10 = 10, control 15 / 5 = 3; scaled to the 10 test customers.
    assert row["incremental_margin"] == pytest.approx((10 - 3) * 10)
    assert row["incremental_revenue"] == pytest.approx((20 - 6) * 10)
    # 10 contacts at 1.0 plus a 5.0 voucher for each of the 4 test responders.
    assert row["campaign_cost"] == pytest.approx(10 * 1.0 + 4 * 5.0)
    assert row["incremental_profit"] == pytest.approx(70 - 30)
    assert row["roi"] == pytest.approx(40 / 30)
    # The margin interval is Welch's interval of the per-customer difference, times n_test.
    test_margin = campaign_a.loc[campaign_a["group"] == "test", "margin"]
    control_margin = campaign_a.loc[campaign_a["group"] == "control", "margin"]
    interval = stats.ttest_ind(test_margin, control_margin, equal_var=False).confidence_interval(0.95)
    assert row["incremental_margin_ci_low"] == pytest.approx(interval.low * 10)
    assert row["incremental_margin_ci_high"] == pytest.approx(interval.high * 10)
    # The realised 10/5 split is exactly the planned 2/3.
    assert row["planned_treatment_probability"] == pytest.approx(2 / 3)
    assert row["srm_p_value"] == pytest.approx(1.0)


def test_the_cost_is_the_vouchers_the_orders_record_as_redeemed(campaign_a: pd.DataFrame) -> None:
    # 2 of the 4 test responders redeemed the 5.0 voucher; a control customer's redemption (another campaign's
    # leaflet, a shared code) is not this campaign's cost.
    test_responders = campaign_a.index[(campaign_a["group"] == "test") & (campaign_a["revenue"] > 0)]
    voucher = pd.Series(0.0, index=campaign_a.index)
    voucher[test_responders[:2]] = 5.0
    voucher[campaign_a.index[campaign_a["group"] == "control"][0]] = 5.0
    row = measure_campaign(campaign_a.assign(voucher_cost=voucher), OFFERS).iloc[0]
    assert (row["redemptions"], row["redemption_rate"], row["voucher_cost"]) == (2, 0.5, 10.0)
    assert row["campaign_cost"] == pytest.approx(10 * 1.0 + 2 * 5.0)
    assert row["incremental_profit"] == pytest.approx(70 - 20)
    # Without recorded redemptions every test responder is charged a voucher, and redemptions are unknown.
    assumed = measure_campaign(campaign_a, OFFERS).iloc[0]
    assert assumed["voucher_cost"] == pytest.approx(4 * 5.0) and np.isnan(assumed["redemptions"])


def test_a_negative_or_missing_voucher_cost_is_refused_with_the_row(campaign_a: pd.DataFrame) -> None:
    voucher = pd.Series(0.0, index=campaign_a.index)
    voucher.iloc[3] = -5.0
    with pytest.raises(ValueError, match=r"voucher_cost must be >= 0.*1 row\(s\).*campaign A, customer"):
        measure_campaign(campaign_a.assign(voucher_cost=voucher), OFFERS)


def test_sample_ratio_mismatch_is_the_chi_square_goodness_of_fit() -> None:
    n_test, n_control, expected_test = np.array([900, 530, 88]), np.array([100, 470, 12]), np.array([850, 500, 90])
    oracle = [
        stats.chisquare([t, c], f_exp=[e, t + c - e]).pvalue
        for t, c, e in zip(n_test, n_control, expected_test, strict=True)
    ]
    np.testing.assert_allclose(sample_ratio_mismatch_p_value(n_test, n_control, expected_test), oracle, rtol=1e-9)
    # A plan that puts everyone in the test group: any control customer is a certain mismatch.
    np.testing.assert_array_equal(sample_ratio_mismatch_p_value([10, 9], [0, 1], [10, 10]), [1.0, 0.0])


def test_a_lopsided_split_is_flagged_as_sample_ratio_mismatch() -> None:
    test = outcomes_frame("S", "o1", "test", [0.0] * 500, treatment_probability=0.9)
    control = outcomes_frame("S", "o1", "control", [0.0] * 500, treatment_probability=0.9)
    row = measure_campaign(pd.concat([test, control], ignore_index=True), OFFERS).iloc[0]
    assert row["planned_treatment_probability"] == pytest.approx(0.9)
    assert row["srm_p_value"] < 1e-6


def test_campaign_without_control_reports_nan_not_an_effect(campaign_a: pd.DataFrame) -> None:
    no_control = outcomes_frame("B", "o2", "test", [5, 0, 0, 7])
    results = measure_campaign(pd.concat([campaign_a, no_control], ignore_index=True), OFFERS).set_index("campaign_id")
    b = results.loc["B"]
    assert (b["n_test"], b["n_control"], b["responders_control"]) == (4, 0, 0)
    for column in ("uplift", "ci_low", "ci_high", "p_value", "relative_uplift", "incremental_margin", "roi"):
        assert np.isnan(b[column]), column
    assert b["campaign_cost"] == pytest.approx(4 * 0.5 + 2 * 2.0)  # the money was still spent
    # The other campaign of the same table is unaffected.
    alone = measure_campaign(campaign_a, OFFERS).set_index("campaign_id").loc["A"]
    pd.testing.assert_series_equal(results.loc["A"], alone)


def test_no_outcomes_gives_an_empty_result_table(campaign_a: pd.DataFrame) -> None:
    result = measure_campaign(campaign_a.iloc[:0], OFFERS)
    assert result.empty
    assert list(result.columns) == RESULT_COLUMNS


def test_malformed_outcomes_are_rejected_with_the_reason(campaign_a: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="margin"):
        measure_campaign(campaign_a.drop(columns="margin"), OFFERS)
    with pytest.raises(ValueError, match="holdout"):
        measure_campaign(campaign_a.assign(group="holdout"), OFFERS)
    with pytest.raises(ValueError, match="more than once"):
        measure_campaign(pd.concat([campaign_a, campaign_a.iloc[:1]]), OFFERS)
    with pytest.raises(ValueError, match="o9"):
        measure_campaign(campaign_a.assign(offer_id="o9"), OFFERS)


# -------------------------------------------------------------------------------------------- coverage
def test_interval_covers_the_true_uplift_in_95_percent_of_simulated_campaigns() -> None:
    """400 campaigns of 900 test and 100 control customers, response 5% -> 8%: the regime Newcombe was chosen for."""
    rng = np.random.default_rng(20240601)
    n_campaigns, n_test, n_control = 400, 900, 100
    rate_control, true_uplift = 0.05, 0.03
    per_campaign = n_test + n_control
    is_test = np.tile(np.r_[np.ones(n_test, bool), np.zeros(n_control, bool)], n_campaigns)
    responded = rng.random(n_campaigns * per_campaign) < np.where(is_test, rate_control + true_uplift, rate_control)
    margin = np.where(responded, rng.gamma(2.0, 15.0, size=len(responded)), 0.0)
    outcomes = pd.DataFrame(
        {
            "campaign_id": np.repeat(np.arange(n_campaigns), per_campaign),
            "customer_id": np.tile(np.arange(per_campaign), n_campaigns),
            "offer_id": "o1",
            "group": np.where(is_test, "test", "control"),
            "responded": responded,
            "revenue": 2 * margin,
            "margin": margin,
        }
    )
    results = measure_campaign(outcomes, OFFERS)
    assert len(results) == n_campaigns
    covered = (results["ci_low"] <= true_uplift) & (true_uplift <= results["ci_high"])
    assert 0.92 <= covered.mean() <= 0.98


# ------------------------------------------------------------------------- relative uplift, segments, overall
def test_relative_uplift_interval_is_katz_log_interval(campaign_a: pd.DataFrame) -> None:
    row = measure_campaign(campaign_a, OFFERS).iloc[0]
    # 4/10 vs 1/5: log RR = log(2), se = sqrt(1/4 - 1/10 + 1/1 - 1/5) (Katz et al. 1978).
    se = np.sqrt(1 / 4 - 1 / 10 + 1 / 1 - 1 / 5)
    assert row["relative_uplift_ci_low"] == pytest.approx(np.exp(np.log(2) - Z95 * se) - 1)
    assert row["relative_uplift_ci_high"] == pytest.approx(np.exp(np.log(2) + Z95 * se) - 1)
    assert row["relative_uplift_ci_low"] < row["relative_uplift"] < row["relative_uplift_ci_high"]
    # Revenue: Welch's interval and p-value of revenue per customer, times n_test; profit = margin - cost.
    test_revenue = campaign_a.loc[campaign_a["group"] == "test", "revenue"]
    control_revenue = campaign_a.loc[campaign_a["group"] == "control", "revenue"]
    welch = stats.ttest_ind(test_revenue, control_revenue, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert row["incremental_revenue_ci_low"] == pytest.approx(interval.low * 10)
    assert row["revenue_p_value"] == pytest.approx(welch.pvalue)
    assert row["incremental_profit_ci_low"] == pytest.approx(row["incremental_margin_ci_low"] - row["campaign_cost"])


def test_holm_adjustment_matches_the_step_down_by_hand() -> None:
    from models.measurement import holm_adjust

    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm_adjust([0.5, np.nan, 0.2]), [0.5, np.nan, 0.4])
    assert (holm_adjust(np.random.default_rng(0).random(20)) <= 1).all()


def test_segments_are_measured_like_campaigns_and_holm_adjusted_within_each(campaign_a: pd.DataFrame) -> None:
    from models.measurement import measure_segments

    rng = np.random.default_rng(3)
    frame = pd.concat([campaign_a, campaign_a.assign(campaign_id="B", customer_id=lambda f: "B" + f["customer_id"])])
    frame["segment"] = rng.choice(["gold", "silver"], len(frame))
    segments = measure_segments(frame, OFFERS)
    assert set(segments["campaign_id"]) == {"A", "B"} and set(segments["segment"]) <= {"gold", "silver"}
    for (campaign, segment), row in segments.set_index(["campaign_id", "segment"]).iterrows():
        subset = frame[(frame["campaign_id"] == campaign) & (frame["segment"] == segment)]
        alone = measure_campaign(subset, OFFERS).iloc[0]
        assert row["uplift"] == pytest.approx(alone["uplift"], nan_ok=True)
        assert row["incremental_profit"] == pytest.approx(alone["incremental_profit"], nan_ok=True)
    from models.measurement import holm_adjust

    for _, rows in segments.groupby("campaign_id"):
        np.testing.assert_allclose(rows["p_value_holm"], holm_adjust(rows["p_value"]))


def test_overall_result_is_the_test_weighted_combination_of_campaigns(campaign_a: pd.DataFrame) -> None:
    from models.measurement import measure_overall

    single = measure_campaign(campaign_a, OFFERS)
    overall = measure_overall(single)
    assert overall["uplift"] == pytest.approx(single["uplift"].iloc[0])
    assert overall["incremental_profit"] == pytest.approx(single["incremental_profit"].iloc[0])
    other = campaign_a.assign(campaign_id="B", customer_id=lambda f: "B" + f["customer_id"], offer_id="o2")
    other.loc[other["group"] == "control", "margin"] = 0.0
    other["responded"] = other["margin"] > 0
    both = measure_campaign(pd.concat([campaign_a, other]), OFFERS)
    combined = measure_overall(both)
    weights = both["n_test"] / both["n_test"].sum()
    assert combined["uplift"] == pytest.approx(float((weights * both["uplift"]).sum()))
    assert combined["roi"] == pytest.approx(both["incremental_profit"].sum() / both["campaign_cost"].sum())
    assert combined["ci_low"] < combined["uplift"] < combined["ci_high"]
