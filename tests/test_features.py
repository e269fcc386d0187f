"""Point-in-time customer features (models/features.py).

Protected properties: a snapshot of month M depends only on orders placed by the last day of M (a later order,
even on the first day of the next month, never changes it); the 1/3/12-month windows, recency, tenure and the
lapsed flag count calendar months ending with M exactly as documented; product-line shares are shares of
lifetime revenue (they sum to 1); an empty history gives an empty frame with the full schema; a malformed
order table is rejected with a message naming the missing column.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.features import (
    FEATURE_COLUMNS,
    LAPSED_AFTER_MONTHS,
    TRACE_FEATURE_COLUMNS,
    add_months,
    customer_features,
    feature_snapshot_months,
    line_share_columns,
    model_feature_columns,
    month_end,
    months_between,
)

AS_OF = date(2024, 6, 1)  # snapshot month June 2024: orders up to 2024-06-30 count


def make_orders(rows: list[tuple[str, str, float, float, str]]) -> pd.DataFrame:
    """Orders frame from (customer_id, order_date, revenue, margin, product_line) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "revenue", "margin", "product_line"])
    return frame.assign(customer_id=frame["customer_id"].astype("str"), order_date=pd.to_datetime(frame["order_date"]))


@pytest.fixture
def orders() -> pd.DataFrame:
    return make_orders(
        [
            # "a": orders in June (as-of month), April (M-2), March (M-3), July 2023 (M-11), June 2023 (M-12).
            ("a", "2024-06-30", 100.0, 30.0, "shoes"),
            ("a", "2024-04-01", 50.0, 10.0, "bags"),
            ("a", "2024-03-31", 20.0, 5.0, "shoes"),
            ("a", "2023-07-01", 10.0, 2.0, "shoes"),
            ("a", "2023-06-30", 20.0, 3.0, "bags"),
            # "b": single order, last in December 2023 (6 months before June: lapsed).
            ("b", "2023-12-15", 40.0, 8.0, "bags"),
            # "c": last order in January 2024 (5 months before June: not lapsed yet).
            ("c", "2024-01-31", 60.0, 12.0, "shoes"),
            ("c", "2024-01-01", 40.0, 12.0, "hats"),
        ]
    )


# ------------------------------------------------------------------------------------------------ calendar
def test_month_helpers_follow_the_calendar() -> None:
    assert add_months(date(2024, 1, 1), -1) == date(2023, 12, 1)
    assert add_months(date(2023, 11, 1), 14) == date(2025, 1, 1)
    assert month_end(date(2024, 2, 1)) == date(2024, 2, 29)
    assert month_end(date(2023, 2, 1)) == date(2023, 2, 28)
    assert months_between(date(2023, 12, 31), date(2024, 1, 1)) == 1
    assert feature_snapshot_months(date(2025, 1, 15), 3) == [date(2024, 10, 1), date(2024, 11, 1), date(2024, 12, 1)]


# ------------------------------------------------------------------------------------------- point in time
def test_orders_after_the_month_end_never_change_the_snapshot(orders: pd.DataFrame) -> None:
    before = customer_features(orders, AS_OF)
    later = make_orders(
        [
            ("a", "2024-07-01", 999.0, 99.0, "shoes"),  # first day after the month end
            ("b", "2024-07-01", 999.0, 99.0, "hats"),  # would un-lapse b and add a line share for hats
            ("new", "2024-08-15", 5.0, 1.0, "shoes"),  # a customer who does not exist yet
        ]
    )
    after = customer_features(pd.concat([orders, later], ignore_index=True), AS_OF)
    pd.testing.assert_frame_equal(before, after)
    assert "new" not in after.index
    assert after.loc["b", "is_lapsed"]


def test_an_order_on_the_last_day_of_the_month_is_included(orders: pd.DataFrame) -> None:
    features = customer_features(orders, AS_OF)
    assert features.loc["a", "orders_1m"] == 1  # 2024-06-30
    assert features.loc["a", "recency_days"] == 0


def test_as_of_month_is_normalised_to_its_first_day(orders: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(customer_features(orders, date(2024, 6, 17)), customer_features(orders, AS_OF))


# ------------------------------------------------------------------------------------------------ windows
def test_order_windows_count_calendar_months_ending_with_the_as_of_month(orders: pd.DataFrame) -> None:
    a = customer_features(orders, AS_OF).loc["a"]
    assert a["frequency"] == 5
    assert a["orders_1m"] == 1  # June
    assert a["orders_3m"] == 2  # April .. June (the March 31 order is outside)
    assert a["orders_12m"] == 4  # July 2023 .. June 2024 (the June 2023 order is outside)
    assert a["revenue_12m"] == pytest.approx(100 + 50 + 20 + 10)
    assert a["margin_12m"] == pytest.approx(30 + 10 + 5 + 2)
    assert a["active_months_12m"] == 4  # June, April, March 2024 and July 2023
    assert a["avg_order_revenue"] == pytest.approx(200 / 5)  # lifetime, not 12-month
    assert a["avg_order_margin"] == pytest.approx(50 / 5)


def test_active_months_count_months_not_orders() -> None:
    orders = make_orders([("z", f"2024-06-{day:02d}", 1.0, 1.0, "x") for day in (1, 2, 3)])
    z = customer_features(orders, AS_OF).loc["z"]
    assert (z["orders_1m"], z["active_months_12m"]) == (3, 1)


def test_recency_and_tenure_are_days_to_the_month_end(orders: pd.DataFrame) -> None:
    features = customer_features(orders, AS_OF)
    end = date(2024, 6, 30)
    assert features.loc["c", "recency_days"] == (end - date(2024, 1, 31)).days
    assert features.loc["c", "tenure_days"] == (end - date(2024, 1, 1)).days
    assert features.loc["a", "tenure_days"] == (end - date(2023, 6, 30)).days
    assert features.loc["b", "recency_days"] == features.loc["b", "tenure_days"] == (end - date(2023, 12, 15)).days


def test_lapsed_after_six_months_without_an_order(orders: pd.DataFrame) -> None:
    features = customer_features(orders, AS_OF)
    assert LAPSED_AFTER_MONTHS == 6
    assert features.loc["b", "months_since_last_order"] == 6  # December -> June
    assert features.loc["c", "months_since_last_order"] == 5  # January -> June
    assert features.loc["a", "months_since_last_order"] == 0
    assert features["is_lapsed"].to_dict() == {"a": False, "b": True, "c": False}
    # One month earlier, b's last order is only 5 months back: not lapsed yet.
    assert not customer_features(orders, date(2024, 5, 1)).loc["b", "is_lapsed"]


# --------------------------------------------------------------------------------------------- line shares
def test_line_shares_are_lifetime_revenue_shares_summing_to_one(orders: pd.DataFrame) -> None:
    features = customer_features(orders, AS_OF)
    shares = features[line_share_columns(features)]
    assert line_share_columns(features) == ["line_share__bags", "line_share__hats", "line_share__shoes"]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert features.loc["a", "line_share__shoes"] == pytest.approx(130 / 200)
    assert features.loc["a", "line_share__bags"] == pytest.approx(70 / 200)
    assert features.loc["a", "share_of_top_product_line"] == pytest.approx(130 / 200)
    assert features.loc["a", "top_product_line"] == "shoes"
    assert features.loc["b", "top_product_line"] == "bags"


def test_fixed_product_lines_give_every_snapshot_the_same_columns(orders: pd.DataFrame) -> None:
    lines = ["bags", "hats", "shoes", "watches"]
    early = customer_features(orders, date(2023, 6, 1), product_lines=lines)  # only "bags" ordered by then
    assert line_share_columns(early) == [f"line_share__{line}" for line in lines]
    assert early.loc["a", "line_share__watches"] == 0.0
    assert early.loc["a", "line_share__bags"] == 1.0
    # Point-in-time default: only the lines ordered by the month end.
    assert line_share_columns(customer_features(orders, date(2023, 6, 1))) == ["line_share__bags"]


def test_without_product_line_column_there_are_no_shares(orders: pd.DataFrame) -> None:
    features = customer_features(orders.drop(columns="product_line"), AS_OF)
    assert line_share_columns(features) == []
    assert model_feature_columns(features) == FEATURE_COLUMNS
    assert features["share_of_top_product_line"].isna().all()
    with pytest.raises(ValueError, match="product_line"):
        customer_features(orders.drop(columns="product_line"), AS_OF, product_lines=["shoes"])


# ------------------------------------------------------------------------------------------- edge cases
def test_empty_history_gives_an_empty_frame_with_the_full_schema(orders: pd.DataFrame) -> None:
    full = customer_features(orders, AS_OF, product_lines=["bags", "shoes"])
    for empty_orders in (orders.iloc[:0], orders):
        # No orders at all, and orders that all lie after the as-of month.
        empty = customer_features(empty_orders, date(2020, 1, 1), product_lines=["bags", "shoes"])
        assert empty.empty
        assert empty.index.name == "customer_id"
        assert list(empty.columns) == list(full.columns)
        assert empty.dtypes.to_dict() == full.dtypes.to_dict()


def test_result_is_indexed_by_customer_in_sorted_order(orders: pd.DataFrame) -> None:
    shuffled = orders.sample(frac=1.0, random_state=3)
    features = customer_features(shuffled, AS_OF)
    assert list(features.index) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(features, customer_features(orders, AS_OF))


@pytest.mark.parametrize("column", ["customer_id", "order_date", "revenue", "margin"])
def test_missing_required_column_is_named_in_the_error(orders: pd.DataFrame, column: str) -> None:
    with pytest.raises(ValueError, match=f"missing column.*'{column}'"):
        customer_features(orders.drop(columns=column), AS_OF)


def test_unknown_margins_stay_unknown_and_returns_are_not_orders(orders: pd.DataFrame) -> None:
    # A plain transaction log: no margin at all. Margin features are NaN (unknown), not 0.
    plain = customer_features(orders.assign(margin=np.nan), AS_OF)
    assert plain["margin_12m"].isna().all() and plain["avg_order_margin"].isna().all()
    assert plain["revenue_12m"].equals(customer_features(orders, AS_OF)["revenue_12m"])
    # A return (negative revenue) nets out of revenue and margin but is no order and no sign of activity.
    returned = make_orders([("b", "2024-06-10", -40.0, -8.0, "bags")])
    with_return = customer_features(pd.concat([orders, returned], ignore_index=True), AS_OF).loc["b"]
    before = customer_features(orders, AS_OF).loc["b"]
    assert with_return["frequency"] == before["frequency"] == 1
    assert with_return["months_since_last_order"] == before["months_since_last_order"] == 6
    assert with_return["is_lapsed"]
    assert with_return["revenue_12m"] == before["revenue_12m"] - 40.0
    # The same with an explicit is_return flag (the mart's column) and a positive amount.
    flagged = pd.concat([orders.assign(is_return=False), returned.assign(revenue=40.0, is_return=True)])
    assert customer_features(flagged, AS_OF).loc["b", "frequency"] == 1


def test_trace_features_are_the_share_of_promotion_and_email_orders_and_unknown_without_the_flags() -> None:
    orders = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A", "B"],
            "order_date": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-03-05", "2024-03-20", "2024-03-01"]),
            "revenue": [10.0, 20.0, 30.0, -30.0, 5.0],
            "margin": [4.0, 8.0, 12.0, -12.0, 2.0],
            "is_return": [False, False, False, True, False],
            "is_promotion_order": [True, False, False, True, False],
            "is_email_order": [True, True, False, None, None],
        }
    )
    features = customer_features(orders, date(2024, 3, 1))
    # the return is not an order: A has three orders, one with a promotional code, two from an e-mail link
    assert features.loc["A", "promotion_order_share"] == pytest.approx(1 / 3)
    assert features.loc["A", "email_order_share"] == pytest.approx(2 / 3)
    assert features.loc["B", "promotion_order_share"] == 0.0 and np.isnan(features.loc["B", "email_order_share"])
    plain = customer_features(orders.drop(columns=["is_promotion_order", "is_email_order"]), date(2024, 3, 1))
    assert plain[TRACE_FEATURE_COLUMNS].isna().all().all()


def test_email_engagement_joins_the_scores_and_says_zero_messages_for_the_never_contacted() -> None:
    from models.features import ENGAGEMENT_FEATURE_COLUMNS, with_email_engagement

    scores = pd.DataFrame({"customer_id": ["003", "001", "002"], "churn_probability": [0.2, 0.5, 0.9]})
    engagement = pd.DataFrame(
        {
            "customer_id": ["001", "002"],
            "emails_received": [4, 1],
            "email_open_rate": [0.75, np.nan],
            "email_click_rate": [0.25, np.nan],
        }
    )
    joined = with_email_engagement(scores, engagement)
    assert list(joined["customer_id"]) == ["003", "001", "002"]  # the rows keep their order
    assert list(joined.columns[-3:]) == ENGAGEMENT_FEATURE_COLUMNS
    assert list(joined["emails_received"]) == [0, 4, 1] and joined["emails_received"].dtype == "int64"
    assert np.isnan(joined.loc[0, "email_open_rate"]) and joined.loc[1, "email_open_rate"] == 0.75
    assert np.isnan(joined.loc[2, "email_click_rate"])  # received one, the channel reported nothing
    nobody = with_email_engagement(scores, engagement.iloc[0:0])
    assert (nobody["emails_received"] == 0).all() and nobody["email_open_rate"].isna().all()
