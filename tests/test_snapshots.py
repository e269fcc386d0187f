"""Shared monthly snapshots: each month computed once, and the models get exactly the inputs they would compute."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from simulated_orders import simulated_orders

from models.churn import CHURN_INPUTS, TRAINING_COLUMNS, churn_inputs, churn_snapshot_months, train_churn_model
from models.clv import bgnbd_features
from models.features import customer_features
from models.propensity import (
    _LinePurchases,
    product_lines_of,
    propensity_inputs,
    propensity_snapshot_months,
    train_propensity_models,
)
from models.scoring import fit_scoring_models, score_with_models
from models.snapshots import SnapshotStore

AS_OF = date(2025, 6, 1)


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return simulated_orders(tmp_path_factory.mktemp("world"), n_customers=2_000, seed=5)[1]


def test_a_stored_snapshot_reads_back_exactly_as_computed(orders: pd.DataFrame, tmp_path: Path) -> None:
    month = date(2025, 3, 1)
    computed = SnapshotStore(orders, AS_OF).get(month)
    SnapshotStore(orders, AS_OF, directory=tmp_path).get(month)
    reader = SnapshotStore(orders, AS_OF, directory=tmp_path)
    stored = reader.get(month)
    assert reader.computed == []  # read from disk, not recomputed
    pd.testing.assert_frame_equal(stored.features, computed.features)
    pd.testing.assert_frame_equal(stored.bgnbd_summary, computed.bgnbd_summary)
    assert stored.bgnbd is not None and stored.bgnbd.params_ == computed.bgnbd.params_
    pd.testing.assert_frame_equal(stored.inputs(90), computed.inputs(90))


def test_snapshots_computed_together_equal_those_computed_one_by_one(orders: pd.DataFrame, tmp_path: Path) -> None:
    """`compute` (features in background threads, BG/NBD fits in turn) stores the snapshots `get` computes, each
    month once, and leaves months already stored alone."""
    months = [date(2025, 1, 1), date(2025, 3, 1), date(2025, 4, 1), date(2025, 6, 1)]
    one_by_one = SnapshotStore(orders, AS_OF)
    SnapshotStore(orders, AS_OF, directory=tmp_path).get(months[1])
    together = SnapshotStore(orders, AS_OF, directory=tmp_path)
    together.compute([*months, months[0]])
    assert together.computed == [months[0], months[2], months[3]]  # the stored month is not recomputed
    for month in months:
        expected, stored = one_by_one.get(month), together.get(month)
        pd.testing.assert_frame_equal(stored.features, expected.features)
        pd.testing.assert_frame_equal(stored.bgnbd_summary, expected.bgnbd_summary)
        assert stored.bgnbd is not None and stored.bgnbd.params_ == expected.bgnbd.params_
    assert together.computed == [months[0], months[2], months[3]]
    together.compute(months)  # nothing left to compute
    assert len(together.computed) == 3
    # Counted from the stored files (and from memory for a store without a folder), never recomputed.
    assert [together.customers(m) for m in months] == [len(one_by_one.get(m).features) for m in months]
    assert [one_by_one.customers(m) for m in months] == [len(one_by_one.get(m).features) for m in months]
    assert len(together.computed) == 3 and len({together.customers(m) for m in months}) > 1


def test_snapshot_inputs_equal_what_each_model_computes_alone(orders: pd.DataFrame) -> None:
    store = SnapshotStore(orders, AS_OF)
    month = date(2025, 2, 1)
    alone = churn_inputs(orders, month, 90)
    shared = churn_inputs(orders, month, 90, store)
    pd.testing.assert_frame_equal(shared[TRAINING_COLUMNS], alone[TRAINING_COLUMNS])
    lines = product_lines_of(orders, AS_OF)
    purchases = _LinePurchases(orders, lines)
    inputs, held = propensity_inputs(orders, purchases, month, lines)
    shared_inputs, shared_held = propensity_inputs(orders, purchases, month, lines, store)
    pd.testing.assert_frame_equal(shared_inputs, inputs)
    pd.testing.assert_frame_equal(shared_held, held)
    # features and BG/NBD exactly as the library computes them
    pd.testing.assert_frame_equal(store.get(AS_OF).features, customer_features(orders, AS_OF))
    pd.testing.assert_frame_equal(store.get(month).bgnbd_view(30), bgnbd_features(orders, month, 30), check_exact=True)


def test_churn_and_propensity_compute_each_shared_month_once(orders: pd.DataFrame) -> None:
    store = SnapshotStore(orders, AS_OF)
    train_churn_model(orders, AS_OF, snapshots=store)
    train_propensity_models(orders, AS_OF, snapshots=store)
    needed = sorted({*churn_snapshot_months(AS_OF), *propensity_snapshot_months(AS_OF)})
    assert sorted(store.computed) == needed
    assert len(store.computed) == len(set(store.computed))
    assert len(needed) < len(churn_snapshot_months(AS_OF)) + len(propensity_snapshot_months(AS_OF))


def test_models_and_scores_are_identical_with_shared_snapshots(orders: pd.DataFrame, tmp_path: Path) -> None:
    churn_alone = train_churn_model(orders, AS_OF)
    store = SnapshotStore(orders, AS_OF, directory=tmp_path)
    churn_shared = train_churn_model(orders, AS_OF, snapshots=store)
    assert churn_shared.metrics == churn_alone.metrics
    inputs = churn_inputs(orders, AS_OF)[CHURN_INPUTS]
    np.testing.assert_array_equal(churn_shared.predict_proba(inputs), churn_alone.predict_proba(inputs))

    propensity_alone = train_propensity_models(orders, AS_OF)
    propensity_shared = train_propensity_models(orders, AS_OF, snapshots=store)
    pd.testing.assert_frame_equal(propensity_shared.score(orders, AS_OF, store), propensity_alone.score(orders, AS_OF))

    models = fit_scoring_models(orders, AS_OF)
    args = (models.churn, models.lifetime_value, models.segmentation, models.propensity)
    pd.testing.assert_frame_equal(
        score_with_models(orders, AS_OF, *args, snapshots=store), score_with_models(orders, AS_OF, *args)
    )


def test_a_snapshot_built_for_other_product_lines_is_recomputed(orders: pd.DataFrame, tmp_path: Path) -> None:
    month = date(2025, 1, 1)
    SnapshotStore(orders, AS_OF, product_lines=["made_up_line"], directory=tmp_path).get(month)
    store = SnapshotStore(orders, AS_OF, directory=tmp_path)
    snapshot = store.get(month)
    assert store.computed == [month]
    assert snapshot.product_lines == product_lines_of(orders, AS_OF)
