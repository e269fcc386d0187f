"""Reports a person reads after a run: the per-cycle table, `loop_summary.csv` and the measurement's lift chart.

When the source is the simulator, the summary adds the simulator's hidden ground truth, always in columns
labelled `true_*` or `*_true_profit`: the platform itself never reads it. Per campaign, the true expected
incremental profit (simulator.evaluation) of

- the campaign's own test group (`true_incremental_profit`: what the policy did),
- `random_policy_true_profit`: contacting eligible customers drawn at random, as many as the campaign's budget
  buys at the expected cost per contact its design counted with (`cost_per_contact` of the plan summary; the
  expected value of a uniform draw: that many times the eligible customers' mean true profit),
- `oracle_policy_true_profit`: contacting, within the same budget, the eligible customers with the highest true
  individual profit, and none whose true profit is not positive,
- `contact_all_true_profit`: contacting every eligible customer, whatever the budget,
- `nobody_true_profit`: contacting nobody (0),
- `ceiling_policy_true_profit`: the best a policy can do on what the platform observes: within the same budget,
  the eligible customers that a model of their *true* profits on the platform's own design-time scores
  (`analytics.customer_scores`, numeric columns; simulator.learnability, cross-fitted on two halves) predicts
  most profitable, none predicted unprofitable. NaN when the design month's scores are not in the warehouse.

Measured, for every source: `planned_cost` (what the plan expected the test group to cost) and `spent_cost`
(contacts plus the vouchers the orders record as redeemed).

Each row also names the world (`world_version`: the frozen world's version and the fingerprint of its
parameters, e.g. v2-1a2b3c4d).

The eligible customers of a campaign are those its decision log marks eligible (consent, audience, suppression
rules, not taken by an earlier campaign of the cycle): every policy chooses from the same customers.
"""

from __future__ import annotations

import base64
import io
import math
from datetime import date

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from models.campaign_rules import cost_per_contact  # noqa: E402
from orchestration.lib.queries import (  # noqa: E402
    DECISIONS_TABLE,
    PLAN_CAMPAIGNS_TABLE,
    PLAN_TABLE,
    RESULTS_TABLE,
    SCORES_TABLE,
    offers,
)
from orchestration.lib.settings import Settings  # noqa: E402
from orchestration.lib.warehouse import Warehouse  # noqa: E402
from simulator import SimulatedWorld  # noqa: E402
from simulator.evaluation import true_campaign_effects, true_individual_profit  # noqa: E402
from simulator.learnability import truth_fitted_selection  # noqa: E402

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
    "planned_cost",
    "spent_cost",
]
TRUTH_COLUMNS = ["true_uplift", "true_incremental_profit"]
BASELINE_COLUMNS = [
    "random_policy_true_profit",
    "oracle_policy_true_profit",
    "contact_all_true_profit",
    "nobody_true_profit",
    "ceiling_policy_true_profit",
]


def loop_summary(warehouse: Warehouse, world: SimulatedWorld | None = None) -> pd.DataFrame:
    """One row per measured campaign; `month` is the campaign's delivery month. With the simulated `world` each
    row also has the true effects and the baseline policies' true profit (simulator.evaluation)."""
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
            "planned_cost": results["planned_cost"] if "planned_cost" in results.columns else float("nan"),
            "spent_cost": results["campaign_cost"],
        }
    )
    if world is not None and len(summary):
        plan = warehouse.query(
            f"""select campaign_id, delivery_month, customer_id, offer_id, "group" from {PLAN_TABLE}
                where campaign_id in (select campaign_id from {RESULTS_TABLE})"""
        )
        plan["delivery_month"] = plan["delivery_month"].dt.date
        offer_table = offers(warehouse)
        truth = true_campaign_effects(world, plan, offer_table)
        summary = summary.merge(
            truth[["campaign_id", *TRUTH_COLUMNS]], left_on="campaign", right_on="campaign_id", how="left"
        ).drop(columns="campaign_id")
        baselines = baseline_policies_true_profit(warehouse, world, summary["campaign"].tolist(), offer_table)
        summary = summary.merge(baselines, left_on="campaign", right_on="campaign_id", how="left").drop(
            columns="campaign_id"
        )
        summary["world_version"] = world.version
    return summary


def baseline_policies_true_profit(
    warehouse: Warehouse, world: SimulatedWorld, campaigns: list[str], offer_table: pd.DataFrame
) -> pd.DataFrame:
    """Per campaign: true profit of the random, oracle, contact-everyone, nobody and ceiling policies (module
    docstring)."""
    columns = ["campaign_id", "eligible_customers", *BASELINE_COLUMNS]
    if not campaigns or not warehouse.table_exists(DECISIONS_TABLE) or not warehouse.table_exists(PLAN_CAMPAIGNS_TABLE):
        return pd.DataFrame(columns=columns)
    eligible = warehouse.query(
        f"""select campaign_id, offer_id, delivery_month, customer_id from {DECISIONS_TABLE}
            where eligible and campaign_id in ({", ".join("?" * len(campaigns))})
            order by campaign_id, customer_id""",
        list(campaigns),
    )
    budgets = warehouse.query(f"select * from {PLAN_CAMPAIGNS_TABLE}").drop_duplicates("campaign_id")
    budget = budgets.set_index("campaign_id")["budget"]
    # what a contact cost the campaign's budget when it was designed (its expected cost), else the offer's price
    offer_prices = cost_per_contact(offer_table)
    designed_prices = (
        budgets.set_index("campaign_id")["cost_per_contact"] if "cost_per_contact" in budgets.columns else None
    )
    scores_by_month: dict[pd.Timestamp, pd.DataFrame | None] = {}

    def design_scores(month: pd.Timestamp) -> pd.DataFrame | None:
        """The numeric design-time scores of `month` by customer, read once for the campaigns of a month."""
        if month not in scores_by_month:
            found = (
                warehouse.query(f"select * from {SCORES_TABLE} where as_of_month = ?", [month])
                if warehouse.table_exists(SCORES_TABLE)
                else pd.DataFrame()
            )
            numeric = found.set_index("customer_id").select_dtypes("number").astype("float64") if len(found) else None
            scores_by_month[month] = numeric
        return scores_by_month[month]

    rows = []
    for campaign_id in campaigns:
        customers = eligible[eligible["campaign_id"] == campaign_id]
        row = {"campaign_id": campaign_id, "eligible_customers": len(customers)}
        if customers.empty or campaign_id not in budget.index:
            rows.append({**row, **dict.fromkeys(BASELINE_COLUMNS, 0.0 if customers.empty else np.nan)})
            continue
        offer_id = str(customers["offer_id"].iloc[0])
        month = pd.Timestamp(customers["delivery_month"].iloc[0]).date()
        profit = true_individual_profit(world, month, customers["customer_id"], offer_id, offer_table)[
            "true_incremental_profit"
        ].to_numpy()
        designed = designed_prices.get(campaign_id) if designed_prices is not None else None
        cost = float(designed) if designed is not None and pd.notna(designed) else float(offer_prices[offer_id])
        affordable = min(len(profit), math.floor(float(budget[campaign_id]) / cost + 1e-9))
        best = np.sort(profit)[::-1][:affordable]
        rows.append(
            {
                **row,
                "random_policy_true_profit": float(affordable * profit.mean()),
                "oracle_policy_true_profit": float(best[best > 0].sum()),
                "contact_all_true_profit": float(profit.sum()),
                "nobody_true_profit": 0.0,
                "ceiling_policy_true_profit": _ceiling_profit(design_scores, customers, profit, affordable),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _ceiling_profit(design_scores, customers: pd.DataFrame, profit: np.ndarray, affordable: int) -> float:
    """True profit of the ceiling policy (module docstring) on a campaign's eligible `customers` (in the order of
    `profit`), given `design_scores(month)` (the scores as of the design month, None when absent)."""
    if affordable == 0:
        return 0.0
    scores = design_scores(pd.Timestamp(customers["delivery_month"].iloc[0]) - pd.DateOffset(months=1))
    if scores is None:
        return float("nan")
    features = scores.reindex(customers["customer_id"].astype(str).to_numpy())
    folds = np.arange(len(features)) % 2  # the eligible customers come in customer_id order: halves by position
    return float(profit[truth_fitted_selection(features, profit, folds, affordable)].sum())


#: The policy and its baselines, as `crm-loop run` names them, by their loop_summary column.
POLICY_PROFIT_LABELS = {
    "true_incremental_profit": "the loop's policy",
    "nobody_true_profit": "contacting nobody",
    "random_policy_true_profit": "random targeting, same budget",
    "contact_all_true_profit": "contacting every eligible customer",
    "ceiling_policy_true_profit": "ceiling: the best targeting on the observables",
    "oracle_policy_true_profit": "oracle: targeting by the true effects",
}


def cumulative_true_profit(summary: pd.DataFrame) -> pd.DataFrame:
    """The true incremental profit of the loop's policy and of each baseline, summed over the measured campaigns
    of a simulated `summary` (loop_summary): one row per policy (`policy`, `true_profit`, `campaigns`). A
    baseline that could not be computed for a campaign (the ceiling without design-time scores) counts the
    campaigns it has; empty when the summary carries no ground truth."""
    present = [column for column in POLICY_PROFIT_LABELS if column in summary.columns]
    if "true_incremental_profit" not in present:
        return pd.DataFrame(columns=["policy", "true_profit", "campaigns"])
    return pd.DataFrame(
        {
            "policy": [POLICY_PROFIT_LABELS[column] for column in present],
            "true_profit": [float(summary[column].sum()) for column in present],
            "campaigns": [int(summary[column].notna().sum()) for column in present],
        }
    )


def write_loop_summary(settings: Settings, warehouse: Warehouse, world: SimulatedWorld | None) -> pd.DataFrame:
    summary = loop_summary(warehouse, world)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    summary.to_csv(settings.reports_dir / "loop_summary.csv", index=False)
    return summary


def cycle_row(warehouse: Warehouse, month: date) -> dict:
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


# --------------------------------------------------------------------------------------------------- charts
def markdown_image(png: bytes, title: str) -> str:
    """Markdown that shows `png` inline in the Dagster UI (a data URI)."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def lift_chart_png(results: pd.DataFrame, segments: pd.DataFrame, title: str) -> bytes:
    """Two panels: response rate in test and control per campaign (with the lift over control), and the
    absolute uplift with its 95% interval per campaign and per segment (a forest plot; open markers are
    segments)."""
    figure = Figure(figsize=(9.0, 0.5 + 0.32 * max(len(results) + len(segments), 4)), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    rates, forest = figure.subplots(1, 2, width_ratios=[1, 1.4])
    positions = np.arange(len(results))
    rates.barh(positions + 0.2, results["response_rate_test"], height=0.4, label="test", color="#2b6cb0")
    rates.barh(positions - 0.2, results["response_rate_control"], height=0.4, label="control", color="#a0aec0")
    for y, (_, row) in zip(positions, results.iterrows(), strict=True):
        relative = row["relative_uplift"]
        label = f"lift {relative:+.0%}" if pd.notna(relative) else "lift n/a"
        rates.text(
            max(row["response_rate_test"], row["response_rate_control"]), y, f" {label}", va="center", fontsize=7
        )
    rates.set_yticks(positions, results["campaign_id"], fontsize=7)
    rates.set_xlabel("response rate in the delivery month", fontsize=8)
    rates.legend(fontsize=7, loc="lower right")
    rates.set_title(title, fontsize=9)

    labels, centres, lows, highs, is_segment = [], [], [], [], []
    for _, row in results.iterrows():
        labels.append(row["campaign_id"])
        centres.append(row["uplift"])
        lows.append(row["ci_low"])
        highs.append(row["ci_high"])
        is_segment.append(False)
        for _, part in segments[segments["campaign_id"] == row["campaign_id"]].iterrows():
            labels.append(f"  {part['segment']} (Holm p={part['p_value_holm']:.2f})")
            centres.append(part["uplift"])
            lows.append(part["ci_low"])
            highs.append(part["ci_high"])
            is_segment.append(True)
    y = np.arange(len(labels))[::-1]
    centre = np.asarray(centres, dtype=float)
    error = np.vstack([centre - np.asarray(lows, dtype=float), np.asarray(highs, dtype=float) - centre])
    segment_mask = np.asarray(is_segment)
    for mask, style in (
        (~segment_mask, {"fmt": "o", "color": "#2b6cb0"}),
        (segment_mask, {"fmt": "o", "mfc": "white"}),
    ):
        if mask.any():
            forest.errorbar(centre[mask], y[mask], xerr=np.nan_to_num(error[:, mask]), capsize=2, ms=4, **style)
    forest.axvline(0.0, color="black", linewidth=0.8)
    forest.set_yticks(y, labels, fontsize=7)
    forest.set_xlabel("uplift in response rate (test - control), 95% interval", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    return buffer.getvalue()
