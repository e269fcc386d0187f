"""The simulated world: reproducible, advances only through executed campaigns, reacts to contacts by
exactly its hidden treatment effects, and keeps those effects out of what the platform sees."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from simulator import MonthAlreadySealed, SimulatedWorld, WorldNotReady
from simulator.evaluation import policy_true_profit, true_campaign_effects, true_individual_profit
from simulator.ground_truth import customer_states, expected_outcomes, hidden_traits, traits_dir

JAN, FEB, MAR, APR = (date(2025, month, 1) for month in (1, 2, 3, 4))
OFFERS = pd.DataFrame(
    {
        "offer_id": ["retain_voucher", "winback_voucher"],
        "contact_cost": [0.50, 0.50],
        "incentive_cost": [10.00, 15.00],
    }
)
CONTRACT_DTYPES = {
    "customers": {
        "customer_id": "str",
        "full_name": "str",
        "email": "str",
        "phone": "str",
        "signup_date": "datetime64[us]",
        "email_consent": "bool",
    },
    "orders": {
        "order_id": "str",
        "customer_id": "str",
        "order_date": "datetime64[us]",
        "product_id": "str",
        "quantity": "int64",
        "amount": "float64",
        "discount_code": "str",
        "discount_amount": "float64",
        "order_source": "str",
    },
    "products": {
        "product_id": "str",
        "product_line": "str",
        "product_name": "str",
        "unit_price": "float64",
        "unit_cost": "float64",
    },
    "contact_log": {
        "campaign_id": "str",
        "customer_id": "str",
        "offer_id": "str",
        "channel": "str",
        "contacted_at": "datetime64[us]",
        "opened": "bool",
        "clicked": "bool",
        "unsubscribed": "bool",
    },
}
N_LARGE = 40_000
N_CONTACTED = 20_000


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def _responders(orders: pd.DataFrame, customer_ids: pd.Series) -> np.ndarray:
    return customer_ids.isin(orders["customer_id"]).to_numpy().astype(float)


def _margin(world: SimulatedWorld, orders: pd.DataFrame, customer_ids: pd.Series) -> np.ndarray:
    unit_cost = world.products().set_index("product_id")["unit_cost"]
    margin = orders["amount"] - orders["quantity"] * orders["product_id"].map(unit_cost)
    return margin.groupby(orders["customer_id"]).sum().reindex(customer_ids, fill_value=0.0).to_numpy()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two copies of one world: in `contacted`, 20,000 random customers get a February contact (half of
    them each offer); in `quiet`, nobody does. Same seed, so everything else is identical."""
    contacted = SimulatedWorld(tmp_path_factory.mktemp("contacted"), seed=11, n_customers=N_LARGE)
    quiet = SimulatedWorld(tmp_path_factory.mktemp("quiet"), seed=11, n_customers=N_LARGE)
    customers = contacted.customers(JAN)
    chosen = customers["customer_id"].sample(N_CONTACTED, random_state=5).reset_index(drop=True)
    contacts = pd.DataFrame(
        {
            "customer_id": chosen,
            "offer_id": np.where(np.arange(N_CONTACTED) % 2 == 0, "retain_voucher", "winback_voucher"),
        }
    )
    for offer_id, rows in contacts.groupby("offer_id"):
        contacted.deliver(FEB, f"2025-02-{offer_id}", rows)
    contacted.seal_month(FEB)
    quiet.seal_month(FEB)
    return {
        "contacted": contacted,
        "quiet": quiet,
        "contacts": contacts,
        "orders_contacted": contacted.orders(FEB),
        "orders_quiet": quiet.orders(FEB),
        "truth": expected_outcomes(contacted, FEB, contacts["customer_id"], contacts["offer_id"]),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return SimulatedWorld(tmp_path_factory.mktemp("small"), seed=3, n_customers=3_000)


# ---------------------------------------------------------------- reproducibility
def test_same_seed_gives_the_same_world_and_another_seed_another(tmp_path):
    worlds = [
        SimulatedWorld(tmp_path / name, seed=seed, n_customers=2_000) for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    tables = [(world.customers(JAN), world.orders(JAN), world.products()) for world in worlds]
    for left, right in zip(tables[0], tables[1], strict=True):
        pd.testing.assert_frame_equal(left, right)
    assert not tables[0][0].equals(tables[2][0])
    assert not tables[0][1].equals(tables[2][1])


def test_reopening_a_home_with_another_seed_or_size_is_refused(small):
    pd.testing.assert_frame_equal(SimulatedWorld(small.home, seed=3, n_customers=3_000).orders(JAN), small.orders(JAN))
    with pytest.raises(ValueError, match=r"created with seed=3.*asks for seed=4"):
        SimulatedWorld(small.home, seed=4, n_customers=3_000)
    with pytest.raises(ValueError, match=r"n_customers=3000.*n_customers=5000"):
        SimulatedWorld(small.home, seed=3, n_customers=5_000)


# ---------------------------------------------------------------- time only moves forward
def test_the_world_refuses_to_advance_past_an_unsealed_month(tmp_path):
    world = SimulatedWorld(tmp_path, seed=1, n_customers=500)
    assert world.first_month == JAN and world.burn_in_months == 24
    assert world.is_sealed(JAN) and not world.is_sealed(FEB)
    expected = (
        "The simulated world cannot advance into 2025-02: its campaigns have not been executed. "
        "Run the loop for 2025-01 first (its execute stage delivers the 2025-02 campaigns)."
    )
    for read in (world.orders, world.contact_log, world.customers):
        with pytest.raises(WorldNotReady) as refused:
            read(FEB)
        assert str(refused.value) == expected
    with pytest.raises(WorldNotReady, match=r"into 2025-04: it has only advanced to 2025-01.*Run the loop for 2025-01"):
        world.orders(APR)
    with pytest.raises(WorldNotReady, match=r"starts at 2025-01"):
        world.orders(date(2024, 12, 1))
    with pytest.raises(WorldNotReady, match=r"Run the loop for 2025-01 first"):
        world.seal_month(MAR)
    with pytest.raises(WorldNotReady, match=r"Run the loop for 2025-01 first"):
        world.deliver(
            MAR,
            "2025-03-retention",
            pd.DataFrame({"customer_id": ["C0000001"], "offer_id": ["retain_voucher"]}),
        )

    world.seal_month(FEB)
    assert world.is_sealed(FEB) and world.last_sealed_month == FEB
    assert world.orders(FEB)["order_date"].between("2025-02-01", "2025-02-28").all()
    with pytest.raises(WorldNotReady, match=r"into 2025-03: .*Run the loop for 2025-02 first"):
        world.orders(MAR)


def test_redelivery_is_idempotent_and_a_sealed_month_takes_no_new_contacts(small):
    customers = small.customers(JAN)["customer_id"]
    first = pd.DataFrame({"customer_id": customers[:100], "offer_id": "retain_voucher"})
    overlapping = pd.DataFrame({"customer_id": customers[50:150], "offer_id": "retain_voucher"})
    assert small.deliver(FEB, "2025-02-retention", first) == 100
    assert small.deliver(FEB, "2025-02-retention", first) == 0
    assert small.deliver(FEB, "2025-02-retention", overlapping) == 50
    assert small.deliver(FEB, "2025-02-winback", first.assign(offer_id="winback_voucher")) == 100
    small.seal_month(FEB)
    small.seal_month(FEB)  # idempotent
    orders = small.orders(FEB)

    assert small.deliver(FEB, "2025-02-retention", overlapping) == 0
    with pytest.raises(MonthAlreadySealed, match=r"1 new contacts of campaign 2025-02-retention into 2025-02"):
        small.deliver(
            FEB,
            "2025-02-retention",
            pd.DataFrame({"customer_id": [customers[500]], "offer_id": ["retain_voucher"]}),
        )
    pd.testing.assert_frame_equal(small.orders(FEB), orders)

    log = small.contact_log(FEB)
    assert _dtypes(log) == CONTRACT_DTYPES["contact_log"]
    assert len(log) == 250 and not log.duplicated(["campaign_id", "customer_id"]).any()
    assert (log["contacted_at"] == pd.Timestamp(FEB)).all() and (log["channel"] == "simulated").all()
    assert small.contact_log(JAN).empty
    seal = json.loads((small.root / "seals" / "2025-02.json").read_text())
    assert seal["contacts"] == 250 and seal["campaigns"] == ["2025-02-retention", "2025-02-winback"]


def test_deliveries_name_existing_customers_and_known_offers(small):
    with pytest.raises(ValueError, match=r"unknown offer_id.*'free_lunch'"):
        small.deliver(MAR, "2025-03-x", pd.DataFrame({"customer_id": ["C0000001"], "offer_id": ["free_lunch"]}))
    # customers who sign up during February cannot be contacted at its start
    newcomer = small.customers(FEB)["customer_id"].iloc[-1]
    with pytest.raises(ValueError, match=r"had not signed up before 2025-02"):
        small.deliver(FEB, "2025-02-late", pd.DataFrame({"customer_id": [newcomer], "offer_id": ["retain_voucher"]}))
    with pytest.raises(ValueError, match="campaign_id"):
        small.deliver(FEB, "../escape", pd.DataFrame({"customer_id": ["C0000001"], "offer_id": ["retain_voucher"]}))


# ---------------------------------------------------------------- the observable tables
def test_tables_follow_the_contracts(small):
    orders, customers, products = small.orders(JAN), small.customers(JAN), small.products()
    assert _dtypes(orders) == CONTRACT_DTYPES["orders"]
    assert _dtypes(customers) == CONTRACT_DTYPES["customers"]
    assert _dtypes(products) == CONTRACT_DTYPES["products"]
    assert orders["order_id"].is_unique and customers["customer_id"].is_unique
    assert customers["customer_id"].str.fullmatch(r"C\d{7}").all() and customers["customer_id"].iloc[0] == "C0000001"
    assert len(customers) == 3_000 and (customers["signup_date"] <= "2025-01-31").all()
    assert (orders["amount"] > 0).all() and (orders["quantity"] >= 1).all()
    price = orders["product_id"].map(products.set_index("product_id")["unit_price"])
    np.testing.assert_allclose(orders["amount"], orders["quantity"] * price)
    # the first month carries the 24 burn-in months: 2023-01 .. 2025-01
    assert orders["order_date"].min() >= pd.Timestamp("2023-01-01")
    assert orders["order_date"].max() <= pd.Timestamp("2025-01-31")
    assert orders["order_date"].dt.to_period("M").nunique() == 25
    signup = orders["customer_id"].map(customers.set_index("customer_id")["signup_date"])
    assert (orders["order_date"] >= signup).all(), "nobody orders before signing up"
    assert set(orders["customer_id"]) <= set(customers["customer_id"])


def test_products_span_five_lines_with_margins_between_25_and_60_percent(small):
    products = small.products()
    assert products["product_line"].nunique() >= 5 and products["product_id"].is_unique
    margin_rate = 1 - products["unit_cost"] / products["unit_price"]
    assert margin_rate.between(0.24, 0.61).all()
    by_line = margin_rate.groupby(products["product_line"]).mean()
    assert by_line.min() < 0.3 and by_line.max() > 0.55


def test_new_customers_arrive_every_month_and_consent_erodes(small):
    january, february = small.customers(JAN), small.customers(FEB)
    newcomers = february[~february["customer_id"].isin(january["customer_id"])]
    assert len(newcomers) == round(0.02 * 3_000)
    assert newcomers["signup_date"].between("2025-02-01", "2025-02-28").all()
    assert (newcomers["customer_id"] > january["customer_id"].max()).all()
    assert 0.50 < january["email_consent"].mean() < 0.70
    both = january.merge(february, on="customer_id", suffixes=("_jan", "_feb"))
    assert not (both["email_consent_feb"] & ~both["email_consent_jan"]).any(), "withdrawn consent never returns"
    assert (both["email_consent_jan"] & ~both["email_consent_feb"]).sum() > 0
    assert february["email"].is_unique


def test_the_base_looks_like_a_real_crm_base(pair):
    world = pair["quiet"]
    customers, orders = world.customers(JAN), world.orders(JAN)
    last_12_months = orders[orders["order_date"] >= "2024-02-01"]
    active = last_12_months["customer_id"].nunique()
    assert 0.20 <= active / len(customers) <= 0.35
    assert 1.5 <= len(last_12_months) / active <= 3.0
    assert 40 <= orders["amount"].mean() <= 120


# ---------------------------------------------------------------- contacts and their true effects
def test_a_contact_changes_only_the_contacted_customers_orders(pair):
    contacted_ids = set(pair["contacts"]["customer_id"])
    with_contacts, without = pair["orders_contacted"], pair["orders_quiet"]
    others = [
        frame[~frame["customer_id"].isin(contacted_ids)].reset_index(drop=True) for frame in (with_contacts, without)
    ]
    pd.testing.assert_frame_equal(*others)
    mine = [frame[frame["customer_id"].isin(contacted_ids)] for frame in (with_contacts, without)]
    assert len(mine[0]) > len(mine[1]), "persuadables placed extra orders"
    # the orders a contact leaves in place are untouched: same ids, dates, products and amounts
    kept = mine[1].merge(mine[0], on="order_id", suffixes=("", "_contacted"))
    assert (kept["amount"] == kept["amount_contacted"]).all() and len(kept) > 0.9 * len(mine[1])
    # January (history) does not depend on February's contacts
    pd.testing.assert_frame_equal(pair["contacted"].orders(JAN), pair["quiet"].orders(JAN))


@pytest.mark.parametrize("offer_id", ["retain_voucher", "winback_voucher"])
def test_measured_uplift_matches_the_true_expected_uplift(pair, offer_id):
    rows = (pair["contacts"]["offer_id"] == offer_id).to_numpy()
    ids = pair["contacts"]["customer_id"][rows]
    truth = pair["truth"][rows]
    response_contacted = _responders(pair["orders_contacted"], ids)
    response_quiet = _responders(pair["orders_quiet"], ids)
    difference = response_contacted - response_quiet  # paired: common random numbers
    standard_error = difference.std(ddof=1) / np.sqrt(len(difference))
    true_uplift = (truth["p_response_contacted"] - truth["p_response_not_contacted"]).mean()
    assert true_uplift > 0.005
    assert abs(difference.mean() - true_uplift) < 3.5 * standard_error
    # also where the effect is large: the persuadables the targeting is after
    persuadable = (truth["p_response_contacted"] - truth["p_response_not_contacted"]).to_numpy() > 0.1
    assert persuadable.sum() > 200
    true_persuadable_uplift = (truth["p_response_contacted"] - truth["p_response_not_contacted"])[persuadable].mean()
    persuadable_error = difference[persuadable].std(ddof=1) / np.sqrt(persuadable.sum())
    assert abs(difference[persuadable].mean() - true_persuadable_uplift) < 3.5 * persuadable_error

    p_quiet = truth["p_response_not_contacted"].to_numpy()
    assert abs(response_quiet.mean() - p_quiet.mean()) < 3.5 * np.sqrt((p_quiet * (1 - p_quiet)).sum()) / len(ids)
    p_contacted = truth["p_response_contacted"].to_numpy()
    assert abs(response_contacted.mean() - p_contacted.mean()) < 3.5 * np.sqrt(
        (p_contacted * (1 - p_contacted)).sum()
    ) / len(ids)

    margin_difference = _margin(pair["contacted"], pair["orders_contacted"], ids) - _margin(
        pair["quiet"], pair["orders_quiet"], ids
    )
    true_margin = (truth["expected_margin_contacted"] - truth["expected_margin_not_contacted"]).mean()
    margin_error = margin_difference.std(ddof=1) / np.sqrt(len(ids))
    assert abs(margin_difference.mean() - true_margin) < 3.5 * margin_error


def test_expected_revenue_matches_the_months_orders(pair):
    customers = pair["quiet"].customers(FEB)["customer_id"]
    truth = expected_outcomes(pair["quiet"], FEB, customers, "retain_voucher")
    revenue = pair["orders_quiet"].groupby("customer_id")["amount"].sum().reindex(customers, fill_value=0.0)
    error = revenue.std(ddof=1) * np.sqrt(len(customers))
    assert abs(revenue.sum() - truth["expected_revenue_not_contacted"].sum()) < 3.5 * error
    responders = customers.isin(pair["orders_quiet"]["customer_id"]).sum()
    p = truth["p_response_not_contacted"]
    assert abs(responders - p.sum()) < 3.5 * np.sqrt((p * (1 - p)).sum())


def test_there_are_persuadables_unaffected_and_a_few_harmed_customers(pair):
    world = pair["quiet"]
    customers = world.customers(JAN)["customer_id"]
    traits = hidden_traits(world, FEB).set_index("customer_id")
    for offer_id in ("retain_voucher", "winback_voucher"):
        truth = expected_outcomes(world, FEB, customers, offer_id)
        uplift = truth["p_response_contacted"] - truth["p_response_not_contacted"]
        assert (uplift > 0.10).mean() > 0.01, "persuadables"
        assert uplift.max() > 0.30, "a long right tail"
        assert (uplift.abs() < 0.005).mean() > 0.5, "sure things and lost causes"
        harmed = uplift < -1e-9
        assert 0.005 < harmed.mean() < 0.05, "a few sleeping dogs"
        assert traits.loc[customers[harmed.to_numpy()], "sleeping_dog"].all()
    states = customer_states(world, FEB)
    dead = ~states["alive"]
    # a customer who has dropped out is not moved by a retention voucher; a win-back offer reactivates a few
    assert (states.loc[dead, "persuasion_retain_voucher"] == 0).all()
    reactivation = states.loc[dead & states["signed_up_before_month"], "persuasion_winback_voucher"]
    assert 0 < reactivation.mean() < 0.05 and reactivation.max() <= 0.15


def test_each_voucher_works_best_on_its_audience(pair):
    states = customer_states(pair["quiet"], FEB)
    alive = states[states["alive"] & states["signed_up_before_month"]]
    active = alive[alive["months_since_last_purchase"] <= 3]
    lapsed = alive[alive["months_since_last_purchase"].between(6, 24)]
    assert active["persuasion_retain_voucher"].mean() > 1.5 * lapsed["persuasion_retain_voucher"].mean()
    assert lapsed["persuasion_winback_voucher"].mean() > 1.5 * active["persuasion_winback_voucher"].mean()
    # no single observable explains most of the effect
    delta = alive["persuasion_retain_voucher"]
    for column in ("months_since_last_purchase", "orders_last_12_months"):
        explained = delta.groupby(alive[column].clip(upper=36)).transform("mean")
        assert ((explained - delta.mean()) ** 2).sum() / ((delta - delta.mean()) ** 2).sum() < 0.5, column


def test_targeting_pays_where_contacting_everyone_loses(pair):
    world = pair["quiet"]
    orders = world.orders(JAN)
    customers = world.customers(JAN)["customer_id"]
    last_order = orders.groupby("customer_id")["order_date"].max().reindex(customers)
    months_since = (2025 - last_order.dt.year) * 12 + (2 - last_order.dt.month)
    audiences = {
        "retain_voucher": customers[(months_since <= 12).to_numpy()],
        "winback_voucher": customers[months_since.between(6, 24).to_numpy()],
    }
    for offer_id, audience in audiences.items():
        everyone = policy_true_profit(world, FEB, audience, offer_id, OFFERS)
        individual = true_individual_profit(world, FEB, audience, offer_id, OFFERS)
        top = individual.nlargest(len(audience) // 10, "true_uplift")["customer_id"]
        random = audience.sample(len(top), random_state=0)
        assert everyone < 0, offer_id
        assert policy_true_profit(world, FEB, top, offer_id, OFFERS) > 0, offer_id
        assert policy_true_profit(world, FEB, random, offer_id, OFFERS) < 0, offer_id
        uplift = individual["true_uplift"]
        assert 0.01 < uplift.mean() < 0.08, offer_id


def test_true_campaign_effects_follow_the_definitions(pair):
    world = pair["contacted"]
    plan = pair["contacts"].assign(
        campaign_id=lambda frame: "2025-02-" + frame["offer_id"],
        delivery_month=FEB,
        group=np.where(np.arange(N_CONTACTED) % 10 < 8, "test", "control"),
    )
    effects = true_campaign_effects(world, plan, OFFERS).set_index("campaign_id")
    assert list(effects.index) == ["2025-02-retain_voucher", "2025-02-winback_voucher"]
    for campaign_id, campaign in plan.groupby("campaign_id"):
        truth = expected_outcomes(world, FEB, campaign["customer_id"], campaign["offer_id"])
        uplift = truth["p_response_contacted"] - truth["p_response_not_contacted"]
        test = (campaign["group"] == "test").to_numpy()
        offer = OFFERS.set_index("offer_id").loc[campaign["offer_id"].iloc[0]]
        profit = (
            (truth["expected_margin_contacted"] - truth["expected_margin_not_contacted"])[test].sum()
            - test.sum() * offer["contact_cost"]
            - offer["incentive_cost"] * truth["p_redeem_contacted"][test].sum()
        )
        row = effects.loc[campaign_id]
        assert row["n_test"] == test.sum() and row["n_control"] == (~test).sum()
        assert row["true_uplift"] == pytest.approx(uplift.mean())
        assert row["true_incremental_profit"] == pytest.approx(profit)


# ---------------------------------------------------------------- ground truth stays hidden
def test_ground_truth_is_stored_apart_from_the_observable_state(pair):
    world = pair["contacted"]
    truth_dir = traits_dir(world)
    assert truth_dir == world.home / "simulator" / "ground_truth"
    truth_files = sorted(path.name for path in truth_dir.glob("*.parquet"))
    assert truth_files[0] == "traits_cohort_0000.parquet"
    trait_columns = set(pd.read_parquet(truth_dir / truth_files[0]).columns) - {"customer_id"}
    assert {"purchase_rate", "responsiveness", "sleeping_dog", "death_month_index"} <= trait_columns

    observable_files = [path for path in world.root.rglob("*") if path.is_file() and truth_dir not in path.parents]
    assert {path.name for path in observable_files} >= {"manifest.json", "2025-02.json"}
    for path in observable_files:
        columns = set(pd.read_parquet(path).columns) if path.suffix == ".parquet" else set(json.loads(path.read_text()))
        assert not columns & trait_columns, path

    emitted = set()
    for frame in (world.customers(FEB), world.orders(FEB), world.products(), world.contact_log(FEB)):
        emitted |= set(frame.columns)
    assert emitted == {column for schema in CONTRACT_DTYPES.values() for column in schema}
    public = {name for name in dir(world) if not name.startswith("_")}
    assert not {name for name in public if "trait" in name or "truth" in name or "config" in name}


# ---------------------------------------------------------------- traces of the hidden traits (world v2)
def test_orders_carry_traces_of_price_sensitivity_and_email_responsiveness(pair):
    world = pair["quiet"]
    orders = world.orders(JAN)
    traits = hidden_traits(world, JAN).set_index("customer_id")
    per_customer = (
        orders.assign(
            promotion=orders["discount_code"].eq(world.promotion_code), email=orders["order_source"].eq("email")
        )
        .groupby("customer_id")[["promotion", "email"]]
        .mean()
    )
    per_customer = per_customer.join(traits[["price_sensitivity", "responsiveness"]])
    assert set(orders["order_source"]) == {"web", "email"}
    promoted = orders["discount_code"].eq(world.promotion_code)
    assert 0.15 < promoted.mean() < 0.45
    assert np.allclose(orders.loc[promoted, "discount_amount"], (orders.loc[promoted, "amount"] * 0.10).round(2))
    assert (orders.loc[~promoted, "discount_amount"] == 0).all() and orders.loc[~promoted, "discount_code"].isna().all()
    assert per_customer["promotion"].corr(per_customer["price_sensitivity"], method="spearman") > 0.3
    assert per_customer["email"].corr(per_customer["responsiveness"], method="spearman") > 0.3
    # each trace speaks of its own trait only
    assert abs(per_customer["promotion"].corr(per_customer["responsiveness"], method="spearman")) < 0.05


@pytest.mark.parametrize("offer_id", ["retain_voucher", "winback_voucher"])
def test_redeemed_vouchers_are_recorded_on_orders_as_often_as_the_truth_expects(pair, offer_id):
    rows = (pair["contacts"]["offer_id"] == offer_id).to_numpy()
    expected = pair["truth"]["p_redeem_contacted"][rows].to_numpy()
    orders = pair["orders_contacted"]
    redeemed = orders[orders["discount_code"] == offer_id]
    value = pair["contacted"]._config.offers[offer_id].voucher_value
    assert (redeemed["discount_amount"] == value).all()
    assert redeemed["customer_id"].is_unique, "one voucher per customer"
    assert redeemed["customer_id"].isin(pair["contacts"]["customer_id"][rows]).all()
    assert abs(len(redeemed) - expected.sum()) < 3.5 * np.sqrt((expected * (1 - expected)).sum())
    # not every customer who orders redeems: the cost is measured, not assumed
    buyers = pair["contacts"]["customer_id"][rows].isin(orders["customer_id"]).sum()
    assert len(redeemed) < 0.9 * buyers
    assert not pair["orders_quiet"]["discount_code"].isin([offer_id]).any()


def test_the_contact_log_reports_opens_clicks_and_unsubscribes(pair):
    world = pair["contacted"]
    log = world.contact_log(FEB)
    traits = hidden_traits(world, FEB).set_index("customer_id").loc[log["customer_id"]]
    assert len(log) == N_CONTACTED and not (log["clicked"] & ~log["opened"]).any()
    assert 0.3 < log["opened"].mean() < 0.6 and 0.05 < log["clicked"].mean() < 0.3
    opened_by_trait = log["opened"].groupby(traits["responsiveness"].to_numpy() > 0).mean()
    assert opened_by_trait[True] > 1.5 * opened_by_trait[False]
    dogs = traits["sleeping_dog"].to_numpy()
    assert log["unsubscribed"][dogs].mean() > 5 * log["unsubscribed"][~dogs].mean()
    # an unsubscribe withdraws e-mail consent from that month on; the quiet world keeps it
    gone = log.loc[log["unsubscribed"], "customer_id"]
    assert len(gone) > 0
    assert not world.customers(FEB).set_index("customer_id").loc[gone, "email_consent"].any()
    quiet_consent = pair["quiet"].customers(FEB).set_index("customer_id")["email_consent"]
    assert quiet_consent.loc[gone].mean() > 0.5
