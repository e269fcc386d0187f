"""Point-in-time customer features from the order history (the "analyse" stage's shared input).

Every feature of month ``M`` uses only orders placed on or before the last day of ``M`` (no look-ahead), so a
snapshot computed today for a past month equals the snapshot computed at that month's end, and a model trained
on past snapshots sees exactly what it will see when scoring.

Windows are calendar months ending with the as-of month: ``orders_1m`` counts the orders of ``M`` itself,
``orders_3m`` those of ``M-2 .. M``, the ``*_12m`` features ``M-11 .. M``. Recency and tenure are measured in
days from the last day of ``M``. The RFM-style inputs follow Hughes' recency/frequency/monetary framing
(Hughes 1994, *Strategic Database Marketing*) and the usual churn-feature set of Neslin et al. (2006,
"Defection detection", J. Marketing Research 43(2)).

The aggregation is one DuckDB pass over the (pandas) order frame: a 25M-order history is read once, grouped by
customer with conditional aggregates, and never materialised per customer in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import numpy as np
import pandas as pd

#: Columns of ``fct_orders`` the features need (``product_line`` is optional: without it, no line shares).
REQUIRED_ORDER_COLUMNS: tuple[str, ...] = ("customer_id", "order_date", "revenue", "margin")

#: Numeric model inputs that exist for every order history (the per-line shares are added by
#: :func:`model_feature_columns`, because the product lines depend on the data).
FEATURE_COLUMNS: list[str] = [
    "recency_days",
    "tenure_days",
    "frequency",
    "orders_1m",
    "orders_3m",
    "orders_12m",
    "revenue_12m",
    "margin_12m",
    "avg_order_revenue",
    "avg_order_margin",
    "active_months_12m",
    "months_since_last_order",
    "share_of_top_product_line",
    "is_lapsed",
]

#: Shares of a customer's orders that carry a trace of how they buy, when the order history records it
#: (NaN otherwise, e.g. CDNOW): ``promotion_order_share`` paid with a promotional code (``discount_code`` not
#: an offer's voucher), ``email_order_share`` placed from an e-mail link (``order_source = 'email'``). Price
#: sensitivity and e-mail responsiveness drive who a voucher moves (Ascarza 2018; effects.yaml).
TRACE_FEATURE_COLUMNS: list[str] = ["promotion_order_share", "email_order_share"]

#: What the channel's delivery log says of how a customer reads the campaign messages she received by the
#: month end (marts.campaign_history): ``emails_received`` (0 for a customer never contacted) and the shares
#: of them she opened and clicked (NaN when she received none, or the channel reports no engagement).
#: Responsive customers open and click more, sleeping dogs open less (effects.yaml's traces).
ENGAGEMENT_FEATURE_COLUMNS: list[str] = ["emails_received", "email_open_rate", "email_click_rate"]

#: Prefix of the per-product-line revenue share columns (``line_share__<product_line>``).
LINE_SHARE_PREFIX = "line_share__"

#: A customer with no order in the last ``LAPSED_AFTER_MONTHS`` months (the as-of month included) is lapsed.
LAPSED_AFTER_MONTHS = 6


# --------------------------------------------------------------------------------------------------- months
def month_start(day: date | pd.Timestamp) -> date:
    """First day of the month containing ``day`` (a month is always represented by its first day)."""
    return date(day.year, day.month, 1)


def add_months(month: date, n: int) -> date:
    """The month ``n`` calendar months after ``month`` (negative ``n`` goes back); returns a month start."""
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def month_end(month: date) -> date:
    """Last day of ``month``."""
    return date.fromordinal(add_months(month_start(month), 1).toordinal() - 1)


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from the month of ``earlier`` to the month of ``later`` (0 = same month)."""
    return (later.year - earlier.year) * 12 + (later.month - earlier.month)


def feature_snapshot_months(as_of_month: date, n: int) -> list[date]:
    """The ``n`` month starts strictly before ``as_of_month``, oldest first.

    ``feature_snapshot_months(date(2025, 6, 1), 3)`` is ``[2025-03-01, 2025-04-01, 2025-05-01]``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    as_of_month = month_start(as_of_month)
    return [add_months(as_of_month, -k) for k in range(n, 0, -1)]


# ------------------------------------------------------------------------------------------------- features
def line_share_column(product_line: str) -> str:
    """Name of the revenue-share column of one product line."""
    return f"{LINE_SHARE_PREFIX}{product_line}"


def line_share_columns(features: pd.DataFrame) -> list[str]:
    """The per-product-line share columns present in a feature frame, sorted."""
    return sorted(c for c in features.columns if c.startswith(LINE_SHARE_PREFIX))


def model_feature_columns(features: pd.DataFrame) -> list[str]:
    """All numeric model inputs of a feature frame: :data:`FEATURE_COLUMNS` then the line shares (sorted)."""
    return FEATURE_COLUMNS + line_share_columns(features)


def _check_orders(orders: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(
            f"orders is missing column(s) {missing}; customer features need {list(REQUIRED_ORDER_COLUMNS)} "
            "(plus optional product_line)"
        )


def _order_columns(orders: pd.DataFrame) -> pd.DataFrame:
    """The narrow frame DuckDB scans (avoids copying unrelated columns of a wide order table)."""
    optional = [
        column
        for column in ("product_line", "is_return", "is_promotion_order", "is_email_order")
        if column in orders.columns
    ]
    columns = [*REQUIRED_ORDER_COLUMNS, *optional]
    return orders[columns]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty_features(product_lines: Sequence[str]) -> pd.DataFrame:
    columns = {c: pd.Series(dtype="float64") for c in FEATURE_COLUMNS}
    for c in (
        "frequency",
        "orders_1m",
        "orders_3m",
        "orders_12m",
        "active_months_12m",
        "recency_days",
        "tenure_days",
        "months_since_last_order",
    ):
        columns[c] = pd.Series(dtype="int64")
    columns["is_lapsed"] = pd.Series(dtype="bool")
    for c in TRACE_FEATURE_COLUMNS:
        columns[c] = pd.Series(dtype="float64")
    columns["top_product_line"] = pd.Series(dtype="str")
    for line in sorted(product_lines):
        columns[line_share_column(line)] = pd.Series(dtype="float64")
    frame = pd.DataFrame(columns)
    frame.index = pd.Index([], dtype="str", name="customer_id")
    return frame


def product_lines_up_to(orders: pd.DataFrame, as_of_month: date) -> list[str]:
    """The product lines ordered by the end of ``as_of_month``, sorted (empty without the column)."""
    if "product_line" not in orders.columns:
        return []
    with duckdb.connect() as con:
        con.register("orders", orders[["order_date", "product_line"]])
        rows = con.execute(
            "select distinct product_line from orders "
            "where product_line is not null and cast(order_date as date) <= ? order by 1",
            [month_end(month_start(as_of_month))],
        ).fetchall()
    return [str(r[0]) for r in rows]


def customer_features(
    orders: pd.DataFrame,
    as_of_month: date,
    product_lines: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Point-in-time features of every customer with at least one order by the end of ``as_of_month``.

    Parameters
    ----------
    orders:
        ``fct_orders``: customer_id, order_date, revenue, margin and (optionally) product_line and
        is_return; one row per order line, as in the warehouse mart: ``frequency`` counts sale rows. A return
        (``is_return``, or without that column a negative revenue) is not an order: it is netted into the
        revenue and margin sums only. A NULL margin is unknown (a plain transaction log).
    as_of_month:
        The month (its first day); only orders with ``order_date <= month_end(as_of_month)`` are used.
    product_lines:
        The lines to build ``line_share__<line>`` columns for. ``None`` = the lines ordered by the month end
        (point-in-time). Pass a fixed list to give several snapshots the same columns; a line with no orders
        gets a zero share.

    Returns
    -------
    DataFrame indexed by ``customer_id`` (sorted), with

    - ``recency_days``: days from the last order to the month end; ``tenure_days``: from the first order.
    - ``frequency``: lifetime number of orders; ``orders_1m``/``orders_3m``/``orders_12m``: orders in
      the last 1/3/12 calendar months (the as-of month included).
    - ``revenue_12m``, ``margin_12m``: net sums over the last 12 months; ``avg_order_revenue`` and
      ``avg_order_margin``: lifetime net sum divided by ``frequency``. The margin features are NaN for a
      customer none of whose lines has a known margin (orders without product data).
    - ``active_months_12m``: months of the last 12 with at least one order.
    - ``months_since_last_order``: 0 if the customer ordered in the as-of month.
    - ``line_share__<line>``: the line's share of the customer's lifetime revenue (0 when lifetime revenue is
      not positive); ``share_of_top_product_line`` the largest of them and ``top_product_line`` its name
      (ties: alphabetically first). Without a ``product_line`` column the share is NaN and there are no lines.
    - ``is_lapsed``: no order in the last :data:`LAPSED_AFTER_MONTHS` months
      (``months_since_last_order >= 6``).
    - :data:`TRACE_FEATURE_COLUMNS`: the lifetime share of orders flagged ``is_promotion_order`` /
      ``is_email_order`` (NaN without the flag column, or for a customer with only returns).
    """
    _check_orders(orders)
    as_of_month = month_start(as_of_month)
    last_day = month_end(as_of_month)
    month_index = as_of_month.year * 12 + as_of_month.month - 1
    has_lines = "product_line" in orders.columns
    if product_lines is None:
        product_lines = product_lines_up_to(orders, as_of_month) if has_lines else []
    product_lines = sorted({str(line) for line in product_lines})
    if product_lines and not has_lines:
        raise ValueError("product_lines were given but orders has no product_line column")

    # A return (``is_return``, or a negative revenue) is not an order: it lowers revenue and margin only.
    return_flag = (
        "coalesce(cast(is_return as boolean), false)"
        if "is_return" in orders.columns
        else "coalesce(cast(revenue as double) < 0, false)"
    )
    traces = "".join(
        f",\n            avg(cast({flag} as double)) filter (where not is_return) as {name}"
        if flag in orders.columns
        else f",\n            cast(null as double) as {name}"
        for flag, name in (("is_promotion_order", "promotion_order_share"), ("is_email_order", "email_order_share"))
    )
    trace_columns = "".join(f", {flag}" for flag in ("is_promotion_order", "is_email_order") if flag in orders.columns)
    line_aggregates = "".join(
        ",\n            coalesce(sum(revenue) filter (where product_line = ?), 0) as " + _quote_identifier("r__" + line)
        for line in product_lines
    )
    sql = f"""
        with scoped as (
            select
                cast(customer_id as varchar) as customer_id,
                cast(order_date as date) as order_date,
                cast(revenue as double) as revenue,
                cast(margin as double) as margin,
                {"product_line" if has_lines else "cast(null as varchar) as product_line"},
                {return_flag} as is_return{trace_columns},
                ? - (year(cast(order_date as date)) * 12 + month(cast(order_date as date)) - 1) as months_ago
            from orders
            where cast(order_date as date) <= ?
        )
        select
            customer_id,
            coalesce(min(order_date) filter (where not is_return), min(order_date)) as first_order_date,
            coalesce(max(order_date) filter (where not is_return), max(order_date)) as last_order_date,
            coalesce(min(months_ago) filter (where not is_return), min(months_ago)) as months_since_last_order,
            count(*) filter (where not is_return) as frequency,
            count(*) filter (where not is_return and months_ago < 1) as orders_1m,
            count(*) filter (where not is_return and months_ago < 3) as orders_3m,
            count(*) filter (where not is_return and months_ago < 12) as orders_12m,
            coalesce(sum(revenue) filter (where months_ago < 12), 0) as revenue_12m,
            case when count(margin) > 0
                then coalesce(sum(margin) filter (where months_ago < 12), 0) end as margin_12m,
            coalesce(sum(revenue), 0) as lifetime_revenue,
            case when count(margin) > 0 then sum(margin) end as lifetime_margin,
            -- one bit per month of the last 12 with an order (cheaper than count(distinct month))
            coalesce(bit_count(bit_or(cast(1 as bigint) << cast(months_ago as bigint))
                filter (where not is_return and months_ago < 12)), 0) as active_months_12m{traces}{line_aggregates}
        from scoped
        group by customer_id
        order by customer_id
    """
    params: list[object] = [month_index, last_day, *product_lines]
    with duckdb.connect() as con:
        con.register("orders", _order_columns(orders))
        raw = con.execute(sql, params).df()

    if raw.empty:
        return _empty_features(product_lines)

    end = pd.Timestamp(last_day)
    features = pd.DataFrame(index=pd.Index(raw["customer_id"].astype("str"), name="customer_id"))
    features["recency_days"] = (end - pd.to_datetime(raw["last_order_date"])).dt.days.to_numpy("int64")
    features["tenure_days"] = (end - pd.to_datetime(raw["first_order_date"])).dt.days.to_numpy("int64")
    for column in ("frequency", "orders_1m", "orders_3m", "orders_12m"):
        features[column] = raw[column].to_numpy("int64")
    features["revenue_12m"] = raw["revenue_12m"].to_numpy("float64")
    features["margin_12m"] = raw["margin_12m"].to_numpy("float64", na_value=np.nan)
    orders_placed = raw["frequency"].to_numpy("float64")
    orders_placed = np.where(orders_placed > 0, orders_placed, np.nan)  # only returns in the history
    features["avg_order_revenue"] = raw["lifetime_revenue"].to_numpy("float64") / orders_placed
    features["avg_order_margin"] = raw["lifetime_margin"].to_numpy("float64", na_value=np.nan) / orders_placed
    features["active_months_12m"] = raw["active_months_12m"].to_numpy("int64")
    features["months_since_last_order"] = raw["months_since_last_order"].to_numpy("int64")

    if product_lines:
        line_revenue = raw[["r__" + line for line in product_lines]].to_numpy("float64")
        lifetime_revenue = raw["lifetime_revenue"].to_numpy("float64")
        positive = lifetime_revenue > 0
        shares = line_revenue / lifetime_revenue.clip(min=1e-300)[:, None]
        shares[~positive] = 0.0
        features["share_of_top_product_line"] = shares.max(axis=1)
        top = pd.Series(product_lines, dtype="str").to_numpy()[shares.argmax(axis=1)]
        features["top_product_line"] = pd.array(top, dtype="str")
        features.loc[~positive, "top_product_line"] = pd.NA
        for position, line in enumerate(product_lines):
            features[line_share_column(line)] = shares[:, position]
    else:
        features["share_of_top_product_line"] = float("nan")
        features["top_product_line"] = pd.array([pd.NA] * len(features), dtype="str")
    features["is_lapsed"] = features["months_since_last_order"].to_numpy() >= LAPSED_AFTER_MONTHS
    for column in TRACE_FEATURE_COLUMNS:
        features[column] = raw[column].to_numpy("float64", na_value=np.nan)

    ordered = (
        FEATURE_COLUMNS
        + TRACE_FEATURE_COLUMNS
        + ["top_product_line"]
        + [line_share_column(line) for line in product_lines]
    )
    return features[ordered]


def with_email_engagement(scores: pd.DataFrame, engagement: pd.DataFrame) -> pd.DataFrame:
    """``scores`` (one row per ``customer_id``) with the :data:`ENGAGEMENT_FEATURE_COLUMNS` of ``engagement``
    (``customer_id`` and those columns, customers who received a message only): ``emails_received`` 0 and the
    rates NaN for everyone else. The rows keep their order."""
    by_customer = engagement.set_index(engagement["customer_id"].astype("str"))
    ids = scores["customer_id"].astype("str")
    added = {
        column: ids.map(by_customer[column]).astype("float64").to_numpy() if len(by_customer) else np.nan
        for column in ENGAGEMENT_FEATURE_COLUMNS
    }
    result = scores.assign(**added)
    result["emails_received"] = result["emails_received"].fillna(0.0).astype("int64")
    return result
