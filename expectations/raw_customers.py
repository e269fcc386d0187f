"""Suite of `raw.customers`: the customer snapshots a source delivered for one month (`suite_raw_customers`).

Validated on the month's rows of `raw.customers` (the first month: every snapshot up to it). Parameters:
`next_month_start`, `now`.
"""

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.rules import every_line_reads, present, reads_as

suite = gx.ExpectationSuite(
    name="raw_customers",
    expectations=[
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["customer_id", "full_name", "email", "phone", "signup_date", "email_consent"],
            exact_match=False,
            description="raw.customers has every column of the contract",
        ),
        every_line_reads(),
        reads_as("signup_date", "a date (ISO 8601, e.g. 2024-01-31)"),
        reads_as("email_consent", "a yes/no value (true/false, yes/no, y/n, t/f, 1/0)"),
        present("customer_id", "every customer has a customer_id"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["customer_id", "_loaded_month"], description="no customer_id appears twice in a snapshot"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="signup_date",
            max_value={"$PARAMETER": "next_month_start"},
            strict_max=True,
            description="nobody signed up after the month collected",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="signup_date", max_value={"$PARAMETER": "now"}, description="no sign-up is dated in the future"
        ),
    ],
)
