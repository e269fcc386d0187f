"""Execute: deliver next month's campaigns to the channel, exactly once."""

import hashlib

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.partitions import monthly_partitions, next_month, partition_month
from orchestration.queries import DELIVERIES_TABLE, plan_for_delivery
from orchestration.resources import ChannelResource, SourceResource, WarehouseResource


def idempotency_key(campaign_id: str, customer_id: str) -> str:
    """One key per campaign and customer: the channel and the delivery log refuse a second send."""
    return hashlib.sha256(f"{campaign_id}|{customer_id}".encode()).hexdigest()[:24]


def already_delivered(warehouse: WarehouseResource, delivery_month) -> set[str]:
    if not warehouse.table_exists(DELIVERIES_TABLE):
        return set()
    frame = warehouse.query(
        f"select idempotency_key from {DELIVERIES_TABLE} where delivery_month = ?", [pd.Timestamp(delivery_month)]
    )
    return set(frame["idempotency_key"])


@asset(
    key="campaign_delivery",
    group_name="execute",
    partitions_def=monthly_partitions,
    deps=["campaign_plan"],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def campaign_delivery(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    source: SourceResource,
    channel: ChannelResource,
) -> MaterializeResult:
    """`campaigns.campaign_deliveries`: the test-group contacts handed to the channel for next month.

    Consent is re-read from the source at send time; a customer who withdrew it since the plan was made
    is suppressed (and stays in the test group for measurement: intention to treat). Contacts already in
    the delivery log are never sent again, whatever is re-run or backfilled.
    """
    month = partition_month(context.partition_key)
    delivery_month = next_month(month)
    plan = plan_for_delivery(warehouse, delivery_month)
    test = plan[plan["group"] == "test"] if len(plan) else plan
    consent = source.consent_at_send_time(month)
    if consent is None or test.empty:
        contacts = test.iloc[0:0].assign(email="", phone="")
        suppressed = len(test)
    else:
        reachable = consent[consent["email_consent"].fillna(False).astype(bool)]
        contacts = test.merge(reachable[["customer_id", "email", "phone"]], on="customer_id", how="inner")
        suppressed = len(test) - len(contacts)
    keys = zip(contacts["campaign_id"], contacts["customer_id"], strict=True)
    contacts = contacts.assign(idempotency_key=[idempotency_key(campaign, customer) for campaign, customer in keys])
    sent_before = already_delivered(warehouse, delivery_month)
    to_send = contacts[~contacts["idempotency_key"].isin(sent_before)]
    newly_sent = 0
    for campaign_id, rows in to_send.groupby("campaign_id", sort=True):
        newly_sent += channel.deliver(delivery_month, str(campaign_id), rows)
        log = pd.DataFrame(
            {
                "idempotency_key": rows["idempotency_key"].astype(str),
                "delivery_month": pd.Timestamp(delivery_month),
                "campaign_id": rows["campaign_id"].astype(str),
                "customer_id": rows["customer_id"].astype(str),
                "offer_id": rows["offer_id"].astype(str),
                "channel": channel.kind,
                "sent_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        )
        warehouse.append_rows(DELIVERIES_TABLE, log)
    channel.close_month(delivery_month)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(contacts),
            "delivery_month": f"{delivery_month:%Y-%m}",
            "newly_sent": newly_sent,
            "already_sent_before": len(contacts) - len(to_send),
            "suppressed_no_consent_at_send_time": suppressed,
            "channel": channel.kind,
            "campaigns": MetadataValue.json(
                contacts.groupby("campaign_id").size().astype(int).to_dict() if len(contacts) else {}
            ),
        }
    )
