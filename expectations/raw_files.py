"""Suite of the files a raw table was delivered in, for one month (part of every `suite_raw_<table>` gate).

Validated on the delivery log `audit.deliveries` (one row per file the collect stage read; see
orchestration.lib.raw_tables.read_delivered_file) with `same_content_as`, which the gate fills, for the event tables
(orders, contact_log), with an earlier month's file whose bytes are identical: a month delivered twice. Snapshot tables
(customers, products) may repeat unchanged, and files without rows are not compared (a header-only month is
a legitimate copy of another).
"""

import great_expectations as gx
import great_expectations.expectations as gxe

suite = gx.ExpectationSuite(
    name="raw_files",
    expectations=[
        gxe.ExpectColumnValuesToBeNull(
            column="problems",
            description=(
                "every file is readable as a whole: named <YYYY-MM>, one per month, not empty, "
                "with the table's required columns and no others"
            ),
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="same_content_as", description="no file repeats an earlier month's file (a month delivered twice)"
        ),
    ],
)
