"""Churn model (models/churn.py): honest labels, no look-ahead, and a model that actually ranks churners.

Protected properties: a customer churns at snapshot S exactly when she has no order in S+1 .. S+horizon; the
model trained at the end of month M validates on M - horizon and trains only on earlier snapshots, and no order
after the end of M can change it; customers contacted inside a label window are dropped from that snapshot
(and only from that one); a too-short history raises an error naming the first month that works (and that month
does work); on a synthetic history where a hidden per-customer propensity drives buying, the out-of-time AUC is
well above 0.5, the top decile holds clearly more churners than average, and probabilities lie in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from models.churn import (
    ChurnModelResult,
    InsufficientHistoryError,
    churn_labels,
    score_churn,
    top_decile_lift,
    train_churn_model,
)
from models.features import customer_features, month_end

AS_OF = date(2024, 6, 1)
VALIDATION = date(2024, 3, 1)  # AS_OF - 3 months (default horizon)
TRAINING = [date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1)]


@pytest.fixture(scope="module", autouse=True)
def _single_openmp_thread() -> Iterator[None]:
    # Gradient boosting with OpenMP threads on a busy 2-core runner can stall for minutes; one thread is
    # fast (well under a second per fit here) and gives the same model.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def synthetic_history(n_customers: int = 2000, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    """Monthly buying driven by a hidden propensity; low-propensity customers also drop out sooner.

    Returns the orders (2022-01 .. 2024-12) and the hidden propensity per customer_id.
    """
    rng = np.random.default_rng(seed)
    months = pd.date_range("2022-01-01", "2024-12-01", freq="MS")
    propensity = rng.beta(1.2, 1.5, size=n_customers)
    first_month = rng.integers(0, 26, size=n_customers)
    dropout_month = first_month + rng.geometric(0.005 + 0.03 * (1 - propensity))
    month_number = np.arange(len(months))
    alive = (month_number >= first_month[:, None]) & (month_number < dropout_month[:, None])
    bought = alive & (rng.random(alive.shape) < propensity[:, None])
    bought[np.arange(n_customers), first_month] = True  # a customer exists from her first order
    customer, month = np.nonzero(bought)
    customer_ids = np.array([f"c{i:05d}" for i in range(n_customers)])
    revenue = rng.gamma(2.0, 30.0, size=len(customer))
    orders = pd.DataFrame(
        {
            "customer_id": pd.array(customer_ids[customer], dtype="str"),
            "order_date": months[month] + pd.to_timedelta(rng.integers(0, 28, size=len(customer)), unit="D"),
            "revenue": revenue,
            "margin": 0.3 * revenue,
            "product_line": np.where(rng.random(len(customer)) < 0.5, "shoes", "bags"),
        }
    )
    return orders, pd.Series(propensity, index=pd.Index(customer_ids, name="customer_id"), name="propensity")


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_history()


@pytest.fixture(scope="module")
def orders(history: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    return history[0]


@pytest.fixture(scope="module")
def model(orders: pd.DataFrame) -> ChurnModelResult:
    return train_churn_model(orders, AS_OF)


def orders_of(rows: list[tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date"])
    return frame.assign(order_date=pd.to_datetime(frame["order_date"]), revenue=10.0, margin=3.0)


# ------------------------------------------------------------------------------------------------- labels
def test_churn_label_is_no_order_in_the_next_horizon_months() -> None:
    orders = orders_of(
        [
            ("in_snapshot_month_only", "2024-03-31"),  # ordered in S itself, not after: churned
            ("first_day_after", "2024-04-01"),  # S+1
            ("last_day_of_horizon", "2024-06-30"),  # S+3
            ("one_day_too_late", "2024-07-01"),  # S+4: outside the window, churned
            ("never", "2023-01-01"),
        ]
    )
    customers = pd.Index(
        ["in_snapshot_month_only", "first_day_after", "last_day_of_horizon", "one_day_too_late", "never"]
    )
    labels = churn_labels(orders, date(2024, 3, 1), customers, horizon_months=3)
    assert labels.to_dict() == {
        "in_snapshot_month_only": 1,
        "first_day_after": 0,
        "last_day_of_horizon": 0,
        "one_day_too_late": 1,
        "never": 1,
    }
    # A one-month horizon only looks at April.
    assert churn_labels(orders, date(2024, 3, 1), customers, horizon_months=1)["last_day_of_horizon"] == 1


# ------------------------------------------------------------------------------------------- no leakage
def test_training_snapshots_are_strictly_before_the_validation_month(
    orders: pd.DataFrame, model: ChurnModelResult
) -> None:
    assert model.metrics["validation_as_of"] == VALIDATION.isoformat()
    assert model.metrics["train_as_of"] == [m.isoformat() for m in TRAINING]
    # The stacked training rows are exactly the customers of the three earlier snapshots (not of V).
    assert model.metrics["n_train"] == sum(len(customer_features(orders, m)) for m in TRAINING)
    assert model.metrics["n_validation"] == len(customer_features(orders, VALIDATION))


def test_orders_after_the_as_of_month_cannot_change_the_model(orders: pd.DataFrame, model: ChurnModelResult) -> None:
    known_by_then = orders[orders["order_date"] <= pd.Timestamp(month_end(AS_OF))]
    assert len(known_by_then) < len(orders)
    truncated = train_churn_model(known_by_then, AS_OF)
    assert truncated.metrics == model.metrics
    features = customer_features(orders, AS_OF)
    np.testing.assert_array_equal(truncated.predict_proba(features), model.predict_proba(features))


# ------------------------------------------------------------------------------------- contacted customers
def test_exclude_drops_customers_contacted_inside_a_label_window(orders: pd.DataFrame, model: ChurnModelResult) -> None:
    first_order = orders.groupby("customer_id")["order_date"].min()
    veterans = first_order[first_order < pd.Timestamp("2023-12-01")].index[:3]  # present in every snapshot
    contacted_after_validation, contacted_in_validation_month, contacted_after_as_of = veterans
    exclude = pd.DataFrame(
        {
            "customer_id": [contacted_after_validation, contacted_in_validation_month, contacted_after_as_of],
            "month": pd.to_datetime(["2024-04-01", "2024-03-01", "2024-07-01"]),
        }
    )
    result = train_churn_model(orders, AS_OF, exclude=exclude)
    # Validation window 2024-04 .. 2024-06: only the April contact falls inside.
    assert result.metrics["n_validation"] == model.metrics["n_validation"] - 1
    # April lies in the windows of 2024-01 (02..04) and 2024-02 (03..05), March in those of all three training
    # snapshots (2023-12: 01..03); July (after the as-of month) in none.
    assert result.metrics["n_train"] == model.metrics["n_train"] - 2 - 3


def test_exclude_must_name_customer_and_month(orders: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="month"):
        train_churn_model(orders, AS_OF, exclude=pd.DataFrame({"customer_id": ["c00001"], "date": ["2024-04-01"]}))


# ------------------------------------------------------------------------------------------ short history
def test_short_history_error_names_the_earliest_usable_month(orders: pd.DataFrame) -> None:
    recent = orders[orders["order_date"] >= pd.Timestamp("2023-03-01")]  # first order month 2023-03
    for too_early in (date(2023, 5, 1), date(2023, 6, 1)):  # no validation snapshot / no training snapshot
        with pytest.raises(InsufficientHistoryError, match="earliest as-of month .* is 2023-07"):
            train_churn_model(recent, too_early)
    result = train_churn_model(recent, date(2023, 7, 1))  # the month the message names does work
    assert result.metrics["train_as_of"] == ["2023-03-01"]
    assert result.metrics["validation_as_of"] == "2023-04-01"


def test_invalid_arguments_are_rejected(orders: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="horizon_months"):
        train_churn_model(orders, AS_OF, horizon_months=0)
    with pytest.raises(ValueError, match="n_training_snapshots"):
        train_churn_model(orders, AS_OF, n_training_snapshots=0)


# ------------------------------------------------------------------------------------------------ quality
def test_model_ranks_churners_well_above_chance_out_of_time(model: ChurnModelResult) -> None:
    metrics = model.metrics
    assert 0.2 < metrics["base_rate"] < 0.8  # both classes well represented
    assert metrics["auc"] > 0.8
    assert metrics["auc_active"] > 0.7  # also among customers who have not lapsed yet
    assert metrics["top_decile_lift"] > 1.5
    assert metrics["brier"] < metrics["base_rate"] * (1 - metrics["base_rate"])  # beats predicting the base rate


def test_predicted_churn_follows_the_hidden_propensity(
    history: tuple[pd.DataFrame, pd.Series], model: ChurnModelResult
) -> None:
    orders, propensity = history
    scores = score_churn(model, orders, AS_OF)
    assert scores.index.equals(customer_features(orders, AS_OF).index)
    probability = scores["churn_probability"].to_numpy()
    assert ((probability >= 0) & (probability <= 1)).all()
    # Frequent buyers (hidden propensity) are predicted to churn less.
    rank_correlation = pd.Series(probability).corr(pd.Series(propensity.loc[scores.index].to_numpy()), "spearman")
    assert rank_correlation < -0.4


def test_prediction_needs_the_model_inputs(orders: pd.DataFrame, model: ChurnModelResult) -> None:
    features = customer_features(orders, AS_OF)
    with pytest.raises(ValueError, match="recency_days"):
        model.predict_proba(features.drop(columns="recency_days"))


# ------------------------------------------------------------------------------------------------ metrics
def test_top_decile_lift_against_hand_computation() -> None:
    y = np.array([1] * 10 + [0] * 90)
    assert top_decile_lift(y, np.arange(100)[::-1]) == pytest.approx(10.0)  # all churners on top: 1 / 0.1
    assert top_decile_lift(y, np.arange(100)) == 0.0  # all churners at the bottom
    # 11 rows: the top decile holds ceil(11 / 10) = 2 rows; one of them churns, base rate 3/11.
    y11 = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    score11 = np.array([0.9, 0.8, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.05])
    assert top_decile_lift(y11, score11) == pytest.approx(0.5 / (3 / 11))
    assert np.isnan(top_decile_lift(np.zeros(5), np.arange(5)))
