"""Great Expectations 1.x suites of the loop's gates, one module per gated table, and the adapter that runs them.

| module              | gate (orchestration/stages/)   | what it validates                                        |
|---------------------|--------------------------------|----------------------------------------------------------|
| raw_files           | every `suite_raw_<table>`      | the files a raw table came in (audit.deliveries)         |
| raw_orders          | `suite_raw_orders`             | a month of raw.orders                                    |
| raw_customers       | `suite_raw_customers`          | a month of raw.customers                                 |
| raw_products        | `suite_raw_products`           | a month of raw.products                                  |
| raw_contact_log     | `suite_raw_contact_log`        | a month of raw.contact_log                               |
| customer_features   | `suite_customer_features`      | a month of marts.customer_features                       |
| customer_scores     | `suite_customer_scores`        | a month of analytics.customer_scores                     |
| campaign_plan       | `suite_campaign_plan`          | the plan designed in a month (campaigns.campaign_plan)   |
| contact_list        | `suite_contact_list`           | the contacts delivered for a month (campaign_deliveries) |

Each module defines `suite`, a `gx.ExpectationSuite` whose expectations carry a `description` in business words;
month-dependent values are suite parameters, documented in the module. `adapter.validate` runs a suite on a
pandas frame in an ephemeral context; `adapter.check_result` turns the outcome into a Dagster AssetCheckResult.
"""

import sys

# Great Expectations imports pyspark whenever it is installed (great_expectations.compatibility.pyspark), and
# pyspark warns on import about pandas 3. The gates validate pandas frames only: unless this process already
# runs Spark, Great Expectations is imported with pyspark hidden, so the DuckDB path never loads it. Spark code
# imported later still finds pyspark (the entry is removed again).
if "pyspark" not in sys.modules:
    sys.modules["pyspark"] = None  # type: ignore[assignment]
    try:
        import great_expectations  # noqa: F401
    finally:
        del sys.modules["pyspark"]
