"""Suite of `raw.contact_log`: the channel's delivery log for one month (`suite_raw_contact_log`).

Validated on the month's rows of `raw.contact_log` with `_unknown_customer_id` (the contacted customer_id when
the source delivers customers and none has that id). Parameters: `month_start` (None for the first month),
`next_month_start`, `now`.
"""

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.rules import every_line_reads, known, present, reads_as

suite = gx.ExpectationSuite(
    name="raw_contact_log",
    expectations=[
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["campaign_id", "customer_id", "offer_id", "channel", "contacted_at"],
            exact_match=False,
            description="raw.contact_log has every column of the contract",
        ),
        every_line_reads(),
        reads_as("contacted_at", "a date (ISO 8601, e.g. 2024-01-31)"),
        reads_as("opened", "a yes/no value (true/false, yes/no, y/n, t/f, 1/0)"),
        reads_as("clicked", "a yes/no value (true/false, yes/no, y/n, t/f, 1/0)"),
        reads_as("unsubscribed", "a yes/no value (true/false, yes/no, y/n, t/f, 1/0)"),
        present("campaign_id", "every contact has a campaign_id"),
        present("customer_id", "every contact has a customer_id"),
        present("contacted_at", "every contact has a contacted_at", typed=True),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["campaign_id", "customer_id"], description="no customer is contacted twice by one campaign"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="contacted_at",
            min_value={"$PARAMETER": "month_start"},
            max_value={"$PARAMETER": "next_month_start"},
            strict_max=True,
            description="every contact is dated inside the month collected",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="contacted_at", max_value={"$PARAMETER": "now"}, description="no contact is dated in the future"
        ),
        known("_unknown_customer_id", "every contacted customer_id is a delivered customer"),
    ],
)
