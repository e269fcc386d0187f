"""The proof's baselines (orchestration/lib/reports.py): random, oracle and contact-everyone on the same customers.

Protected properties: every baseline draws from the customers the campaign's decision log marks eligible; random
is the expected true profit of a uniform draw of as many customers as the budget buys; the oracle spends the same
budget on the highest positive true profits only; contacting everyone sums every eligible customer's true profit.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from orchestration.lib.queries import DECISIONS_TABLE, PLAN_CAMPAIGNS_TABLE
from orchestration.lib.reports import baseline_policies_true_profit
from orchestration.resources import DuckDBWarehouseResource

OFFERS = pd.DataFrame(
    {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
)


def test_baselines_use_the_eligible_customers_and_the_campaign_budget(tmp_path) -> None:
    from simulator import SimulatedWorld
    from simulator.evaluation import true_individual_profit

    world = SimulatedWorld(tmp_path / "world", seed=3, n_customers=400)
    ids = [f"C{i:07d}" for i in range(1, 201)]
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    decisions = pd.DataFrame(
        {
            "campaign_id": "2025-02-retention",
            "offer_id": "retain_voucher",
            "delivery_month": pd.Timestamp("2025-02-01"),
            "customer_id": ids,
            "eligible": [i % 4 != 0 for i in range(200)],  # a quarter excluded
        }
    )
    warehouse.replace_rows(DECISIONS_TABLE, decisions, {"campaign_id": "2025-02-retention"})
    budget = 50 * 10.5  # buys 50 contacts
    warehouse.replace_rows(
        PLAN_CAMPAIGNS_TABLE,
        pd.DataFrame({"campaign_id": ["2025-02-retention"], "budget": [budget]}),
        {"campaign_id": "2025-02-retention"},
    )
    row = baseline_policies_true_profit(warehouse, world, ["2025-02-retention"], OFFERS).iloc[0]
    eligible = decisions.loc[decisions["eligible"], "customer_id"]
    truth = true_individual_profit(world, date(2025, 2, 1), eligible, "retain_voucher", OFFERS)
    profit = truth["true_incremental_profit"].to_numpy()
    assert row["eligible_customers"] == 150
    assert np.isclose(row["random_policy_true_profit"], 50 * profit.mean())
    best = np.sort(profit)[::-1][:50]
    assert np.isclose(row["oracle_policy_true_profit"], best[best > 0].sum())
    assert np.isclose(row["contact_all_true_profit"], profit.sum())
    assert row["oracle_policy_true_profit"] >= max(row["random_policy_true_profit"], 0.0)
