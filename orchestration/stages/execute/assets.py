"""Execute: approve next month's plan, then deliver it to the channel exactly once.

A plan is sent only when the content hash execute reads is the hash that passed every gate of `campaign_plan`
and that was approved (orchestration.lib.campaign_records). In simulation the approval is automatic and recorded as
such; with any other source it waits for a person: `crm-loop approve --month YYYY-MM`, or materialise
`campaign_plan_approval` for the month in the UI with `approved_by` set, then re-execute the month.

Exactly once: every contact has an idempotency key (campaign, customer). Contacts go to the channel in batches,
each batch logged in `campaigns.campaign_deliveries` as soon as the channel took it; the channel itself refuses
a key it already has. A run that dies halfway therefore resumes where it stopped (the keys already logged are
skipped, a batch sent but not logged is offered again and the channel drops it), and once the month's execution
is recorded (`campaigns.executions`) no re-run or backfill sends anything for that month again.
"""

import hashlib
from datetime import date

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset

from models.campaign_design import plan_content_hash
from models.campaign_rules import consenting_customers
from models.ids import is_member
from orchestration.lib.campaign_records import (
    AUTOMATIC_SIMULATION,
    MANUAL,
    approval_of,
    execution_of,
    gates_not_passed,
    record_approval,
    record_execution,
)
from orchestration.lib.months import next_month, partition_month
from orchestration.lib.queries import DELIVERIES_TABLE, plan_designed_in
from orchestration.partitions import monthly_partitions
from orchestration.resources import ChannelResource, SourceResource, WarehouseResource
from orchestration.stages.design.checks import clear_plan_gates, plan_gate_rules
from orchestration.stages.execute.checks import outgoing_contact_list_gate

DELIVERY_BATCH = 1000


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


def contacts_at_send_time(test: pd.DataFrame, consent: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
    """The test-group rows whose consent, re-read now, still allows contact, with their contact details and
    idempotency keys; and how many were suppressed. With no consent data at all, nobody is contacted."""
    if consent is None or test.empty:
        contacts = test.iloc[0:0].assign(email="", phone="")
    else:
        reachable = consent[is_member(consent["customer_id"], consenting_customers(consent))]
        contacts = test.merge(reachable[["customer_id", "email", "phone"]], on="customer_id", how="inner")
    keys = [idempotency_key(c, k) for c, k in zip(contacts["campaign_id"], contacts["customer_id"], strict=True)]
    return contacts.assign(idempotency_key=keys), len(test) - len(contacts)


def deliver_exactly_once(
    warehouse: WarehouseResource,
    channel,
    delivery_month: date,
    contacts: pd.DataFrame,
    batch_size: int = DELIVERY_BATCH,
) -> tuple[int, int]:
    """Hand `contacts` (campaign_id, customer_id, offer_id, email, phone, idempotency_key) to `channel`, skipping
    the keys already in the delivery log; log every batch as soon as the channel took it.

    Returns (newly sent by the channel, skipped because already logged).
    """
    sent_before = already_delivered(warehouse, delivery_month)
    to_send = contacts[~contacts["idempotency_key"].isin(sent_before)]
    newly_sent = 0
    for campaign_id, rows in to_send.groupby("campaign_id", sort=True):
        rows = rows.sort_values("customer_id", kind="stable")
        for start in range(0, len(rows), batch_size):
            batch = rows.iloc[start : start + batch_size]
            newly_sent += channel.deliver(delivery_month, str(campaign_id), batch)
            log = pd.DataFrame(
                {
                    "idempotency_key": batch["idempotency_key"].astype(str),
                    "delivery_month": pd.Timestamp(delivery_month),
                    "campaign_id": batch["campaign_id"].astype(str),
                    "customer_id": batch["customer_id"].astype(str),
                    "offer_id": batch["offer_id"].astype(str),
                    "channel": channel.kind,
                    "sent_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
                }
            )
            warehouse.append_rows(DELIVERIES_TABLE, log)
    return newly_sent, len(contacts) - len(to_send)


class ApprovalConfig(Config):
    """Set `approved_by` to approve the month's plan from the UI (outside simulation)."""

    approved_by: str = ""


@asset(
    key="campaign_plan_approval",
    group_name="execute",
    partitions_def=monthly_partitions,
    deps=["campaign_plan"],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def campaign_plan_approval(
    context: AssetExecutionContext, config: ApprovalConfig, warehouse: WarehouseResource, source: SourceResource
) -> MaterializeResult:
    """`campaigns.plan_approvals`: the approval of the exact plan (its content hash) that passed every gate.

    In simulation the approval is automatic and recorded as such. Otherwise the run stops here until a person
    approves: `crm-loop approve --month YYYY-MM --by NAME`, or materialise this asset with `approved_by` set.
    """
    month = partition_month(context.partition_key)
    plan_hash = plan_content_hash(plan_designed_in(warehouse, month))
    missing = clear_plan_gates(warehouse, month, plan_hash, context.run_id)
    gates = list(plan_gate_rules())
    if missing:
        raise Failure(
            description=f"the plan designed in {month:%Y-%m} (hash {plan_hash[:12]}) has not passed "
            f"{', '.join(missing)}: it is neither approved nor sent",
            metadata={"plan_hash": plan_hash},
        )
    if source.kind == "simulator":
        approval = record_approval(warehouse, month, plan_hash, "simulation", AUTOMATIC_SIMULATION, gates)
    elif config.approved_by.strip():
        approval = record_approval(warehouse, month, plan_hash, config.approved_by.strip(), MANUAL, gates)
    else:
        approval = approval_of(warehouse, month, plan_hash)
    if approval is None:
        raise Failure(
            description=(
                f"the plan designed in {month:%Y-%m} (hash {plan_hash[:12]}) awaits approval. Review it, then run "
                f"`crm-loop approve --month {month:%Y-%m} --by <name>` (or materialise campaign_plan_approval "
                "with approved_by set) and re-run the month: nothing is sent before."
            ),
            metadata={"plan_hash": plan_hash},
        )
    return MaterializeResult(
        metadata={
            "plan_hash": plan_hash,
            "approved_by": str(approval["approved_by"]),
            "mode": str(approval["mode"]),
            "approved_at": str(approval["approved_at"]),
        }
    )


@asset(
    key="campaign_delivery",
    group_name="execute",
    partitions_def=monthly_partitions,
    deps=["campaign_plan_approval"],
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

    Sends only the approved plan whose hash passed every gate, and only a contact list that passes the
    contact_list suite before the first contact is handed over (orchestration.gates). Consent is re-read from
    the source at send time; a customer who withdrew it since the plan was made is suppressed (and stays in the
    test group for measurement: intention to treat). Contacts already in the delivery log are never sent again,
    and a month whose execution is recorded sends nothing, whatever is re-run or backfilled.
    """
    month = partition_month(context.partition_key)
    delivery_month = next_month(month)
    plan = plan_designed_in(warehouse, month)
    plan_hash = plan_content_hash(plan)
    done = execution_of(warehouse, delivery_month)
    if done is not None:
        channel.close_month(delivery_month)
        return MaterializeResult(
            metadata={
                "delivery_month": f"{delivery_month:%Y-%m}",
                "newly_sent": 0,
                "already_executed_at": str(done["completed_at"]),
                "executed_plan_hash": str(done["plan_hash"]),
                "plan_unchanged_since_execution": str(done["plan_hash"]) == plan_hash,
                "channel": channel.kind,
            }
        )
    missing = gates_not_passed(warehouse, month, plan_hash, list(plan_gate_rules()))
    approval = approval_of(warehouse, month, plan_hash)
    if missing or approval is None:
        raise Failure(
            description=f"the plan designed in {month:%Y-%m} (hash {plan_hash[:12]}) is not cleared for sending: "
            + (f"gates not passed: {', '.join(missing)}" if missing else "no approval of this plan hash"),
            metadata={"plan_hash": plan_hash},
        )
    test = plan[plan["group"] == "test"] if len(plan) else plan
    consent = source.consent_at_send_time(month)
    contacts, suppressed = contacts_at_send_time(test, consent)
    checked, message = outgoing_contact_list_gate(contacts, test, consent, delivery_month)
    if not checked.passed:
        raise Failure(description=message, metadata={"plan_hash": plan_hash})
    newly_sent, sent_before = deliver_exactly_once(warehouse, channel, delivery_month, contacts)
    channel.close_month(delivery_month)
    record_execution(
        warehouse,
        {
            "delivery_month": pd.Timestamp(delivery_month),
            "designed_in_month": pd.Timestamp(month),
            "plan_hash": plan_hash,
            "channel": channel.kind,
            "contacts": len(contacts),
            "suppressed_at_send_time": suppressed,
            "run_id": context.run_id,
        },
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(contacts),
            "delivery_month": f"{delivery_month:%Y-%m}",
            "plan_hash": plan_hash,
            "approved_by": f"{approval['approved_by']} ({approval['mode']})",
            "newly_sent": newly_sent,
            "already_sent_before": sent_before,
            "suppressed_no_consent_at_send_time": suppressed,
            "channel": channel.kind,
            "campaigns": MetadataValue.json(
                contacts.groupby("campaign_id").size().astype(int).to_dict() if len(contacts) else {}
            ),
        }
    )
