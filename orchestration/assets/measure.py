"""Measure: compare test and control of the campaigns delivered at the start of the month."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from models.measurement import measure_campaign
from orchestration.partitions import monthly_partitions, partition_month, previous_month
from orchestration.queries import (
    OUTCOMES_TABLE,
    RESULTS_TABLE,
    customer_month_outcomes,
    delivered_campaigns,
    offers,
    plan_for_delivery,
)
from orchestration.resources import WarehouseResource

OUTCOME_COLUMNS = {
    "delivery_month": "datetime64[us]",
    "designed_in_month": "datetime64[us]",
    "campaign_id": "str",
    "offer_id": "str",
    "customer_id": "str",
    "group": "str",
    "selection": "str",
    "treatment_probability": "float64",
    "responded": "bool",
    "revenue": "float64",
    "margin": "float64",
}


def campaign_outcomes(plan: pd.DataFrame, month_outcomes: pd.DataFrame, delivered: list[str]) -> pd.DataFrame:
    """Each assigned customer's response in the delivery month (intention to treat: test customers whose
    consent was withdrawn before sending stay in the test group)."""
    if plan.empty or not delivered:
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in OUTCOME_COLUMNS.items()})
    assigned = plan[plan["campaign_id"].isin(delivered)]
    joined = assigned.merge(month_outcomes, on="customer_id", how="left")
    joined["responded"] = joined["orders"].fillna(0) > 0
    joined["revenue"] = joined["revenue"].fillna(0.0)
    joined["margin"] = joined["margin"].fillna(0.0)
    return joined[list(OUTCOME_COLUMNS)].astype(OUTCOME_COLUMNS)


@asset(
    key="campaign_results",
    group_name="measure",
    partitions_def=monthly_partitions,
    deps=[AssetKey(["marts", "fct_orders"]), AssetKey("customer_scores")],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def campaign_results(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`campaigns.campaign_results`: per campaign delivered this month, test versus control.

    Response rate and revenue per customer in each group, uplift with a 95% confidence interval and
    p-value, incremental revenue and profit, ROI and a sample-ratio-mismatch test. The plan arrives as
    data (the decision log written by the design stage a month earlier), not as a declared dependency:
    the loop closes through the outside world.
    """
    month = partition_month(context.partition_key)
    outcomes = campaign_outcomes(
        plan_for_delivery(warehouse, month),
        customer_month_outcomes(warehouse, month),
        delivered_campaigns(warehouse, month),
    )
    month_key = {"delivery_month": pd.Timestamp(month)}
    warehouse.replace_rows(OUTCOMES_TABLE, outcomes, month_key)
    results = measure_campaign(outcomes, offers(warehouse)) if len(outcomes) else pd.DataFrame()
    results = results.assign(delivery_month=pd.Timestamp(month)) if len(results) else results
    if len(results):
        warehouse.replace_rows(RESULTS_TABLE, results, month_key)
    elif warehouse.table_exists(RESULTS_TABLE):
        with warehouse.connect() as connection:
            connection.execute(f"delete from {RESULTS_TABLE} where delivery_month = ?", [pd.Timestamp(month)])
    metadata: dict = {
        "dagster/row_count": len(results),
        "campaigns_measured": len(results),
        "designed_in_month": f"{previous_month(month):%Y-%m}",
    }
    if len(results):
        preview = results[
            ["campaign_id", "n_test", "n_control", "uplift", "ci_low", "ci_high", "incremental_profit", "roi"]
        ]
        metadata["results"] = MetadataValue.md(preview.to_markdown(index=False, floatfmt=".4f"))
        metadata["incremental_profit_total"] = float(results["incremental_profit"].sum())
    else:
        metadata["note"] = "no campaign was delivered this month"
    return MaterializeResult(metadata=metadata)
