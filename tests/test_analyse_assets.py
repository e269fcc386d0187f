"""The analyse stage through Dagster: each model is an asset with its evidence as metadata, the scores come from
the saved artefacts, and the checks on customer_scores gate (blocking) and warn (drift, non-blocking).

The warehouse is a DuckDB file with the two marts the stage reads (`marts.fct_orders`, `marts.customer_value`)
built from a small simulated company, so the test needs no dbt run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
from simulated_orders import simulated_orders

from models.artefacts import artefact_dir, load_artefact
from models.scoring import score_with_models
from orchestration.resources import DuckDBWarehouseResource, WarehouseResource
from orchestration.stages.analyse import assets as analyse
from orchestration.stages.analyse import checks

MONTHS = ("2025-05-01", "2025-06-01")
ANALYSE_ASSETS = [
    analyse.clv_model,
    analyse.churn_model,
    analyse.product_propensity,
    analyse.customer_segments,
    analyse.customer_scores,
    analyse.customer_equity,
]
SCORE_CHECKS = [checks.every_customer_scored_with_valid_probabilities, checks.score_distributions_stable_month_to_month]
BLOCKING = AssetCheckKey(AssetKey("customer_scores"), "every_customer_scored_with_valid_probabilities")
DRIFT = AssetCheckKey(AssetKey("customer_scores"), "score_distributions_stable_month_to_month")


def _build_warehouse(path: Path, orders: pd.DataFrame) -> None:
    """marts.fct_orders and a stand-in marts.customer_value (tier by 12-month margin rank) per month."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts")
        connection.register("orders", orders)
        connection.execute("create table marts.fct_orders as select * from orders")
        connection.execute(
            """
            create table marts.customer_value as
            with months as (select unnest([date '2025-05-01', date '2025-06-01']) as as_of_month),
            margin as (
                select m.as_of_month, o.customer_id,
                    sum(case when o.order_date > m.as_of_month - interval 11 month then o.margin else 0 end) as m12
                from months m join marts.fct_orders o on o.order_date < m.as_of_month + interval 1 month
                group by all
            )
            select as_of_month, customer_id,
                case when percent_rank() over (partition by as_of_month order by m12 desc) < 0.05 then 'gold'
                     when percent_rank() over (partition by as_of_month order by m12 desc) < 0.5 then 'iron'
                     else 'lead' end as pyramid_tier
            from margin
            """
        )


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    """Two months of the analyse stage materialised in order, with their checks."""
    home = tmp_path_factory.mktemp("crm")
    _, orders = simulated_orders(home / "world", n_customers=3_000, seed=13)
    _build_warehouse(home / "warehouse.duckdb", orders)
    warehouse = DuckDBWarehouseResource(path=str(home / "warehouse.duckdb"))
    instance = DagsterInstance.ephemeral()
    results = {
        month: materialize(
            [*ANALYSE_ASSETS, *SCORE_CHECKS],
            partition_key=month,
            resources={"warehouse": warehouse},
            instance=instance,
        )
        for month in MONTHS
    }
    return {"home": home, "orders": orders, "warehouse": warehouse, "results": results, "instance": instance}


def _metadata(result, key: str) -> dict:
    events = result.asset_materializations_for_node(key)
    assert len(events) == 1
    return {name: getattr(value, "value", value) for name, value in events[0].metadata.items()}


def _check(result, key: AssetCheckKey):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == key]
    return evaluation


def test_every_model_reports_its_evidence_as_metadata(loop) -> None:
    result = loop["results"]["2025-06-01"]
    assert result.success
    churn = _metadata(result, "churn_model")
    assert churn["model"] == "bgnbd_anchored_spline_logistic" and churn["horizon_days"] == 90
    assert churn["churn_auc"] > 0.75 and 0 < churn["churn_brier"] < 0.2
    for scorer in ("recency_rule", "bgnbd_p_alive", "bgnbd_p_no_purchase"):
        assert scorer in churn["comparison"]
    assert "recency_rule" in churn["beats_baselines_on_auc"] and "bgnbd_p_alive" in churn["beats_baselines_on_auc"]
    assert churn["validation_as_of"] == "2025-03-01"
    assert "control and uncontacted" in churn["treatment_handling"]

    clv = _metadata(result, "clv_model")
    assert {"bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b", "gamma_gamma_p", "gamma_gamma_q"} <= set(clv)
    assert clv["value_basis"] == "margin"

    propensity = _metadata(result, "product_propensity")
    assert propensity["mean_auc"] > 0.65
    assert sum(name.startswith("auc_") and name != "auc_by_product" for name in propensity) == 6

    segments = _metadata(result, "customer_segments")
    assert "Lapsed" in segments["profiles"] and "dominant_tier" in segments["profiles"]

    equity = _metadata(result, "customer_equity")
    assert "gold" in equity["by_tier"] and "Lapsed" in equity["by_segment"]


def test_scores_cover_every_buyer_and_come_from_the_saved_artefacts(loop) -> None:
    warehouse: WarehouseResource = loop["warehouse"]
    month = date(2025, 6, 1)
    table = warehouse.query(
        "select * exclude (as_of_month, churn_model_version) from analytics.customer_scores where as_of_month = ?",
        [pd.Timestamp(month)],
    ).sort_values("customer_id", ignore_index=True)
    buyers = loop["orders"].loc[loop["orders"]["order_date"] <= pd.Timestamp("2025-06-30"), "customer_id"]
    assert set(table["customer_id"]) == set(buyers) and table["customer_id"].is_unique
    models = {
        name: load_artefact(artefact_dir(loop["home"], name, month))[0]
        for name in ("churn", "clv", "propensity", "segmentation")
    }
    again = score_with_models(
        loop["orders"],
        month,
        churn=models["churn"],
        lifetime_value=models["clv"],
        segmentation=models["segmentation"],
        propensity=models["propensity"],
    )
    pd.testing.assert_frame_equal(table[again.columns], again, check_dtype=False)
    versions = warehouse.query("select distinct churn_model_version from analytics.customer_scores")
    assert len(versions) == 2  # one model per month, each named on its score rows


def test_customer_equity_table_adds_up_to_the_scores(loop) -> None:
    warehouse: WarehouseResource = loop["warehouse"]
    month = pd.Timestamp("2025-06-01")
    equity = warehouse.query("select * from analytics.customer_equity where as_of_month = ?", [month])
    total = equity.loc[(equity["pyramid_tier"] == "all") & (equity["segment"] == "all"), "customer_equity"].item()
    clv = warehouse.query("select sum(clv) from analytics.customer_scores where as_of_month = ?", [month]).iloc[0, 0]
    assert total == pytest.approx(clv)
    tiers = equity[(equity["segment"] == "all") & (equity["pyramid_tier"] != "all")].set_index("pyramid_tier")
    assert set(tiers.index) == {"gold", "iron", "lead"}
    assert tiers.loc["gold", "clv_per_customer"] > tiers.loc["lead", "clv_per_customer"]


def test_the_blocking_check_passes_and_drift_only_warns(loop) -> None:
    first, second = (loop["results"][month] for month in MONTHS)
    assert _check(first, BLOCKING).passed and _check(second, BLOCKING).passed
    assert "no scores of 2025-04" in _check(first, DRIFT).description
    drift = _check(second, DRIFT)
    assert drift.passed and drift.metadata["max_psi"].value < 0.25  # one month later, the scores barely move
    assert not next(iter(checks.score_distributions_stable_month_to_month.check_specs)).blocking


def test_the_blocking_check_fails_on_a_missing_customer_or_an_impossible_probability(loop) -> None:
    warehouse: WarehouseResource = loop["warehouse"]
    month = pd.Timestamp("2025-06-01")
    saved = warehouse.query("select * from analytics.customer_scores where as_of_month = ?", [month])
    assert not any(checks.score_violations(warehouse, month.date()).values())
    broken = saved.iloc[1:].copy()  # one customer unscored
    broken.loc[broken.index[0], "churn_probability"] = 1.2
    broken.loc[broken.index[1], "next_best_product_probability"] = -0.1
    broken.loc[broken.index[2], "clv"] = float("nan")
    warehouse.replace_rows("analytics.customer_scores", broken, {"as_of_month": month})
    try:
        violations = checks.score_violations(warehouse, month.date())
    finally:
        warehouse.replace_rows("analytics.customer_scores", saved, {"as_of_month": month})
    assert violations == {
        "unscored": 1,
        "duplicated": 0,
        "churn_out_of_range": 1,
        "p_alive_out_of_range": 0,
        "clv_missing_or_negative": 1,
        "next_best_product_probability out of [0, 1]": 1,
    }


# ----------------------------------------------------------------------------- a plain transaction log
def test_a_plain_transaction_log_scores_in_revenue_without_propensity(tmp_path) -> None:
    """CDNOW_sample.txt (2,357 customers, 1997-01 .. 1998-06; no products, no margins, no customer master)
    imported with the project's importer, as `marts.fct_orders` holds it: product_line and margin NULL.

    The loop's partitions start in 2025, so the dates move forward 28 years (the Gregorian calendar repeats
    every 28 years between 1901 and 2099: every weekday and every interval stays the same), and the stage runs
    as of 2025-12 (= 1997-12)."""
    import importlib.resources

    from orchestration.lib.importer import import_transaction_log
    from orchestration.lib.raw_tables import read_table_file

    log = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    import_transaction_log(log, tmp_path / "inbox", columns=["-", "customer_id", "order_date", "quantity", "amount"])
    raw = pd.concat(
        [read_table_file(f, "orders").rows for f in sorted((tmp_path / "inbox" / "orders").glob("*.csv"))],
        ignore_index=True,
    )
    orders = pd.DataFrame(
        {
            "order_id": [f"txn-{i}" for i in range(len(raw))],
            "customer_id": raw["customer_id"],
            "order_date": raw["order_date"] + pd.DateOffset(years=28),
            "product_line": pd.Series(pd.NA, index=raw.index, dtype="str"),
            "revenue": raw["amount"],
            "margin": pd.Series(float("nan"), index=raw.index),
        }
    )
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        connection.execute("create schema marts")
        connection.register("orders", orders)
        connection.execute("create table marts.fct_orders as select * from orders")
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    result = materialize(
        [*ANALYSE_ASSETS, *SCORE_CHECKS], partition_key="2025-12-01", resources={"warehouse": warehouse}
    )
    assert result.success and _check(result, BLOCKING).passed

    clv = _metadata(result, "clv_model")
    assert clv["value_basis"] == "revenue" and "no margin data" in clv["notes"]
    assert "no product line" in _metadata(result, "product_propensity")["skipped"]
    churn = _metadata(result, "churn_model")
    assert churn["model"] == "bgnbd_anchored_spline_logistic" and churn["validation_as_of"] == "2025-09-01"
    assert churn["churn_auc"] > 0.75
    scores = warehouse.query("select * from analytics.customer_scores")
    # Every CDNOW customer made her first purchase in the first quarter of 1997.
    assert len(scores) == 2357 and (scores["clv_basis"] == "revenue").all()
    assert scores["next_best_product"].isna().all() and scores["segment"].notna().all()
    equity = _metadata(result, "customer_equity")
    assert equity["tiers_known"] is False and equity["customer_equity"] == pytest.approx(scores["clv"].sum())
