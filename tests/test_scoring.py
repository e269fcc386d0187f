"""The customer scores (models/scoring.py, models/artefacts.py) on a small simulated company.

Protected properties: one row per customer with any order by the month end, lapsed customers included, with
every column the design stage reads and every probability in [0, 1]; the scores can be reproduced exactly from
the saved model artefacts, whose metadata records the training window, inputs, metrics and library versions; a
plain transaction log (no product, no margin) still scores, with CLV in revenue, no next best product, and notes
that say so; returns are not purchases.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from simulated_orders import simulated_orders

from models.artefacts import artefact_dir, load_artefact, save_artefact
from models.features import customer_features
from models.scoring import CustomerScores, score_customer_base, score_with_models
from models.targeting import UPLIFT_FEATURES

AS_OF = date(2025, 6, 1)


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return simulated_orders(tmp_path_factory.mktemp("world"), n_customers=3_000, seed=21)[1]


@pytest.fixture(scope="module")
def scored(orders: pd.DataFrame) -> CustomerScores:
    return score_customer_base(orders, AS_OF)


def test_one_row_per_customer_with_any_order_including_lapsed(orders: pd.DataFrame, scored: CustomerScores) -> None:
    scores = scored.scores
    buyers = orders.loc[orders["order_date"] <= pd.Timestamp("2025-06-30"), "customer_id"].unique()
    assert scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(buyers)
    assert scores["is_lapsed"].sum() > 0.3 * len(scores)  # win-back needs the lapsed customers too
    for column in [*UPLIFT_FEATURES, "clv", "next_best_product", "segment", "segment_id"]:
        assert column in scores.columns, column
    for column in ("churn_probability", "p_alive"):
        assert scores[column].between(0, 1).all(), column
    # The next best product is missing only for customers who already hold every line.
    holds_all = scores[[c for c in scores.columns if c.startswith("line_share__")]].gt(0).all(axis=1)
    assert scores["next_best_product"].isna().equals(holds_all)
    assert scores["next_best_product_probability"].dropna().between(0, 1).all()
    assert (scores["clv"] >= 0).all() and scores["segment"].notna().all()
    assert (scores["clv_basis"] == "margin").all()
    # Lapsed customers are more likely to churn and worth less than active ones.
    by_status = scores.groupby("is_lapsed")[["churn_probability", "clv"]].mean()
    assert by_status.loc[True, "churn_probability"] > by_status.loc[False, "churn_probability"]
    assert by_status.loc[True, "clv"] < by_status.loc[False, "clv"]


def test_scores_are_reproducible_from_the_saved_artefacts(
    tmp_path, orders: pd.DataFrame, scored: CustomerScores
) -> None:
    models = scored.models
    fitted = {
        "churn": models.churn,
        "clv": models.lifetime_value,
        "propensity": models.propensity,
        "segmentation": models.segmentation,
    }
    versions = {}
    for name, model in fitted.items():
        directory = artefact_dir(tmp_path, name, AS_OF)
        versions[name] = save_artefact(model, directory, {"as_of_month": AS_OF, **getattr(model, "metrics", {})})
        # Saving the same fitted model again gives the same version.
        assert save_artefact(model, tmp_path / "again" / name, {"as_of_month": AS_OF}) == versions[name]
    loaded = {name: load_artefact(artefact_dir(tmp_path, name, AS_OF))[0] for name in fitted}
    again = score_with_models(
        orders,
        AS_OF,
        churn=loaded["churn"],
        lifetime_value=loaded["clv"],
        segmentation=loaded["segmentation"],
        propensity=loaded["propensity"],
    )
    pd.testing.assert_frame_equal(again, scored.scores)

    record = json.loads((artefact_dir(tmp_path, "churn", AS_OF) / "metadata.json").read_text())
    assert record["model_version"] == versions["churn"]
    assert record["validation_as_of"] == "2025-03-01" and record["train_as_of"][-1] == "2025-03-01"
    assert record["inputs"] and record["auc"] > 0.7
    assert {"scikit-learn", "numpy", "pandas", "scipy", "duckdb"} <= set(record["libraries"])
    assert artefact_dir(tmp_path, "churn", AS_OF) == tmp_path / "artefacts" / "churn" / "2025-06"


def test_scoring_in_chunks_gives_the_table_of_one_pass(orders: pd.DataFrame, scored: CustomerScores) -> None:
    models = scored.models
    fitted = dict(
        churn=models.churn,
        lifetime_value=models.lifetime_value,
        segmentation=models.segmentation,
        propensity=models.propensity,
    )
    in_chunks = score_with_models(orders, AS_OF, **fitted, chunk_rows=437)
    assert len(in_chunks) > 3 * 437  # several chunks, the last one partial
    pd.testing.assert_frame_equal(in_chunks, scored.scores, check_exact=False, rtol=1e-12, atol=0)


def test_a_missing_artefact_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="churn/2025-06"):
        load_artefact(artefact_dir(tmp_path, "churn", AS_OF))


def test_a_plain_transaction_log_still_scores_in_revenue(orders: pd.DataFrame, scored: CustomerScores) -> None:
    plain = orders[["customer_id", "order_date", "revenue"]].assign(product_line=None, margin=np.nan)
    result = score_customer_base(plain, AS_OF)
    scores = result.scores
    assert len(scores) == len(scored.scores)
    assert (scores["clv_basis"] == "revenue").all()
    assert scores["next_best_product"].isna().all() and scores["next_best_product_probability"].isna().all()
    assert scores["churn_probability"].between(0, 1).all() and scores["p_alive"].between(0, 1).all()
    assert scores["segment"].notna().all()
    # Revenue is more than margin: the same customers are worth more in revenue terms.
    assert scores["clv"].sum() > 1.5 * scored.scores["clv"].sum()
    notes = " | ".join(result.models.notes)
    assert "no margin data" in notes and "no product line" in notes
    assert result.models.propensity is None


def test_returns_are_not_purchases(orders: pd.DataFrame) -> None:
    customer = orders.loc[orders["order_date"] < pd.Timestamp("2024-01-01"), "customer_id"].iloc[0]
    sale = orders[orders["customer_id"] == customer].iloc[0]
    returned = pd.DataFrame(
        [
            {
                **sale.to_dict(),
                "order_id": "R1",
                "order_date": pd.Timestamp("2025-06-20"),
                "revenue": -sale["revenue"],
                "margin": -sale["margin"],
            }
        ]
    )
    with_return = pd.concat([orders, returned], ignore_index=True)
    before = customer_features(orders, AS_OF).loc[customer]
    after = customer_features(with_return, AS_OF).loc[customer]
    assert after["frequency"] == before["frequency"]  # a return is not an order ...
    assert after["recency_days"] == before["recency_days"]  # ... nor a sign of activity
    assert after["revenue_12m"] == pytest.approx(before["revenue_12m"] - sale["revenue"])
