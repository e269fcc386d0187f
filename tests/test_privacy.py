"""`forget` on tables of every kind (orchestration/lib/privacy.py): delivered text that mentions the customer is
cleared, a number is never taken for text, the customer's rows keep their aggregates under a token."""

from __future__ import annotations

import pandas as pd

from orchestration.lib.privacy import TOKEN_PREFIX, forget
from orchestration.resources import DuckDBWarehouseResource


def test_forget_clears_delivered_text_and_leaves_numbers_named_like_it(tmp_path) -> None:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.ensure_table("quarantine.orders", {"customer_id": "varchar", "value": "varchar", "rule": "varchar"})
    warehouse.append_rows(
        "quarantine.orders",
        pd.DataFrame(
            {
                "customer_id": ["C0000015", None],
                "value": ["C0000015;2025-01-03;-4", "line 7 of orders.csv names C0000015 twice: C0000015"],
                "rule": ["amount is not negative", "unreadable line"],
            }
        ),
    )
    warehouse.ensure_table(
        "campaigns.policy_values", {"customer_id": "varchar", "value": "double", "policy": "varchar"}
    )
    warehouse.append_rows(
        "campaigns.policy_values",
        pd.DataFrame({"customer_id": ["C0000015", "C0000016"], "value": [12.5, 7.0], "policy": ["champion"] * 2}),
    )

    erasure = forget(warehouse, "C0000015", home=tmp_path, exports_dir=tmp_path / "exports")

    quarantine = warehouse.query("select * from quarantine.orders order by rule")
    assert quarantine["value"].isna().all()  # both delivered lines mention the customer
    assert quarantine["customer_id"].iloc[0].startswith(TOKEN_PREFIX)
    values = warehouse.query("select * from campaigns.policy_values order by value")
    assert values["value"].tolist() == [7.0, 12.5]  # numbers stay
    assert values["customer_id"].tolist()[1] == erasure.token and values["customer_id"].tolist()[0] == "C0000016"
    assert erasure.rows_by_table == {"quarantine.orders": 2, "campaigns.policy_values": 1}
