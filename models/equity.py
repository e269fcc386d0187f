"""Customer equity: the discounted value of the whole customer base, and where it sits.

Customer equity is the sum of the customers' discounted lifetime values (Blattberg & Deighton 1996, "Manage
marketing by the customer equity test", Harvard Business Review; Rust, Lemon & Zeithaml 2004). Broken down by
pyramid tier and behavioural segment it shows which groups the firm's future margin depends on: typically a
small top tier holds a large share of the equity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

EQUITY_COLUMNS = ["customers", "customer_equity", "clv_per_customer", "share_of_customers", "share_of_equity"]


def customer_equity(scores: pd.DataFrame, by: Sequence[str], value_column: str = "clv") -> pd.DataFrame:
    """Sum of discounted CLV per group of ``by`` columns, with counts and shares of the whole base.

    A missing group value (e.g. no pyramid tier) is reported as "unknown". Sorted by equity, largest first.
    Columns: the ``by`` columns, then :data:`EQUITY_COLUMNS`.
    """
    keys = list(by)
    missing = [c for c in [*keys, value_column] if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing} for customer equity")
    frame = scores[keys].astype("str").where(scores[keys].notna(), "unknown")
    frame[value_column] = scores[value_column].to_numpy(dtype="float64")
    grouped = frame.groupby(keys, sort=False, dropna=False)[value_column]
    table = pd.DataFrame({"customers": grouped.size(), "customer_equity": grouped.sum()}).reset_index()
    total_equity = float(table["customer_equity"].sum())
    table["clv_per_customer"] = table["customer_equity"] / table["customers"]
    table["share_of_customers"] = table["customers"] / max(int(table["customers"].sum()), 1)
    table["share_of_equity"] = table["customer_equity"] / total_equity if total_equity else np.nan
    table = table.sort_values(["customer_equity", *keys], ascending=[False, *[True] * len(keys)], kind="stable")
    return table[[*keys, *EQUITY_COLUMNS]].reset_index(drop=True)


def equity_by_tier_and_segment(
    scores: pd.DataFrame, tier_column: str = "pyramid_tier", segment_column: str = "segment"
) -> pd.DataFrame:
    """Long table of equity per (tier, segment) cell, plus the tier totals (segment "all"), the segment totals
    (tier "all") and the grand total ("all", "all"): one table for the warehouse and the metadata."""
    cells = customer_equity(scores, [tier_column, segment_column])
    tiers = customer_equity(scores, [tier_column]).assign(**{segment_column: "all"})
    segments = customer_equity(scores, [segment_column]).assign(**{tier_column: "all"})
    total = customer_equity(scores.assign(_all="all"), ["_all"]).drop(columns="_all")
    total[tier_column] = "all"
    total[segment_column] = "all"
    table = pd.concat([total, tiers, segments, cells], ignore_index=True)
    return table[[tier_column, segment_column, *EQUITY_COLUMNS]]
