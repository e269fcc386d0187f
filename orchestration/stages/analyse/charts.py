"""Charts a person would rather look at than read, one asset each, in the `analyse` group.

Every month: the RFM heat map (customers per recency x frequency score), the cohort retention heat map and
customer value by pyramid tier. Each reads the warehouse, draws a small PNG (orchestration/lib/charts.py), keeps
it under ``$CRM_HOME/reports/charts/<YYYY-MM>/`` and shows it inline in the materialisation's metadata.
"""

from datetime import date
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.lib import charts
from orchestration.lib.months import partition_month
from orchestration.lib.queries import SCORES_TABLE
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource
from orchestration.stages.warehouse.assets import customer_warehouse

CUSTOMER_RFM = AssetKey(["marts", "customer_rfm"])
CUSTOMER_VALUE = AssetKey(["marts", "customer_value"])
COHORT_RETENTION = AssetKey(["marts", "cohort_retention"])
CHART_KINDS = {"duckdb", "matplotlib"}


def chart_path(warehouse: WarehouseResource, month: date, name: str) -> Path:
    """``$CRM_HOME/reports/charts/<YYYY-MM>/<name>.png`` (the warehouse file lives in ``$CRM_HOME``)."""
    return warehouse.home / "reports" / "charts" / f"{month:%Y-%m}" / f"{name}.png"


def chart_metadata(png: bytes, path: Path, title: str) -> dict:
    """Writes the PNG and returns the metadata that shows it: the image, its file and its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return {
        "chart": MetadataValue.md(charts.markdown_image(png, title)),
        "chart_file": MetadataValue.path(str(path)),
        "chart_bytes": len(png),
    }


def skipped(reason: str) -> MaterializeResult:
    return MaterializeResult(metadata={"chart": MetadataValue.md(f"_No chart: {reason}_"), "skipped": reason})


@asset(
    key=["charts", "rfm_heat_map"],
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[CUSTOMER_RFM],
    kinds=CHART_KINDS,
    pool="duckdb",
)
def rfm_heat_map(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Customers per RFM recency x frequency score as of the month end (`marts.customer_rfm`): the top right
    holds the recent, frequent buyers; the bottom right the frequent buyers who have gone quiet."""
    month = partition_month(context.partition_key)
    counts = warehouse.query(
        """select r_score, f_score, count(*) as customers from marts.customer_rfm
           where as_of_month = ? group by all order by all""",
        [pd.Timestamp(month)],
    )
    if counts.empty:
        return skipped(f"marts.customer_rfm has no customer as of {month:%Y-%m}")
    png = charts.rfm_heat_map(counts, f"Customers by RFM score, {month:%Y-%m}")
    top = counts[(counts["r_score"] >= 4) & (counts["f_score"] >= 4)]["customers"].sum()
    lapsing = counts[(counts["r_score"] <= 2) & (counts["f_score"] >= 4)]["customers"].sum()
    return MaterializeResult(
        metadata={
            **chart_metadata(png, chart_path(warehouse, month, "rfm_heat_map"), "RFM heat map"),
            "customers": int(counts["customers"].sum()),
            "recent_frequent_customers": int(top),
            "frequent_customers_gone_quiet": int(lapsing),
        }
    )


# The cohort mart is new in the dbt project: depend on it only where the manifest has it.
_HAS_COHORTS = COHORT_RETENTION in customer_warehouse.keys


@asset(
    key=["charts", "cohort_retention_heat_map"],
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[COHORT_RETENTION] if _HAS_COHORTS else [AssetKey(["marts", "fct_orders"])],
    kinds=CHART_KINDS,
    pool="duckdb",
)
def cohort_retention_heat_map(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Share of each acquisition cohort that ordered k months after its first order (`marts.cohort_retention`,
    the latest 24 cohorts and 24 months): a row that fades fast is a cohort the business fails to keep."""
    month = partition_month(context.partition_key)
    if not warehouse.table_exists("marts.cohort_retention"):
        return skipped("the warehouse has no marts.cohort_retention yet (a dbt model of a later release)")
    retention = warehouse.query(
        """select acquisition_cohort, months_since_first_order, retention_share, cohort_size
           from marts.cohort_retention where as_of_month = ? order by all""",
        [pd.Timestamp(month)],
    )
    if retention.empty:
        return skipped(f"marts.cohort_retention has no rows as of {month:%Y-%m}")
    png = charts.cohort_retention_heat_map(retention, f"Cohort retention as of {month:%Y-%m}")
    second_month = retention[retention["months_since_first_order"] == 1]
    weights = second_month["cohort_size"]
    return MaterializeResult(
        metadata={
            **chart_metadata(png, chart_path(warehouse, month, "cohort_retention"), "Cohort retention heat map"),
            "cohorts": int(retention["acquisition_cohort"].nunique()),
            "month_1_retention": float((second_month["retention_share"] * weights).sum() / weights.sum())
            if weights.sum()
            else 0.0,
        }
    )


@asset(
    key=["charts", "clv_by_tier"],
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[AssetKey("customer_scores"), CUSTOMER_VALUE],
    kinds=CHART_KINDS,
    pool="duckdb",
)
def clv_by_tier(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Customer equity by pyramid tier: each tier's share of customers next to its share of the summed
    discounted CLV (`analytics.customer_scores` joined to the tiers of `marts.customer_value`)."""
    month = partition_month(context.partition_key)
    tier_order = (
        "left join reference.pyramid_tiers as tiers on tiers.tier = value.pyramid_tier"
        if warehouse.table_exists("reference.pyramid_tiers")
        else "left join (select null as tier, null as tier_rank) as tiers on false"
    )
    tiers = warehouse.query(
        f"""select coalesce(value.pyramid_tier, 'no tier') as pyramid_tier, count(*) as customers,
                   sum(scores.clv) as customer_equity, min(tiers.tier_rank) as tier_rank
            from {SCORES_TABLE} as scores
            left join marts.customer_value as value
              on value.customer_id = scores.customer_id and value.as_of_month = scores.as_of_month
            {tier_order}
            where scores.as_of_month = ?
            group by all""",
        [pd.Timestamp(month)],
    )
    if tiers.empty:
        return skipped(f"no customer scored as of {month:%Y-%m}")
    tiers = tiers.assign(mean_clv=tiers["customer_equity"] / tiers["customers"]).sort_values(
        ["tier_rank", "mean_clv"], ascending=[True, False], na_position="last"
    )
    png = charts.clv_by_tier(tiers, f"Customer equity by pyramid tier, {month:%Y-%m}")
    table = tiers[["pyramid_tier", "customers", "customer_equity", "mean_clv"]]
    return MaterializeResult(
        metadata={
            **chart_metadata(png, chart_path(warehouse, month, "clv_by_tier"), "CLV by pyramid tier"),
            "by_tier": MetadataValue.md(table.to_markdown(index=False, floatfmt=",.0f")),
            "customer_equity": float(tiers["customer_equity"].sum()),
        }
    )
