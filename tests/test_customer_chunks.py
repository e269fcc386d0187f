"""The analyse stage on a customer base split into scoring chunks and a training sample (models.customer_chunks).

Scoring one chunk of customers at a time must write exactly the tables that scoring the base in one piece
writes; a training sample must be the customers the MD5 rule names (in SQL as in Python), and the base must
still be scored whole.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest
from dagster import materialize
from simulated_orders import simulated_orders
from test_analyse_assets import ANALYSE_ASSETS, BLOCKING, SCORE_CHECKS, _build_warehouse, _check, _metadata

from models.artefacts import artefact_dir, load_artefact
from models.customer_chunks import (
    HASH_SLOTS,
    CustomerRange,
    TrainingSample,
    chunk_count,
    customer_ranges,
    hash_slot,
    training_sample,
)
from orchestration.lib import queries
from orchestration.resources import DuckDBWarehouseResource
from orchestration.stages.analyse import assets as analyse

MONTH = "2025-06-01"
CUSTOMERS = 1_500
ASSETS = [analyse.customer_feature_snapshots, *ANALYSE_ASSETS, *SCORE_CHECKS]
#: Columns that name the run's model versions (the same models, saved by another run).
VERSION_COLUMNS = ["churn_model_version", "propensity_model_version", "segmentation_model_version"]


# ------------------------------------------------------------------------------------------- the rules
def test_chunk_ranges_cover_every_id_once() -> None:
    ranges = customer_ranges(["C001", "C400", "C800"])
    assert ranges == [CustomerRange(None, "C400"), CustomerRange("C400", "C800"), CustomerRange("C800", None)]
    ids = ["A", "C001", "C399", "C400", "C799", "C800", "Z"]
    membership = sum(r.contains(ids).astype(int) for r in ranges)
    assert list(membership) == [1] * len(ids)
    assert customer_ranges(["C001"]) == [CustomerRange()] and customer_ranges([]) == [CustomerRange()]
    with pytest.raises(ValueError, match="distinct and sorted"):
        customer_ranges(["C800", "C001"])
    assert [chunk_count(n, 200) for n in (0, 1, 200, 201, 1_000)] == [1, 1, 1, 2, 5]
    with pytest.raises(ValueError, match="customers_per_chunk must be >= 1"):
        chunk_count(10, 0)


def test_the_training_sample_is_everyone_up_to_the_cap_and_a_hash_share_beyond() -> None:
    assert training_sample(400_000, 400_000).everyone
    sample = training_sample(1_000_000, 400_000)
    assert not sample.everyone and sample.slots == 26_214 and sample.share == pytest.approx(0.4, abs=1e-4)
    assert sample.hash_prefix_below == "6666" and training_sample(10, 10).hash_prefix_below is None
    assert training_sample(10**12, 1).slots == 1  # never an empty sample
    with pytest.raises(ValueError, match="training_customers must be >= 1"):
        training_sample(10, 0)


def test_the_sql_sample_is_the_python_rule() -> None:
    """DuckDB's `substr(md5(id), 1, 4)` places every id (ASCII or not) in the slot `hash_slot` computes."""
    ids = [f"C{i:06d}" for i in range(2_000)] + ["kunde-ä", "客户-7", "x" * 40]
    with duckdb.connect() as connection:
        slots = connection.execute("select id, substr(md5(id), 1, 4) as prefix from unnest(?) as t(id)", [ids]).df()
    assert [int(prefix, 16) for prefix in slots["prefix"]] == [hash_slot(i) for i in slots["id"]]
    sample = TrainingSample(HASH_SLOTS // 4)
    chosen = sample.contains(ids)
    assert 0.2 < chosen.mean() < 0.3  # a quarter of the slots holds about a quarter of the customers
    assert list(chosen) == [p < sample.hash_prefix_below for p in slots["prefix"]]


# ---------------------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("chunks")
    _, orders = simulated_orders(home / "world", n_customers=CUSTOMERS, seed=21)
    return orders


def _run(tmp_path_factory: pytest.TempPathFactory, orders: pd.DataFrame, name: str, **scale: int):
    home = tmp_path_factory.mktemp(name)
    _build_warehouse(home / "warehouse.duckdb", orders)
    warehouse = DuckDBWarehouseResource(path=str(home / "warehouse.duckdb"), **scale)
    result = materialize(ASSETS, partition_key=MONTH, resources={"warehouse": warehouse})
    assert result.success
    return {"home": home, "warehouse": warehouse, "result": result}


@pytest.fixture(scope="module")
def in_one_piece(tmp_path_factory, world):
    return _run(tmp_path_factory, world, "one_piece")


@pytest.fixture(scope="module")
def in_chunks(tmp_path_factory, world):
    return _run(tmp_path_factory, world, "chunks", customers_per_chunk=250)


@pytest.fixture(scope="module")
def on_a_sample(tmp_path_factory, world):
    return _run(tmp_path_factory, world, "sample", customers_per_chunk=700, training_customers=600)


def _table(run, table: str) -> pd.DataFrame:
    frame = run["warehouse"].query(f"select * from {table} where as_of_month = ?", [pd.Timestamp(MONTH)])
    frame = frame.drop(columns=[c for c in VERSION_COLUMNS if c in frame.columns])
    return frame.sort_values(list(frame.columns[:2]), ignore_index=True)


def test_scoring_in_chunks_writes_the_same_tables_as_in_one_piece(in_one_piece, in_chunks) -> None:
    snapshots = _metadata(in_chunks["result"], "customer_feature_snapshots")
    buyers = (
        in_one_piece["warehouse"]
        .query("select count(distinct customer_id) as n from marts.fct_orders where order_date <= date '2025-06-30'")[
            "n"
        ]
        .item()
    )
    assert snapshots["scoring_chunks"] == chunk_count(buyers, 250) == 4
    assert snapshots["dagster/row_count"] == buyers == snapshots["customers_in_base"]
    assert _metadata(in_chunks["result"], "customer_scores")["scoring_chunks"] == 4
    for table in ("analytics.customer_scores", "analytics.product_propensity", "analytics.customer_segments"):
        whole, chunked = _table(in_one_piece, table), _table(in_chunks, table)
        assert len(whole) > 0
        pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=1e-9, obj=table)
    equity = _metadata(in_one_piece["result"], "customer_equity")["customer_equity"]
    assert _metadata(in_chunks["result"], "customer_equity")["customer_equity"] == pytest.approx(equity, rel=1e-9)
    assert _check(in_chunks["result"], BLOCKING).passed
    chunk_folders = sorted(p.name for p in (in_chunks["home"] / "snapshots" / "2025-06" / "chunks").iterdir())
    assert chunk_folders == [f"{i:04d}-of-0004" for i in range(1, 5)]


def test_the_models_fit_on_the_md5_sample_and_every_customer_is_scored(world, on_a_sample) -> None:
    warehouse = on_a_sample["warehouse"]
    month = date(2025, 6, 1)
    buyers = sorted(world.loc[world["order_date"] <= pd.Timestamp("2025-06-30"), "customer_id"].unique())
    sample = training_sample(len(buyers), 600)
    in_sample = [customer for customer, chosen in zip(buyers, sample.contains(buyers), strict=True) if chosen]
    assert 400 < len(in_sample) < 800 and len(in_sample) < len(buyers)

    clv = _metadata(on_a_sample["result"], "clv_model")
    assert clv["training_customers"] == len(in_sample) and clv["customers_in_base"] == len(buyers)
    assert "of the base (MD5)" in clv["training_sample"]
    churn = _metadata(on_a_sample["result"], "churn_model")
    assert churn["training_customers"] == len(in_sample)
    training = queries.orders_as_of(warehouse, month, sample=sample)
    assert sorted(training["customer_id"].unique()) == in_sample

    scores = _table(on_a_sample, "analytics.customer_scores")
    assert scores["customer_id"].tolist() == buyers  # the base is scored whole, in 2 chunks
    assert _metadata(on_a_sample["result"], "customer_scores")["scoring_chunks"] == 2
    assert _check(on_a_sample["result"], BLOCKING).passed
    # each customer's lifetime value is the saved model (fitted on the sample) applied to her own orders
    model = load_artefact(artefact_dir(on_a_sample["home"], "clv", month))[0]
    assert model.n_customers == len(in_sample)
    some = buyers[::50]
    again = model.score(world[world["customer_id"].isin(some)], month).set_index("customer_id")
    saved = scores.set_index("customer_id").loc[some]
    pd.testing.assert_frame_equal(saved[["clv", "p_alive"]], again[["clv", "p_alive"]], rtol=1e-9)
