"""BG/NBD, Gamma-Gamma and CLV (models/clv.py) against the published CDNOW results and lifetimes as an oracle.

Published numbers: Fader, Hardie & Lee (2005a) "Counting Your Customers the Easy Way" (BG/NBD on the CDNOW
sample, 2,357 customers, 39-week calibration ending 1997-09-30) and Fader, Hardie & Lee (2005b) "RFM and CLV:
Using Iso-Value Curves" (Gamma-Gamma on the same customers' repeat purchases). The data files are the ones
bundled with `lifetimes`, which is also the oracle for the formulas (archived: used in tests only). The raw
CDNOW_sample.txt is also run the way a user's transaction log is: through `crm-loop import`'s importer into the
files-source layout and the analyse stage's fit. The BG/NBD probability of no purchase over a horizon (the churn
baseline and model input) is checked against simulated BG/NBD customers; CLV falls back to revenue without
margin data, and returns are not purchases.
"""

from __future__ import annotations

import importlib.resources
import time
import warnings
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models import clv as clv_module
from models.clv import (
    BetaGeoNBD,
    GammaGamma,
    ModelFitError,
    customer_lifetime_value,
    fit_lifetime_value,
    purchase_values,
    rfm_summary,
    score_customers,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter

CDNOW = importlib.resources.files("lifetimes") / "datasets"
CALIBRATION_END = date(1997, 9, 30)

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LOG_LIKELIHOOD = -9582.4
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """The ready-made calibration summary: ID, frequency, recency, T (weeks, rounded to 0.01)."""
    return pd.read_csv(CDNOW / "cdnow_customers_summary.csv", index_col="ID")


@pytest.fixture(scope="module")
def cdnow_summary_with_value() -> pd.DataFrame:
    """The same customers with zbar, the mean value of their calibration-period repeat purchases."""
    summary = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv", index_col="ID")
    return summary.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})


@pytest.fixture(scope="module")
def cdnow_transactions() -> pd.DataFrame:
    """CDNOW_sample.txt: master id, sample id, date YYYYMMDD, number of CDs, dollar value (whitespace)."""
    return pd.read_csv(
        CDNOW / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_customer_id", "customer_id", "purchase_date", "number_of_cds", "dollar_value"],
        dtype={"master_customer_id": str, "customer_id": str, "purchase_date": str},
    ).assign(purchase_date=lambda frame: pd.to_datetime(frame["purchase_date"], format="%Y%m%d"))


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_summary: pd.DataFrame) -> BetaGeoNBD:
    return BetaGeoNBD().fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


@pytest.fixture(scope="module")
def lifetimes_models(
    cdnow_summary_with_value: pd.DataFrame,
) -> tuple[BetaGeoFitter, GammaGammaFitter]:
    """The oracle: lifetimes' fitters on the same data (their params are then given to our models)."""
    data = cdnow_summary_with_value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
        repeat = data[data["frequency"] > 0]
        ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    return bgf, ggf


def _assert_within_relative(fitted: dict[str, float], published: dict[str, float], tolerance: float) -> None:
    for name, expected in published.items():
        assert fitted[name] == pytest.approx(expected, rel=tolerance), (name, fitted[name], expected)


def simulate_bgnbd_summary(
    n_customers: int, r: float, alpha: float, a: float, b: float, seed: int, max_age_days: int = 730
) -> pd.DataFrame:
    """Draw (x, t_x, T) in weeks from the BG/NBD generative model (FHL 2005a, section 2).

    A customer buys at Poisson rate lambda ~ Gamma(r, alpha) and drops out after each repeat purchase with
    probability p ~ Beta(a, b), so K ~ Geometric(p) repeat purchases happen before dropout and
    x = min(K, N(T)) with N(T) ~ Poisson(lambda T). Given N(T) = n the purchase times are uniform on (0, T],
    so t_x is the x-th order statistic of n uniforms: T * Beta(x, n - x + 1). Ages are whole days and
    t_x is floored to a day, as in daily order data.
    """
    rng = np.random.default_rng(seed)
    age_days = rng.integers(1, max_age_days + 1, n_customers)
    age = age_days / 7.0
    purchase_rate = rng.gamma(r, 1.0 / alpha, n_customers)
    dropout = rng.beta(a, b, n_customers)
    purchases_if_alive = rng.poisson(purchase_rate * age)
    purchases_before_dropout = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    x = np.minimum(purchases_if_alive, purchases_before_dropout)
    has_repeat = x > 0
    fraction = np.zeros(n_customers)
    fraction[has_repeat] = rng.beta(x[has_repeat], purchases_if_alive[has_repeat] - x[has_repeat] + 1)
    recency_days = np.where(has_repeat, np.maximum(np.floor(fraction * age_days), 1), 0)
    return pd.DataFrame({"frequency": x, "recency": recency_days / 7.0, "T": age})


# ------------------------------------------------------------------------------- published CDNOW numbers
def test_bgnbd_fit_on_cdnow_summary_matches_published_parameters(cdnow_bgnbd: BetaGeoNBD) -> None:
    _assert_within_relative(cdnow_bgnbd.params_, PUBLISHED_BGNBD, 0.01)
    assert cdnow_bgnbd.log_likelihood_ == pytest.approx(PUBLISHED_BGNBD_LOG_LIKELIHOOD, abs=0.1)


def test_rfm_summary_from_raw_cdnow_transactions_reproduces_the_ready_made_summary(
    cdnow_transactions: pd.DataFrame, cdnow_summary: pd.DataFrame, cdnow_summary_with_value: pd.DataFrame
) -> None:
    summary = rfm_summary(
        cdnow_transactions, "customer_id", "purchase_date", "dollar_value", CALIBRATION_END, time_unit="W"
    )
    summary.index = summary.index.astype(int)
    assert summary.index.tolist() == cdnow_summary.index.tolist()  # every one of the 2,357 customers once
    assert (summary["frequency"] == cdnow_summary["frequency"]).all()
    # The ready-made file rounds weeks to 2 decimals; lifetimes computes (date - first) / 7 days.
    assert (summary["recency"].round(2) == cdnow_summary["recency"]).all()
    assert (summary["T"].round(2) == cdnow_summary["T"]).all()
    # Mean value of the repeat purchases (first purchase excluded), rounded to cents in the file.
    assert np.abs(summary["monetary_value"] - cdnow_summary_with_value["monetary_value"]).max() <= 0.005 + 1e-9

    model = BetaGeoNBD().fit(summary["frequency"], summary["recency"], summary["T"])
    _assert_within_relative(model.params_, PUBLISHED_BGNBD, 0.01)


def test_gamma_gamma_on_cdnow_repeat_buyers_matches_published_parameters(
    cdnow_summary_with_value: pd.DataFrame,
) -> None:
    repeat = cdnow_summary_with_value[cdnow_summary_with_value["frequency"] > 0]
    model = GammaGamma().fit(repeat["frequency"], repeat["monetary_value"])
    _assert_within_relative(model.params_, PUBLISHED_GAMMA_GAMMA, 0.01)
    # E[order value] of a new customer, p * gamma / (q - 1) = 35.2 USD in FHL 2005b.
    assert model.population_mean_value == pytest.approx(35.2, abs=0.1)
    for penalizer in (0.0, 0.01):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oracle = GammaGammaFitter(penalizer_coef=penalizer).fit(repeat["frequency"], repeat["monetary_value"])
        fitted = GammaGamma(penalizer=penalizer).fit(repeat["frequency"], repeat["monetary_value"]).params_
        expected = {"p": oracle.params_["p"], "q": oracle.params_["q"], "gamma": oracle.params_["v"]}
        _assert_within_relative(fitted, expected, 1e-4)


def test_conditional_expectation_for_the_papers_example_customer(cdnow_bgnbd: BetaGeoNBD) -> None:
    # FHL 2005a, section 4: x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in 39 weeks.
    expected = cdnow_bgnbd.conditional_expected_purchases(39, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=0.001)


def test_rfm_summary_follows_the_definitions_in_every_time_unit() -> None:
    transactions = pd.DataFrame(
        {
            "customer": ["B", "A", "A", "A", "A", "C"],
            "bought_at": pd.to_datetime(
                [
                    "2025-02-28 23:00",
                    "2025-01-01 09:00",
                    "2025-01-01 17:30",
                    "2025-01-15 12:00",
                    "2025-03-01 08:00",
                    "2025-03-02 10:00",
                ]
            ),
            "amount": [5.0, 10.0, 2.0, 30.0, 99.0, 1.0],
        }
    )
    summary = rfm_summary(transactions, "customer", "bought_at", "amount", date(2025, 2, 28), time_unit="D")
    # C bought only after the calibration end; A's two lines of 1 January are one purchase; 1 March ignored.
    assert summary.index.tolist() == ["A", "B"] and summary.index.name == "customer"
    assert summary.loc["A"].to_dict() == {"frequency": 1, "recency": 14.0, "T": 58.0, "monetary_value": 30.0}
    assert summary.loc["B"].to_dict() == {"frequency": 0, "recency": 0.0, "T": 0.0, "monetary_value": 0.0}
    weeks = rfm_summary(transactions, "customer", "bought_at", None, date(2025, 2, 28), time_unit="W")
    assert list(weeks.columns) == ["frequency", "recency", "T"]
    assert weeks.loc["A", "T"] == pytest.approx(58 / 7)
    months = rfm_summary(transactions, "customer", "bought_at", "amount", date(2025, 2, 28), time_unit="M")
    assert months.loc["A", "recency"] == pytest.approx(14 / (365.25 / 12))
    nothing = rfm_summary(transactions, "customer", "bought_at", "amount", date(2024, 12, 31))
    assert nothing.empty and list(nothing.columns) == ["frequency", "recency", "T", "monetary_value"]


def test_rfm_summary_agrees_with_lifetimes_daily_summary(cdnow_transactions: pd.DataFrame) -> None:
    from lifetimes.utils import summary_data_from_transaction_data

    oracle = summary_data_from_transaction_data(
        cdnow_transactions, "customer_id", "purchase_date", "dollar_value",
        observation_period_end="1997-09-30", freq="D",
    )  # fmt: skip
    summary = rfm_summary(
        cdnow_transactions, "customer_id", "purchase_date", "dollar_value", CALIBRATION_END, time_unit="D"
    )
    pd.testing.assert_frame_equal(
        summary.astype(float), oracle.sort_index(), check_names=False, check_index_type=False, rtol=1e-12
    )


# ---------------------------------------------------------------------------------- lifetimes as oracle
def test_probability_alive_and_conditional_expectation_agree_with_lifetimes(
    cdnow_summary: pd.DataFrame, lifetimes_models: tuple[BetaGeoFitter, GammaGammaFitter]
) -> None:
    bgf, _ = lifetimes_models
    model = BetaGeoNBD.from_params(**bgf.params_.to_dict())
    x, t_x, age = (cdnow_summary[column].to_numpy() for column in ("frequency", "recency", "T"))
    np.testing.assert_allclose(
        model.probability_alive(x, t_x, age), bgf.conditional_probability_alive(x, t_x, age), rtol=1e-6
    )
    for horizon in (1.0, 39.0, 104.0):
        np.testing.assert_allclose(
            model.conditional_expected_purchases(horizon, x, t_x, age),
            bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, age),
            rtol=1e-6,
        )
    horizons = np.array([0.5, 13.0, 39.0, 78.0])
    np.testing.assert_allclose(
        model.expected_purchases(horizons), bgf.expected_number_of_purchases_up_to_time(horizons), rtol=1e-6
    )


def test_fit_agrees_with_lifetimes_with_and_without_penalty(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, age = (cdnow_summary[column] for column in ("frequency", "recency", "T"))
    for penalizer in (0.0, 0.1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oracle = BetaGeoFitter(penalizer_coef=penalizer).fit(x, t_x, age).params_.to_dict()
        fitted = BetaGeoNBD(penalizer=penalizer).fit(x, t_x, age).params_
        _assert_within_relative(fitted, oracle, 1e-4)


def test_discounted_clv_agrees_with_lifetimes(
    cdnow_summary_with_value: pd.DataFrame, lifetimes_models: tuple[BetaGeoFitter, GammaGammaFitter]
) -> None:
    bgf, ggf = lifetimes_models
    data = cdnow_summary_with_value
    bgnbd = BetaGeoNBD.from_params(**bgf.params_.to_dict())
    gg = GammaGamma.from_params(p=ggf.params_["p"], q=ggf.params_["q"], gamma=ggf.params_["v"])
    # lifetimes: time = 12 months, discount_rate per month, freq "W" -> a month is 4.345 weeks.
    oracle = ggf.customer_lifetime_value(
        bgf, data["frequency"], data["recency"], data["T"], data["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    clv = customer_lifetime_value(
        bgnbd, gg, data["frequency"], data["recency"], data["T"], data["monetary_value"],
        horizon_periods=12, discount_rate_per_period=0.01, period_length=4.345,
    )  # fmt: skip
    np.testing.assert_allclose(clv, oracle.to_numpy(), rtol=1e-6)
    # Margin: a 30 % margin on revenue is 30 % of the value.
    with_margin = customer_lifetime_value(
        bgnbd, gg, data["frequency"], data["recency"], data["T"], data["monetary_value"],
        horizon_periods=12, discount_rate_per_period=0.01, margin_rate=0.3, period_length=4.345,
    )  # fmt: skip
    np.testing.assert_allclose(with_margin, 0.3 * clv, rtol=1e-12)


# --------------------------------------------------------------------------- ground truth and numerics
def test_bgnbd_recovers_the_parameters_it_was_simulated_with() -> None:
    truth = {"r": 0.8, "alpha": 6.0, "a": 0.6, "b": 3.0}
    summary = simulate_bgnbd_summary(100_000, **truth, seed=7)
    model = BetaGeoNBD().fit(summary["frequency"], summary["recency"], summary["T"])
    _assert_within_relative(model.params_, truth, 0.05)


def test_weights_give_the_same_fit_as_repeated_rows(cdnow_summary: pd.DataFrame) -> None:
    patterns = cdnow_summary.groupby(["frequency", "recency", "T"], as_index=False).size()
    weighted = BetaGeoNBD().fit(patterns["frequency"], patterns["recency"], patterns["T"], weights=patterns["size"])
    rows = BetaGeoNBD().fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    _assert_within_relative(weighted.params_, rows.params_, 1e-7)
    assert weighted.log_likelihood_ == pytest.approx(rows.log_likelihood_, rel=1e-10)
    assert weighted.n_customers_ == len(cdnow_summary)


def test_predictions_stay_finite_and_sensible_for_very_heavy_buyers(cdnow_bgnbd: BetaGeoNBD) -> None:
    r, alpha = cdnow_bgnbd.params_["r"], cdnow_bgnbd.params_["alpha"]
    heavy = np.array([500.0, 5_000.0, 50_000.0])
    age = 100.0
    # Bought until the very end: certainly alive; the next week's purchases are the posterior mean rate
    # (r + x) / (alpha + T) times one week, less a dropout correction far below 1 %.
    assert np.all(cdnow_bgnbd.probability_alive(heavy, age, age) > 0.99)
    next_week = cdnow_bgnbd.conditional_expected_purchases(1.0, heavy, age, age)
    np.testing.assert_allclose(next_week, (r + heavy) / (alpha + age), rtol=0.01)
    # Stopped buying half way through: certainly gone, no overflow.
    gone = cdnow_bgnbd.conditional_expected_purchases(52.0, heavy, age / 2, age)
    assert np.all(np.isfinite(gone)) and np.all(gone >= 0) and np.all(gone < 1e-6)
    assert np.all(cdnow_bgnbd.probability_alive(heavy, age / 2, age) < 1e-12)


def test_fit_converges_when_dropout_is_the_same_for_everyone() -> None:
    # a, b -> infinity along a / (a + b) = const: the likelihood has no finite maximum. The fit must still
    # converge, say so, and predict like the limiting model (nearly everyone alive, finite expectations).
    summary = simulate_bgnbd_summary(20_000, r=0.5, alpha=5.0, a=0.01, b=500.0, seed=2)
    with pytest.warns(RuntimeWarning, match="runs off to 0 or infinity"):
        model = BetaGeoNBD().fit(summary["frequency"], summary["recency"], summary["T"])
    assert model.params_["r"] == pytest.approx(0.5, rel=0.05)
    assert model.params_["a"] / (model.params_["a"] + model.params_["b"]) < 1e-3
    expected = model.conditional_expected_purchases(52.0, summary["frequency"], summary["recency"], summary["T"])
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    # With a penalty the parameters stay finite and no warning is raised.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        penalised = BetaGeoNBD(penalizer=0.01).fit(summary["frequency"], summary["recency"], summary["T"])
    assert max(penalised.params_.values()) < 1e3


def test_invalid_summaries_are_rejected_with_a_message() -> None:
    with pytest.raises(ValueError, match="recency must lie in"):
        BetaGeoNBD().fit([1, 2], [5.0, 3.0], [4.0, 4.0])
    with pytest.raises(ValueError, match="repeat purchases"):
        BetaGeoNBD().fit([0, 0], [0.0, 0.0], [4.0, 4.0])
    with pytest.raises(ValueError, match="repeat buyers only"):
        GammaGamma().fit([0, 2], [10.0, 12.0])


def test_non_convergence_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch, cdnow_summary: pd.DataFrame) -> None:
    def failing_minimize(*args: object, **kwargs: object) -> object:
        class Result:
            success = False
            message = "ABNORMAL_TERMINATION_IN_LNSRCH"
            fun = np.nan
            x = np.zeros(4)

        return Result()

    monkeypatch.setattr(clv_module, "minimize", failing_minimize)
    with pytest.raises(ModelFitError, match="BG/NBD maximum likelihood did not converge.*LNSRCH"):
        BetaGeoNBD().fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


# ------------------------------------------------------------------------------------------ scoring helper
def simulate_orders(n_customers: int, seed: int, end: date) -> pd.DataFrame:
    """Daily orders of BG/NBD customers who joined in the two years up to ``end``, with gamma margins."""
    summary = simulate_bgnbd_summary(n_customers, r=0.9, alpha=8.0, a=0.7, b=3.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    age_days = np.round(summary["T"].to_numpy() * 7).astype(int)
    first_day = pd.Timestamp(end) - pd.to_timedelta(age_days, unit="D")
    repeat_days = np.round(summary["recency"].to_numpy() * 7).astype(int)
    x = summary["frequency"].to_numpy()
    customer = np.repeat(np.arange(n_customers), x + 1)
    # Order k of a customer: day 0 for the first, the last repeat on day t_x, the others uniform in between.
    rank = np.arange(customer.size) - np.repeat(np.cumsum(x + 1) - (x + 1), x + 1)
    offset = np.where(
        rank == 0,
        0,
        np.where(rank == np.repeat(x, x + 1), np.repeat(repeat_days, x + 1), 0),
    )
    middle = (rank > 0) & (rank < np.repeat(x, x + 1))
    offset[middle] = rng.integers(1, np.maximum(np.repeat(repeat_days, x + 1)[middle], 2))
    spend_level = rng.gamma(3.0, 10.0, n_customers)
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i:07d}" for i in customer], dtype="str"),
            "order_date": (first_day[customer] + pd.to_timedelta(offset, unit="D")).date,
            "margin": rng.gamma(4.0, spend_level[customer] / 4.0),
        }
    )


@pytest.fixture(scope="module")
def small_order_table() -> pd.DataFrame:
    orders = simulate_orders(3_000, seed=11, end=date(2025, 3, 31))
    hand_made = pd.DataFrame(
        {
            "customer_id": ["X_LOSS", "X_LOSS", "X_LOSS", "X_SAMEDAY", "X_SAMEDAY", "X_SAMEDAY"],
            "order_date": [date(2024, 5, 1), date(2024, 9, 1), date(2025, 1, 15)]
            + [date(2025, 2, 1), date(2025, 2, 1), date(2025, 3, 31)],
            "margin": [20.0, -5.0, -3.0, 10.0, 15.0, 7.0],
        }
    )
    return pd.concat([orders, hand_made], ignore_index=True)


def test_score_customers_gives_one_sensible_row_per_customer(small_order_table: pd.DataFrame) -> None:
    scores = score_customers(small_order_table, as_of=date(2025, 3, 1))
    assert list(scores.columns) == clv_module.SCORE_COLUMNS
    assert scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(small_order_table["customer_id"])
    assert scores["customer_id"].dtype == "str"
    assert scores["p_alive"].between(0, 1).all()
    assert (scores["clv"] >= 0).all()
    assert (scores["expected_purchases_horizon"] >= scores["expected_purchases_next_month"]).all()
    # Discounting: the CLV is at most the undiscounted margin of the horizon's expected orders.
    assert (scores["clv"] <= scores["expected_purchases_horizon"] * scores["expected_value_per_order"] + 1e-9).all()

    by_customer = scores.set_index("customer_id")
    # Same-day lines are one purchase; T runs to the month end (2025-03-31), in weeks.
    same_day = by_customer.loc["X_SAMEDAY"]
    assert same_day["frequency"] == 1
    assert same_day["recency"] == pytest.approx(58 / 7)
    assert same_day["T"] == pytest.approx(58 / 7)
    # A repeat buyer whose repeat orders lost money is valued at the population mean margin per order.
    loss_maker = by_customer.loc["X_LOSS"]
    one_timers = by_customer[by_customer["frequency"] == 0]
    assert loss_maker["expected_value_per_order"] == pytest.approx(one_timers["expected_value_per_order"].iloc[0])
    assert one_timers["expected_value_per_order"].nunique() == 1


def test_score_customers_ignores_orders_after_the_month_end(small_order_table: pd.DataFrame) -> None:
    as_of = date(2025, 3, 1)
    baseline = score_customers(small_order_table, as_of=as_of)
    later = pd.DataFrame(
        {
            "customer_id": ["C0000001", "C0000002", "X_NEW"],
            "order_date": [date(2025, 4, 1), date(2025, 6, 30), date(2025, 4, 2)],
            "margin": [50.0, 60.0, 70.0],
        }
    )
    with_future = score_customers(pd.concat([small_order_table, later], ignore_index=True), as_of=as_of)
    pd.testing.assert_frame_equal(with_future, baseline)
    assert "X_NEW" not in set(with_future["customer_id"])
    # The same orders with datetime64 order dates (as DuckDB returns them) give the same scores.
    as_timestamps = small_order_table.assign(order_date=pd.to_datetime(small_order_table["order_date"]))
    pd.testing.assert_frame_equal(score_customers(as_timestamps, as_of=as_of), baseline)


def test_score_customers_rejects_a_mid_month_as_of(small_order_table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="first day of a month"):
        score_customers(small_order_table, as_of=date(2025, 3, 15))


def test_score_customers_scales_to_many_customers() -> None:
    orders = simulate_orders(200_000, seed=3, end=date(2025, 6, 30))
    started = time.perf_counter()
    scores = score_customers(orders, as_of=date(2025, 6, 1))
    elapsed = time.perf_counter() - started
    assert len(scores) == orders["customer_id"].nunique()
    assert scores["p_alive"].between(0, 1).all() and (scores["clv"] >= 0).all()
    assert elapsed < 15, f"scoring 200,000 customers took {elapsed:.1f} s"


# ------------------------------------------------------------------------------ P(no purchase) over a horizon
def simulate_bgnbd_future(
    n_customers: int, r: float, alpha: float, a: float, b: float, horizon: float, seed: int
) -> pd.DataFrame:
    """(x, t_x, T) and the repeat purchases in (T, T + horizon] of BG/NBD customers (weeks).

    Events of a Poisson(lambda) process on (0, T + horizon]; the customer makes the first J of them, J ~
    Geometric(p) (she drops out after each repeat purchase with probability p).
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(7, 730, n_customers) / 7.0
    rate = rng.gamma(r, 1.0 / alpha, n_customers)
    dropout = rng.beta(a, b, n_customers)
    n_events = rng.poisson(rate * (age + horizon))
    last_allowed = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    customer = np.repeat(np.arange(n_customers), n_events)
    time = rng.uniform(0.0, (age + horizon)[customer])
    order = np.lexsort((time, customer))
    customer, time = customer[order], time[order]
    rank = np.arange(customer.size) - np.repeat(np.cumsum(n_events) - n_events, n_events) + 1
    made = rank <= last_allowed[customer]
    past = made & (time <= age[customer])
    future = made & (time > age[customer])
    recency = np.zeros(n_customers)
    np.maximum.at(recency, customer[past], time[past])
    return pd.DataFrame(
        {
            "frequency": np.bincount(customer[past], minlength=n_customers),
            "recency": recency,
            "T": age,
            "future_purchases": np.bincount(customer[future], minlength=n_customers),
        }
    )


def test_probability_of_no_purchase_matches_simulated_customers() -> None:
    params = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    horizon = 90 / 7
    customers = simulate_bgnbd_future(60_000, **params, horizon=horizon, seed=4)
    model = BetaGeoNBD.from_params(**params)
    predicted = model.probability_no_purchase(horizon, customers["frequency"], customers["recency"], customers["T"])
    silent = (customers["future_purchases"] == 0).to_numpy()
    assert predicted.mean() == pytest.approx(silent.mean(), abs=0.005)
    # Calibrated across the range, not only on average: deciles of the prediction.
    decile = pd.qcut(predicted, 10, labels=False, duplicates="drop")
    by_decile = pd.DataFrame({"predicted": predicted, "observed": silent}).groupby(decile).mean()
    assert (by_decile["predicted"] - by_decile["observed"]).abs().max() < 0.02
    # Customers without a repeat purchase are "alive" by construction, yet long-silent ones rarely buy again.
    one_timers = customers["frequency"].to_numpy() == 0
    assert np.all(model.probability_alive(0, 0, customers["T"][one_timers]) == 1.0)
    assert predicted[one_timers].min() < 0.8 < predicted[one_timers].max()
    # A horizon of zero: no time to buy.
    assert np.all(model.probability_no_purchase(0.0, [0, 3], [0, 10], [20, 30]) == 1.0)


# ------------------------------------------------------------------------------------- value basis, returns
def test_clv_is_in_margin_when_known_and_in_revenue_otherwise(small_order_table: pd.DataFrame) -> None:
    orders = small_order_table.assign(revenue=small_order_table["margin"].abs() * 3.0)
    in_margin = fit_lifetime_value(orders, date(2025, 3, 1))
    assert in_margin.value_basis == "margin" and in_margin.notes == ()
    in_revenue = fit_lifetime_value(orders.assign(margin=np.nan), date(2025, 3, 1))
    assert in_revenue.value_basis == "revenue"
    assert any("no margin data" in note for note in in_revenue.notes)
    # Same purchase process either way; only the value per order differs.
    assert in_revenue.bgnbd.params_ == pytest.approx(in_margin.bgnbd.params_)
    margin_scores = in_margin.score(orders)
    revenue_scores = in_revenue.score(orders.assign(margin=np.nan))
    assert revenue_scores["clv"].sum() > 2 * margin_scores["clv"].sum()


def test_lines_without_margin_are_valued_at_the_known_margin_rate() -> None:
    lines = purchase_values(
        pd.DataFrame(
            {
                "customer_id": ["a", "a", "b"],
                "order_date": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-01-05"]),
                "revenue": [100.0, 50.0, 200.0],
                "margin": [40.0, np.nan, 60.0],
            }
        )
    )
    assert lines.basis == "margin"
    rate = (40.0 + 60.0) / (100.0 + 200.0)
    assert lines.sales["value"].tolist() == pytest.approx([40.0, 50.0 * rate, 60.0])
    assert "1 lines without a margin" in lines.notes[0]


def test_returns_are_not_purchases_and_lower_the_value_kept() -> None:
    lines = purchase_values(
        pd.DataFrame(
            {
                "customer_id": ["a", "a", "a", "b"],
                "order_date": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-02-10", "2025-01-05"]),
                "revenue": [100.0, 100.0, -50.0, 80.0],
                "margin": [40.0, 40.0, -20.0, 30.0],
            }
        )
    )
    assert len(lines.sales) == 3  # the return is not a purchase
    assert lines.net_ratio.to_dict() == {"a": pytest.approx(60.0 / 80.0), "b": 1.0}


# ------------------------------------------------------------- CDNOW through the project's own importer
def test_cdnow_sample_through_the_importer_reproduces_the_published_fits(tmp_path) -> None:
    """CDNOW_sample.txt (master id, sample id, YYYYMMDD, CDs, dollars) imported as a plain transaction log into
    the files-source layout `<dir>/orders/<YYYY-MM>.csv`, read back as the files source reads it, and fitted as
    the analyse stage fits it (calibration through 1997-09-30, revenue: the log has no margin)."""
    from orchestration.lib.importer import import_transaction_log
    from orchestration.lib.raw_tables import read_table_file

    summary = import_transaction_log(
        CDNOW / "CDNOW_sample.txt", tmp_path / "inbox", columns=["-", "customer_id", "order_date", "quantity", "amount"]
    )
    assert summary.first_month == "1997-01" and summary.last_month == "1998-06"
    files = sorted((tmp_path / "inbox" / "orders").glob("*.csv"))
    assert [f.stem for f in files] == list(summary.months)
    raw = pd.concat([read_table_file(f, "orders").rows for f in files], ignore_index=True)
    assert raw["customer_id"].nunique() == 2357
    orders = raw.rename(columns={"amount": "revenue"})[["customer_id", "order_date", "revenue"]]
    orders = orders.assign(margin=np.nan, product_line=None)

    model = fit_lifetime_value(orders, date(1997, 9, 1))
    assert model.value_basis == "revenue" and model.n_customers == 2357
    _assert_within_relative(model.bgnbd.params_, PUBLISHED_BGNBD, 0.01)
    assert model.bgnbd.log_likelihood_ == pytest.approx(PUBLISHED_BGNBD_LOG_LIKELIHOOD, abs=0.5)
    _assert_within_relative(model.gamma_gamma.params_, PUBLISHED_GAMMA_GAMMA, 0.01)
    expected = model.bgnbd.conditional_expected_purchases(39, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=0.001)
    # The same summary through models.clv.rfm_summary directly agrees with the ready-made file.
    direct = rfm_summary(orders, "customer_id", "order_date", "revenue", CALIBRATION_END, time_unit="W")
    ready = pd.read_csv(CDNOW / "cdnow_customers_summary.csv", index_col="ID")
    direct.index = direct.index.astype(int)
    assert (direct["frequency"].reindex(ready.index) == ready["frequency"]).all()
