"""The Great Expectations gates: the adapter, each suite on a small warehouse, and what blocking means.

A gate passes on good data, and on bad data fails with each broken rule, the number of bad rows and a few sample
rows; a failed gate stops everything downstream of its asset in the run, with the gate's message.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckResult

from expectations.adapter import check_result, validate
from orchestration.stages.analyse.checks import scores_gate, suite_customer_scores
from orchestration.stages.design.checks import global_control_members, plan_gate
from orchestration.stages.execute.checks import contact_list_gate
from orchestration.stages.warehouse.gates import features_gate

MONTH = date(2025, 3, 1)
NEXT = pd.Timestamp("2025-04-01")


# ------------------------------------------------------------------------------------------------ adapter
def test_the_adapter_reports_each_failing_rule_with_counts_examples_and_samples():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(
        name="adapter_test",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id", description="every row has a customer_id"),
            gxe.ExpectColumnValuesToBeBetween(
                column="amount", min_value={"$PARAMETER": "lowest"}, description="amount is not negative"
            ),
            gxe.ExpectColumnValuesToBeUnique(column="order_id", description="no order_id appears twice"),
        ],
    )
    frame = pd.DataFrame(
        {
            "order_id": ["a", "b", "b", "c"],
            "customer_id": pd.Series(["C1", None, "C3", "C4"], dtype="str"),
            "amount": [1.0, -2.0, 3.0, -4.0],
        }
    )
    validation = validate(frame, suite, {"lowest": 0})
    broken = {b.rule: b for b in validation.breaks}
    assert list(broken) == ["every row has a customer_id", "amount is not negative", "no order_id appears twice"]
    assert broken["amount is not negative"].count == 2 and broken["amount is not negative"].examples == (-2.0, -4.0)
    assert broken["amount is not negative"].positions.tolist() == [1, 3]
    assert broken["no order_id appears twice"].positions.tolist() == [1, 2]
    assert validation.bad_positions().tolist() == [1, 2, 3]

    result = check_result(validation, frame)
    assert isinstance(result, AssetCheckResult) and not result.passed
    assert "amount is not negative: 2 rows (e.g. -2.0, -4.0)" in result.description
    metadata = result.metadata
    assert metadata["rules_broken"].value == 3 and metadata["bad_rows"].value == 3
    assert "no order_id appears twice" in metadata["failing_expectations"].value
    assert "amount is not negative" in metadata["sample_rows"].value

    clean = validate(frame.iloc[[0]], suite, {"lowest": 0})
    assert clean.success and check_result(clean, frame.iloc[[0]]).passed


# -------------------------------------------------------------------------------- gates on a small warehouse
@pytest.fixture
def warehouse(tmp_path):
    """A warehouse with what the derived gates read, all good: three customers with orders, scored and featured;
    a plan of two campaigns; its test group delivered."""
    from orchestration.resources import DuckDBWarehouseResource

    path = tmp_path / "warehouse.duckdb"
    ids = ["C1", "C2", "C3"]
    with duckdb.connect(str(path)) as connection:
        for schema in ("marts", "analytics", "campaigns", "reference"):
            connection.execute(f"create schema {schema}")
        orders = pd.DataFrame(
            {"customer_id": ids, "order_date": pd.to_datetime(["2025-01-05", "2025-02-01", "2025-03-30"])}
        ).assign(is_return=False)
        _create(connection, "marts.fct_orders", orders)
        _create(
            connection, "marts.dim_customers", pd.DataFrame({"customer_id": ids, "email_consent": [True, True, False]})
        )
        scores = pd.DataFrame(
            {
                "customer_id": ids,
                "churn_probability": [0.1, 0.5, 0.9],
                "p_alive": [0.9, 0.5, 0.2],
                "clv": [10.0, 5.0, 1.0],
                "expected_purchases_next_month": [0.3, 0.1, 0.0],
                "is_lapsed": [False, False, True],
                "segment": ["a", "b", "b"],
                "next_best_product_probability": [0.2, None, 0.1],
                "as_of_month": pd.Timestamp(MONTH),
            }
        )
        _create(connection, "analytics.customer_scores", scores)
        features = pd.DataFrame({"customer_id": ids, "as_of_month": pd.Timestamp(MONTH)})
        for column in ("recency_days", "frequency", "orders_1m", "orders_3m", "orders_12m", "days_since_first_order"):
            features[column] = [10, 1, 0]
        features["frequency"] = [3, 1, 1]
        for column in ("monetary", "net_revenue_lifetime", "tenure_days", "return_rate", "contacts_12m"):
            features[column] = [0.0, 0.5, 1.0]
        _create(connection, "marts.customer_features", features)
        objectives = pd.DataFrame(
            {"objective": ["retention", "winback"], "budget": [100.0, 100.0], "control_share": [0.5, 0.5]}
        )
        offers = pd.DataFrame({"offer_id": ["voucher"], "contact_cost": [1.0], "incentive_cost": [9.0]})
        _create(connection, "reference.campaign_objectives", objectives)
        _create(connection, "reference.offers", offers)
        plan = pd.DataFrame(
            {
                "campaign_id": ["2025-04-retention", "2025-04-retention"],
                "customer_id": ["C1", "C2"],
                "offer_id": "voucher",
                "group": ["test", "control"],
                "treatment_probability": 0.5,
                "objective": "retention",
                "delivery_month": NEXT,
                "designed_in_month": pd.Timestamp(MONTH),
            }
        )
        _create(connection, "campaigns.campaign_plan", plan)
        deliveries = pd.DataFrame(
            {
                "idempotency_key": ["k1"],
                "delivery_month": NEXT,
                "campaign_id": ["2025-04-retention"],
                "customer_id": ["C1"],
            }
        )
        _create(connection, "campaigns.campaign_deliveries", deliveries)
    return DuckDBWarehouseResource(path=str(path))


def _create(connection, table: str, frame: pd.DataFrame) -> None:
    connection.register("new_rows", frame)
    connection.execute(f"create table {table} as select * from new_rows")
    connection.unregister("new_rows")


def _sql(warehouse, *statements: str) -> None:
    with warehouse.connect() as connection:
        for statement in statements:
            connection.execute(statement)


def test_every_derived_gate_passes_on_good_data(warehouse):

    for result, message in (
        features_gate(warehouse, MONTH),
        scores_gate(warehouse, MONTH),
        plan_gate(warehouse, MONTH, global_control_share=0.0),
        contact_list_gate(warehouse, MONTH),
    ):
        assert result.passed and message == "", result.description


def test_the_features_gate_wants_every_value_a_model_needs_and_every_buyer(warehouse):

    _sql(
        warehouse,
        "update marts.customer_features set recency_days = null where customer_id = 'C2'",
        "update marts.customer_features set return_rate = 1.5 where customer_id = 'C3'",
        "delete from marts.customer_features where customer_id = 'C1'",
    )
    result, message = features_gate(warehouse, MONTH)
    assert not result.passed
    assert "recency_days has a value (a model needs it): 1 row" in message
    assert "return_rate is in [0, 1]: 1 row (e.g. 1.5)" in message
    assert "every customer with a sale by the month end has a row" in message and "found 2" in message


def test_the_scores_gate_wants_probabilities_and_every_customer_scored_once(warehouse):

    _sql(
        warehouse,
        "update analytics.customer_scores set churn_probability = 1.2 where customer_id = 'C1'",
        "update analytics.customer_scores set clv = null where customer_id = 'C2'",
        "insert into analytics.customer_scores select * from analytics.customer_scores where customer_id = 'C3'",
    )
    result, message = scores_gate(warehouse, MONTH)
    assert not result.passed
    assert "churn_probability is a probability in [0, 1]: 1 row (e.g. 1.2)" in message
    assert "clv has a value (design needs it): 1 row" in message
    assert "one row per customer: 2 rows (e.g. 'C3', 'C3')" in message
    assert result.metadata["sample_rows"].value.count("C3") >= 1


def test_the_plan_gate_checks_consent_holdout_control_share_budget_and_overlap(warehouse):

    _sql(
        warehouse,
        # C3 has no consent; C2 joins a second campaign; the winback campaign has no control group and costs
        # 2 x 10 > its budget once the budget is cut to 15
        """insert into campaigns.campaign_plan values
            ('2025-04-winback', 'C3', 'voucher', 'test', 1.0, 'winback', '2025-04-01', '2025-03-01'),
            ('2025-04-winback', 'C2', 'voucher', 'test', 1.0, 'winback', '2025-04-01', '2025-03-01')""",
        "update reference.campaign_objectives set budget = 15, control_share = 0.9 where objective = 'winback'",
    )
    result, message = plan_gate(warehouse, MONTH, global_control_share=0.0)
    assert not result.passed
    assert "no customer without consent: 1 row (e.g. 'C3')" in message
    assert "no customer is in two campaigns: 2 rows (e.g. 'C2', 'C2')" in message
    assert "each campaign's control share is within tolerance of its configured share: 2 rows" in message
    assert "each campaign's test group costs no more than its budget: 2 rows" in message

    # the global control group: the design stage's salted hash puts C3 (and not C1, C2) in a half-size holdout
    assert global_control_members(pd.Series(["C1", "C2", "C3"]), 0.5).tolist() == [False, False, True]
    _, message = plan_gate(warehouse, MONTH, global_control_share=0.5)
    assert "no customer of the global control group: 1 row (e.g. 'C3')" in message


def test_the_plan_gate_checks_the_global_control_share_the_design_run_used(warehouse):
    """The share is read from what the design run recorded with its campaigns, not from today's setting: a run
    configured below the environment's share passes, and one that used a share is held to it."""
    _sql(
        warehouse,
        "create table campaigns.campaign_plan_summary "
        "(designed_in_month timestamp, campaign_id varchar, global_control_share double)",
    )

    def designed_with(share: float) -> None:
        _sql(
            warehouse,
            "delete from campaigns.campaign_plan_summary",
            f"insert into campaigns.campaign_plan_summary values ('2025-03-01', '2025-04-retention', {share})",
        )

    designed_with(0.0)
    assert plan_gate(warehouse, MONTH)[0].passed
    assert global_control_members(pd.Series(["C1", "C2"]), 0.95).all()  # the planned customers, at 95%
    designed_with(0.95)
    result, message = plan_gate(warehouse, MONTH)
    assert not result.passed and "no customer of the global control group" in message


def test_the_contact_list_gate_allows_only_the_plan_test_group_once(warehouse):

    _sql(
        warehouse,
        "insert into campaigns.campaign_deliveries values ('k2', '2025-04-01', '2025-04-retention', 'C2')",
        "insert into campaigns.campaign_deliveries values ('k1', '2025-04-01', '2025-04-retention', 'C1')",
    )
    result, message = contact_list_gate(warehouse, MONTH)
    assert not result.passed
    assert "only test-group customers of the approved plan are contacted: 1 row (e.g. 'C2')" in message
    assert "no customer is contacted twice by a campaign: 2 rows" in message
    assert "every contact is sent once: 2 rows (e.g. 'k1', 'k1')" in message


# -------------------------------------------------------------------------------------------------- blocking
def test_a_failed_gate_stops_everything_downstream_with_its_message(warehouse):
    from dagster import AssetKey, asset, materialize

    from orchestration.partitions import monthly_partitions

    @asset(key="customer_scores", partitions_def=monthly_partitions)
    def bad_scores(context) -> None:
        _sql(warehouse, "update analytics.customer_scores set p_alive = -0.5 where customer_id = 'C2'")

    @asset(key="campaign_plan", deps=[AssetKey("customer_scores")], partitions_def=monthly_partitions)
    def downstream() -> None:
        raise AssertionError("must not run")

    result = materialize(
        [bad_scores, downstream, suite_customer_scores],
        partition_key=MONTH.isoformat(),
        resources={"warehouse": warehouse},
        raise_on_error=False,
    )
    assert not result.success
    materialised = {event.asset_key for event in result.get_asset_materialization_events()}
    assert materialised == {AssetKey("customer_scores")}
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "customer_scores_suite_customer_scores"
    assert "p_alive is a probability in [0, 1]: 1 row (e.g. -0.5)" in failure.event_specific_data.error.message
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["rules_broken"].value == 1


def test_every_stage_output_has_a_blocking_suite(dbt_manifest):
    from dagster import AssetKey

    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    specs = {(key.asset_key, key.name): graph.get_check_spec(key) for key in graph.asset_check_keys}
    raw = ("orders", "customers", "products", "contact_log")
    expected = {
        *((AssetKey(["raw", table]), f"suite_raw_{table}") for table in raw),
        (AssetKey(["marts", "customer_features"]), "suite_customer_features"),
        (AssetKey("customer_scores"), "suite_customer_scores"),
        (AssetKey("campaign_plan"), "suite_campaign_plan"),
        (AssetKey("campaign_delivery"), "suite_contact_list"),
    }
    assert expected <= set(specs)
    assert all(specs[key].blocking for key in expected)


# ------------------------------------------------------------------------------------------ the raw suites
def test_the_raw_suites_pass_a_clean_first_month_of_20000_customers(tmp_path):
    """The burn-in month, the loop's largest delivery, passes every raw rule (`make bench` times it:
    orchestration.benchmark.time_raw_suites)."""
    from orchestration.benchmark import first_month_raw_frames, raw_suite_rows, time_raw_suites

    frames = first_month_raw_frames(tmp_path, 20_000, seed=7)
    assert len(frames["orders"]) > 25_000 and len(frames["customers"]) == 20_000
    timed = time_raw_suites(tmp_path, seed=7)
    assert {name: numbers["broken"] for name, numbers in timed.items()} == {"orders": [], "customers": []}
    assert {name: numbers["rows"] for name, numbers in timed.items()} == {k: len(v) for k, v in frames.items()}
    row = raw_suite_rows(timed)[0]
    assert row["value"] == round(max(n["seconds"] for n in timed.values()), 3) > 0
    assert "broken" not in row["verdict"]
