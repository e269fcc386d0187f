"""Suite of the contacts delivered for one month, `campaigns.campaign_deliveries` (the gate
`suite_contact_list`, on the execute stage's `campaign_delivery`).

Validated on the delivery month's rows of the delivery log with columns the gate adds:

- `_not_in_test_group`: the customer_id when the (campaign, customer) is not a test-group assignment of the
  plan for that delivery month (a control customer, or someone the approved plan does not name);
- `_without_consent`: the customer_id when marts.dim_customers does not record e-mail consent for them.
"""

import great_expectations as gx
import great_expectations.expectations as gxe

suite = gx.ExpectationSuite(
    name="contact_list",
    expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", description="every contact names a customer"),
        gxe.ExpectColumnValuesToBeNull(
            column="_not_in_test_group", description="only test-group customers of the approved plan are contacted"
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["campaign_id", "customer_id"], description="no customer is contacted twice by a campaign"
        ),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", description="no customer is in two campaigns"),
        gxe.ExpectColumnValuesToBeUnique(column="idempotency_key", description="every contact is sent once"),
        gxe.ExpectColumnValuesToBeNull(column="_without_consent", description="no customer without consent"),
    ],
)
