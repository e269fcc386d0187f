"""Blocking gates on what execute hands to the channel: only the approved plan's test group, each contact once,
with consent; the outgoing list is validated before the first contact is sent."""

from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    asset_check,
)

from expectations import (
    contact_list,
)
from expectations.adapter import validate
from models.campaign_rules import consenting_customers
from models.ids import is_member
from orchestration.gates import (
    derived_gate_check,
    gate_result,
    rule_counts_result,
)
from orchestration.lib.months import next_month, partition_month
from orchestration.lib.queries import (
    DELIVERIES_TABLE,
    PLAN_TABLE,
)
from orchestration.lib.warehouse import Warehouse
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource


@asset_check(asset="campaign_delivery", blocking=True, partitions_def=monthly_partitions)
def only_test_group_contacted_once(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    """Delivered contacts are test-group customers of the plan, each at most once per campaign."""
    delivery_month = pd.Timestamp(next_month(partition_month(context.partition_key)))
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return rule_counts_result({})
    counts = warehouse.query(
        f"""
        with delivered as (select * from {DELIVERIES_TABLE} where delivery_month = ?),
        test as (select campaign_id, customer_id from {PLAN_TABLE} where delivery_month = ? and "group" = 'test')
        select
            (select count(*) from delivered d where not exists (
                select 1 from test t where t.campaign_id = d.campaign_id and t.customer_id = d.customer_id
            )) as not_in_test_group,
            (select count(*) - count(distinct (campaign_id, customer_id)) from delivered) as duplicate_contacts
        """,
        [delivery_month, delivery_month],
    ).iloc[0]
    return rule_counts_result({rule: int(value) for rule, value in counts.items()})


def contact_list_frame(warehouse: Warehouse, month: date) -> pd.DataFrame:
    """The contacts delivered for the month after `month`, with the columns the contact_list suite reads."""
    delivery_month = pd.Timestamp(next_month(month))
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return pd.DataFrame(
            {
                column: pd.Series(dtype="str")
                for column in (
                    "campaign_id",
                    "customer_id",
                    "idempotency_key",
                    "_not_in_test_group",
                    "_without_consent",
                )
            }
        )
    return warehouse.query(
        f"""
        with
        delivered as (select * from {DELIVERIES_TABLE} where delivery_month = ?),
        test as (
            select campaign_id, customer_id from {PLAN_TABLE} where delivery_month = ? and "group" = 'test'
        ),
        consenting as (select customer_id from marts.dim_customers where coalesce(email_consent, false))
        select
            d.*,
            case when t.customer_id is null then d.customer_id end as _not_in_test_group,
            case when c.customer_id is null then d.customer_id end as _without_consent
        from delivered as d
        left join test as t on t.campaign_id = d.campaign_id and t.customer_id = d.customer_id
        left join consenting as c on c.customer_id = d.customer_id
        order by d.campaign_id, d.customer_id
        """,
        [delivery_month, delivery_month],
    )


#: Columns a failed contact-list gate shows of its offending rows.
CONTACT_LIST_SAMPLE_COLUMNS = ["campaign_id", "customer_id", "_not_in_test_group", "_without_consent"]


def outgoing_contact_list_gate(
    contacts: pd.DataFrame, test: pd.DataFrame, consent: pd.DataFrame | None, delivery_month: date
) -> tuple[AssetCheckResult, str]:
    """The contact_list suite on the list execute is about to hand to the channel, before anything is sent.

    `contacts`: campaign_id, customer_id, idempotency_key; `test`: the approved plan's test-group assignments;
    `consent`: customer_id, email_consent as re-read at send time (None: no consent data, nobody may be contacted).
    """
    frame = contacts[["campaign_id", "customer_id", "idempotency_key"]].reset_index(drop=True)
    planned = pd.MultiIndex.from_frame(test[["campaign_id", "customer_id"]].astype(str))
    in_plan = pd.MultiIndex.from_frame(frame[["campaign_id", "customer_id"]].astype(str)).isin(planned)
    consenting = consenting_customers(consent)
    frame["_not_in_test_group"] = frame["customer_id"].where(~in_plan)
    frame["_without_consent"] = frame["customer_id"].where(~is_member(frame["customer_id"], consenting))
    validation = validate(frame, contact_list.suite)
    return gate_result(
        validation,
        frame,
        f"contact list for {delivery_month:%Y-%m} (nothing sent)",
        CONTACT_LIST_SAMPLE_COLUMNS,
    )


def contact_list_gate(warehouse: WarehouseResource, month: date) -> tuple[AssetCheckResult, str]:
    with warehouse.session():
        frame = contact_list_frame(warehouse, month)
    validation = validate(frame, contact_list.suite)
    return gate_result(
        validation,
        frame,
        f"contacts delivered for {next_month(month):%Y-%m}",
        CONTACT_LIST_SAMPLE_COLUMNS,
    )


suite_contact_list = derived_gate_check(
    "campaign_delivery",
    "suite_contact_list",
    contact_list_gate,
    "Great Expectations suite contact_list: only test-group customers of the approved plan, each once, with consent.",
)
