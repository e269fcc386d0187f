"""Product propensity and next best product (models/propensity.py) on a small simulated company.

Protected properties: only lines a customer does not hold yet are scored (and recommended); the next best product
is the line with the highest expected margin and its expected margin is probability times the line's margin;
the model ranks next month's first buyers of every line well above chance out of time and follows the hidden
buying rate of the simulated customers; no order after the as-of month changes it; without product data it
refuses with a message instead of guessing.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from simulated_orders import simulated_orders
from threadpoolctl import threadpool_limits

from models.propensity import (
    NEXT_BEST_COLUMNS,
    CandidateSet,
    NoProductDataError,
    PropensityModel,
    _LinePurchases,
    candidate_rows,
    next_best_products,
    propensity_inputs,
    stacked_rows,
    train_propensity_models,
)
from simulator.ground_truth import hidden_traits
from simulator.months import month_index
from simulator.population import affinity_columns

AS_OF = date(2025, 6, 1)


@pytest.fixture(scope="module")
def world_and_orders(tmp_path_factory: pytest.TempPathFactory):
    return simulated_orders(tmp_path_factory.mktemp("world"), n_customers=5_000, seed=3)


@pytest.fixture(scope="module")
def orders(world_and_orders) -> pd.DataFrame:
    return world_and_orders[1]


@pytest.fixture(scope="module")
def model(orders: pd.DataFrame) -> PropensityModel:
    with threadpool_limits(limits=1):
        return train_propensity_models(orders, AS_OF)


@pytest.fixture(scope="module")
def scored(model: PropensityModel, orders: pd.DataFrame) -> pd.DataFrame:
    return model.score(orders, AS_OF)


def test_only_lines_a_customer_does_not_hold_are_scored(orders: pd.DataFrame, scored: pd.DataFrame) -> None:
    known = orders[orders["order_date"] <= pd.Timestamp("2025-06-30")]
    held = set(zip(known["customer_id"], known["product_line"], strict=True))
    pairs = set(zip(scored["customer_id"], scored["product_line"], strict=True))
    assert not pairs & held
    # ... and every line not held is scored for every customer.
    customers = known["customer_id"].nunique()
    lines = known["product_line"].nunique()
    assert len(scored) == customers * lines - len(held)
    assert scored["probability"].between(0, 1).all()


def test_next_best_product_is_the_line_with_the_highest_expected_margin(
    model: PropensityModel, scored: pd.DataFrame
) -> None:
    margin = scored["product_line"].map(model.expected_margin)
    np.testing.assert_allclose(scored["expected_margin"], scored["probability"] * margin)
    best = next_best_products(scored)
    assert list(best.columns) == NEXT_BEST_COLUMNS
    top = scored.groupby("customer_id")["expected_margin"].max()
    np.testing.assert_allclose(best["next_best_product_expected_margin"], top.reindex(best.index))
    # Hand-made tie: the alphabetically first line wins.
    tie = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "product_line": ["tea", "cups", "tea"],
            "probability": [0.1, 0.2, 0.3],
            "expected_margin": [1.0, 1.0, 0.5],
        }
    )
    assert next_best_products(tie)["next_best_product"].to_dict() == {"a": "cups", "b": "tea"}


def test_scoring_in_chunks_gives_the_scores_of_one_pass(model: PropensityModel, orders: pd.DataFrame) -> None:
    candidates = model.candidates(orders, AS_OF)
    whole = model.pipeline.predict_proba(candidates.rows())[:, 1]
    assert len(candidates) > 3 * 977
    np.testing.assert_allclose(model.predict_candidates(candidates, chunk_rows=977), whole, rtol=1e-12, atol=0)
    # The positions describe exactly the rows of candidate_rows, in its order.
    purchases = _LinePurchases(orders, model.product_lines)
    inputs, held = propensity_inputs(orders, purchases, AS_OF, model.product_lines)
    expected = candidate_rows(inputs, held, model.product_lines)
    built = candidates.rows()
    assert built.index.equals(expected.index)
    pd.testing.assert_frame_equal(built, expected[built.columns], check_dtype=False)
    # The next best product chosen on positions is the one chosen on the sorted score table.
    pd.testing.assert_frame_equal(
        model.next_best_products(orders, AS_OF), next_best_products(model.score(orders, AS_OF)), check_dtype=False
    )


def test_line_purchases_match_a_direct_count_in_any_order_of_lines_and_customers(
    model: PropensityModel, orders: pd.DataFrame
) -> None:
    """Holdings and next-month purchases located by integer codes equal a plain group-by of the sale lines,
    whatever order the lines and customers are asked in."""
    purchases = _LinePurchases(orders, model.product_lines)
    sales = orders[~orders["is_return"]] if "is_return" in orders.columns else orders
    sales = sales.assign(customer_id=sales["customer_id"].astype("str"), day=pd.to_datetime(sales["order_date"]))
    customers = pd.Index(sorted(sales["customer_id"].unique(), reverse=True), dtype="str")
    lines = list(reversed(model.product_lines))
    held = purchases.held(date(2025, 4, 1), customers, lines)
    by_end = sales[sales["day"] <= pd.Timestamp("2025-04-30")]
    expected = pd.crosstab(by_end["customer_id"], by_end["product_line"]).reindex(index=customers, columns=lines)
    pd.testing.assert_frame_equal(held, expected.fillna(0).gt(0), check_names=False)
    bought = purchases.bought_in(date(2025, 5, 1), customers, lines)
    may = sales[(sales["day"] >= "2025-05-01") & (sales["day"] <= "2025-05-31")]
    value = may.groupby(["customer_id", "product_line"])["margin"].sum().unstack()
    assert len(may) > 100 and held.to_numpy().any() and not held.to_numpy().all()
    pd.testing.assert_frame_equal(
        bought, value.reindex(index=customers, columns=lines), check_names=False, check_dtype=False, atol=1e-9
    )


def test_a_training_sample_builds_only_the_sampled_rows_of_the_stack(
    model: PropensityModel, orders: pd.DataFrame
) -> None:
    purchases = _LinePurchases(orders, model.product_lines)
    parts = [
        CandidateSet.build(*propensity_inputs(orders, purchases, month, model.product_lines), model.product_lines)
        for month in (date(2025, 3, 1), date(2025, 4, 1))
    ]
    everything = stacked_rows(parts)
    keep = np.sort(np.random.default_rng(5).choice(len(everything), 1_000, replace=False))
    pd.testing.assert_frame_equal(stacked_rows(parts, keep), everything.iloc[keep])


def test_the_training_sample_is_seeded(orders: pd.DataFrame) -> None:
    with threadpool_limits(limits=1):
        first = train_propensity_models(orders, AS_OF, max_training_rows=5_000, random_state=4)
        again = train_propensity_models(orders, AS_OF, max_training_rows=5_000, random_state=4)
        other = train_propensity_models(orders, AS_OF, max_training_rows=5_000, random_state=5)
    coefficients = [m.pipeline[-1].coef_ for m in (first, again, other)]
    np.testing.assert_array_equal(coefficients[0], coefficients[1])
    assert not np.array_equal(coefficients[0], coefficients[2])
    # Counts and margins use every row, whatever the sample.
    assert first.expected_margin == other.expected_margin
    assert first.metrics["lines"]["Cookware"]["n_train"] > 5_000


def test_line_margins_follow_the_catalogue(world_and_orders, model: PropensityModel) -> None:
    world, _ = world_and_orders
    products = world.products()
    unit_margin = (products["unit_price"] - products["unit_cost"]).groupby(products["product_line"]).mean()
    learned = pd.Series(model.expected_margin)
    assert learned.corr(unit_margin.reindex(learned.index), method="spearman") > 0.8


def test_first_buyers_of_every_line_are_ranked_well_above_chance_out_of_time(model: PropensityModel) -> None:
    metrics = model.metrics
    assert metrics["validation_as_of"] == "2025-05-01"  # labelled by June's purchases
    assert metrics["rehearsal_train_as_of"][-1] == "2025-04-01" and metrics["train_as_of"][-1] == "2025-05-01"
    aucs = {line: values["auc"] for line, values in metrics["lines"].items()}
    assert len(aucs) == 6
    assert metrics["mean_auc"] > 0.7
    assert min(aucs.values()) > 0.6, aucs
    # Which line a new buyer picks is driven by hidden affinities the history cannot show for lines she never
    # bought: the model picks the right line about as often as plain popularity does, not better.
    assert metrics["next_best_hit_rate"] == pytest.approx(metrics["popularity_hit_rate"], abs=0.1)


def test_propensity_follows_the_hidden_buying_rate(world_and_orders, scored: pd.DataFrame) -> None:
    world, _ = world_and_orders
    traits = hidden_traits(world, AS_OF).set_index("customer_id")
    next_month = month_index(date(2025, 7, 1), world._origin)
    alive = (traits["signup_month_index"] <= next_month) & (traits["death_month_index"] > next_month)
    affinity = pd.DataFrame(
        traits[affinity_columns(world._config)].to_numpy(),
        index=traits.index,
        columns=list(world._config.line_names),
    )
    true_rate = affinity.mul(alive * traits["purchase_rate"], axis=0).stack()
    truth = true_rate.reindex(pd.MultiIndex.from_arrays([scored["customer_id"], scored["product_line"]]))
    assert pd.Series(scored["probability"].to_numpy()).corr(pd.Series(truth.to_numpy()), "spearman") > 0.4


def test_orders_after_the_as_of_month_cannot_change_the_model(orders: pd.DataFrame, model: PropensityModel) -> None:
    later = orders.iloc[:50].assign(order_date=pd.Timestamp("2025-07-15"), customer_id="C9999999")
    again = train_propensity_models(pd.concat([orders, later], ignore_index=True), AS_OF)
    assert again.metrics == model.metrics
    pd.testing.assert_frame_equal(again.score(orders, AS_OF), model.score(orders, AS_OF))


def test_orders_without_product_lines_are_refused_with_a_reason(orders: pd.DataFrame) -> None:
    for plain in (orders.drop(columns="product_line"), orders.assign(product_line=None)):
        with pytest.raises(NoProductDataError, match="no product line"):
            train_propensity_models(plain, AS_OF)
