"""The targeting policy: which customers a campaign should contact, learned from measured campaigns.

Cold start: while an offer has no measured campaign to learn from and to test on, nobody knows whom it changes,
so its whole capacity is spent on a randomised pilot (customers drawn at random from the eligible ones, with a
control group). Then, every month and per offer, a challenger is trained on every measured campaign but the
latest (models.uplift: a T-learner uplift model, Kunzel et al. 2019, of response and margin) and predicts the
latest, held-out campaigns. Those out-of-sample predictions, month after month, calibrate the model's expected
incremental profit against the randomised outcomes (models.policy_evaluation.ProfitCalibration): a model whose
predictions carry no information is calibrated to the average profit of a contact, and a customer is contacted
only when the calibrated profit's lower confidence bound is positive. The challenger replaces the champion
(refitted on every measured campaign) only when its gain over the champion on the held-out campaigns has a 95%
interval above zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.campaign_rules import incentive_per_responder
from models.features import ENGAGEMENT_FEATURE_COLUMNS, FEATURE_COLUMNS, TRACE_FEATURE_COLUMNS
from models.policy_evaluation import (
    ChampionDecision,
    HeldOutGain,
    PolicyValue,
    ProfitCalibration,
    decide,
    evaluate_policies,
    evaluate_policy,
    held_out_gain,
    profit_outcome,
)
from models.uplift import TLearnerUplift, expected_incremental_profit

# What the uplift model sees of a customer at design time: the behavioural features and the analyse
# stage's scores (all point-in-time as of the design month).
UPLIFT_FEATURES = [
    *FEATURE_COLUMNS,
    *TRACE_FEATURE_COLUMNS,
    *ENGAGEMENT_FEATURE_COLUMNS,
    "churn_probability",
    "p_alive",
    "expected_purchases_next_month",
]
MIN_TEST_CUSTOMERS = 100
MIN_CONTROL_CUSTOMERS = 30
LEARNER = "t_learner_gradient_boosting"
#: Eligible customers a campaign did not select: not contacted, and not randomised either.
NOT_SELECTED = "not selected"


@dataclass
class OfferPolicy:
    """How one offer's audience is chosen: a randomised pilot, or an uplift model with its profit calibration."""

    offer_id: str
    kind: str  # "uplift_model" or "randomised_pilot"
    model: TLearnerUplift | None = None
    evidence: dict = field(default_factory=dict)
    learner: str = ""
    calibration: ProfitCalibration | None = None


def pilot_policy(offer_id: str, reason: str) -> OfferPolicy:
    return OfferPolicy(offer_id, "randomised_pilot", None, {"reason": reason, "n_test": 0, "n_control": 0})


def fit_offer_policy(rows: pd.DataFrame, offer_id: str, random_state: int = 0) -> OfferPolicy | None:
    """An uplift-model policy fitted on measured customers of one offer (columns: campaign_id, group, responded,
    margin and the design-time UPLIFT_FEATURES); None while there are too few test or control customers.

    The treated arm learns from test customers; the untreated arm from control customers and from the eligible
    customers the campaigns did not select (group ``not selected``): none of them was contacted, and whether an
    eligible customer was selected depended only on the design-time scores the model sees, so their response
    given those scores is the response without a contact (selection on observables; the randomised control
    groups keep every part of the audience represented).
    """
    n_test = int((rows["group"] == "test").sum()) if len(rows) else 0
    n_control = int((rows["group"] == "control").sum()) if len(rows) else 0
    n_not_selected = int((rows["group"] == NOT_SELECTED).sum()) if len(rows) else 0
    if n_test < MIN_TEST_CUSTOMERS or n_control < MIN_CONTROL_CUSTOMERS:
        return None
    model = TLearnerUplift(random_state=random_state).fit(
        rows[UPLIFT_FEATURES],
        (rows["group"] == "test").astype(int).to_numpy(),
        rows["responded"].astype(int).to_numpy(),
        rows["margin"].astype(float).to_numpy(),
    )
    evidence = {
        "n_test": n_test,
        "n_control": n_control,
        "n_not_selected": n_not_selected,
        "campaigns": sorted(rows["campaign_id"].unique().tolist()),
    }
    return OfferPolicy(offer_id, "uplift_model", model, evidence, LEARNER)


def predicted_profit(policy: OfferPolicy, candidates: pd.DataFrame, contact_cost: float, incentive_cost: float):
    """The model's own (uncalibrated) expected incremental profit per candidate."""
    predicted = policy.model.predict(candidates[UPLIFT_FEATURES])
    return expected_incremental_profit(
        predicted["margin_uplift"].to_numpy(), predicted["p_response_treated"].to_numpy(), contact_cost, incentive_cost
    )


def score_candidates(
    policy: OfferPolicy, candidates: pd.DataFrame, contact_cost: float, incentive_cost: float
) -> pd.DataFrame:
    """Per candidate: ``expected_incremental_profit`` (calibrated) and ``profit_lower_bound`` (its one-sided
    confidence bound; the campaign contacts a customer only when it is positive). NaN under a randomised pilot;
    without a calibration the model's own prediction, and no lower bound (nobody is exploited)."""
    empty = pd.DataFrame(
        {"expected_incremental_profit": np.nan, "profit_lower_bound": np.nan}, index=candidates.index, dtype=float
    )
    if policy.kind != "uplift_model" or candidates.empty:
        return empty
    raw = predicted_profit(policy, candidates, contact_cost, incentive_cost)
    if policy.calibration is None:
        return empty.assign(expected_incremental_profit=raw, profit_lower_bound=-np.inf)
    return pd.DataFrame(
        {
            "expected_incremental_profit": policy.calibration.expected(raw),
            "profit_lower_bound": policy.calibration.lower_bound(raw),
        },
        index=candidates.index,
    )


def _selection(
    policy: OfferPolicy, held_out: pd.DataFrame, costs: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The policy's expected profit per held-out customer and whom it would contact: a pilot everyone, a model
    those whose calibrated profit's lower bound is positive."""
    scored = score_candidates(policy, held_out, *costs)
    expected = scored["expected_incremental_profit"].to_numpy()
    if policy.kind != "uplift_model":
        return expected, np.ones(len(held_out), dtype=bool)
    return expected, (scored["profit_lower_bound"] > 0).to_numpy()


def _held_out_evidence(
    champion: OfferPolicy, challenger: OfferPolicy | None, held_out: pd.DataFrame, costs: tuple[float, float]
) -> tuple[PolicyValue | None, PolicyValue | None, HeldOutGain | None, dict[str, np.ndarray]]:
    """On the held-out campaigns: each policy's value, the challenger's gain over the champion, and whom each
    would contact (every policy scores the held-out customers once)."""
    if held_out.empty:
        return None, None, None, {}
    scored = {"champion": _selection(champion, held_out, costs)}
    if challenger is not None:
        scored["challenger"] = _selection(challenger, held_out, costs)
    values = {
        name: evaluate_policy(held_out, expected, *costs, selected=chosen)
        for name, (expected, chosen) in scored.items()
    }
    selections = {name: chosen for name, (_, chosen) in scored.items()}
    gain = (
        held_out_gain(held_out, selections["challenger"], selections["champion"], *costs)
        if challenger is not None
        else None
    )
    return values["champion"], values.get("challenger"), gain, selections


def improve_policies(
    measured: pd.DataFrame,
    offers: pd.DataFrame,
    champions: dict[str, OfferPolicy] | None,
    calibration_evidence: pd.DataFrame | None = None,
    random_state: int = 0,
) -> tuple[dict[str, OfferPolicy], list[ChampionDecision], pd.DataFrame]:
    """Per offer of ``offers`` (offer_id, contact_cost, incentive_cost, and the learned redemption rates of
    models.campaign_rules.with_expected_redemptions where known: a treated responder costs the expected voucher,
    ``incentive_per_responder``): the policy to deploy, the champion/challenger decision behind it, and the new
    calibration evidence.

    ``measured``: every measured customer so far (campaign_id, offer_id, delivery_month, group in test,
    control or ``not selected``, treatment_probability, responded, margin and the design-time UPLIFT_FEATURES);
    ``champions``: the policies deployed last month (None or missing offers: a randomised pilot);
    ``calibration_evidence``: earlier months' out-of-sample predictions (offer_id, predicted_profit,
    profit_outcome), to which this month's challenger adds its predictions on the held-out campaigns.

    While a pilot is in use, the first model that can be trained and calibrated ends the pilot (there is no
    model to compare it with). After that, the challenger replaces the champion only when its gain over the
    champion on the held-out campaigns has a 95% interval above zero (models.policy_evaluation). Each decision
    carries the off-policy values of the champion, the challenger, contacting all and random targeting on the
    held-out campaigns (``decision.off_policy``, models.policy_evaluation.evaluate_policies).
    """
    voucher_per_responder = incentive_per_responder(offers)
    deployed: dict[str, OfferPolicy] = {}
    decisions: list[ChampionDecision] = []
    new_evidence = []
    for offer in offers.itertuples(index=False):
        offer_id = str(offer.offer_id)
        champion = (champions or {}).get(offer_id) or pilot_policy(offer_id, "no policy deployed before")
        rows = measured[measured["offer_id"] == offer_id] if len(measured) else measured
        if rows.empty:
            deployed[offer_id] = champion
            decisions.append(decide(offer_id, [], None, None))
            continue
        costs = (float(offer.contact_cost), float(voucher_per_responder[offer_id]))
        latest = rows["delivery_month"].max()
        randomised = rows["group"].isin(("test", "control"))
        held_out = rows[(rows["delivery_month"] == latest) & randomised].reset_index(drop=True)
        challenger = fit_offer_policy(rows[rows["delivery_month"] < latest], offer_id, random_state)
        if challenger is not None and len(held_out):
            new_evidence.append(
                pd.DataFrame(
                    {
                        "offer_id": offer_id,
                        "campaign_id": held_out["campaign_id"].to_numpy(),
                        "customer_id": held_out["customer_id"].to_numpy(),
                        "delivery_month": held_out["delivery_month"].to_numpy(),
                        "predicted_profit": predicted_profit(challenger, held_out, *costs),
                        "profit_outcome": profit_outcome(held_out, *costs),
                    }
                )
            )
        pieces = [e for e in (calibration_evidence, *new_evidence) if e is not None and len(e)]
        evidence = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=["offer_id"])
        mine = evidence[evidence["offer_id"] == offer_id]
        calibration = (
            ProfitCalibration.fit(mine["predicted_profit"].to_numpy(), mine["profit_outcome"].to_numpy())
            if len(mine)
            else None
        )
        if challenger is not None:
            challenger.calibration = calibration
        champion_value, challenger_value, gain, selections = _held_out_evidence(champion, challenger, held_out, costs)
        if champion.kind != "uplift_model" and challenger is not None and calibration is not None:
            decision = ChampionDecision(
                offer_id,
                sorted(held_out["campaign_id"].unique()),
                champion_value,
                challenger_value,
                True,
                "the first calibrated model ends the randomised pilot",
                gain=gain,
            )
        else:
            decision = decide(
                offer_id, sorted(held_out["campaign_id"].unique()), champion_value, challenger_value, gain
            )
        if selections:
            decision.off_policy = evaluate_policies(
                held_out, selections, *costs, features=UPLIFT_FEATURES, random_state=random_state
            ).assign(offer_id=offer_id, held_out_campaigns=", ".join(decision.held_out_campaigns))
        decision.evidence = {
            "champion_kind": champion.kind,
            "champion_trained_on": ", ".join(champion.evidence.get("campaigns", [])),
            "challenger_trained_on": "" if challenger is None else ", ".join(challenger.evidence["campaigns"]),
            **(calibration.as_dict() if calibration is not None else {}),
        }
        decisions.append(decision)
        if decision.promoted:
            refitted = fit_offer_policy(rows, offer_id, random_state)
            if refitted is not None:
                refitted.calibration = calibration
            deployed[offer_id] = refitted if refitted is not None else challenger
        else:
            deployed[offer_id] = champion
    evidence_frame = pd.concat(new_evidence, ignore_index=True) if new_evidence else pd.DataFrame()
    return deployed, decisions, evidence_frame
