"""Suite of `analytics.customer_scores` for one month (the gate `suite_customer_scores`).

One row per customer with an order by the month end (active or lapsed), scored by the month's models. Validated
on the month's rows with `_not_a_buyer` (the customer_id when the customer has no order by the month end).
Parameter: `customers_with_an_order` (distinct customers in marts.fct_orders by then).
"""

import great_expectations as gx
import great_expectations.expectations as gxe

PROBABILITIES = ("churn_probability", "p_alive")

suite = gx.ExpectationSuite(
    name="customer_scores",
    expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", description="every row has a customer_id"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", description="one row per customer"),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} has a value (design needs it)")
            for column in (*PROBABILITIES, "clv", "expected_purchases_next_month", "is_lapsed", "segment")
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, max_value=1, description=f"{column} is a probability in [0, 1]"
            )
            for column in (*PROBABILITIES, "next_best_product_probability")
        ),
        gxe.ExpectColumnValuesToBeBetween(column="clv", min_value=0, description="clv >= 0"),
        gxe.ExpectColumnValuesToBeBetween(
            column="expected_purchases_next_month", min_value=0, description="expected_purchases_next_month >= 0"
        ),
        gxe.ExpectColumnValuesToBeNull(column="_not_a_buyer", description="every scored customer has an order"),
        gxe.ExpectTableRowCountToEqual(
            value={"$PARAMETER": "customers_with_an_order"},
            description="every customer with an order by the month end (active or lapsed) is scored",
        ),
    ],
)
