"""Improve: learn, from every measured campaign, whom each offer actually changes; champion versus challenger."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from models.artefacts import load_artefact, save_artefact
from models.targeting import improve_policies
from orchestration.lib.campaign_records import replace_rows_growing, write_rows
from orchestration.lib.months import partition_month, previous_month
from orchestration.lib.queries import (
    CALIBRATION_EVIDENCE_TABLE,
    POLICY_DECISIONS_TABLE,
    POLICY_TABLE,
    POLICY_VALUES_TABLE,
    audience_outcomes_with_features,
    measured_outcomes_with_features,
    offers_with_expected_redemptions,
)
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource

# campaigns.policy_calibration_evidence: each month's challenger's predictions on the held-out campaigns
# (made before it saw them) and the customers' transformed profit outcomes, which calibrate later policies.
CALIBRATION_EVIDENCE_SCHEMA = {
    "as_of_month": "timestamp",
    "offer_id": "varchar",
    "campaign_id": "varchar",
    "customer_id": "varchar",
    "delivery_month": "timestamp",
    "predicted_profit": "double",
    "profit_outcome": "double",
}


# campaigns.policy_values: what each policy would have earned on the month's held-out campaigns (off-policy,
# models.policy_evaluation.evaluate_policies): champion, challenger, contact all, random; IPW and doubly robust.
POLICY_VALUES_SCHEMA = {
    "as_of_month": "timestamp",
    "offer_id": "varchar",
    "held_out_campaigns": "varchar",
    "policy": "varchar",
    "estimator": "varchar",
    "n_selected": "bigint",
    "incremental_profit": "double",
    "standard_error": "double",
    "ci_low": "double",
    "ci_high": "double",
}


def policy_dir(warehouse: WarehouseResource, month_key: str) -> Path:
    return warehouse.home / "artefacts" / "targeting_policy" / month_key[:7]


def previous_policies(warehouse: WarehouseResource, month) -> dict | None:
    """The policies deployed last month (the champions), or None in the first month."""
    directory = policy_dir(warehouse, previous_month(month).isoformat())
    if not (directory / "model.pkl").exists():
        return None
    policies, _ = load_artefact(directory)
    return policies


@asset(
    key="targeting_policy",
    group_name="improve",
    partitions_def=monthly_partitions,
    deps=["campaign_results"],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def targeting_policy(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`campaigns.targeting_policy` and `campaigns.policy_decisions`: per offer, the policy the next design uses.

    A challenger uplift model (T-learner) is trained on every measured campaign but the latest: test customers,
    control customers and the eligible customers no campaign selected. Its predictions on the latest, held-out
    campaigns are kept (`campaigns.policy_calibration_evidence`) and calibrate its expected profit against the
    randomised outcomes of every held-out month so far. The challenger replaces the champion (last month's
    policy) only when its incremental profit over the champion's on the held-out campaigns (estimated from their
    randomised test and control groups) has a 95% interval above zero; the first calibrated model ends the
    randomised pilot. The decision and its evidence (held-out value with standard error, the gain with its
    interval, Qini and AUUC of both, the calibration) are recorded, and what the champion, the challenger,
    contacting all and random targeting would have earned on the held-out campaigns
    (`campaigns.policy_values`, inverse-propensity and doubly robust estimates with 95% intervals); the
    deployed policies are saved as a versioned artefact (models.targeting, models.policy_evaluation).
    """
    month = partition_month(context.partition_key)
    parts = [measured_outcomes_with_features(warehouse, month), audience_outcomes_with_features(warehouse, month)]
    measured = pd.concat([part for part in parts if len(part)], ignore_index=True) if len(parts[0]) else parts[0]
    offer_table = offers_with_expected_redemptions(warehouse, month)
    earlier_evidence = (
        warehouse.query(f"select * from {CALIBRATION_EVIDENCE_TABLE} where as_of_month < ?", [pd.Timestamp(month)])
        if warehouse.table_exists(CALIBRATION_EVIDENCE_TABLE)
        else None
    )
    policies, decisions, evidence_rows = improve_policies(
        measured, offer_table, previous_policies(warehouse, month), earlier_evidence
    )
    write_rows(
        warehouse,
        CALIBRATION_EVIDENCE_TABLE,
        evidence_rows.assign(as_of_month=pd.Timestamp(month)),
        CALIBRATION_EVIDENCE_SCHEMA,
        {"as_of_month": pd.Timestamp(month)},
    )
    directory = policy_dir(warehouse, context.partition_key)
    version = save_artefact(policies, directory, {"as_of_month": month, "trained_on_customers": len(measured)})
    stamp = pd.Timestamp(month)
    table = pd.DataFrame(
        {
            "as_of_month": stamp,
            "offer_id": list(policies),
            "policy": [policy.kind for policy in policies.values()],
            "learner": [policy.learner for policy in policies.values()],
            "n_test": [int(policy.evidence.get("n_test", 0)) for policy in policies.values()],
            "n_control": [int(policy.evidence.get("n_control", 0)) for policy in policies.values()],
            "trained_on_campaigns": [", ".join(policy.evidence.get("campaigns", [])) for policy in policies.values()],
            "policy_version": version,
        }
    )
    replace_rows_growing(warehouse, POLICY_TABLE, table, {"as_of_month": stamp})
    evidence = pd.DataFrame([decision.as_row() for decision in decisions]).assign(
        as_of_month=stamp, policy_version=version
    )
    replace_rows_growing(warehouse, POLICY_DECISIONS_TABLE, evidence, {"as_of_month": stamp})
    valued = [decision.off_policy for decision in decisions if decision.off_policy is not None]
    values = (
        pd.concat(valued, ignore_index=True).assign(as_of_month=stamp)[list(POLICY_VALUES_SCHEMA)]
        if valued
        else pd.DataFrame({column: [] for column in POLICY_VALUES_SCHEMA})
    )
    write_rows(warehouse, POLICY_VALUES_TABLE, values, POLICY_VALUES_SCHEMA, {"as_of_month": stamp})
    shown = [
        "offer_id",
        "promoted",
        "reason",
        "champion_value",
        "champion_standard_error",
        "challenger_value",
        "challenger_standard_error",
        "challenger_qini",
        "challenger_auuc",
        "gain_estimate",
        "gain_ci_low",
        "gain_ci_high",
    ]
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "policy_version": version,
            "policies": MetadataValue.md(table.drop(columns=["as_of_month"]).to_markdown(index=False)),
            "champion_challenger": MetadataValue.md(
                evidence[[c for c in shown if c in evidence.columns]].to_markdown(index=False, floatfmt=".3f")
            ),
            "off_policy_values": MetadataValue.md(
                values.drop(columns=["as_of_month"]).to_markdown(index=False, floatfmt=".2f")
                if len(values)
                else "no held-out campaign yet"
            ),
            "artefact": MetadataValue.path(str(directory)),
        }
    )
