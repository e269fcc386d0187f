"""The warehouse reads the loop's stages share (one place for each query), in DuckDB's SQL dialect: the
Spark warehouse resource translates them (orchestration.resources.spark)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from models.campaign_rules import with_expected_redemptions
from models.customer_chunks import HASH_PREFIX_DIGITS, CustomerRange, TrainingSample
from orchestration.lib.months import next_month
from orchestration.lib.warehouse import Warehouse

PLAN_TABLE = "campaigns.campaign_plan"
DELIVERIES_TABLE = "campaigns.campaign_deliveries"
OUTCOMES_TABLE = "campaigns.campaign_outcomes"
RESULTS_TABLE = "campaigns.campaign_results"
POLICY_TABLE = "campaigns.targeting_policy"
SCORES_TABLE = "analytics.customer_scores"

# campaigns.campaign_plan, the decision log (column -> SQL type). The collect stage creates it empty, so
# that it exists (with these columns) before any campaign is designed, also when the plan stays empty.
PLAN_SCHEMA: dict[str, str] = {
    "campaign_id": "varchar",
    "customer_id": "varchar",
    "offer_id": "varchar",
    "group": "varchar",
    "selection": "varchar",
    "selection_probability": "double",
    "treatment_probability": "double",
    "expected_incremental_profit": "double",
    "stratum": "varchar",
    "rank": "bigint",
    "objective": "varchar",
    "policy": "varchar",
    "delivery_month": "timestamp",
    "designed_in_month": "timestamp",
}


def _month_end(month: date) -> pd.Timestamp:
    return pd.Timestamp(next_month(month)) - pd.Timedelta(days=1)


def columns_of(warehouse: Warehouse, table: str) -> set[str]:
    """The column names of an existing `table`, by a query both engines answer (Spark has no
    information_schema): what an optional column's reader asks before it selects the column."""
    return set(warehouse.query(f"select * from {table} limit 0").columns)


#: fct_orders' flags behind the trace features (models.features.TRACE_FEATURE_COLUMNS).
ORDER_TRACE_FLAGS = ("is_promotion_order", "is_email_order")


def _add_customer_range(conditions: list[str], parameters: list, customers: CustomerRange | None) -> None:
    """The conditions (and their parameters) that keep the customers of one scoring chunk."""
    if customers is not None and customers.first is not None:
        conditions.append("customer_id >= ?")
        parameters.append(customers.first)
    if customers is not None and customers.stop is not None:
        conditions.append("customer_id < ?")
        parameters.append(customers.stop)


def orders_as_of(
    warehouse: Warehouse,
    month: date,
    customers: CustomerRange | None = None,
    sample: TrainingSample | None = None,
) -> pd.DataFrame:
    """Order lines placed by the end of `month` (the models' only view of behaviour): of every customer, of the
    customers of one scoring chunk (`customers`), or of the training sample (`sample`; models.customer_chunks)."""
    conditions, parameters = ["order_date <= ?"], [_month_end(month)]
    _add_customer_range(conditions, parameters, customers)
    if sample is not None and (below := sample.hash_prefix_below) is not None:
        conditions.append(f"substr(md5(customer_id), 1, {HASH_PREFIX_DIGITS}) < ?")
        parameters.append(below)
    present = columns_of(warehouse, "marts.fct_orders")
    # the trace flags (models.features.TRACE_FEATURE_COLUMNS), where the warehouse's fct_orders has them
    traces = "".join(f", {flag}" for flag in ORDER_TRACE_FLAGS if flag in present)
    return warehouse.query(
        f"""
        select order_id, customer_id, order_date, product_line, revenue, margin{traces}
        from marts.fct_orders
        where {" and ".join(conditions)}
        order by order_date, order_id
        """,
        parameters,
    )


def email_engagement_as_of(warehouse: Warehouse, month: date, customers: CustomerRange | None = None) -> pd.DataFrame:
    """Per customer who received a campaign message by the end of `month` (of every customer, or of one scoring
    chunk): how many, and the shares opened and clicked that the channel reported (NULL where it reported
    none), from marts.campaign_history (models.features.ENGAGEMENT_FEATURE_COLUMNS)."""
    conditions, parameters = ["was_contacted", "contacted_at <= ?"], [_month_end(month)]
    _add_customer_range(conditions, parameters, customers)
    history = "marts.campaign_history"
    present = columns_of(warehouse, history) if warehouse.table_exists(history) else set()
    if not {"opened_message", "clicked_message"} <= present:  # no campaign history (yet) in this warehouse
        return pd.DataFrame(columns=["customer_id", "emails_received", "email_open_rate", "email_click_rate"])
    return warehouse.query(
        f"""
        select
            customer_id,
            count(*) as emails_received,
            avg(case when opened_message then 1 when not opened_message then 0 end * 1e0) as email_open_rate,
            avg(case when clicked_message then 1 when not clicked_message then 0 end * 1e0) as email_click_rate
        from marts.campaign_history
        where {" and ".join(conditions)}
        group by customer_id
        order by customer_id
        """,
        parameters,
    )


def customers_with_orders(warehouse: Warehouse, month: date) -> int:
    """How many customers have an order line by the end of `month` (the base the analyse stage scores)."""
    frame = warehouse.query(
        "select count(distinct customer_id) as customers from marts.fct_orders where order_date <= ?",
        [_month_end(month)],
    )
    return int(frame["customers"].iloc[0])


def customer_chunk_starts(warehouse: Warehouse, month: date, customers_per_chunk: int) -> list[str]:
    """The first customer id of each scoring chunk of `customers_per_chunk` customers (ids in the engine's
    binary string order) among the customers with an order by the end of `month`."""
    frame = warehouse.query(
        """
        select customer_id from (
            select customer_id, row_number() over (order by customer_id) - 1 as position
            from (select distinct customer_id from marts.fct_orders where order_date <= ?) as customers
        ) as numbered
        where position % ? = 0
        order by customer_id
        """,
        [_month_end(month), int(customers_per_chunk)],
    )
    return [str(customer_id) for customer_id in frame["customer_id"]]


def product_lines_as_of(warehouse: Warehouse, month: date) -> list[str]:
    """The product lines ordered by the end of `month`, sorted (the lines every snapshot has shares for)."""
    frame = warehouse.query(
        """
        select distinct product_line from marts.fct_orders
        where order_date <= ? and product_line is not null
        """,
        [_month_end(month)],
    )
    return sorted(str(line) for line in frame["product_line"])


def contacted_test_customers(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """(customer_id, month) of every test-group contact delivered by `month`."""
    if not warehouse.table_exists(PLAN_TABLE):
        return pd.DataFrame({"customer_id": pd.Series(dtype="str"), "month": pd.Series(dtype="datetime64[us]")})
    return warehouse.query(
        f"""
        select customer_id, delivery_month as month
        from {PLAN_TABLE}
        where "group" = 'test' and delivery_month <= ?
        """,
        [pd.Timestamp(month)],
    )


def offers(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.query("select * from reference.offers order by offer_id")


def offers_with_expected_redemptions(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """The offers with the redemption rates learned from the campaigns delivered by `month` whose redemptions the
    orders record (models.campaign_rules.with_expected_redemptions): what the design of `month`, its budget gate
    and the improve stage of `month` count with, the same on every re-run of the month."""
    measured = pd.DataFrame(columns=["offer_id", "n_test", "responders_test", "redemptions"])
    if warehouse.table_exists(RESULTS_TABLE):
        found = warehouse.query(f"select * from {RESULTS_TABLE} where delivery_month <= ?", [pd.Timestamp(month)])
        if "redemptions" in found.columns:
            measured = found[["offer_id", "n_test", "responders_test", "redemptions"]]
    return with_expected_redemptions(offers(warehouse), measured)


def campaign_objectives(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.query("select * from reference.campaign_objectives order by priority")


def plan_for_delivery(warehouse: Warehouse, delivery_month: date) -> pd.DataFrame:
    """Every assignment (test and control) of the campaigns delivered in `delivery_month`."""
    if not warehouse.table_exists(PLAN_TABLE):
        return pd.DataFrame()
    return warehouse.query(
        f"select * from {PLAN_TABLE} where delivery_month = ? order by campaign_id, customer_id",
        [pd.Timestamp(delivery_month)],
    )


def delivered_campaigns(warehouse: Warehouse, delivery_month: date) -> list[str]:
    """Campaigns the execute stage handed to the channel for `delivery_month`."""
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return []
    frame = warehouse.query(
        f"select distinct campaign_id from {DELIVERIES_TABLE} where delivery_month = ? order by 1",
        [pd.Timestamp(delivery_month)],
    )
    return frame["campaign_id"].tolist()


def customer_month_outcomes(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """Per customer who ordered in `month`: orders, revenue and margin in that month."""
    return warehouse.query(
        """
        select customer_id, count(*) as orders, sum(revenue) as revenue, sum(margin) as margin
        from marts.fct_orders
        where order_date >= ? and order_date <= ?
        group by customer_id
        """,
        [pd.Timestamp(month), _month_end(month)],
    )


def customer_month_redemptions(warehouse: Warehouse, month: date) -> pd.DataFrame | None:
    """Per customer and offer: the EUR of that offer's vouchers the customer redeemed in `month` (fct_orders'
    voucher redemptions: discount_code = the offer_id), the measured cost of a campaign's incentive. None when
    the orders record no discounts at all (no order line so far has a discount code: a source without them),
    so that measurement falls back to charging every responder a voucher."""
    present = columns_of(warehouse, "marts.fct_orders")
    if not {"discount_code", "discount_amount", "is_voucher_redemption"} <= present:
        return None
    any_discount = warehouse.query(
        "select order_id from marts.fct_orders where discount_code is not null and order_date <= ? limit 1",
        [_month_end(month)],
    )
    if any_discount.empty:
        return None
    return warehouse.query(
        """
        select customer_id, discount_code as offer_id, sum(discount_amount) as voucher_cost
        from marts.fct_orders
        where is_voucher_redemption and order_date >= ? and order_date <= ?
        group by customer_id, discount_code
        """,
        [pd.Timestamp(month), _month_end(month)],
    ).astype({"voucher_cost": "float64"})


def measured_outcomes_with_features(warehouse: Warehouse, up_to_month: date) -> pd.DataFrame:
    """Every measured customer (test and control) of campaigns delivered by `up_to_month`, with the
    features and scores they had when the campaign was designed (the month before delivery)."""
    return _outcomes_with_design_scores(warehouse, OUTCOMES_TABLE, "campaign_id", up_to_month)


def _outcomes_with_design_scores(
    warehouse: Warehouse, outcomes_table: str, group_column: str, up_to_month: date
) -> pd.DataFrame:
    """Rows of `outcomes_table` delivered by `up_to_month` with the customer's scores as of the design month."""
    if not warehouse.table_exists(outcomes_table):
        return pd.DataFrame()
    return warehouse.query(
        f"""
        select o.*, s.* exclude (customer_id, as_of_month)
        from {outcomes_table} as o
        join {SCORES_TABLE} as s
          on s.customer_id = o.customer_id and s.as_of_month = o.designed_in_month
        where o.delivery_month <= ?
        order by o.delivery_month, o.{group_column}, o.customer_id
        """,
        [pd.Timestamp(up_to_month)],
    )


# ---------------------------------------------------------------- design, execute, measure, improve (issue 5)
DECISIONS_TABLE = "campaigns.decision_log"
PLAN_CAMPAIGNS_TABLE = "campaigns.campaign_plan_summary"
SEGMENT_RESULTS_TABLE = "campaigns.campaign_segment_results"
POLICY_DECISIONS_TABLE = "campaigns.policy_decisions"
POLICY_VALUES_TABLE = "campaigns.policy_values"

# Columns the design stage adds to the plan (PLAN_SCHEMA holds the columns every plan has).
PLAN_EXTRA_COLUMNS: dict[str, str] = {"policy_version": "varchar", "profit_lower_bound": "double"}


def customer_value(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """Per customer as of `month`: pyramid tier and 12-month profit (empty when the mart is absent)."""
    if not warehouse.table_exists("marts.customer_value"):
        return pd.DataFrame({"customer_id": pd.Series(dtype="str")})
    return warehouse.query(
        "select customer_id, pyramid_tier, profit_12m from marts.customer_value where as_of_month = ?",
        [pd.Timestamp(month)],
    )


def recent_contacts(warehouse: Warehouse, delivery_month: date, window_months: int) -> pd.DataFrame:
    """Contacts delivered in the `window_months - 1` months before `delivery_month`, one row per campaign and
    customer: `customer_id`, `months_ago` (1 = the month before). From the execute stage's delivery log and
    the channel's contact log as collected (contacts made before the loop existed)."""
    empty = pd.DataFrame({"customer_id": pd.Series(dtype="str"), "months_ago": pd.Series(dtype="int64")})
    if window_months <= 1:
        return empty
    first = pd.Timestamp(delivery_month) - pd.DateOffset(months=window_months - 1)
    parts = []
    if warehouse.table_exists(DELIVERIES_TABLE):
        parts.append(
            f"select campaign_id, customer_id, delivery_month as month from {DELIVERIES_TABLE} "
            "where delivery_month >= ? and delivery_month < ?"
        )
    if warehouse.table_exists("raw.contact_log"):
        parts.append(
            "select campaign_id, customer_id, date_trunc('month', contacted_at) as month from raw.contact_log "
            "where contacted_at >= ? and contacted_at < ?"
        )
    if not parts:
        return empty
    frame = warehouse.query(
        f"""
        with contacts as ({" union ".join(parts)})
        select customer_id, min(month) as month from contacts group by campaign_id, customer_id
        """,
        [first, pd.Timestamp(delivery_month)] * len(parts),
    )
    months_ago = (pd.Timestamp(delivery_month).year - frame["month"].dt.year) * 12 + (
        pd.Timestamp(delivery_month).month - frame["month"].dt.month
    )
    return pd.DataFrame({"customer_id": frame["customer_id"].astype(str), "months_ago": months_ago.astype("int64")})


def plan_designed_in(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """The plan the design stage wrote in `month` (delivered at the start of the next month)."""
    if not warehouse.table_exists(PLAN_TABLE):
        return pd.DataFrame()
    return warehouse.query(
        f"select * from {PLAN_TABLE} where designed_in_month = ? order by campaign_id, customer_id",
        [pd.Timestamp(month)],
    )


AUDIENCE_OUTCOMES_TABLE = "campaigns.audience_outcomes"
CALIBRATION_EVIDENCE_TABLE = "campaigns.policy_calibration_evidence"


def not_selected_audience(warehouse: Warehouse, delivery_month: date) -> pd.DataFrame:
    """Eligible customers of the campaigns delivered in `delivery_month` that no campaign selected (one row per
    offer and customer): not contacted, and not randomised either."""
    if not warehouse.table_exists(DECISIONS_TABLE):
        return pd.DataFrame(columns=["campaign_id", "offer_id", "customer_id", "designed_in_month"])
    return warehouse.query(
        f"""
        select min(campaign_id) as campaign_id, offer_id, customer_id, min(designed_in_month) as designed_in_month
        from {DECISIONS_TABLE}
        where delivery_month = ? and eligible and decision = 'not selected'
          and customer_id not in (select customer_id from {PLAN_TABLE} where delivery_month = ?)
        group by offer_id, customer_id
        order by offer_id, customer_id
        """,
        [pd.Timestamp(delivery_month), pd.Timestamp(delivery_month)],
    )


def audience_outcomes_with_features(warehouse: Warehouse, up_to_month: date) -> pd.DataFrame:
    """Every not-selected eligible customer of campaigns delivered by `up_to_month`, with the design-time scores
    (as `measured_outcomes_with_features`)."""
    return _outcomes_with_design_scores(warehouse, AUDIENCE_OUTCOMES_TABLE, "offer_id", up_to_month)


def designed_global_control_share(warehouse: Warehouse, month: date) -> float:
    """The global control share the design run of `month` used (recorded with its campaigns; 0 when none)."""
    if not warehouse.table_exists(PLAN_CAMPAIGNS_TABLE):
        return 0.0
    if "global_control_share" not in columns_of(warehouse, PLAN_CAMPAIGNS_TABLE):
        return 0.0
    shares = warehouse.query(
        f"select distinct global_control_share from {PLAN_CAMPAIGNS_TABLE} where designed_in_month = ?",
        [pd.Timestamp(month)],
    )["global_control_share"].dropna()
    return float(shares.iloc[0]) if len(shares) else 0.0
