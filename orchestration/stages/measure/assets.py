"""Measure: compare test and control of the campaigns delivered at the start of the month."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from models.measurement import measure_campaign, measure_overall, measure_segments
from models.targeting import NOT_SELECTED
from orchestration.lib.campaign_records import replace_rows_growing, typed_frame, write_rows
from orchestration.lib.months import partition_month, previous_month
from orchestration.lib.queries import (
    AUDIENCE_OUTCOMES_TABLE,
    OUTCOMES_TABLE,
    PLAN_CAMPAIGNS_TABLE,
    RESULTS_TABLE,
    SEGMENT_RESULTS_TABLE,
    customer_month_outcomes,
    customer_month_redemptions,
    delivered_campaigns,
    not_selected_audience,
    offers,
    plan_for_delivery,
)
from orchestration.lib.reports import lift_chart_png, markdown_image
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource

OVERALL_RESULTS_TABLE = "campaigns.campaign_results_overall"

# campaigns.campaign_outcomes: one row per assigned customer (test and control) of a measured campaign.
OUTCOME_SCHEMA = {
    "delivery_month": "timestamp",
    "designed_in_month": "timestamp",
    "campaign_id": "varchar",
    "objective": "varchar",
    "offer_id": "varchar",
    "customer_id": "varchar",
    "group": "varchar",
    "selection": "varchar",
    "selection_probability": "double",
    "treatment_probability": "double",
    "expected_incremental_profit": "double",
    "stratum": "varchar",
    "responded": "boolean",
    "revenue": "double",
    "margin": "double",
    "voucher_cost": "double",
}
OUTCOME_COLUMNS = list(OUTCOME_SCHEMA)
# campaigns.audience_outcomes: eligible customers no campaign selected, one row per offer, customer and month.
AUDIENCE_OUTCOME_SCHEMA = {
    "delivery_month": "timestamp",
    "designed_in_month": "timestamp",
    "campaign_id": "varchar",
    "offer_id": "varchar",
    "customer_id": "varchar",
    "group": "varchar",
    "treatment_probability": "double",
    "responded": "boolean",
    "revenue": "double",
    "margin": "double",
}


def campaign_outcomes(
    plan: pd.DataFrame,
    month_outcomes: pd.DataFrame,
    delivered: list[str],
    redemptions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each assigned customer's response in the delivery month (intention to treat: test customers whose
    consent was withdrawn before sending stay in the test group) and the campaign's vouchers redeemed
    (`redemptions`: customer_id, offer_id, voucher_cost; `voucher_cost` is NULL when the orders record no
    discounts, and measurement then charges every test responder a voucher)."""
    if plan.empty or not delivered:
        return typed_frame(pd.DataFrame(columns=OUTCOME_COLUMNS), OUTCOME_SCHEMA)
    assigned = plan[plan["campaign_id"].isin(delivered)]
    joined = assigned.merge(month_outcomes, on="customer_id", how="left")
    joined["responded"] = joined["orders"].fillna(0) > 0
    joined["revenue"] = joined["revenue"].fillna(0.0)
    joined["margin"] = joined["margin"].fillna(0.0)
    if redemptions is None:
        joined["voucher_cost"] = float("nan")
    else:
        joined = joined.merge(redemptions, on=["customer_id", "offer_id"], how="left")
        joined["voucher_cost"] = joined["voucher_cost"].fillna(0.0)
    return typed_frame(joined, OUTCOME_SCHEMA)


def not_selected_outcomes(audience: pd.DataFrame, month_outcomes: pd.DataFrame) -> pd.DataFrame:
    """The delivery month's response of eligible customers no campaign selected (the improve stage's uplift
    models learn the response without a contact from them too)."""
    joined = audience.merge(month_outcomes, on="customer_id", how="left")
    joined["responded"] = joined["orders"].fillna(0) > 0 if len(joined) else pd.Series(dtype=bool)
    joined["revenue"] = joined["revenue"].fillna(0.0)
    joined["margin"] = joined["margin"].fillna(0.0)
    return joined.assign(group=NOT_SELECTED, treatment_probability=0.0)


def planned_costs(warehouse: WarehouseResource) -> pd.Series:
    """What each campaign's plan expected its test group to cost (`committed_cost` of the plan summary: test
    contacts x expected cost per contact), by campaign_id: measurement reports it beside the cost spent."""
    if not warehouse.table_exists(PLAN_CAMPAIGNS_TABLE):
        return pd.Series(dtype="float64")
    found = warehouse.query(f"select campaign_id, committed_cost from {PLAN_CAMPAIGNS_TABLE}")
    return found.drop_duplicates("campaign_id").set_index("campaign_id")["committed_cost"].astype("float64")


def _table(frame: pd.DataFrame, columns: list[str]) -> MetadataValue:
    return MetadataValue.md(frame[columns].to_markdown(index=False, floatfmt=".4f") if len(frame) else "(none)")


@asset(
    key="campaign_results",
    group_name="measure",
    partitions_def=monthly_partitions,
    deps=[AssetKey(["marts", "fct_orders"]), AssetKey("customer_scores")],
    kinds={"python", "duckdb", "matplotlib"},
    pool="duckdb",
)
def campaign_results(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`campaigns.campaign_results` (per campaign), `campaign_segment_results` (per campaign and pyramid tier,
    the control group's randomisation stratum) and `campaign_results_overall` (the month's campaigns together).

    Response rate and revenue per customer in test and control, absolute and relative uplift with 95%
    intervals and p-values, incremental revenue, margin and profit, ROI and a sample-ratio-mismatch test;
    per-segment p-values are Holm-adjusted within each campaign (models.measurement). The plan arrives as data
    (the decision log written by the design stage a month earlier), not as a declared dependency: the loop
    closes through the outside world.
    """
    month = partition_month(context.partition_key)
    outcomes = campaign_outcomes(
        plan_for_delivery(warehouse, month),
        customer_month_outcomes(warehouse, month),
        delivered_campaigns(warehouse, month),
        customer_month_redemptions(warehouse, month),
    )
    month_key = {"delivery_month": pd.Timestamp(month)}
    write_rows(warehouse, OUTCOMES_TABLE, outcomes, OUTCOME_SCHEMA, month_key)
    audience = not_selected_outcomes(not_selected_audience(warehouse, month), customer_month_outcomes(warehouse, month))
    write_rows(warehouse, AUDIENCE_OUTCOMES_TABLE, audience.assign(**month_key), AUDIENCE_OUTCOME_SCHEMA, month_key)
    offer_table = offers(warehouse)
    frame = outcomes.astype({"responded": bool})
    if frame["voucher_cost"].isna().all():  # the orders record no discounts: every test responder redeemed
        frame = frame.drop(columns="voucher_cost")
    results = measure_campaign(frame, offer_table).assign(
        delivery_month=pd.Timestamp(month), planned_cost=lambda r: r["campaign_id"].map(planned_costs(warehouse))
    )
    segments = measure_segments(frame, offer_table, segment="stratum").assign(delivery_month=pd.Timestamp(month))
    overall = measure_overall(results) if len(results) else {"campaigns": 0}
    for table, rows in ((RESULTS_TABLE, results), (SEGMENT_RESULTS_TABLE, segments)):
        if len(rows) or warehouse.table_exists(table):
            replace_rows_growing(warehouse, table, rows, month_key)
    replace_rows_growing(warehouse, OVERALL_RESULTS_TABLE, pd.DataFrame([{**overall, **month_key}]), month_key)

    metadata: dict = {
        "dagster/row_count": len(results),
        "campaigns_measured": len(results),
        "designed_in_month": f"{previous_month(month):%Y-%m}",
    }
    if len(results):
        metadata["results"] = _table(
            results,
            [
                "campaign_id",
                "n_test",
                "n_control",
                "response_rate_test",
                "response_rate_control",
                "uplift",
                "ci_low",
                "ci_high",
                "p_value",
                "relative_uplift",
                "revenue_per_customer_test",
                "revenue_per_customer_control",
                "incremental_revenue",
                "incremental_profit",
                "roi",
                "redemption_rate",
                "planned_cost",
                "campaign_cost",
                "srm_p_value",
            ],
        )
        metadata["segments"] = _table(
            segments,
            ["campaign_id", "segment", "n_test", "n_control", "uplift", "ci_low", "ci_high", "p_value", "p_value_holm"],
        )
        metadata["overall"] = MetadataValue.json({k: v for k, v in overall.items() if pd.notna(v)})
        metadata["incremental_profit_total"] = float(results["incremental_profit"].sum())
        metadata["sample_ratio_mismatch_campaigns"] = int((results["srm_p_value"] < 0.001).sum())
        png = lift_chart_png(results, segments, title=f"Campaigns delivered {month:%Y-%m}")
        path = warehouse.home / "reports" / "lift" / f"{month:%Y-%m}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        metadata["lift_chart"] = MetadataValue.md(markdown_image(png, "uplift per campaign and segment"))
        metadata["lift_chart_file"] = MetadataValue.path(str(path))
    else:
        metadata["note"] = "no campaign was delivered this month"
    return MaterializeResult(metadata=metadata)
