"""Checks on the analyse stage's scores: every buyer scored with valid probabilities (blocking), the scores suite
(blocking) and month-to-month drift (a warning)."""

from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from expectations import (
    customer_scores,
)
from expectations.adapter import validate
from models.drift import SIGNIFICANT_SHIFT, score_drift
from orchestration.gates import (
    derived_gate_check,
    gate_result,
    rows_with_buyers,
    rule_counts_result,
)
from orchestration.lib.months import next_month, partition_month, previous_month
from orchestration.lib.queries import SCORES_TABLE, columns_of
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource

PROBABILITY_COLUMNS = ("churn_probability", "p_alive", "next_best_product_probability")

DRIFT_COLUMNS = ("churn_probability", "p_alive", "expected_purchases_next_month", "clv")


def score_violations(warehouse: WarehouseResource, month: date) -> dict[str, int]:
    """Rows breaking each rule of the scores gate for `month` (see the check below); all 0 when it holds."""
    as_of = pd.Timestamp(month)
    month_end = pd.Timestamp(next_month(month)) - pd.Timedelta(days=1)
    columns = columns_of(warehouse, SCORES_TABLE)
    optional = [c for c in PROBABILITY_COLUMNS if c not in ("churn_probability", "p_alive") and c in columns]
    optional_rules = "".join(
        f""",
            (select count(*) from scored where {c} is not null and not ({c} between 0 and 1)) as "{c} out of [0, 1]"
        """
        for c in optional
    )
    counts = warehouse.query(
        f"""
        with buyers as (select distinct customer_id from marts.fct_orders where order_date <= ?),
        scored as (select * from {SCORES_TABLE} where as_of_month = ?)
        select
            (select count(*) from buyers where customer_id not in (select customer_id from scored)) as unscored,
            (select count(*) - count(distinct customer_id) from scored) as duplicated,
            (select count(*) from scored where not (churn_probability between 0 and 1)
                or churn_probability is null) as churn_out_of_range,
            (select count(*) from scored where not (p_alive between 0 and 1)
                or p_alive is null) as p_alive_out_of_range,
            (select count(*) from scored where clv is null or isnan(clv) or clv < 0) as clv_missing_or_negative
            {optional_rules}
        """,
        [month_end, as_of],
    ).iloc[0]
    return {rule: int(value) for rule, value in counts.items()}


@asset_check(asset="customer_scores", blocking=True, partitions_def=monthly_partitions)
def every_customer_scored_with_valid_probabilities(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Every customer with an order by the month end has exactly one score row, with a churn probability,
    P(alive) and CLV; every probability is in [0, 1] (the next best product's may be NULL: no product data, or
    every line held)."""
    return rule_counts_result(score_violations(warehouse, partition_month(context.partition_key)))


@asset_check(asset="customer_scores", blocking=False, partitions_def=monthly_partitions)
def score_distributions_stable_month_to_month(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Drift warning (non-blocking): the population stability index of each score's distribution against the
    previous month's; a PSI above 0.25 is a significant shift (inputs changed, or the model needs a look)."""
    month = partition_month(context.partition_key)
    previous = previous_month(month)
    columns = ", ".join(DRIFT_COLUMNS)
    query = f"select {columns} from {SCORES_TABLE} where as_of_month = ?"
    current = warehouse.query(query, [pd.Timestamp(month)])
    reference = warehouse.query(query, [pd.Timestamp(previous)])
    if reference.empty:
        return AssetCheckResult(
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description=f"no scores of {previous:%Y-%m} to compare with",
        )
    drift = score_drift(reference, current, DRIFT_COLUMNS)
    worst = float(drift["psi"].max())
    shifted = drift.loc[drift["psi"] >= SIGNIFICANT_SHIFT, "score"].tolist()
    return AssetCheckResult(
        passed=not shifted,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"significant shift against {previous:%Y-%m} in {', '.join(shifted)}"
            if shifted
            else f"every score stable against {previous:%Y-%m} (max PSI {worst:.3f})"
        ),
        metadata={
            "max_psi": worst,
            "reference_month": f"{previous:%Y-%m}",
            "psi": MetadataValue.md(drift.to_markdown(index=False, floatfmt=".4f")),
        },
    )


def _suite_columns(suite) -> list[str]:
    """The table columns a suite's expectations name (not the gate's own `_not_a_buyer`), in order."""
    named = [getattr(expectation, "column", None) for expectation in suite.expectations]
    return list(dict.fromkeys(column for column in named if column and column != "_not_a_buyer"))


def scores_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    """The month's scores through `suite_customer_scores`; only the columns it checks are read (the table has
    one row per customer and about forty columns)."""
    with warehouse.session():
        frame, buyers = rows_with_buyers(
            warehouse, SCORES_TABLE, month, sales_only=False, columns=_suite_columns(customer_scores.suite)
        )
    validation = validate(frame, customer_scores.suite, {"customers_with_an_order": buyers})
    return gate_result(
        validation,
        frame,
        f"{SCORES_TABLE} {month:%Y-%m}",
        ["customer_id", "churn_probability", "p_alive", "clv", "expected_purchases_next_month", "segment"],
        customers_with_an_order=buyers,
    )


suite_customer_scores = derived_gate_check(
    "customer_scores",
    "suite_customer_scores",
    scores_gate,
    "Great Expectations suite customer_scores: probabilities in [0, 1], no missing score, every customer with an "
    "order scored once.",
)
