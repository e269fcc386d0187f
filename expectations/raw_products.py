"""Suite of `raw.products`: the product catalogue a source delivered for one month (`suite_raw_products`).

Validated on the month's rows of `raw.products` (the first month: every catalogue up to it).
"""

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.rules import every_line_reads, present, reads_as

suite = gx.ExpectationSuite(
    name="raw_products",
    expectations=[
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["product_id", "product_line", "product_name", "unit_price", "unit_cost"],
            exact_match=False,
            description="raw.products has every column of the contract",
        ),
        every_line_reads(),
        reads_as("unit_price", "a number (. for decimals, no thousands separator)"),
        reads_as("unit_cost", "a number (. for decimals, no thousands separator)"),
        present("product_id", "every product has a product_id"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["product_id", "_loaded_month"], description="no product_id appears twice in a catalogue"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0, description="unit_price is not negative"),
        gxe.ExpectColumnValuesToBeBetween(column="unit_cost", min_value=0, description="unit_cost is not negative"),
    ],
)
