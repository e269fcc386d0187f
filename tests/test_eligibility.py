"""Eligibility and suppression (models/eligibility.py): who may receive a campaign, and the rule that says why not.

Protected properties: with no consent data nobody is contactable; the global control group is a fixed share of
customers that does not depend on who else is in the base or on the month; contact fatigue counts only the
contacts inside the window; unprofitable customers are excluded only where the objective says so; every
audience setting of the objectives seed (lapsed/active, churn, P(alive), lifetime value, tiers, next best
product) excludes with a reason; the first rule broken is the one recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.eligibility import (
    OBJECTIVE_DEFAULTS,
    RULE_ELIGIBLE,
    RULE_FATIGUE,
    RULE_GLOBAL_CONTROL,
    RULE_NO_CONSENT,
    RULE_TAKEN,
    RULE_UNPROFITABLE,
    audience_reason,
    consented,
    eligibility,
    fatigued,
    global_control_group,
)


def objective(**settings: object) -> pd.Series:
    base = {"objective": "retention", "audience": "active", **OBJECTIVE_DEFAULTS}
    return pd.Series({**base, **settings})


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "is_lapsed": [False, False, True, False, False],
            "churn_probability": [0.9, 0.2, 0.95, 0.7, 0.8],
            "p_alive": [0.9, 0.95, 0.3, 0.8, 0.7],
            "clv": [120.0, 80.0, 15.0, 10.0, 60.0],
            "pyramid_tier": ["gold", "silver", "lead", "iron", "silver"],
            "next_best_product": ["Cookware", None, "Tableware", "Coffee & Tea", ""],
            "profit_12m": [50.0, 20.0, -3.0, -1.0, 5.0],
        }
    )


def test_without_consent_data_nobody_is_contactable(scores: pd.DataFrame) -> None:
    assert not consented(scores, None).any()
    assert not consented(scores, pd.DataFrame(columns=["customer_id", "email_consent"])).any()
    consent = pd.DataFrame({"customer_id": ["a", "b", "c"], "email_consent": [True, False, None]})
    assert consented(scores, consent).tolist() == [True, False, False, False, False]


def test_global_control_group_is_a_stable_share_of_customers() -> None:
    ids = pd.Series([f"C{i:07d}" for i in range(20_000)])
    held = global_control_group(ids, 0.05)
    assert held.mean() == pytest.approx(0.05, abs=0.005)
    # Membership depends on the customer only: the same customers in a base twice the size or reordered.
    subset = ids.sample(frac=0.3, random_state=1)
    np.testing.assert_array_equal(global_control_group(subset, 0.05).to_numpy(), held[subset.index].to_numpy())
    assert not global_control_group(ids, 0.0).any()
    # A larger share keeps everyone a smaller share held out (nested holdouts).
    assert (held <= global_control_group(ids, 0.10)).all()
    with pytest.raises(ValueError, match="global control share"):
        global_control_group(ids, 1.0)


def test_contact_fatigue_counts_contacts_inside_the_window_only() -> None:
    ids = pd.Series(["a", "b", "c"])
    contacts = pd.DataFrame({"customer_id": ["a", "a", "b", "b", "c"], "months_ago": [1, 2, 1, 4, 3]})
    rule = objective(max_contacts_in_window=2, contact_window_months=3)
    assert fatigued(ids, contacts, rule).tolist() == [True, False, False]
    assert not fatigued(ids, contacts, objective()).any()  # 0 switches the rule off


def test_unprofitable_customers_are_excluded_only_where_the_objective_says_so(scores: pd.DataFrame) -> None:
    everyone = pd.Series(True, index=scores.index)
    nobody = pd.Series(False, index=scores.index)
    kept = eligibility(scores, objective(), allowed=everyone, in_global_control=nobody, contacts=None, taken=nobody)
    assert kept.loc[3, "eligible"]
    excluded = eligibility(
        scores,
        objective(exclude_unprofitable=True),
        allowed=everyone,
        in_global_control=nobody,
        contacts=None,
        taken=nobody,
    )
    assert excluded.loc[3, "rule"] == RULE_UNPROFITABLE and not excluded.loc[3, "eligible"]


@pytest.mark.parametrize(
    ("settings", "excluded", "reason"),
    [
        ({}, {"c"}, "lapsed"),
        ({"audience": "lapsed"}, {"a", "b", "d", "e"}, "active"),
        ({"min_churn_probability": 0.5}, {"b", "c"}, "churn probability below 0.5"),
        ({"min_clv": 50.0}, {"c", "d"}, "lifetime value below 50"),
        ({"pyramid_tiers": "silver|iron"}, {"a", "c"}, "pyramid tier not in silver/iron"),
        ({"requires_next_best_product": True}, {"b", "c", "e"}, "no next best product"),
    ],
)
def test_every_audience_setting_excludes_with_its_reason(scores, settings, excluded, reason) -> None:
    reasons = audience_reason(scores, objective(**settings))
    outside = set(scores.loc[reasons.notna(), "customer_id"])
    assert outside == excluded
    assert reasons.dropna().str.contains(reason).any()


def test_the_first_rule_broken_is_recorded(scores: pd.DataFrame) -> None:
    allowed = pd.Series([False, True, True, True, True], index=scores.index)
    holdout = pd.Series([True, True, False, False, False], index=scores.index)
    taken = pd.Series([True, True, True, True, True], index=scores.index)
    contacts = pd.DataFrame({"customer_id": ["d", "d"], "months_ago": [1, 2]})
    rules = eligibility(
        scores,
        objective(max_contacts_in_window=2, contact_window_months=3),
        allowed=allowed,
        in_global_control=holdout,
        contacts=contacts,
        taken=taken,
    )["rule"].tolist()
    assert rules[0] == RULE_NO_CONSENT  # also in the holdout and taken: consent comes first
    assert rules[1] == RULE_GLOBAL_CONTROL
    assert rules[2].startswith("not in audience: lapsed")
    assert rules[3].startswith(RULE_FATIGUE)
    assert rules[4] == RULE_TAKEN
    free = pd.Series(False, index=scores.index)
    open_rules = eligibility(scores, objective(), allowed=~free, in_global_control=free, contacts=None, taken=free)
    assert open_rules.loc[0, "rule"] == RULE_ELIGIBLE and open_rules.loc[0, "eligible"]


def test_an_unknown_audience_is_rejected_by_name(scores: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown audience 'everyone'"):
        audience_reason(scores, objective(audience="everyone"))
