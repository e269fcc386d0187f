"""The whole loop through Dagster on small simulated worlds: it closes, measures honestly and never
contacts anyone it must not."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from orchestration.cli import LoopOrderError, months_to_run, run_cycles
from orchestration.lib.settings import load_settings
from tests.conftest import YEAR_CUSTOMERS, YEAR_SEEDS

MONTHS = [f"2025-{month:02d}" for month in range(1, 13)]

pytestmark = [pytest.mark.slow, pytest.mark.proof]


def _read(warehouse, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).df()


@pytest.fixture(scope="module")
def loops(simulated_years):
    """Each seed's simulated year (tests/conftest.py: `crm-loop run --cycles 12`), with its settings."""
    worlds = {}
    with pytest.MonkeyPatch.context() as patch:
        for seed, year in simulated_years.items():
            for variable, value in year.environment().items():
                patch.setenv(variable, value)
            worlds[seed] = {"settings": load_settings(), "summary": year.summary, "log": year.log}
    return worlds


def test_every_cycle_ran_and_campaigns_were_measured(loops):
    for seed, world in loops.items():
        ran = _read(world["settings"].warehouse_path, "select distinct as_of_month from analytics.customer_scores")
        assert sorted(f"{month:%Y-%m}" for month in ran["as_of_month"]) == MONTHS, seed
        summary = world["summary"]
        # campaigns delivered in months 2..12 are measured in their delivery month
        assert sorted(summary["month"].unique()) == MONTHS[1:], seed
        assert (summary["n_control"] > 0).all() and (summary["n_test"] > summary["n_control"]).all()
        assert {"true_uplift", "true_incremental_profit"} <= set(summary.columns)


def test_the_run_ends_with_the_cumulative_true_profit_of_the_policy_and_each_baseline(loops):
    for seed, world in loops.items():
        summary, log = world["summary"], world["log"]
        ending = log[log.index("Ground truth of the simulated world") :]
        assert summary["world_version"].iloc[0] in ending.splitlines()[0], seed
        policy = next(line for line in ending.splitlines() if line.strip().startswith("the loop's policy"))
        assert f"{summary['true_incremental_profit'].sum():,.0f}" in policy, (seed, policy)
        for label in ("contacting nobody", "random targeting", "contacting every eligible", "ceiling:", "oracle:"):
            assert label in ending, (seed, label)


def test_a_campaign_costs_its_contacts_and_the_vouchers_its_test_group_redeemed(loops):
    """The measured cost is read from the orders: the vouchers (discount_code = the offer) the test group
    redeemed in the delivery month, below one per responder."""
    for seed, world in loops.items():
        checked = _read(
            world["settings"].warehouse_path,
            """
            with redeemed as (
                select o.campaign_id, sum(f.discount_amount) as vouchers, count(distinct f.customer_id) as redeemers
                from campaigns.campaign_outcomes as o
                join marts.fct_orders as f
                  on f.customer_id = o.customer_id and f.discount_code = o.offer_id
                 and f.order_date >= o.delivery_month and f.order_date < o.delivery_month + interval 1 month
                where o."group" = 'test'
                group by o.campaign_id
            )
            select r.campaign_id, r.n_test, r.responders_test, r.redemptions, r.voucher_cost, r.campaign_cost,
                   coalesce(d.vouchers, 0) as vouchers, coalesce(d.redeemers, 0) as redeemers, f.contact_cost
            from campaigns.campaign_results as r
            left join redeemed as d using (campaign_id)
            join reference.offers as f using (offer_id)
            """,
        )
        assert len(checked) > 10, seed
        pd.testing.assert_series_equal(checked["voucher_cost"], checked["vouchers"].astype(float), check_names=False)
        expected_cost = checked["n_test"] * checked["contact_cost"].astype(float) + checked["vouchers"].astype(float)
        pd.testing.assert_series_equal(checked["campaign_cost"], expected_cost, check_names=False)
        assert (checked["redemptions"] == checked["redeemers"]).all(), seed
        share = checked["redemptions"].sum() / checked["responders_test"].sum()
        assert 0 < share < 1, (seed, share)


def test_measured_confidence_intervals_cover_the_true_uplift(loops):
    summary = pd.concat([world["summary"] for world in loops.values()], ignore_index=True)
    covered = (summary["ci_low"] <= summary["true_uplift"]) & (summary["true_uplift"] <= summary["ci_high"])
    assert len(summary) >= 3 * 11
    assert covered.mean() >= 0.80, summary[["month", "campaign", "measured_uplift", "ci_low", "ci_high", "true_uplift"]]


def test_no_control_or_non_consenting_customer_is_ever_contacted(loops):
    from simulator import SimulatedWorld

    for seed, world in loops.items():
        settings = world["settings"]
        sim = SimulatedWorld(settings.home, seed=seed, n_customers=YEAR_CUSTOMERS)
        plan = _read(settings.warehouse_path, "select * from campaigns.campaign_plan")
        for month in pd.date_range("2025-02-01", periods=len(MONTHS) - 1, freq="MS"):
            contacted = sim.contact_log(month.date())
            if contacted.empty:
                continue
            assigned = plan[plan["delivery_month"] == month].merge(
                contacted, on=["campaign_id", "customer_id"], how="right", indicator=True
            )
            assert (assigned["_merge"] == "both").all(), "contacted customers come from the plan"
            assert (assigned["group"] == "test").all(), "a control customer was contacted"
            consent = sim.customers((month - pd.DateOffset(months=1)).date()).set_index("customer_id")["email_consent"]
            assert consent.reindex(contacted["customer_id"]).fillna(False).all(), "contacted without consent"
            assert not contacted.duplicated(["campaign_id", "customer_id"]).any()


def test_improve_changes_what_is_designed_next(loops):
    for seed, world in loops.items():
        warehouse = world["settings"].warehouse_path
        plan = _read(
            warehouse, "select designed_in_month, policy, count(*) as n from campaigns.campaign_plan group by all"
        )
        first = plan[plan["designed_in_month"] == pd.Timestamp("2025-01-01")]
        later = plan[plan["designed_in_month"] > pd.Timestamp("2025-02-01")]
        assert set(first["policy"]) == {"randomised_pilot"}, seed
        assert "uplift_model" in set(later["policy"]), f"seed {seed}: measured campaigns never reached the design"


def test_rerunning_a_past_month_reproduces_its_tables_and_sends_nothing_again(loops, simulated_years):
    """April again, after the year ran on: nothing learnt or collected later may change April's results."""
    world = loops[YEAR_SEEDS[0]]
    settings = world["settings"]
    queries = {
        "scores": "select * from analytics.customer_scores where as_of_month = '2025-04-01' order by customer_id",
        "plan": "select * from campaigns.campaign_plan where designed_in_month = '2025-04-01' order by all",
        "results": "select * from campaigns.campaign_results where delivery_month = '2025-04-01' order by all",
        "deliveries": "select * exclude (sent_at) from campaigns.campaign_deliveries order by all",
        "rfm": "select * from marts.customer_rfm order by all",
        "raw_orders": "select * from raw.orders order by all",
    }
    before = {name: _read(settings.warehouse_path, sql) for name, sql in queries.items()}
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in simulated_years[YEAR_SEEDS[0]].environment().items():
            patch.setenv(variable, value)
        run_cycles(settings, 1, month=date(2025, 4, 1), quiet=True)
    after = {name: _read(settings.warehouse_path, sql) for name, sql in queries.items()}
    for name in queries:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    deliveries = after["deliveries"]
    assert not deliveries.duplicated(["campaign_id", "customer_id"]).any()


def test_the_world_refuses_to_advance_past_an_unexecuted_campaign(loops):
    from simulator import SimulatedWorld, WorldNotReady

    seed, world = YEAR_SEEDS[1], loops[YEAR_SEEDS[1]]
    settings = world["settings"]
    sim = SimulatedWorld(settings.home, seed=seed, n_customers=YEAR_CUSTOMERS)
    # cycles ran 2025-01..2025-12, so 2026-01's campaigns are executed; 2026-02's are not
    with pytest.raises(WorldNotReady, match="2026-01"):
        sim.orders(date(2026, 2, 1))
    with pytest.raises(LoopOrderError, match="Run 2026-01 first"):
        months_to_run(settings, [date(2025, m, 1) for m in range(1, 13)], 1, date(2026, 3, 1))
