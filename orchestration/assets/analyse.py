"""Analyse: score every customer as of the month (churn risk, lifetime value, features)."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from models.artefacts import save_artefact
from models.scoring import score_customer_base
from orchestration.partitions import monthly_partitions, partition_month
from orchestration.queries import contacted_test_customers, orders_as_of
from orchestration.resources import WarehouseResource


@asset(
    key="customer_scores",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[AssetKey(["marts", "fct_orders"])],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def customer_scores(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`analytics.customer_scores`: one row per customer with any order by the month end.

    Churn probability (early warning, trained on earlier months and validated on a later one), BG/NBD
    P(alive) and expected purchases, discounted CLV, and the point-in-time features behind them.
    """
    month = partition_month(context.partition_key)
    orders = orders_as_of(warehouse, month)
    scored = score_customer_base(orders, month, contacted=contacted_test_customers(warehouse, month))
    artefact_dir = Path(warehouse.path).parent / "artefacts" / "churn" / f"{month:%Y-%m}"
    model_version = save_artefact(scored.churn_model, artefact_dir, {"as_of_month": month, **scored.churn_metrics})
    table = scored.scores.assign(as_of_month=pd.Timestamp(month), churn_model_version=model_version)
    rows = warehouse.replace_rows("analytics.customer_scores", table, {"as_of_month": pd.Timestamp(month)})
    metrics = scored.churn_metrics
    return MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "churn_auc": float(metrics["auc"]),
            "churn_top_decile_lift": float(metrics["top_decile_lift"]),
            "churn_validation_as_of": str(metrics["validation_as_of"]),
            "churn_model_version": model_version,
            "churn_model_artefact": MetadataValue.path(str(artefact_dir)),
            "mean_churn_probability": float(table["churn_probability"].mean()),
            "customer_equity": float(table["clv"].sum()),
        }
    )
