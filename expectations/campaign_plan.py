"""Suite of `campaigns.campaign_plan` for the plan designed in one month (the gate `suite_campaign_plan`).

Validated on the plan's rows (test and control of every campaign), each with columns the gate adds:

- `_without_consent`: the customer_id when marts.dim_customers does not record e-mail consent for the customer;
- `_in_global_control`: the customer_id when the customer belongs to the global control group (the design
  stage's salted hash at its configured share);
- per campaign, repeated on its rows: `budget` and `committed_cost` (test contacts x offer cost),
  `control_share_deviation` (|control / selected - configured control share|) and `control_share_tolerance`
  (the larger of `tolerance` and 1 / selected: a control group is a whole number of customers).
"""

import great_expectations as gx
import great_expectations.expectations as gxe

suite = gx.ExpectationSuite(
    name="campaign_plan",
    expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", description="every assignment names a customer"),
        gxe.ExpectColumnValuesToBeInSet(
            column="group", value_set=["test", "control"], description="every assignment is test or control"
        ),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", description="no customer is in two campaigns"),
        gxe.ExpectColumnValuesToBeNull(column="_without_consent", description="no customer without consent"),
        gxe.ExpectColumnValuesToBeNull(
            column="_in_global_control", description="no customer of the global control group"
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="control_share_tolerance",
            column_B="control_share_deviation",
            or_equal=True,
            description="each campaign's control share is within tolerance of its configured share",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="budget",
            column_B="committed_cost",
            or_equal=True,
            description="each campaign's test group costs no more than its budget",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="treatment_probability",
            min_value=0,
            max_value=1,
            strict_min=True,
            description="treatment_probability is in (0, 1]",
        ),
    ],
)
