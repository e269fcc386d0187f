"""Who may receive which campaign: the eligibility and suppression rules of the design stage, with the reason.

Every rule is evaluated for every scored customer and objective (a row of the ``campaign_objectives`` seed),
and the first rule a customer breaks is the one the decision log records. In order:

1. ``no consent``: the customer does not currently allow contact (with no consent data at all, nobody does);
2. ``global control group``: a fixed, seeded share of the customer base is held out of every campaign, for as
   long as the share and salt stay the same (a universal holdout: it measures the whole programme);
3. the objective's audience (``not in audience: ...``):

   * ``audience = active``: bought in the last six months; ``lapsed``: did not;
   * ``min_churn_probability`` (at risk), ``min_p_alive`` (still reachable), ``min_clv`` (valuable: the
     discounted lifetime value of the BG/NBD and Gamma-Gamma models; for lapsed customers this is their
     expected *second* lifetime value, the value of the customer if won back weighted by P(alive); Stauss &
     Friege 1999, "Regaining service customers", J. Service Research 1(4));
   * ``pyramid_tiers``: only these profitability tiers (e.g. ``silver|iron`` for an upgrade campaign);
   * ``requires_next_best_product``: only customers with a scored next best product (cross-sell);

4. ``unprofitable``: where the objective says so, customers whose last 12 months lost money (12-month margin
   minus cost to serve < 0) are not contacted;
5. ``contact fatigue``: a customer contacted ``max_contacts_in_window`` times or more in the last
   ``contact_window_months`` months is rested;
6. ``in an earlier campaign this cycle``: at most one campaign per customer and cycle (objectives pick their
   audience in priority order).

A customer who passes every rule is *eligible*; whether the campaign then contacts them is the selection's
decision (models.campaign_design).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from models.campaign_rules import consenting_customers
from models.ids import is_member

AUDIENCES = ("active", "lapsed")

RULE_NO_CONSENT = "no consent"
RULE_GLOBAL_CONTROL = "global control group"
RULE_UNPROFITABLE = "unprofitable (12-month profit < 0)"
RULE_FATIGUE = "contact fatigue"
RULE_TAKEN = "in an earlier campaign this cycle"
RULE_ELIGIBLE = "eligible"

#: Objective columns the rules read, with the value that switches the rule off when a seed lacks the column.
OBJECTIVE_DEFAULTS: dict[str, object] = {
    "min_churn_probability": 0.0,
    "min_p_alive": 0.0,
    "min_clv": 0.0,
    "pyramid_tiers": "",
    "requires_next_best_product": False,
    "exclude_unprofitable": False,
    "max_contacts_in_window": 0,
    "contact_window_months": 0,
}


def objective_setting(objective: pd.Series, name: str) -> object:
    """The objective's value of a rule setting, or the value that switches the rule off when absent/NULL."""
    value = objective.get(name, OBJECTIVE_DEFAULTS[name])
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return OBJECTIVE_DEFAULTS[name]
    return value


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def audience_reason(scores: pd.DataFrame, objective: pd.Series) -> pd.Series:
    """Per row of ``scores``: why the customer is outside the objective's audience, or NaN when inside.

    Reads ``is_lapsed``, ``churn_probability``, ``p_alive``, ``clv`` and, when the objective asks for them,
    ``pyramid_tier`` and ``next_best_product`` (a customer without the column's value is outside).
    """
    audience = objective["audience"]
    if audience not in AUDIENCES:
        raise ValueError(f"campaign_objectives: objective {objective['objective']!r} has unknown audience {audience!r}")
    reason = pd.Series(np.nan, index=scores.index, dtype="object")

    def rule(mask: pd.Series, text: str) -> None:
        reason.loc[mask.fillna(True).astype(bool) & reason.isna()] = f"not in audience: {text}"

    lapsed = scores["is_lapsed"].astype("boolean").fillna(True).astype(bool)
    if audience == "active":
        rule(lapsed, "lapsed (no order in six months)")
    else:
        rule(~lapsed, "active (ordered in the last six months)")
    min_churn = float(objective_setting(objective, "min_churn_probability"))
    if min_churn > 0:
        rule(~(scores["churn_probability"] >= min_churn), f"churn probability below {min_churn:g}")
    min_p_alive = float(objective_setting(objective, "min_p_alive"))
    if min_p_alive > 0:
        rule(~(scores["p_alive"] >= min_p_alive), f"P(alive) below {min_p_alive:g}")
    min_clv = float(objective_setting(objective, "min_clv"))
    if min_clv > 0:
        rule(~(scores["clv"] >= min_clv), f"lifetime value below {min_clv:g}")
    tiers = [t.strip() for t in str(objective_setting(objective, "pyramid_tiers")).split("|") if t.strip()]
    if tiers:
        tier = scores["pyramid_tier"] if "pyramid_tier" in scores.columns else pd.Series(np.nan, index=scores.index)
        rule(~tier.isin(tiers), f"pyramid tier not in {'/'.join(tiers)}")
    if _flag(objective_setting(objective, "requires_next_best_product")):
        best = scores["next_best_product"] if "next_best_product" in scores.columns else pd.Series(np.nan, scores.index)
        rule(best.isna() | (best.astype("string") == ""), "no next best product")
    return reason


def eligible_for_objective(scores: pd.DataFrame, objective: pd.Series) -> pd.Series:
    """Boolean mask over ``scores`` rows: inside the objective's audience (consent and the other suppression
    rules are applied by :func:`eligibility`)."""
    return audience_reason(scores, objective).isna()


def consented(scores: pd.DataFrame, consent: pd.DataFrame | None) -> pd.Series:
    """Customers who currently allow contact; with no consent data at all, nobody does."""
    return is_member(scores["customer_id"], consenting_customers(consent))


def global_control_group(customer_ids: pd.Series, share: float, salt: str = "global-control") -> pd.Series:
    """True for the customers of the global holdout: ``hash(salt, customer_id)`` uniform in [0, 1) below ``share``.

    The draw is a hash, not a random-number stream, so a customer's membership does not depend on who else is
    in the base, on the month or on the run: the holdout is the same customers every cycle (new customers join
    it at the same rate).
    """
    if not 0 <= share < 1:
        raise ValueError(f"global control share must be in [0, 1), got {share}")
    if share == 0 or len(customer_ids) == 0:
        return pd.Series(False, index=customer_ids.index)
    digest = [hashlib.sha256(f"{salt}|{customer}".encode()).digest()[:8] for customer in customer_ids.astype(str)]
    uniform = np.frombuffer(b"".join(digest), dtype=">u8") / 2.0**64
    return pd.Series(uniform < share, index=customer_ids.index)


def fatigued(customer_ids: pd.Series, contacts: pd.DataFrame | None, objective: pd.Series) -> pd.Series:
    """True for customers with ``max_contacts_in_window`` or more contacts in the objective's window.

    ``contacts``: one row per past contact with ``customer_id`` and ``months_ago`` (0 = a contact delivered at
    the start of the design month, 1 = the month before, ...).
    """
    limit = int(objective_setting(objective, "max_contacts_in_window"))
    window = int(objective_setting(objective, "contact_window_months"))
    if limit <= 0 or window <= 0 or contacts is None or contacts.empty:
        return pd.Series(False, index=customer_ids.index)
    recent = contacts[contacts["months_ago"] < window]
    counts = recent.groupby("customer_id").size()
    return customer_ids.map(counts).fillna(0).astype(int) >= limit


def eligibility(
    scores: pd.DataFrame,
    objective: pd.Series,
    *,
    allowed: pd.Series,
    in_global_control: pd.Series,
    contacts: pd.DataFrame | None,
    taken: pd.Series,
) -> pd.DataFrame:
    """Per row of ``scores``: ``eligible`` (bool) and ``rule`` (the first rule broken, or ``eligible``).

    ``allowed``: consent now; ``in_global_control``: the global holdout; ``contacts``: past contacts for the
    fatigue rule (see :func:`fatigued`); ``taken``: already in an earlier campaign this cycle. Unprofitable
    customers are those with ``profit_12m < 0`` (a customer without a value row is not excluded).
    """
    rule = pd.Series(np.nan, index=scores.index, dtype="object")

    def apply(mask: pd.Series, text: str | pd.Series) -> None:
        hit = mask.astype(bool) & rule.isna()
        rule.loc[hit] = text[hit] if isinstance(text, pd.Series) else text

    apply(~allowed, RULE_NO_CONSENT)
    apply(in_global_control, RULE_GLOBAL_CONTROL)
    outside = audience_reason(scores, objective)
    apply(outside.notna(), outside)
    if _flag(objective_setting(objective, "exclude_unprofitable")) and "profit_12m" in scores.columns:
        apply(scores["profit_12m"] < 0, RULE_UNPROFITABLE)
    limit = int(objective_setting(objective, "max_contacts_in_window"))
    window = int(objective_setting(objective, "contact_window_months"))
    apply(
        fatigued(scores["customer_id"], contacts, objective),
        f"{RULE_FATIGUE} ({limit}+ contacts in {window} months)",
    )
    apply(taken, RULE_TAKEN)
    eligible = rule.isna()
    return pd.DataFrame({"eligible": eligible, "rule": rule.fillna(RULE_ELIGIBLE)}, index=scores.index)
