"""Who gets a campaign: selection within a budget, exploration, and a stratified randomised control group.

A campaign spends ``budget`` on the customers it contacts (the test group); its control group is selected
exactly like the test group and then withheld, so the two groups are comparable and the measured difference is
the campaign's effect on the customers it selected (Rubin's potential-outcomes framing; see Kohavi, Tang & Xu
2020, *Trustworthy Online Controlled Experiments*, ch. 2-3).

Selection has two parts:

* exploitation: ``1 - exploration_share`` of the budget goes to the eligible customers with the highest positive
  expected incremental profit (expected uplift x margin - offer and contact cost) whose profit is also shown to
  be positive (an optional ``profit_lower_bound`` column > 0: the policy's confidence bound); nobody with a
  negative, unknown or unproven expected profit is picked this way;
* exploration: ``exploration_share`` of the campaign's capacity (the budget, or the eligible audience when the
  budget would reach all of it) goes to customers drawn uniformly at random from the other eligible customers,
  so later models see customers the policy would not have picked (an epsilon-greedy policy; Sutton & Barto
  2018, section 2.2).

Every row records its ``selection_probability`` (1 for exploitation, ``n_drawn / n_pool`` for exploration) and
its ``treatment_probability`` (the chance of landing in the test group given selection, per stratum), so any
later estimate can be inverse-propensity weighted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from models import campaign_rules
from models.eligibility import eligibility
from models.targeting import score_candidates

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
    "profit_lower_bound",
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


def assign_control(selected: pd.DataFrame, control_share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Stratified random split of the selected customers into test and control.

    ``k = round(share * n)`` customers go to control (at least one as soon as two are selected: a campaign is
    never sent without a comparison), drawn by systematic sampling with a random start over the customers
    ordered by stratum and, within a stratum, at random (Cochran 1977, *Sampling Techniques*, ch. 8): every
    customer has the same probability ``k / n`` of control, whatever the stratum's size, and every stratum gets
    its proportional share of the control group to within one customer (implicit stratification). The recorded
    ``treatment_probability`` is therefore ``1 - k / n`` on every row: a design probability, positive for both
    groups, which inverse-propensity estimates can rely on (a stratum too small for its own control customer
    does not end up treated with certainty).
    """
    selected = selected.copy()
    n = len(selected)
    n_control = max(round(control_share * n), 1 if n >= 2 else 0)
    selected["group"] = "test"
    selected["treatment_probability"] = 1.0
    if selected.empty or n_control == 0:
        return selected
    order = np.lexsort((rng.random(n), selected["stratum"].astype(str).to_numpy()))
    start = rng.random()
    positions = np.floor((np.arange(n_control) + start) * n / n_control).astype(int)
    selected.iloc[order[positions], selected.columns.get_loc("group")] = "control"
    selected["treatment_probability"] = 1 - n_control / n
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
    lower_bound = (
        candidates["profit_lower_bound"]
        if "profit_lower_bound" in candidates.columns
        else candidates["expected_incremental_profit"]
    )
    pool = (
        candidates[list(CANDIDATE_COLUMNS)]
        .assign(stratum=lambda f: f["stratum"].astype(str), profit_lower_bound=lower_bound.astype(float))
        .sort_values("customer_id", kind="stable")
        .reset_index(drop=True)
    )
    max_test = math.floor(budget / cost_per_contact + 1e-9)
    # Exploration is a share of what the campaign can contact: the budget, or the eligible customers when the
    # budget would reach all of them (so a small audience is not mostly drawn at random).
    capacity = min(max_test, len(pool) - round(control_share * len(pool)))
    explore_test = math.floor(capacity * exploration_share + 1e-9)
    exploit_test = max_test - explore_test

    profitable = pool[(pool["profit_lower_bound"] > 0) & (pool["expected_incremental_profit"] > 0)].sort_values(
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
    selected["profit_lower_bound"] = selected["profit_lower_bound"].astype(float)
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


# ------------------------------------------------------------------------------------------- the cycle
#: Score columns copied into the decision log when the scores have them (the evidence of each decision).
DECISION_SCORE_COLUMNS = (
    "churn_probability",
    "p_alive",
    "clv",
    "expected_purchases_next_month",
    "profit_12m",
    "pyramid_tier",
    "segment",
    "next_best_product",
    "next_best_product_expected_margin",
)

RULE_EXPLOIT = "selected: highest expected incremental profit"
RULE_EXPLORE = "selected: exploration draw"
RULE_PILOT = "selected: randomised pilot draw"
RULE_CONTROL = " (control group: held out at random)"
RULE_NOT_PROFITABLE = "not selected: incremental profit not shown to be positive (lower bound <= 0)"
RULE_BUDGET = "not selected: budget spent on customers with a higher expected profit"
RULE_NOT_DRAWN = "not selected: not drawn at random"
#: A campaign selecting fewer customers cannot hold out a control group and still contact someone.
MIN_CAMPAIGN_CUSTOMERS = 3
RULE_TOO_SMALL = f"not selected: campaign too small to measure (fewer than {MIN_CAMPAIGN_CUSTOMERS} selected)"


@dataclass
class CyclePlan:
    """Everything the design stage decided for one cycle."""

    plan: pd.DataFrame  # the assignments (test and control): PLAN_COLUMNS + objective, policy, policy_version
    decisions: pd.DataFrame  # one row per scored customer and objective: decision, rule and evidence
    campaigns: pd.DataFrame  # one row per campaign: sizes, cost, budget, expected profit, minimum detectable effect


def control_stratum(scores: pd.DataFrame) -> pd.Series:
    """The randomisation stratum of the control draw: the customer's pyramid tier, else segment, else one stratum."""
    for column in ("pyramid_tier", "segment"):
        if column in scores.columns and scores[column].notna().any():
            return scores[column].astype("string").fillna("unknown").astype(str)
    return pd.Series("all", index=scores.index)


def expected_base_response(scores: pd.DataFrame) -> pd.Series:
    """P(at least one order next month) without a contact, from the BG/NBD expected purchases (Poisson)."""
    if "expected_purchases_next_month" not in scores.columns:
        return pd.Series(np.nan, index=scores.index)
    return 1.0 - np.exp(-scores["expected_purchases_next_month"].astype(float).clip(lower=0))


def _decision_rules(plan: pd.DataFrame, eligible: pd.DataFrame, pilot: bool) -> pd.Series:
    """Why each eligible customer was (not) selected."""
    selected = plan.set_index("customer_id")
    rule = pd.Series(RULE_NOT_DRAWN if pilot else RULE_BUDGET, index=eligible.index, dtype="object")
    if not pilot:
        unproven = ~((eligible["profit_lower_bound"] > 0) & (eligible["expected_incremental_profit"] > 0))
        rule[unproven] = RULE_NOT_PROFITABLE
    how = eligible["customer_id"].map(selected["selection"])
    rule[how == "exploit"] = RULE_EXPLOIT
    rule[how == "explore"] = RULE_PILOT if pilot else RULE_EXPLORE
    control = eligible["customer_id"].map(selected["group"]) == "control"
    rule[control] = rule[control] + RULE_CONTROL
    return rule


def plan_cycle(
    scores: pd.DataFrame,
    objectives: pd.DataFrame,
    offers: pd.DataFrame,
    policies: dict,
    *,
    delivery_month: pd.Timestamp,
    allowed: pd.Series,
    in_global_control: pd.Series,
    contacts: pd.DataFrame | None,
    policy_version: str,
    seed_of: Callable[[str], int],
) -> CyclePlan:
    """Plan every objective's campaign for ``delivery_month`` (objectives in ``priority`` order).

    ``scores``: one row per customer (the analyse stage's scores plus ``pyramid_tier`` and ``profit_12m`` where
    known); ``policies``: the improve stage's policy per offer (models.targeting.OfferPolicy); ``allowed``,
    ``in_global_control``, ``contacts``: see models.eligibility.eligibility; ``seed_of(campaign_id)``: the seed
    of a campaign's random draws. A campaign's budget buys test contacts at their expected cost each,
    ``contact_cost + incentive_cost * redemptions_per_contact``, and a candidate's expected profit charges the
    expected voucher of a treated responder (models.campaign_rules; ``offers`` carries the learned rates, without
    them every contact and responder is charged a whole voucher); a randomised pilot (no model yet) draws its
    whole capacity at random.
    """

    scores = scores.reset_index(drop=True)
    offer_table = offers.set_index("offer_id")
    contact_prices = campaign_rules.cost_per_contact(offers)
    voucher_per_responder = campaign_rules.incentive_per_responder(offers)
    taken = pd.Series(False, index=scores.index)
    evidence = scores[["customer_id", *[c for c in DECISION_SCORE_COLUMNS if c in scores.columns]]]
    stratum = control_stratum(scores)
    base_response = expected_base_response(scores)
    plans, decisions, campaigns = [], [], []
    for _, objective in objectives.sort_values("priority").iterrows():
        name = str(objective["objective"])
        campaign_id = f"{delivery_month:%Y-%m}-{name}"
        offer_id = str(objective["offer_id"])
        offer = offer_table.loc[offer_id]
        policy = policies[offer_id]
        pilot = policy.kind != "uplift_model"
        contact_price = float(contact_prices[offer_id])
        rules = eligibility(
            scores, objective, allowed=allowed, in_global_control=in_global_control, contacts=contacts, taken=taken
        )
        eligible_rows = rules["eligible"].to_numpy()
        candidates = scores.loc[eligible_rows, ["customer_id"]].assign(stratum=stratum[eligible_rows])
        scored = score_candidates(
            policy, scores.loc[eligible_rows], float(offer["contact_cost"]), float(voucher_per_responder[offer_id])
        )
        candidates["expected_incremental_profit"] = scored["expected_incremental_profit"]
        candidates["profit_lower_bound"] = scored["profit_lower_bound"]
        plan = design_campaign(
            candidates,
            campaign_id=campaign_id,
            offer_id=offer_id,
            budget=float(objective["budget"]),
            cost_per_contact=contact_price,
            control_share=float(objective["control_share"]),
            exploration_share=1.0 if pilot else float(objective["exploration_share"]),
            seed=seed_of(campaign_id),
        )
        too_small = 0 < len(plan) < MIN_CAMPAIGN_CUSTOMERS
        if too_small:
            plan = plan.iloc[0:0]
        plan = plan.assign(objective=name, policy=policy.kind, policy_version=policy_version)
        plans.append(plan)
        taken |= scores["customer_id"].isin(plan["customer_id"])

        decision = evidence.assign(
            objective=name,
            priority=int(objective["priority"]),
            campaign_id=campaign_id,
            offer_id=offer_id,
            eligible=rules["eligible"].to_numpy(),
            rule=rules["rule"].to_numpy(),
            expected_incremental_profit=np.nan,
            profit_lower_bound=np.nan,
        )
        expected_profit = candidates["expected_incremental_profit"].to_numpy()
        decision.loc[eligible_rows, "expected_incremental_profit"] = expected_profit
        decision.loc[eligible_rows, "profit_lower_bound"] = candidates["profit_lower_bound"].to_numpy()
        decision.loc[eligible_rows, "rule"] = (
            RULE_TOO_SMALL if too_small else _decision_rules(plan, candidates, pilot).to_numpy()
        )
        group = decision["customer_id"].map(plan.set_index("customer_id")["group"])
        decision["decision"] = group.fillna(pd.Series(np.where(eligible_rows, "not selected", "excluded")))
        decision = decision.assign(policy=policy.kind, policy_version=policy_version)
        decisions.append(decision)

        n_test, n_control = int((plan["group"] == "test").sum()), int((plan["group"] == "control").sum())
        selected = scores["customer_id"].isin(plan["customer_id"])
        base = float(base_response[selected].mean()) if selected.any() else np.nan
        mde = (
            minimum_detectable_effect(n_test, n_control, min(max(base, 0.001), 0.999))
            if n_test and n_control and np.isfinite(base)
            else np.nan
        )
        campaigns.append(
            {
                "campaign_id": campaign_id,
                "objective": name,
                "offer_id": offer_id,
                "policy": policy.kind,
                "eligible": int(eligible_rows.sum()),
                "test": n_test,
                "control": n_control,
                "explored": int((plan["selection"] == "explore").sum()),
                "committed_cost": n_test * contact_price,
                "budget": float(objective["budget"]),
                "cost_per_contact": contact_price,
                "redemptions_per_contact": float(offer.get("redemptions_per_contact", 1.0)),
                "expected_incremental_profit": float(
                    plan.loc[plan["group"] == "test", "expected_incremental_profit"].sum(min_count=1)
                ),
                "expected_base_response": base,
                "minimum_detectable_uplift": mde,
            }
        )
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame(columns=[*PLAN_COLUMNS, "objective"])
    decisions_frame = pd.concat(decisions, ignore_index=True) if decisions else pd.DataFrame()
    return CyclePlan(plan=plan, decisions=decisions_frame, campaigns=pd.DataFrame(campaigns))


def plan_content_hash(plan: pd.DataFrame) -> str:
    """SHA-256 of what a plan sends: every (campaign, customer, offer, group, delivery month), order-independent.

    The gates record the hash they validated, an approval names the hash it approves, and execute sends a plan
    only when the hash it reads is the one that passed and was approved: a plan changed after its checks (a
    re-run of design, a manual edit of the table) is never sent on the strength of the old checks.
    """
    columns = ["campaign_id", "customer_id", "offer_id", "group"]
    if plan.empty:
        return hashlib.sha256(b"empty plan").hexdigest()
    rows = plan[columns].astype(str)
    if "delivery_month" in plan.columns:
        rows = rows.assign(delivery_month=pd.to_datetime(plan["delivery_month"]).dt.strftime("%Y-%m-%d"))
    rows = rows.sort_values(list(rows.columns), kind="stable")
    text = "\n".join("|".join(values) for values in rows.itertuples(index=False, name=None))
    return hashlib.sha256(text.encode()).hexdigest()
