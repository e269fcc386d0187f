"""The proof's baselines (orchestration/lib/reports.py): random, oracle and contact-everyone on the same customers.

Protected properties: every baseline draws from the customers the campaign's decision log marks eligible; random
is the expected true profit of a uniform draw of as many customers as the budget buys; the oracle spends the same
budget on the highest positive true profits only; contacting everyone sums every eligible customer's true profit;
contacting nobody earns 0; the ceiling spends the budget by a model of the true profits on the platform's
design-time scores, so it reaches the oracle when a score reveals the profit and never exceeds it.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from orchestration.lib.queries import DECISIONS_TABLE, PLAN_CAMPAIGNS_TABLE, SCORES_TABLE
from orchestration.lib.reports import baseline_policies_true_profit, cumulative_true_profit
from orchestration.resources import DuckDBWarehouseResource
from simulator import SimulatedWorld
from simulator.evaluation import true_individual_profit

OFFERS = pd.DataFrame(
    {"offer_id": ["retain_voucher", "winback_voucher"], "contact_cost": [0.5, 0.5], "incentive_cost": [10.0, 15.0]}
)


def test_baselines_use_the_eligible_customers_and_the_campaign_budget(tmp_path) -> None:
    world, warehouse, _, by_customer = _campaign(tmp_path, n_customers=400, n_ids=200, contacts=50)
    row = baseline_policies_true_profit(warehouse, world, ["2025-02-retention"], OFFERS).iloc[0]
    profit = by_customer.to_numpy()
    assert row["eligible_customers"] == 150
    assert np.isclose(row["random_policy_true_profit"], 50 * profit.mean())
    best = np.sort(profit)[::-1][:50]
    assert np.isclose(row["oracle_policy_true_profit"], best[best > 0].sum())
    assert np.isclose(row["contact_all_true_profit"], profit.sum())
    assert row["oracle_policy_true_profit"] >= max(row["random_policy_true_profit"], 0.0)
    assert row["nobody_true_profit"] == 0.0
    assert np.isnan(row["ceiling_policy_true_profit"])  # no design-time scores in this warehouse


def _campaign(tmp_path, n_customers: int, n_ids: int, contacts: int):
    """A world, a warehouse with one February campaign over its first `n_ids` customers (a quarter excluded) and
    a budget for `contacts` contacts, and the eligible customers' true profits."""
    world = SimulatedWorld(tmp_path / "world", seed=3, n_customers=n_customers)
    ids = [f"C{i:07d}" for i in range(1, n_ids + 1)]
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    decisions = pd.DataFrame(
        {
            "campaign_id": "2025-02-retention",
            "offer_id": "retain_voucher",
            "delivery_month": pd.Timestamp("2025-02-01"),
            "customer_id": ids,
            "eligible": [i % 4 != 0 for i in range(n_ids)],
        }
    )
    warehouse.replace_rows(DECISIONS_TABLE, decisions, {"campaign_id": "2025-02-retention"})
    warehouse.replace_rows(
        PLAN_CAMPAIGNS_TABLE,
        pd.DataFrame({"campaign_id": ["2025-02-retention"], "budget": [contacts * 10.5]}),
        {"campaign_id": "2025-02-retention"},
    )
    eligible = decisions.loc[decisions["eligible"], "customer_id"]
    truth = true_individual_profit(world, date(2025, 2, 1), eligible, "retain_voucher", OFFERS)
    return world, warehouse, ids, truth.set_index("customer_id")["true_incremental_profit"]


def test_the_ceiling_reaches_the_oracle_when_a_score_reveals_the_profit_and_never_passes_it(tmp_path) -> None:
    world, warehouse, ids, profit = _campaign(tmp_path, n_customers=3000, n_ids=2000, contacts=300)
    rng = np.random.default_rng(0)
    january = pd.Timestamp("2025-01-01")  # the design month of a February delivery
    ceilings = {}
    for name, signal in {
        "reveals_profit": pd.Series(ids).map(profit).fillna(0.0).to_numpy(),
        "noise_only": rng.normal(size=len(ids)),
    }.items():
        scores = pd.DataFrame({"customer_id": ids, "as_of_month": january, "signal": signal})
        warehouse.replace_rows(SCORES_TABLE, scores, {"as_of_month": january})
        row = baseline_policies_true_profit(warehouse, world, ["2025-02-retention"], OFFERS).iloc[0]
        ceilings[name] = row["ceiling_policy_true_profit"]
        assert ceilings[name] <= row["oracle_policy_true_profit"] + 1e-9, name
    assert row["oracle_policy_true_profit"] > 0
    assert ceilings["reveals_profit"] >= 0.9 * row["oracle_policy_true_profit"], (ceilings, row)
    assert ceilings["noise_only"] < ceilings["reveals_profit"]


def test_the_cumulative_true_profit_sums_each_policy_over_the_measured_campaigns() -> None:
    summary = pd.DataFrame(
        {
            "campaign": ["2025-02-retention", "2025-02-winback", "2025-03-retention"],
            "true_incremental_profit": [120.0, -30.0, 80.0],
            "random_policy_true_profit": [-50.0, -40.0, -20.0],
            "oracle_policy_true_profit": [400.0, 90.0, 300.0],
            "contact_all_true_profit": [-900.0, -300.0, -700.0],
            "nobody_true_profit": [0.0, 0.0, 0.0],
            "ceiling_policy_true_profit": [200.0, np.nan, 150.0],
        }
    )
    totals = cumulative_true_profit(summary).set_index("policy")
    assert totals.loc["the loop's policy", "true_profit"] == 170.0
    assert totals.loc["contacting nobody", "true_profit"] == 0.0
    assert totals.loc["random targeting, same budget", "true_profit"] == -110.0
    assert totals.loc["contacting every eligible customer", "true_profit"] == -1900.0
    assert totals.loc["oracle: targeting by the true effects", "true_profit"] == 790.0
    ceiling = totals.loc["ceiling: the best targeting on the observables"]
    assert (ceiling["true_profit"], ceiling["campaigns"]) == (350.0, 2)  # the campaign without scores is not counted
    assert list(totals.index)[0] == "the loop's policy"


def test_a_summary_without_ground_truth_has_no_cumulative_true_profit() -> None:
    measured_only = pd.DataFrame({"campaign": ["2025-02-retention"], "incremental_profit": [55.0]})
    assert cumulative_true_profit(measured_only).empty
