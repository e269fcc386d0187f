"""Suite of `marts.customer_features` for one month (the gate `suite_customer_features`).

The point-in-time features the models of the analyse stage read, one row per customer with a sale by the month
end. Validated on the month's rows with `_not_a_buyer` (the customer_id when the customer has no sale by the
month end). Parameter: `customers_with_a_sale` (distinct customers with a sale in marts.fct_orders by then).
"""

import great_expectations as gx
import great_expectations.expectations as gxe

NEEDED_BY_THE_MODELS = (
    "recency_days",
    "frequency",
    "monetary",
    "net_revenue_lifetime",
    "orders_1m",
    "orders_3m",
    "orders_12m",
    "days_since_first_order",
    "tenure_days",
    "return_rate",
    "contacts_12m",
)

suite = gx.ExpectationSuite(
    name="customer_features",
    expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", description="every row has a customer_id"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", description="one row per customer"),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} has a value (a model needs it)")
            for column in NEEDED_BY_THE_MODELS
        ),
        gxe.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0, description="recency_days >= 0"),
        gxe.ExpectColumnValuesToBeBetween(column="frequency", min_value=1, description="frequency >= 1"),
        gxe.ExpectColumnValuesToBeBetween(column="orders_12m", min_value=0, description="orders_12m >= 0"),
        gxe.ExpectColumnValuesToBeBetween(
            column="days_since_first_order", min_value=0, description="days_since_first_order >= 0"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="return_rate", min_value=0, max_value=1, description="return_rate is in [0, 1]"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="contacts_12m", min_value=0, description="contacts_12m >= 0"),
        gxe.ExpectColumnValuesToBeNull(column="_not_a_buyer", description="every row is a customer with a sale"),
        gxe.ExpectTableRowCountToEqual(
            value={"$PARAMETER": "customers_with_a_sale"},
            description="every customer with a sale by the month end has a row",
        ),
    ],
)
