"""Proof on the simulator's hidden truth (issue 5): twelve monthly cycles of the whole loop, seeds 11, 22 and 33.

Each seed runs `crm-loop run --cycles 12` on a small default world (3,000 customers) in its own process (the
`simulated_years` fixture of tests/conftest.py, shared with the end-to-end tests). From `loop_summary.csv`,
whose `true_*` and `*_true_profit` columns come from the simulator's ground truth (orchestration/lib/reports.py):

- the measured 95% interval of the response uplift covers the true uplift in at least 90% of all campaign
  measurements;
- in the campaigns delivered in cycles 6 to 12, for each seed, the policy's true incremental profit beats
  contacting every eligible customer, and (policy - random) >= 0.5 x (oracle - random), where random contacts
  eligible customers at random within the campaign's budget and the oracle contacts, within the same budget,
  the eligible customers with the highest positive true individual profit.
"""

from __future__ import annotations

import pandas as pd
import pytest

FIRST_PROOF_MONTH = "2025-06"  # campaigns delivered in cycles 6..12
BASELINES = ["random_policy_true_profit", "oracle_policy_true_profit", "contact_all_true_profit"]

pytestmark = [pytest.mark.slow, pytest.mark.proof]


@pytest.fixture(scope="module")
def summaries(simulated_years) -> dict[int, pd.DataFrame]:
    """`loop_summary.csv` of each seed's simulated year (tests/conftest.py)."""
    return {seed: year.summary for seed, year in simulated_years.items()}


def _proof_totals(summaries: dict[int, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for seed, summary in summaries.items():
        late = summary[summary["month"] >= FIRST_PROOF_MONTH]
        rows.append(
            {
                "seed": seed,
                "campaigns": len(late),
                "policy_true_profit": late["true_incremental_profit"].sum(),
                **{column: late[column].sum() for column in BASELINES},
            }
        )
    totals = pd.DataFrame(rows).set_index("seed")
    gap = totals["oracle_policy_true_profit"] - totals["random_policy_true_profit"]
    totals["share_of_oracle_gap"] = (totals["policy_true_profit"] - totals["random_policy_true_profit"]) / gap
    print("\ncycles 6-12, true incremental profit (EUR)\n" + totals.to_string(float_format=lambda v: f"{v:.1f}"))
    return totals


def test_every_seed_ran_twelve_cycles_with_the_truth_columns(summaries) -> None:
    for seed, summary in summaries.items():
        assert summary["month"].max() == "2025-12" and summary["month"].min() == "2025-02", seed
        assert {"true_uplift", "true_incremental_profit", *BASELINES} <= set(summary.columns), seed
        assert summary[BASELINES].notna().all().all(), seed


def test_measured_intervals_cover_the_true_uplift_in_90_percent_of_campaigns(summaries) -> None:
    every = pd.concat(summaries.values(), ignore_index=True)
    covered = (every["ci_low"] <= every["true_uplift"]) & (every["true_uplift"] <= every["ci_high"])
    print(f"\ncoverage of the true uplift by the 95% interval: {covered.mean():.3f} over {len(every)} campaigns")
    assert len(every) >= 3 * 11
    assert covered.mean() >= 0.90, every.loc[~covered, ["month", "campaign", "ci_low", "ci_high", "true_uplift"]]


def test_the_policy_beats_contacting_every_eligible_customer(summaries) -> None:
    totals = _proof_totals(summaries)
    assert (totals["policy_true_profit"] > totals["contact_all_true_profit"]).all(), totals


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Not met: within a campaign's audience the observable features explain almost none of a customer's true "
        "effect (cross-fitted R^2 of the true uplift ~0.02 among active customers for retain_voucher, ~0 among "
        "lapsed ones for winback_voucher), so even a model fitted to the true profits themselves earns only 0.66 "
        "(3,000 customers) and 0.39 (20,000, the default size) of the oracle gap on seed 11; the learned policy "
        "avoids the losses but finds few profitable customers. See the issue-5 note."
    ),
)
def test_the_policy_earns_at_least_half_of_what_the_oracle_earns_over_random(summaries) -> None:
    totals = _proof_totals(summaries)
    gap = totals["oracle_policy_true_profit"] - totals["random_policy_true_profit"]
    achieved = totals["policy_true_profit"] - totals["random_policy_true_profit"]
    assert (achieved >= 0.5 * gap).all(), totals
