"""Reports a person reads after a run: the per-cycle table and `loop_summary.csv`.

When the source is the simulator, the summary adds the simulator's hidden ground truth (true uplift and
true incremental profit), always in columns labelled `true_*`: the platform itself never reads it.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from orchestration.queries import PLAN_TABLE, RESULTS_TABLE, SCORES_TABLE, offers
from orchestration.resources import SourceResource, WarehouseResource
from orchestration.settings import Settings

SUMMARY_COLUMNS = [
    "month",
    "campaign",
    "n_test",
    "n_control",
    "measured_uplift",
    "ci_low",
    "ci_high",
    "incremental_profit",
    "roi",
]
TRUTH_COLUMNS = ["true_uplift", "true_incremental_profit"]


def loop_summary(warehouse: WarehouseResource, source: SourceResource | None = None) -> pd.DataFrame:
    """One row per measured campaign; `month` is the campaign's delivery month."""
    if not warehouse.table_exists(RESULTS_TABLE):
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    results = warehouse.query(f"select * from {RESULTS_TABLE} order by delivery_month, campaign_id")
    summary = pd.DataFrame(
        {
            "month": results["delivery_month"].dt.strftime("%Y-%m"),
            "campaign": results["campaign_id"],
            "n_test": results["n_test"],
            "n_control": results["n_control"],
            "measured_uplift": results["uplift"],
            "ci_low": results["ci_low"],
            "ci_high": results["ci_high"],
            "incremental_profit": results["incremental_profit"],
            "roi": results["roi"],
        }
    )
    if source is not None and source.kind == "simulator" and len(summary):
        from simulator.evaluation import true_campaign_effects

        plan = warehouse.query(
            f"""select campaign_id, delivery_month, customer_id, offer_id, "group" from {PLAN_TABLE}
                where campaign_id in (select campaign_id from {RESULTS_TABLE})"""
        )
        plan["delivery_month"] = plan["delivery_month"].dt.date
        truth = true_campaign_effects(source.world(), plan, offers(warehouse))
        summary = summary.merge(
            truth[["campaign_id", *TRUTH_COLUMNS]], left_on="campaign", right_on="campaign_id", how="left"
        ).drop(columns="campaign_id")
    return summary


def write_loop_summary(settings: Settings, warehouse: WarehouseResource, source: SourceResource) -> pd.DataFrame:
    summary = loop_summary(warehouse, source)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    summary.to_csv(settings.reports_dir / "loop_summary.csv", index=False)
    return summary


def cycle_row(warehouse: WarehouseResource, month: date) -> dict:
    """What one cycle did, for the table `crm-loop run` prints."""
    stamp = pd.Timestamp(month)
    scores = warehouse.query(
        f"select count(*) as customers, avg(churn_probability) as churn, sum(clv) as equity "
        f"from {SCORES_TABLE} where as_of_month = ?",
        [stamp],
    ).iloc[0]
    plan = warehouse.query(
        f"""select count(*) filter (where "group" = 'test') as test, count(*) filter (where "group" = 'control')
            as control, count(distinct campaign_id) as campaigns from {PLAN_TABLE} where designed_in_month = ?""",
        [stamp],
    ).iloc[0]
    row = {
        "month": f"{month:%Y-%m}",
        "customers_scored": int(scores["customers"]),
        "mean_churn_probability": round(float(scores["churn"] or 0), 3),
        "customer_equity": round(float(scores["equity"] or 0), 0),
        "next_month_test": int(plan["test"]),
        "next_month_control": int(plan["control"]),
        "measured_campaigns": 0,
        "incremental_profit": 0.0,
    }
    if warehouse.table_exists(RESULTS_TABLE):
        results = warehouse.query(
            f"select count(*) as n, coalesce(sum(incremental_profit), 0) as profit from {RESULTS_TABLE} "
            "where delivery_month = ?",
            [stamp],
        ).iloc[0]
        row["measured_campaigns"] = int(results["n"])
        row["incremental_profit"] = round(float(results["profit"]), 2)
    return row
