"""Early-warning churn: who will stop buying in the next months.

Label. A customer with at least one order by the end of snapshot month ``S`` *churns* when she places no
order in the ``horizon_months`` calendar months after ``S`` (``S+1 .. S+horizon``). This is the usual
non-contractual definition of defection (Neslin et al. 2006, "Defection detection", J. Marketing Research
43(2)); a label of snapshot ``S`` is fully observed only at the end of month ``S + horizon``.

Training and validation (no look-ahead). Trained at the end of month ``M``, the model may only use labels that
are complete by then. The latest fully-labelled snapshot, ``V = M - horizon``, is the out-of-time validation
set; the model is fitted on the ``n_training_snapshots`` snapshots before it (``V-1, V-2, ...``), stacked.
Features come from :func:`models.features.customer_features` at each snapshot.

Contacted customers. A campaign contact changes the outcome it targets (that is its purpose), so a label
whose window contains a contact of the customer (test group) no longer says what the customer would have done
on her own. Those (customer, snapshot) rows are dropped from training *and* validation through ``exclude``;
uncontacted customers and control-group customers (never contacted) are kept. The model therefore predicts
churn *without intervention*, which is what the campaign design needs.

Model. A :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (gradient boosting, Friedman 2001) with
shallow trees, L2 regularisation and early stopping on an internal validation split. Chosen over logistic
regression because the churn hazard is strongly non-linear in recency and frequency (the BG/NBD "dead or
alive" shape), because it handles missing inputs natively (the top-line share is NaN without product data),
and because it trains on millions of rows on two cores in seconds; its log-loss objective keeps probabilities
reasonably calibrated (the Brier score is reported to check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from models.features import (
    LINE_SHARE_PREFIX,
    add_months,
    customer_features,
    model_feature_columns,
    month_end,
    month_start,
    product_lines_up_to,
)
from models.parallelism import fit_threads


class InsufficientHistoryError(ValueError):
    """The order history is too short (or too uniform) to train and validate a churn model."""


# -------------------------------------------------------------------------------------------------- metrics
def top_decile_lift(y_true: Sequence[float] | np.ndarray, score: Sequence[float] | np.ndarray) -> float:
    """Top-decile lift: the positive rate among the 10% highest scores divided by the overall positive rate.

    The standard churn-model metric of the Duke/Teradata churn tournament (Neslin et al. 2006). The top decile
    holds ``ceil(n / 10)`` rows; ties at the cut are broken by a stable sort on the score (descending), so the
    result is deterministic. 1.0 = no better than random; NaN when there are no positives.
    """
    y = np.asarray(y_true, dtype="float64")
    s = np.asarray(score, dtype="float64")
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("y_true and score must be 1-d arrays of the same length")
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    top_n = int(np.ceil(len(y) / 10))
    order = np.argsort(-s, kind="stable")
    return float(y[order[:top_n]].mean() / y.mean())


# ----------------------------------------------------------------------------------------------- pipeline
class FeatureFrameSelector(TransformerMixin, BaseEstimator):
    """Select the model's feature columns from a feature frame and return a float matrix.

    A product line unseen at fit time is ignored; a line seen at fit time but absent now has a zero share.
    Any other missing column is an error.
    """

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureFrameSelector:  # noqa: N803 (sklearn API)
        self.feature_names_in_ = np.asarray(list(self.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803 (sklearn API)
        columns = list(self.columns)
        missing = [c for c in columns if c not in X.columns]
        not_shares = [c for c in missing if not c.startswith(LINE_SHARE_PREFIX)]
        if not_shares:
            raise ValueError(f"feature frame is missing model input column(s) {not_shares}")
        return X.reindex(columns=columns, fill_value=0.0).to_numpy(dtype="float64", na_value=np.nan)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(list(self.columns), dtype=object)


def make_churn_pipeline(feature_columns: Sequence[str], random_state: int = 0) -> Pipeline:
    """The (unfitted) churn pipeline: column selection, then regularised gradient boosting."""
    return Pipeline(
        [
            ("features", FeatureFrameSelector(list(feature_columns))),
            (
                "model",
                HistGradientBoostingClassifier(
                    learning_rate=0.05,
                    max_iter=400,
                    max_leaf_nodes=15,
                    min_samples_leaf=40,
                    l2_regularization=1.0,
                    early_stopping=True,
                    validation_fraction=0.1,
                    n_iter_no_change=20,
                    random_state=random_state,
                ),
            ),
        ]
    )


@dataclass
class ChurnModelResult:
    """A fitted churn model with its out-of-time validation metrics."""

    pipeline: Pipeline
    metrics: dict[str, Any]
    feature_columns: list[str]
    as_of_month: date
    horizon_months: int
    product_lines: list[str] = field(default_factory=list)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Churn probability (no order in the next ``horizon_months`` months) of each feature-frame row."""
        return self.pipeline.predict_proba(features)[:, 1]


# ---------------------------------------------------------------------------------------------------- labels
def customers_ordering_between(orders: pd.DataFrame, first_day: date, last_day: date) -> pd.Index:
    """Customers with at least one order dated ``first_day .. last_day`` (inclusive)."""
    with duckdb.connect() as con:
        con.register("orders", orders[["customer_id", "order_date"]])
        rows = con.execute(
            "select distinct cast(customer_id as varchar) from orders "
            "where cast(order_date as date) between ? and ?",
            [first_day, last_day],
        ).fetchall()
    return pd.Index([r[0] for r in rows], dtype="str")


def churn_labels(
    orders: pd.DataFrame, snapshot_month: date, customer_ids: pd.Index, horizon_months: int = 3
) -> pd.Series:
    """1 when the customer has no order in the ``horizon_months`` months after ``snapshot_month``, else 0."""
    snapshot_month = month_start(snapshot_month)
    buyers = customers_ordering_between(
        orders,
        add_months(snapshot_month, 1),
        month_end(add_months(snapshot_month, horizon_months)),
    )
    churned = ~pd.Index(customer_ids).isin(buyers)
    return pd.Series(churned.astype("int64"), index=customer_ids, name="churned")


def _excluded_customers(
    exclude: pd.DataFrame | None, snapshot_month: date, horizon_months: int
) -> pd.Index:
    """Customers contacted in a month of the label window ``snapshot+1 .. snapshot+horizon``."""
    if exclude is None or exclude.empty:
        return pd.Index([], dtype="str")
    missing = [c for c in ("customer_id", "month") if c not in exclude.columns]
    if missing:
        raise ValueError(f"exclude must have columns customer_id and month; missing {missing}")
    months = pd.to_datetime(exclude["month"]).dt.to_period("M").dt.to_timestamp()
    first = pd.Timestamp(add_months(snapshot_month, 1))
    last = pd.Timestamp(add_months(snapshot_month, horizon_months))
    in_window = (months >= first) & (months <= last)
    return pd.Index(exclude.loc[in_window.to_numpy(), "customer_id"].astype("str").unique())


def _labelled_snapshot(
    orders: pd.DataFrame,
    snapshot_month: date,
    horizon_months: int,
    product_lines: list[str],
    exclude: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.Series]:
    features = customer_features(orders, snapshot_month, product_lines=product_lines)
    excluded = _excluded_customers(exclude, snapshot_month, horizon_months)
    if len(excluded):
        features = features.loc[~features.index.isin(excluded)]
    labels = churn_labels(orders, snapshot_month, features.index, horizon_months)
    return features, labels


# -------------------------------------------------------------------------------------------------- training
def train_churn_model(
    orders: pd.DataFrame,
    as_of_month: date,
    horizon_months: int = 3,
    n_training_snapshots: int = 3,
    exclude: pd.DataFrame | None = None,
    random_state: int = 0,
    max_training_rows: int | None = 1_000_000,
) -> ChurnModelResult:
    """Train the churn model at the end of ``as_of_month`` and validate it out of time.

    Snapshots: validation ``V = as_of_month - horizon_months`` (the latest whose label window ends by the end
    of ``as_of_month``); training ``V - k`` for ``k = 1 .. n_training_snapshots`` (strictly earlier, never
    ``V``).
    Training snapshots before the first order are skipped (short history); if no training or no validation
    snapshot has customers, :class:`InsufficientHistoryError` says which month is the earliest that works.

    ``exclude``: rows ``(customer_id, month)`` of test-group contacts (``month`` = the delivery month). A
    customer's row of snapshot ``S`` is dropped when she was contacted in ``S+1 .. S+horizon`` (module doc).

    ``max_training_rows``: a seeded uniform sample of the stacked training rows when there are more (bounded
    memory at millions of customers); ``None`` uses every row.

    Metrics (on the validation snapshot): ``auc`` (ROC), ``pr_auc`` (average precision), ``brier``,
    ``top_decile_lift``, ``base_rate`` (churn rate), ``auc_active`` (ROC among customers not yet lapsed: the
    early-warning population, where churn is hard to see), ``n_train``, ``n_validation``, ``train_as_of``
    (ISO dates, oldest first), ``validation_as_of``, ``horizon_months``.
    """
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be >= 1, got {horizon_months}")
    if n_training_snapshots < 1:
        raise ValueError(f"n_training_snapshots must be >= 1, got {n_training_snapshots}")
    as_of_month = month_start(as_of_month)
    validation_month = add_months(as_of_month, -horizon_months)
    training_months = [add_months(validation_month, -k) for k in range(n_training_snapshots, 0, -1)]

    product_lines = product_lines_up_to(orders, validation_month)
    validation_features, validation_labels = _labelled_snapshot(
        orders, validation_month, horizon_months, product_lines, exclude
    )
    if validation_features.empty:
        raise InsufficientHistoryError(
            f"no customer has an order by {month_end(validation_month)}, so no churn label of horizon "
            f"{horizon_months} months is complete by the end of {as_of_month:%Y-%m}; "
            f"{_earliest_usable_hint(orders, horizon_months)}"
        )

    train_frames: list[pd.DataFrame] = []
    train_labels: list[pd.Series] = []
    used_months: list[date] = []
    for snapshot in training_months:
        features, labels = _labelled_snapshot(orders, snapshot, horizon_months, product_lines, exclude)
        if features.empty:
            continue
        train_frames.append(features)
        train_labels.append(labels)
        used_months.append(snapshot)
    if not train_frames:
        raise InsufficientHistoryError(
            f"no training snapshot before the validation month {validation_month:%Y-%m} has customers "
            f"(churn horizon {horizon_months} months, as of {as_of_month:%Y-%m}); "
            f"{_earliest_usable_hint(orders, horizon_months)}"
        )

    train_features = pd.concat(train_frames, ignore_index=True)
    y_train = pd.concat(train_labels, ignore_index=True).to_numpy()
    if np.unique(y_train).size < 2:
        raise InsufficientHistoryError(
            f"all {len(y_train)} training rows have the same churn label ({int(y_train[0])}); "
            "the history cannot separate churners from stayers yet"
        )
    if max_training_rows is not None and len(y_train) > max_training_rows:
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(len(y_train), size=max_training_rows, replace=False))
        train_features = train_features.iloc[keep]
        y_train = y_train[keep]

    feature_columns = model_feature_columns(train_features)
    pipeline = make_churn_pipeline(feature_columns, random_state=random_state)
    with fit_threads(len(y_train)):
        pipeline.fit(train_features, y_train)

    y_valid = validation_labels.to_numpy()
    score = pipeline.predict_proba(validation_features)[:, 1]
    both_classes = np.unique(y_valid).size == 2
    active = ~validation_features["is_lapsed"].to_numpy(dtype=bool)
    metrics: dict[str, Any] = {
        "auc": float(roc_auc_score(y_valid, score)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_valid, score)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y_valid, score)),
        "top_decile_lift": top_decile_lift(y_valid, score),
        "base_rate": float(y_valid.mean()),
        "auc_active": (
            float(roc_auc_score(y_valid[active], score[active]))
            if np.unique(y_valid[active]).size == 2
            else float("nan")
        ),
        "n_train": len(y_train),
        "n_validation": len(y_valid),
        "train_as_of": [m.isoformat() for m in used_months],
        "validation_as_of": validation_month.isoformat(),
        "horizon_months": horizon_months,
    }
    return ChurnModelResult(
        pipeline=pipeline,
        metrics=metrics,
        feature_columns=feature_columns,
        as_of_month=as_of_month,
        horizon_months=horizon_months,
        product_lines=product_lines,
    )


def _earliest_usable_hint(orders: pd.DataFrame, horizon_months: int) -> str:
    """Which as-of month first has a training and a validation snapshot: first order month + horizon + 1."""
    with duckdb.connect() as con:
        con.register("orders", orders[["order_date"]])
        first_order = con.execute("select min(cast(order_date as date)) from orders").fetchone()[0]
    if first_order is None:
        return "there are no orders"
    earliest = add_months(month_start(first_order), horizon_months + 1)
    return f"the earliest as-of month with a training and a validation snapshot is {earliest:%Y-%m}"


def score_churn(result: ChurnModelResult, orders: pd.DataFrame, as_of_month: date) -> pd.DataFrame:
    """Churn probability of every customer as of ``as_of_month`` (index customer_id, churn_probability).

    Uses the model's product lines, so the inputs match what it was trained on.
    """
    features = customer_features(orders, as_of_month, product_lines=result.product_lines)
    return pd.DataFrame(
        {"churn_probability": result.predict_proba(features)},
        index=features.index,
    )
