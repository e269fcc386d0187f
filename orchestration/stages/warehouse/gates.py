"""Blocking gate on the warehouse's model inputs: marts.customer_features against its suite (expectations/)."""

from datetime import date

from dagster import (
    AssetCheckResult,
    AssetKey,
)

from expectations import (
    customer_features,
)
from expectations.adapter import validate
from orchestration.gates import (
    derived_gate_check,
    gate_result,
    rows_with_buyers,
)
from orchestration.resources import WarehouseResource


def features_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame, buyers = rows_with_buyers(warehouse, "marts.customer_features", month, sales_only=True)
    validation = validate(frame, customer_features.suite, {"customers_with_a_sale": buyers})
    return gate_result(
        validation,
        frame,
        f"marts.customer_features {month:%Y-%m}",
        ["customer_id", *customer_features.NEEDED_BY_THE_MODELS],
        customers_with_a_sale=buyers,
    )


suite_customer_features = derived_gate_check(
    AssetKey(["marts", "customer_features"]),
    "suite_customer_features",
    features_gate,
    "Great Expectations suite customer_features: no nulls a model needs, ranges, every buyer covered.",
)
