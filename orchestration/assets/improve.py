"""Improve: learn, from every measured campaign, whom each offer actually changes."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from models.artefacts import save_artefact
from models.targeting import learn_offer_policies
from orchestration.partitions import monthly_partitions, partition_month
from orchestration.queries import POLICY_TABLE, measured_outcomes_with_features, offers
from orchestration.resources import WarehouseResource


def policy_dir(warehouse: WarehouseResource, month_key: str) -> Path:
    return Path(warehouse.path).parent / "artefacts" / "targeting_policy" / month_key[:7]


@asset(
    key="targeting_policy",
    group_name="improve",
    partitions_def=monthly_partitions,
    deps=["campaign_results"],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def targeting_policy(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`campaigns.targeting_policy`: per offer, an uplift model trained on all campaigns measured so far,
    or a randomised pilot while too few customers have been measured. Saved as a versioned artefact that
    the next design reads."""
    month = partition_month(context.partition_key)
    measured = measured_outcomes_with_features(warehouse, month)
    offer_ids = offers(warehouse)["offer_id"].tolist()
    policies = learn_offer_policies(measured, offer_ids)
    directory = policy_dir(warehouse, context.partition_key)
    version = save_artefact(policies, directory, {"as_of_month": month, "trained_on_customers": len(measured)})
    table = pd.DataFrame(
        {
            "as_of_month": pd.Timestamp(month),
            "offer_id": list(policies),
            "policy": [policy.kind for policy in policies.values()],
            "n_test": [policy.evidence["n_test"] for policy in policies.values()],
            "n_control": [policy.evidence["n_control"] for policy in policies.values()],
            "trained_on_campaigns": [", ".join(policy.evidence["campaigns"]) for policy in policies.values()],
            "policy_version": version,
        }
    )
    warehouse.replace_rows(POLICY_TABLE, table, {"as_of_month": pd.Timestamp(month)})
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "policy_version": version,
            "policies": MetadataValue.md(table.drop(columns=["as_of_month"]).to_markdown(index=False)),
            "artefact": MetadataValue.path(str(directory)),
        }
    )
