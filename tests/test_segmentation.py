"""Behavioural segmentation (models/segmentation.py) on a small simulated company.

Protected properties: every customer is in exactly one segment and the profile accounts for all of them;
segments are numbered by revenue per customer; names say what the profile shows (lapsed, one-time, frequent,
high-value) and are unique; the dominant tier comes from the tiers given; assigning customers with the saved
model reproduces the fit; the segments separate customers whose hidden buying rates really differ.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from simulated_orders import simulated_orders

from models.features import customer_features
from models.segmentation import PROFILE_COLUMNS, SegmentationModel, fit_segmentation, segment_label
from simulator.ground_truth import hidden_traits
from simulator.months import month_index

AS_OF = date(2025, 6, 1)


@pytest.fixture(scope="module")
def world_and_features(tmp_path_factory: pytest.TempPathFactory):
    world, orders = simulated_orders(tmp_path_factory.mktemp("world"), n_customers=3_000, seed=8)
    return world, customer_features(orders, AS_OF)


@pytest.fixture(scope="module")
def features(world_and_features) -> pd.DataFrame:
    return world_and_features[1]


@pytest.fixture(scope="module")
def tiers(features: pd.DataFrame) -> pd.Series:
    # Stand-in for marts.customer_value: the top 20% by 12-month margin are "gold", the rest "lead".
    top = features["margin_12m"].rank(ascending=False, pct=True) <= 0.2
    return pd.Series(np.where(top, "gold", "lead"), index=features.index)


@pytest.fixture(scope="module")
def model(features: pd.DataFrame, tiers: pd.Series) -> SegmentationModel:
    return fit_segmentation(features, AS_OF, tiers)


def test_every_customer_is_in_one_segment_and_the_profile_accounts_for_all(
    features: pd.DataFrame, model: SegmentationModel
) -> None:
    profile = model.profile
    assert list(profile.columns) == PROFILE_COLUMNS
    assert profile["customers"].sum() == len(features)
    assert profile["share_of_customers"].sum() == pytest.approx(1.0)
    assigned = model.assign(features)
    assert assigned.index.equals(features.index) and assigned["segment_id"].notna().all()
    counts = assigned["segment_id"].value_counts().sort_index()
    assert counts.to_dict() == profile.set_index("segment_id")["customers"].to_dict()
    assert model.metrics["n_segments"] == len(profile) and 4 <= len(profile) <= 7


def test_segments_are_numbered_by_revenue_per_customer(model: SegmentationModel) -> None:
    profile = model.profile
    assert profile["segment_id"].tolist() == list(range(1, len(profile) + 1))
    assert profile["revenue_per_customer_12m"].is_monotonic_decreasing


def test_names_are_unique_and_say_what_the_profile_shows(model: SegmentationModel) -> None:
    profile = model.profile
    assert profile["segment"].is_unique
    for _, row in profile.iterrows():
        name = row["segment"]
        if row["median_months_since_last_order"] >= 6:
            assert name.startswith("Lapsed") and row["lapsed_share"] >= 0.5, name
        if row["median_months_since_last_order"] < 3:
            assert name.startswith("Active"), name
        if row["median_orders"] <= 1:
            assert "one-time" in name, name
    # The base has both ends of the pyramid: a valuable active segment and a lapsed one.
    assert any(n.startswith("Active") and "high-value" in n for n in profile["segment"])
    assert any(n.startswith("Lapsed") for n in profile["segment"])


def test_profile_reports_top_products_and_the_dominant_tier(model: SegmentationModel, tiers: pd.Series) -> None:
    profile = model.profile
    for text in profile["top_products"]:
        parts = text.split(", ")
        assert 1 <= len(parts) <= 3 and all(part.endswith("%") for part in parts), text
    dominant = profile.set_index("segment_id")["dominant_tier"]
    assert dominant.str.match(r"^(gold|lead) \d+%$").all()
    assert dominant.iloc[0].startswith("gold")  # the highest-revenue segment is mostly gold
    assert dominant.iloc[-1] == "lead 100%"  # lapsed customers earned nothing in 12 months


def test_refitting_gives_the_same_segments(features: pd.DataFrame, tiers: pd.Series, model: SegmentationModel) -> None:
    again = fit_segmentation(features, AS_OF, tiers)
    pd.testing.assert_frame_equal(again.profile, model.profile)
    pd.testing.assert_frame_equal(again.assign(features), model.assign(features))


def test_segments_separate_hidden_buying_rates(world_and_features, model: SegmentationModel) -> None:
    world, features = world_and_features
    traits = hidden_traits(world, AS_OF).set_index("customer_id").reindex(features.index)
    alive = traits["death_month_index"] > month_index(AS_OF, world._origin)
    buying_rate = traits["purchase_rate"] * alive  # orders a month the customer places now, in truth
    by_segment = buying_rate.groupby(model.assign(features)["segment_id"]).mean()
    # The most valuable segment buys (in truth) many times as often as the least valuable one.
    assert by_segment.iloc[0] > 5 * by_segment.iloc[-1]


def test_segment_label_rules() -> None:
    base = {"orders_p75": 4.0, "revenue_per_customer_12m": 100.0}

    def label(months: float, orders: float, revenue: float, tenure: float = 400) -> str:
        row = pd.Series(
            {
                "median_months_since_last_order": months,
                "median_orders": orders,
                "revenue_per_customer_12m": revenue,
                "median_tenure_days": tenure,
            }
        )
        return segment_label(row, base)

    assert label(1, 6, 300) == "Active frequent high-value buyers"
    assert label(4, 2, 100) == "Cooling repeat buyers"
    assert label(12, 1, 0) == "Lapsed one-time buyers"
    assert label(0, 1, 40, tenure=20) == "Active new one-time low-value buyers"
    assert label(2, 3, 100) == "Active repeat buyers"  # 3 orders is below the 75th percentile of 4


def test_without_tiers_the_dominant_tier_is_unknown(features: pd.DataFrame) -> None:
    model = fit_segmentation(features, AS_OF, tiers=None, n_segments=4)
    assert (model.profile["dominant_tier"] == "unknown").all()
    assert model.metrics["n_segments"] == 4
