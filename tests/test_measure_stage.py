"""The measure stage's cost of a campaign is read from the orders (orchestration/stages/measure/assets.py).

Protected properties: a test customer's voucher cost is what the orders of the delivery month record as
redeemed with the campaign's own offer code (not a promotional code, not another offer, not another month);
orders that record no discounts at all leave the cost to the every-responder assumption, said as NaN.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from models.measurement import measure_campaign
from orchestration.lib.queries import customer_month_outcomes, customer_month_redemptions
from orchestration.resources import DuckDBWarehouseResource
from orchestration.stages.measure.assets import campaign_outcomes

MONTH = date(2025, 3, 1)
OFFERS = pd.DataFrame({"offer_id": ["retain_voucher"], "contact_cost": [0.5], "incentive_cost": [10.0]})


def _orders(codes: list[str | None], amounts: list[float], dates: list[str]) -> pd.DataFrame:
    n = len(codes)
    return pd.DataFrame(
        {
            "order_id": [str(i) for i in range(n)],
            "customer_id": ["A", "A", "B", "C", "D"][:n],
            "order_date": pd.to_datetime(dates),
            "product_line": "Cookware",
            "revenue": 40.0,
            "margin": 16.0,
            "discount_code": pd.Series(codes, dtype="str"),
            "discount_amount": amounts,
            "is_voucher_redemption": [code == "retain_voucher" for code in codes],
        }
    )


def _plan() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign_id": "2025-03-retention",
            "offer_id": "retain_voucher",
            "customer_id": ["A", "B", "C", "D", "E"],
            "group": ["test", "test", "test", "test", "control"],
            "delivery_month": pd.Timestamp(MONTH),
            "designed_in_month": pd.Timestamp("2025-02-01"),
            "objective": "retention",
            "selection": "exploit",
            "selection_probability": 1.0,
            "treatment_probability": 0.8,
            "expected_incremental_profit": 1.5,
            "stratum": "gold",
        }
    )


def _warehouse(tmp_path, orders: pd.DataFrame) -> DuckDBWarehouseResource:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse.transaction() as connection:
        connection.execute("create schema if not exists marts")
        connection.register("orders", orders)
        connection.execute("create table marts.fct_orders as select * from orders")
    return warehouse


def test_the_cost_is_the_campaigns_own_vouchers_redeemed_in_the_delivery_month(tmp_path) -> None:
    orders = _orders(
        ["retain_voucher", None, "PROMO10", "retain_voucher", "winback_voucher"],
        [10.0, 0.0, 4.0, 10.0, 15.0],
        ["2025-03-04", "2025-03-20", "2025-03-07", "2025-02-11", "2025-03-09"],
    )
    warehouse = _warehouse(tmp_path, orders)
    redemptions = customer_month_redemptions(warehouse, MONTH)
    outcomes = campaign_outcomes(
        _plan(), customer_month_outcomes(warehouse, MONTH), ["2025-03-retention"], redemptions
    ).set_index("customer_id")
    # A redeemed in March; B paid with the shop's promotion; C redeemed in February (an earlier campaign's
    # voucher); D redeemed another offer's code.
    assert outcomes["voucher_cost"].to_dict() == {"A": 10.0, "B": 0.0, "C": 0.0, "D": 0.0, "E": 0.0}
    row = measure_campaign(outcomes.reset_index().astype({"responded": bool}), OFFERS).iloc[0]
    assert (row["responders_test"], row["redemptions"], row["voucher_cost"]) == (3, 1, 10.0)
    assert row["campaign_cost"] == 4 * 0.5 + 10.0


def test_orders_without_any_discount_leave_the_cost_to_the_every_responder_assumption(tmp_path) -> None:
    orders = _orders([None, None, None], [0.0, 0.0, 0.0], ["2025-03-04", "2025-03-20", "2025-03-07"])
    warehouse = _warehouse(tmp_path, orders)
    assert customer_month_redemptions(warehouse, MONTH) is None
    outcomes = campaign_outcomes(_plan(), customer_month_outcomes(warehouse, MONTH), ["2025-03-retention"], None)
    assert outcomes["voucher_cost"].isna().all()
    row = measure_campaign(outcomes.drop(columns="voucher_cost").astype({"responded": bool}), OFFERS).iloc[0]
    assert np.isnan(row["redemptions"]) and row["voucher_cost"] == 10.0 * row["responders_test"]
