"""Suite of `raw.orders`: the order lines a source delivered for one month (the gate `suite_raw_orders`).

Validated on the month's rows of `raw.orders` (the first month: its whole history) with three columns the gate
adds from the warehouse:

- `_unknown_customer_id`: the order's customer_id when the source delivers customers and none has that id;
- `_unknown_product_id`: the order's product_id when the source delivers products and none has that id;
- `_order_id_collected_before`: the order_id when an earlier month already delivered it (a month sent twice).

Parameters: `month_start` (None for the first month, which carries the history), `next_month_start`, `now`.
"""

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.rules import every_line_reads, known, present, reads_as

suite = gx.ExpectationSuite(
    name="raw_orders",
    expectations=[
        # schema and types
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["order_id", "customer_id", "order_date", "product_id", "quantity", "amount", "order_type"],
            exact_match=False,
            description="raw.orders has every column of the contract",
        ),
        every_line_reads(),
        reads_as("order_date", "a date (ISO 8601, e.g. 2024-01-31)"),
        reads_as("amount", "a number (. for decimals, no thousands separator)"),
        reads_as("quantity", "a whole number"),
        reads_as("discount_amount", "a number (. for decimals, no thousands separator)"),
        # required values and keys
        present("customer_id", "every order has a customer_id"),
        present("order_date", "every order has an order_date", typed=True),
        present("amount", "every order has an amount", typed=True),
        gxe.ExpectColumnValuesToBeUnique(column="order_id", description="no order_id appears twice"),
        known("_order_id_collected_before", "no order_id was already collected in an earlier month"),
        # values
        gxe.ExpectColumnValuesToBeBetween(
            column="amount",
            min_value=0,
            description="amount is not negative (a return is a positive amount with order_type return)",
        ),
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, description="quantity is not negative"),
        gxe.ExpectColumnValuesToBeBetween(
            column="discount_amount", min_value=0, description="discount_amount is not negative"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="order_type", value_set=["sale", "return"], description="order_type is sale, return or empty"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="order_date",
            min_value={"$PARAMETER": "month_start"},
            max_value={"$PARAMETER": "next_month_start"},
            strict_max=True,
            description="every order is dated inside the month collected",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="order_date", max_value={"$PARAMETER": "now"}, description="no order is dated in the future"
        ),
        # referential integrity
        known("_unknown_customer_id", "every order's customer_id is a delivered customer"),
        known("_unknown_product_id", "every order's product_id is a delivered product"),
    ],
)
