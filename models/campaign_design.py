"""Who gets a campaign: selection within a budget, exploration, and a stratified randomised control group.

A campaign spends ``budget`` on the customers it contacts (the test group); its control group is selected
exactly like the test group and then withheld, so the two groups are comparable and the measured difference is
the campaign's effect on the customers it selected (Rubin's potential-outcomes framing; see Kohavi, Tang & Xu
2020, *Trustworthy Online Controlled Experiments*, ch. 2-3).

Selection has two parts:

* exploitation: ``1 - exploration_share`` of the budget goes to the eligible customers with the highest positive
  expected incremental profit (expected uplift x margin - offer and contact cost); nobody with a negative or
  unknown expected profit is picked this way;
* exploration: ``exploration_share`` of the budget goes to customers drawn uniformly at random from the other
  eligible customers, so later models see customers the policy would not have picked (an epsilon-greedy
  policy; Sutton & Barto 2018, section 2.2).

Every row records its ``selection_probability`` (1 for exploitation, ``n_drawn / n_pool`` for exploration) and
its ``treatment_probability`` (the chance of landing in the test group given selection, per stratum), so any
later estimate can be inverse-propensity weighted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

CANDIDATE_COLUMNS = ("customer_id", "expected_incremental_profit", "stratum")
PLAN_COLUMNS = [
    "campaign_id",
    "customer_id",
    "offer_id",
    "group",
    "selection",
    "selection_probability",
    "treatment_probability",
    "expected_incremental_profit",
    "stratum",
    "rank",
]


def _check_arguments(
    candidates: pd.DataFrame, budget: float, cost_per_contact: float, control_share: float, exploration_share: float
) -> None:
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"design_campaign: candidates lack columns {missing}")
    if candidates["customer_id"].duplicated().any():
        duplicated = candidates.loc[candidates["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ValueError(f"design_campaign: customer {duplicated!r} appears twice among the candidates")
    if budget < 0:
        raise ValueError(f"design_campaign: budget must be >= 0, got {budget}")
    if cost_per_contact <= 0:
        raise ValueError(f"design_campaign: cost_per_contact must be > 0, got {cost_per_contact}")
    if not 0 < control_share < 1:
        raise ValueError(f"design_campaign: control_share must be in (0, 1), got {control_share}")
    if not 0 <= exploration_share <= 1:
        raise ValueError(f"design_campaign: exploration_share must be in [0, 1], got {exploration_share}")


def selection_size(max_test: int, control_share: float, available: int) -> int:
    """The largest number of customers to select whose test group (selected - control) fits ``max_test``."""
    # n - round(share * n) >= n (1 - share) - 1/2, so no n above (max_test + 1/2) / (1 - share) fits.
    n = min(available, math.floor((max_test + 0.5) / (1 - control_share)) + 1)
    while n > 0 and n - round(control_share * n) > max_test:
        n -= 1
    return max(n, 0)


def _allocate_control(strata: pd.Series, n_control: int) -> pd.Series:
    """Control places per stratum, proportional to stratum size (largest-remainder rounding)."""
    sizes = strata.value_counts().sort_index()
    exact = sizes / sizes.sum() * n_control
    places = np.floor(exact).astype(int)
    short = n_control - int(places.sum())
    if short > 0:
        remainders = (exact - places).sort_values(ascending=False, kind="stable")
        places[remainders.index[:short]] += 1
    return places


def assign_control(selected: pd.DataFrame, control_share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Stratified random split of the selected customers into test and control (``round(share * n)`` control)."""
    selected = selected.copy()
    n_control = round(control_share * len(selected))
    selected["group"] = "test"
    selected["treatment_probability"] = 1.0
    if selected.empty:
        return selected
    places = _allocate_control(selected["stratum"], n_control)
    for stratum, rows in selected.groupby("stratum", sort=True).groups.items():
        k = int(places.get(stratum, 0))
        if k:
            selected.loc[rng.choice(np.asarray(rows), size=k, replace=False), "group"] = "control"
        selected.loc[rows, "treatment_probability"] = 1 - k / len(rows)
    return selected


def design_campaign(
    candidates: pd.DataFrame,
    *,
    campaign_id: str,
    offer_id: str,
    budget: float,
    cost_per_contact: float,
    control_share: float = 0.10,
    exploration_share: float = 0.10,
    seed: int = 0,
) -> pd.DataFrame:
    """The campaign's selected customers with their group, probabilities and rank (columns ``PLAN_COLUMNS``).

    ``candidates``: the eligible customers (``customer_id``, ``expected_incremental_profit`` (NaN when no
    model exists yet), ``stratum`` for the control split, e.g. tier or segment). The test group's cost,
    ``n_test * cost_per_contact``, never exceeds ``budget``; the control group costs nothing.
    Deterministic for a given ``seed`` and candidate set (the order of the candidate rows does not matter).
    """
    _check_arguments(candidates, budget, cost_per_contact, control_share, exploration_share)
    rng = np.random.default_rng(seed)
    pool = (
        candidates[list(CANDIDATE_COLUMNS)]
        .assign(stratum=lambda f: f["stratum"].astype(str))
        .sort_values("customer_id", kind="stable")
        .reset_index(drop=True)
    )
    max_test = math.floor(budget / cost_per_contact + 1e-9)
    explore_test = math.floor(max_test * exploration_share + 1e-9)
    exploit_test = max_test - explore_test

    profitable = pool[pool["expected_incremental_profit"] > 0].sort_values(
        ["expected_incremental_profit", "customer_id"], ascending=[False, True], kind="stable"
    )
    exploited = profitable.head(selection_size(exploit_test, control_share, len(profitable)))
    exploited = exploited.assign(selection="exploit", selection_probability=1.0)

    rest = pool[~pool["customer_id"].isin(exploited["customer_id"])]
    # Budget the exploitation part leaves unspent (too few profitable customers) is not moved to exploration:
    # exploration stays a fixed, known share, so its selection probability is what the plan says.
    # The control group is drawn from exploited and explored customers together, and round(share * a) +
    # round(share * b) can exceed round(share * (a + b)): cap the total so the joint test group fits the budget.
    n_explore = min(
        selection_size(explore_test, control_share, len(rest)),
        selection_size(max_test, control_share, len(exploited) + len(rest)) - len(exploited),
    )
    drawn = rng.choice(len(rest), size=n_explore, replace=False) if n_explore else np.array([], dtype=int)
    explored = rest.iloc[np.sort(drawn)].assign(
        selection="explore", selection_probability=(n_explore / len(rest)) if len(rest) else 0.0
    )
    explored = explored.iloc[rng.permutation(len(explored))]

    selected = pd.concat([exploited, explored], ignore_index=True)
    selected["rank"] = np.arange(1, len(selected) + 1)
    selected = assign_control(selected, control_share, rng)
    selected["campaign_id"] = campaign_id
    selected["offer_id"] = offer_id
    selected["customer_id"] = selected["customer_id"].astype("str")
    selected["expected_incremental_profit"] = selected["expected_incremental_profit"].astype(float)
    return selected[PLAN_COLUMNS].reset_index(drop=True)


def minimum_detectable_effect(
    n_test: int, n_control: int, base_rate: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest absolute uplift in a response rate the test/control sizes detect (two-sided z-test).

    MDE = (z_{1-alpha/2} + z_{power}) * sqrt(p (1 - p) (1/n_test + 1/n_control)), the normal-approximation
    sample-size formula for two proportions (Kohavi et al. 2020, ch. 17; Cohen 1988, ch. 6).
    """
    if n_test <= 0 or n_control <= 0:
        raise ValueError(f"minimum_detectable_effect needs both groups non-empty (test {n_test}, control {n_control})")
    if not 0 < base_rate < 1:
        raise ValueError(f"minimum_detectable_effect: base_rate must be in (0, 1), got {base_rate}")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return float(z * math.sqrt(base_rate * (1 - base_rate) * (1 / n_test + 1 / n_control)))
