"""Customer equity (models/equity.py): the sum of discounted CLV, by tier and segment, adds up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.equity import EQUITY_COLUMNS, customer_equity, equity_by_tier_and_segment


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list("abcdef"),
            "clv": [100.0, 50.0, 30.0, 10.0, 5.0, 5.0],
            "pyramid_tier": ["gold", "gold", "iron", "lead", "lead", None],
            "segment": ["Active", "Lapsed", "Active", "Lapsed", "Lapsed", "Lapsed"],
        }
    )


def test_equity_is_the_sum_of_clv_per_group_with_shares(scores: pd.DataFrame) -> None:
    table = customer_equity(scores, ["pyramid_tier"]).set_index("pyramid_tier")
    assert list(table.columns) == EQUITY_COLUMNS
    assert table.loc["gold", "customer_equity"] == 150.0 and table.loc["gold", "customers"] == 2
    assert table.loc["gold", "clv_per_customer"] == 75.0
    assert table.loc["unknown", "customer_equity"] == 5.0  # a customer without tier is not dropped
    assert table["customer_equity"].sum() == scores["clv"].sum()
    assert table["share_of_equity"].sum() == pytest.approx(1.0)
    assert table.loc["gold", "share_of_equity"] == pytest.approx(0.75)
    assert table.index[0] == "gold"  # largest equity first


def test_tier_by_segment_table_has_consistent_totals(scores: pd.DataFrame) -> None:
    table = equity_by_tier_and_segment(scores)
    total = table[(table["pyramid_tier"] == "all") & (table["segment"] == "all")]
    assert total["customer_equity"].item() == 200.0 and total["customers"].item() == 6
    cells = table[(table["pyramid_tier"] != "all") & (table["segment"] != "all")]
    by_tier = table[(table["segment"] == "all") & (table["pyramid_tier"] != "all")].set_index("pyramid_tier")
    by_segment = table[(table["pyramid_tier"] == "all") & (table["segment"] != "all")].set_index("segment")
    assert cells["customer_equity"].sum() == by_tier["customer_equity"].sum() == by_segment["customer_equity"].sum()
    np.testing.assert_allclose(
        cells.groupby("segment")["customer_equity"].sum().sort_index(), by_segment["customer_equity"].sort_index()
    )
    assert by_segment.loc["Lapsed", "customer_equity"] == 70.0


def test_missing_columns_are_named(scores: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="pyramid_tier"):
        customer_equity(scores.drop(columns="pyramid_tier"), ["pyramid_tier"])
