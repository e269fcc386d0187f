"""Execute (orchestration/stages/execute, lib/campaign_records.py, resources/channel.py): exactly once, gated.

Protected properties: a delivery that fails halfway resumes without sending any contact twice, at the channel or
in the delivery log; the `file` channel writes the documented columns and never writes a key twice; consent is
re-read at send time and no consent data means nobody is contacted; a plan is approved only when its exact
content hash passed every gate, and a changed plan loses its approval; the approve command refuses a plan that
changed since it was reviewed.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from models.campaign_design import plan_content_hash
from orchestration.lib.campaign_records import (
    PLAN_GATES,
    PlanNotCleared,
    approval_of,
    approve_from_command_line,
    gates_not_passed,
    record_approval,
    record_gate,
)
from orchestration.lib.queries import DELIVERIES_TABLE, PLAN_TABLE
from orchestration.resources import ChannelResource, DuckDBWarehouseResource, WarehouseResource
from orchestration.resources.channel import EXPORT_COLUMNS
from orchestration.stages.execute.assets import contacts_at_send_time, deliver_exactly_once, idempotency_key

MONTH = date(2025, 3, 1)
DELIVERY = date(2025, 4, 1)


@pytest.fixture
def warehouse(tmp_path) -> WarehouseResource:
    return DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))


def contacts(n: int, campaign: str = "2025-04-retention") -> pd.DataFrame:
    ids = [f"C{i:07d}" for i in range(n)]
    return pd.DataFrame(
        {
            "campaign_id": campaign,
            "customer_id": ids,
            "offer_id": "retain_voucher",
            "email": [f"{i}@example.com" for i in ids],
            "phone": "+49 155 0",
            "idempotency_key": [idempotency_key(campaign, i) for i in ids],
        }
    )


class FlakyChannel:
    """A channel that keeps every key it received, drops keys it already has, and fails after `fail_after`."""

    kind = "flaky"

    def __init__(self, fail_after: int | None = None) -> None:
        self.received: list[str] = []
        self.fail_after = fail_after

    def deliver(self, delivery_month, campaign_id, rows: pd.DataFrame) -> int:
        new = [key for key in rows["idempotency_key"] if key not in set(self.received)]
        if self.fail_after is not None and len(self.received) + len(new) > self.fail_after:
            # The channel took part of the batch, then the connection dropped.
            self.received += new[: self.fail_after - len(self.received)]
            raise ConnectionError("channel went away")
        self.received += new
        return len(new)


def test_a_delivery_that_fails_halfway_resumes_without_duplicates(warehouse: WarehouseResource) -> None:
    rows = pd.concat([contacts(2500), contacts(700, "2025-04-winback")], ignore_index=True)
    channel = FlakyChannel(fail_after=1700)
    with pytest.raises(ConnectionError):
        deliver_exactly_once(warehouse, channel, DELIVERY, rows, batch_size=500)
    logged = warehouse.query(f"select * from {DELIVERIES_TABLE}")
    assert 0 < len(logged) < len(rows)
    channel.fail_after = None
    newly_sent, skipped = deliver_exactly_once(warehouse, channel, DELIVERY, rows, batch_size=500)
    assert skipped == len(logged)
    log = warehouse.query(f"select * from {DELIVERIES_TABLE}")
    assert len(channel.received) == len(set(channel.received)) == len(rows)
    assert len(log) == len(rows) and not log["idempotency_key"].duplicated().any()
    # A re-run (or backfill) sends nothing at all.
    assert deliver_exactly_once(warehouse, channel, DELIVERY, rows) == (0, len(rows))
    assert len(channel.received) == len(rows)


def test_file_channel_writes_the_documented_columns_once_per_key(tmp_path) -> None:
    channel = ChannelResource(kind="file", exports_dir=str(tmp_path / "exports"), home=str(tmp_path))
    rows = contacts(10)
    assert channel.deliver(DELIVERY, "2025-04-retention", rows.iloc[:6]) == 6
    assert channel.deliver(DELIVERY, "2025-04-retention", rows) == 4  # the first six are already there
    assert channel.deliver(DELIVERY, "2025-04-retention", rows) == 0
    exported = pd.read_csv(tmp_path / "exports" / "2025-04-retention.csv", dtype=str)
    assert list(exported.columns) == EXPORT_COLUMNS
    assert len(exported) == 10 and not exported["idempotency_key"].duplicated().any()
    assert set(exported["send_date"]) == {"2025-04-01"}
    assert not list((tmp_path / "exports").glob("*.partial"))


def test_consent_is_re_read_at_send_time() -> None:
    test = contacts(4)[["campaign_id", "customer_id", "offer_id"]]
    consent = pd.DataFrame(
        {
            "customer_id": test["customer_id"],
            "email": "x@example.com",
            "phone": "1",
            "email_consent": [True, False, None, True],
        }
    )
    sent, suppressed = contacts_at_send_time(test, consent)
    assert list(sent["customer_id"]) == ["C0000000", "C0000003"] and suppressed == 2
    assert sent["idempotency_key"].tolist() == [idempotency_key("2025-04-retention", c) for c in sent["customer_id"]]
    nobody, suppressed = contacts_at_send_time(test, None)
    assert nobody.empty and suppressed == 4


def write_plan(warehouse: WarehouseResource, groups: list[str]) -> pd.DataFrame:
    plan = pd.DataFrame(
        {
            "campaign_id": "2025-04-retention",
            "customer_id": [f"C{i:07d}" for i in range(len(groups))],
            "offer_id": "retain_voucher",
            "group": groups,
            "delivery_month": pd.Timestamp(DELIVERY),
            "designed_in_month": pd.Timestamp(MONTH),
        }
    )
    warehouse.replace_rows(PLAN_TABLE, plan, {"designed_in_month": pd.Timestamp(MONTH)})
    return plan


def test_only_a_plan_hash_that_passed_every_gate_can_be_approved(warehouse: WarehouseResource) -> None:
    plan = write_plan(warehouse, ["test", "test", "control"])
    plan_hash = plan_content_hash(plan)
    assert gates_not_passed(warehouse, MONTH, plan_hash) == list(PLAN_GATES)
    with pytest.raises(PlanNotCleared, match="has not passed"):
        record_approval(warehouse, MONTH, plan_hash, "alice")
    record_gate(warehouse, MONTH, plan_hash, PLAN_GATES[0], True)
    record_gate(warehouse, MONTH, plan_hash, PLAN_GATES[1], False)
    with pytest.raises(PlanNotCleared, match=PLAN_GATES[1]):
        record_approval(warehouse, MONTH, plan_hash, "alice")
    record_gate(warehouse, MONTH, plan_hash, PLAN_GATES[1], True)
    approval = record_approval(warehouse, MONTH, plan_hash, "alice")
    assert approval["approved_by"] == "alice" and approval_of(warehouse, MONTH, plan_hash) is not None
    # The plan changes (a re-design): the new hash has neither gates nor approval.
    changed = write_plan(warehouse, ["test", "control", "control"])
    assert approval_of(warehouse, MONTH, plan_content_hash(changed)) is None
    assert gates_not_passed(warehouse, MONTH, plan_content_hash(changed)) == list(PLAN_GATES)


def test_the_approve_command_refuses_a_plan_changed_since_review(warehouse: WarehouseResource) -> None:
    plan = write_plan(warehouse, ["test", "test", "control"])
    reviewed = plan_content_hash(plan)
    for gate in PLAN_GATES:
        record_gate(warehouse, MONTH, reviewed, gate, True)
    write_plan(warehouse, ["test", "control", "test"])
    with pytest.raises(PlanNotCleared, match="review it again"):
        approve_from_command_line(warehouse, MONTH, "bob", reviewed[:12])
    write_plan(warehouse, ["test", "test", "control"])
    summary = approve_from_command_line(warehouse, MONTH, "bob", reviewed[:12])
    assert "approved plan" in summary and approval_of(warehouse, MONTH, reviewed)["approved_by"] == "bob"


def test_outside_simulation_the_plan_waits_for_a_recorded_approval(warehouse: WarehouseResource, tmp_path) -> None:
    from dagster import Failure, build_asset_context

    from orchestration.resources import SourceResource
    from orchestration.stages.design.checks import plan_gate_rules
    from orchestration.stages.execute.assets import ApprovalConfig, campaign_plan_approval

    plan = write_plan(warehouse, ["test", "test", "control"])
    assert set(PLAN_GATES) <= set(plan_gate_rules())  # every blocking check of the plan is a gate of execute
    for gate in plan_gate_rules():
        record_gate(warehouse, MONTH, plan_content_hash(plan), gate, True)
    files = SourceResource(kind="files", home=str(tmp_path), files_dir=str(tmp_path / "inbox"))
    with pytest.raises(Failure, match="awaits approval"):
        campaign_plan_approval(
            build_asset_context(partition_key=MONTH.isoformat()), ApprovalConfig(), warehouse=warehouse, source=files
        )
    # Approving from the UI: the same asset with `approved_by` set records a manual approval.
    result = campaign_plan_approval(
        build_asset_context(partition_key=MONTH.isoformat()),
        ApprovalConfig(approved_by="carol"),
        warehouse=warehouse,
        source=files,
    )
    assert result.metadata["mode"] == "manual" and result.metadata["approved_by"] == "carol"
    simulated = SourceResource(kind="simulator", home=str(tmp_path))
    auto = campaign_plan_approval(
        build_asset_context(partition_key=MONTH.isoformat()), ApprovalConfig(), warehouse=warehouse, source=simulated
    )
    assert auto.metadata["plan_hash"] == plan_content_hash(plan)


def test_a_gate_that_has_not_judged_this_plan_validates_it_before_approval(warehouse, monkeypatch) -> None:
    from orchestration.stages.design import checks as design_checks

    plan = write_plan(warehouse, ["test", "test", "control"])
    plan_hash = plan_content_hash(plan)
    judged = []

    def rule(name: str, verdict: bool):
        def check(w, month) -> bool:
            judged.append(name)
            return verdict

        return check

    monkeypatch.setattr(
        design_checks, "plan_gate_rules", lambda: {"recorded": rule("recorded", True), "silent": rule("silent", False)}
    )
    record_gate(warehouse, MONTH, plan_hash, "recorded", True)
    assert design_checks.clear_plan_gates(warehouse, MONTH, plan_hash) == ["silent"]
    assert judged == ["silent"]  # a gate that already passed this exact plan is not asked again
    assert gates_not_passed(warehouse, MONTH, plan_hash, ["recorded", "silent"]) == ["silent"]


def test_a_contact_list_breaking_the_suite_is_stopped_before_sending() -> None:
    from orchestration.stages.execute.checks import outgoing_contact_list_gate

    test = pd.DataFrame({"campaign_id": ["c1", "c1", "c2"], "customer_id": ["A", "B", "C"], "group": "test"})
    consent = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "email_consent": [True, True, False, True]})
    keys = {(c, k): idempotency_key(c, k) for c, k in [("c1", "A"), ("c1", "B"), ("c2", "C"), ("c1", "D")]}

    def listed(*pairs):
        return pd.DataFrame(
            {
                "campaign_id": [c for c, _ in pairs],
                "customer_id": [k for _, k in pairs],
                "idempotency_key": [keys[pair] for pair in pairs],
            }
        )

    good, _ = outgoing_contact_list_gate(listed(("c1", "A"), ("c1", "B")), test, consent, DELIVERY)
    assert good.passed

    bad, message = outgoing_contact_list_gate(
        listed(("c1", "A"), ("c1", "A"), ("c2", "C"), ("c1", "D")), test, consent, DELIVERY
    )
    assert not bad.passed
    assert "nothing sent" in message
    assert "only test-group customers of the approved plan are contacted" in message  # D is not in the plan
    assert "no customer without consent" in message  # C withdrew
    assert "no customer is contacted twice by a campaign" in message  # A twice
