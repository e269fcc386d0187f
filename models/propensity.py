"""Product propensity and the next best product: who will buy which product line next month.

For each product line ``L`` and each customer who does not hold it yet (never bought it by the month end), the
probability that she buys ``L`` in the next calendar month: the cross-sell question of the CRM playbook. The
next best product of a customer is the line she does not hold with the highest *expected margin*,
``P(buy L next month) * E[margin of a first purchase of L]``.

Label and time (as for churn, no look-ahead). Snapshot ``S`` is labelled by the purchases of month ``S+1``,
so at the end of month ``M`` the latest labelled snapshot is ``V = M-1``. The reported metrics rehearse the
procedure one month earlier: models fitted on the ``n_training_snapshots`` snapshots up to ``V-1`` (labels
complete by the end of ``V``) are evaluated on ``V``; the models that score ``M`` are refitted on the snapshots
up to ``V``.

Model. One logistic regression over all (customer, line not held) pairs, stacked: a fixed effect per line (its
popularity), behavioural inputs shared by the lines on log scales (the BG/NBD expected number of purchases next
month: how likely the customer is to buy anything; recency, frequency, tenure, active months, average order
value, number of lines held), and per line the revenue shares of the lines the customer does hold (affinities:
who buys cookware may buy tableware). A customer who has bought often without ever buying ``L`` is unlikely to
like ``L``; the frequency terms learn that. Pooling lets a line with few first purchases borrow the shared
slopes and makes the probabilities of different lines comparable, which the next best product needs. Each
line's AUC is measured on its own rows. (Separate models per line were tried: no better AUC, and a worse choice
between lines.)

Expected margin of a line: the mean margin a customer spent on the line in the month she first bought it, over
the training labels (revenue instead when the orders have no margin).
"""

from __future__ import annotations

import calendar
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.churn import top_decile_lift
from models.clv import bgnbd_features, purchase_values
from models.features import add_months, customer_features, line_share_column, month_end, month_start
from models.parallelism import fit_threads
from models.snapshots import SnapshotStore

DEFAULT_TRAINING_SNAPSHOTS = 6

BASE_INPUTS = [
    "bgnbd_expected_purchases",
    "recency_days",
    "frequency",
    "tenure_days",
    "active_months_12m",
    "avg_order_revenue",
    "lines_held",
]

NEXT_BEST_COLUMNS = ["next_best_product", "next_best_product_probability", "next_best_product_expected_margin"]


class NoProductDataError(ValueError):
    """The orders carry no product line: there is nothing to recommend."""


def product_lines_of(orders: pd.DataFrame, as_of_month: date) -> list[str]:
    """Product lines bought by the end of ``as_of_month`` (sorted; empty without product data)."""
    if "product_line" not in orders.columns:
        return []
    day = pd.to_datetime(orders["order_date"])
    lines = orders.loc[(day <= pd.Timestamp(month_end(month_start(as_of_month)))).to_numpy(), "product_line"]
    return sorted(str(line) for line in lines.dropna().unique())


class _LinePurchases:
    """Sale lines with a product line: customer, calendar month (as an integer), line and value.

    The customer ids are factorised once, so that locating the lines of many snapshots is integer indexing
    rather than a string lookup per line and snapshot.
    """

    def __init__(self, orders: pd.DataFrame, product_lines: list[str]) -> None:
        values = purchase_values(orders)
        self.basis = values.basis
        sales = values.sales  # the sale lines of ``orders``, in their order, ids as text
        sale_rows = np.flatnonzero(_sale_mask(orders))
        self.product_lines = list(product_lines)
        line_code = pd.Index(self.product_lines).get_indexer(orders["product_line"].iloc[sale_rows].astype("str"))
        known = line_code >= 0  # a line with a product line of the list (not NULL)
        day = pd.to_datetime(sales["order_date"])
        customer_code, self.customer_ids = pd.factorize(sales["customer_id"].iloc[np.flatnonzero(known)].array)
        self.customer_code = customer_code.astype(np.int64)
        self.month = (day.dt.year * 12 + day.dt.month - 1).to_numpy(dtype=np.int64)[known]
        self.line_code = line_code[known]
        self.value = sales["value"].to_numpy(dtype=np.float64)[known]
        self._located: tuple[pd.Index, np.ndarray] | None = None

    def _row_of_code(self, customers: pd.Index) -> np.ndarray:
        """Row in ``customers`` of each customer code (-1: not there); kept for the last index asked about,
        since a snapshot's holdings and next-month purchases are located in the same customers."""
        if self._located is None or self._located[0] is not customers:
            self._located = (customers, pd.Index(customers).get_indexer(self.customer_ids))
        return self._located[1]

    def _positions(self, scope: np.ndarray, customers: pd.Index, product_lines: list[str]) -> tuple:
        rows = self._row_of_code(customers)[self.customer_code[scope]]
        line_code = self.line_code[scope]
        if product_lines == self.product_lines:
            columns = line_code
        else:
            columns = pd.Index(product_lines).get_indexer(self.product_lines)[line_code]
        known = (rows >= 0) & (columns >= 0)
        return rows[known], columns[known], self.value[scope][known]

    def held(self, month: date, customers: pd.Index, product_lines: list[str]) -> pd.DataFrame:
        """Boolean frame (customers x lines): the line was bought by the end of ``month``."""
        rows, columns, _ = self._positions(self.month <= _month_number(month), customers, product_lines)
        table = np.zeros((len(customers), len(product_lines)), dtype=bool)
        table[rows, columns] = True
        return pd.DataFrame(table, index=customers, columns=product_lines)

    def bought_in(self, month: date, customers: pd.Index, product_lines: list[str]) -> pd.DataFrame:
        """Value bought per (customer, line) in ``month`` (NaN = not bought)."""
        rows, columns, values = self._positions(self.month == _month_number(month), customers, product_lines)
        total = np.zeros((len(customers), len(product_lines)))
        np.add.at(total, (rows, columns), values)
        bought = np.zeros(total.shape, dtype=bool)
        bought[rows, columns] = True
        return pd.DataFrame(np.where(bought, total, np.nan), index=customers, columns=product_lines)


def _sale_mask(orders: pd.DataFrame) -> np.ndarray:
    if "is_return" in orders.columns:
        return ~orders["is_return"].fillna(False).to_numpy(dtype=bool)
    if "revenue" in orders.columns:
        return ~(orders["revenue"].to_numpy(dtype="float64", na_value=np.nan) < 0)
    return np.ones(len(orders), dtype=bool)


def _month_number(month: date) -> int:
    return month.year * 12 + month.month - 1


def _days_in_next_month(month: date) -> int:
    following = add_months(month_start(month), 1)
    return calendar.monthrange(following.year, following.month)[1]


def propensity_inputs(
    orders: pd.DataFrame,
    purchases: _LinePurchases,
    snapshot: date,
    product_lines: list[str],
    snapshots: SnapshotStore | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(inputs, held): features of every customer with an order by the snapshot's end, and her holdings.

    ``snapshots``: a :class:`models.snapshots.SnapshotStore` of the same orders; its snapshot is used when it
    is built for the same product lines (the same inputs, computed once for every analyse model)."""
    shared = snapshots.get(snapshot) if snapshots is not None and snapshots.product_lines == product_lines else None
    if shared is not None:
        features = shared.features
    else:
        features = customer_features(orders, snapshot, product_lines=product_lines)
    if features.empty:
        return features, pd.DataFrame(columns=product_lines, dtype=bool)
    horizon_days = _days_in_next_month(snapshot)
    if shared is not None:
        features = features.join(shared.bgnbd_view(horizon_days), how="left")
    else:
        features = features.join(bgnbd_features(orders, snapshot, horizon_days), how="left")
    held = purchases.held(snapshot, features.index, product_lines)
    features["lines_held"] = held.sum(axis=1).to_numpy("float64")
    return features, held


class PropensityDesign(TransformerMixin, BaseEstimator):
    """Design matrix of (customer, line) rows: log1p behavioural inputs (NaN -> training median), a one-hot per
    line, and the line's interactions with the revenue shares of every line (the held lines' shares)."""

    def __init__(self, product_lines: Sequence[str] = ()) -> None:
        self.product_lines = product_lines

    def _parts(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: N803 (sklearn API)
        lines = list(self.product_lines)
        missing = [c for c in [*BASE_INPUTS, "product_line"] if c not in X.columns]
        if missing:
            raise ValueError(f"propensity rows are missing input column(s) {missing}")
        base = X[BASE_INPUTS].to_numpy(dtype="float64", na_value=np.nan)
        base = np.log1p(np.clip(base, 0.0, None))
        position = pd.Index(lines).get_indexer(X["product_line"].astype("str"))
        if (position < 0).any():
            unknown = sorted(set(X["product_line"].astype("str")[position < 0]))
            raise ValueError(f"product line(s) {unknown} were not seen when the model was fitted")
        onehot = np.zeros((len(X), len(lines)))
        onehot[np.arange(len(X)), position] = 1.0
        share_columns = [line_share_column(line) for line in lines]
        shares = X.reindex(columns=share_columns, fill_value=0.0).to_numpy(dtype="float64", na_value=0.0)
        return base, onehot, shares

    def fit(self, X: pd.DataFrame, y: Any = None) -> PropensityDesign:  # noqa: N803
        base, _, _ = self._parts(X)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN input has no median: 0
            self.medians_ = np.nan_to_num(np.nanmedian(base, axis=0), nan=0.0)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        base, onehot, shares = self._parts(X)
        base = np.where(np.isnan(base), self.medians_, base)
        interactions = (onehot[:, :, None] * shares[:, None, :]).reshape(len(X), -1)
        return np.hstack([base, onehot, interactions])


def make_propensity_pipeline(product_lines: Sequence[str]) -> Pipeline:
    """The (unfitted) pooled propensity model: design matrix, standardisation, logistic regression."""
    return Pipeline(
        [
            ("design", PropensityDesign(list(product_lines))),
            ("standardise", StandardScaler()),
            ("model", LogisticRegression(C=1.0, max_iter=3000)),
        ]
    )


#: Candidate rows predicted at a time: the design matrix of a chunk (about 50 float columns) stays near 100 MB
#: whatever the size of the customer base; the predictions do not depend on the chunking (row by row).
PREDICT_CHUNK_ROWS = 200_000


@dataclass
class CandidateSet:
    """The (customer, line she does not hold) rows of one snapshot, kept as positions into a per-customer frame.

    A million customers times six product lines would be a frame of millions of rows with every input repeated
    per line; here the inputs are held once per customer (only the model's input columns) and rows are built
    on demand (:meth:`rows`), for a training sample or one chunk of predictions at a time. The row order is
    that of :func:`candidate_rows`: line by line (``product_lines`` order), customers in ``inputs`` order.
    """

    inputs: pd.DataFrame
    customer: np.ndarray
    line: np.ndarray
    product_lines: list[str]

    @classmethod
    def build(cls, inputs: pd.DataFrame, held: pd.DataFrame, product_lines: Sequence[str]) -> CandidateSet:
        lines = list(product_lines)
        columns = [c for c in [*BASE_INPUTS, *(line_share_column(line) for line in lines)] if c in inputs.columns]
        not_held = ~held.reindex(columns=lines, fill_value=False).to_numpy(dtype=bool)
        customer = [np.flatnonzero(not_held[:, j]) for j in range(len(lines))]
        return cls(
            inputs=inputs[columns],
            customer=np.concatenate([np.zeros(0, dtype=np.int64), *customer]).astype(np.int64),
            line=np.concatenate([np.zeros(0, dtype=np.int64), *(np.full(len(c), j) for j, c in enumerate(customer))]),
            product_lines=lines,
        )

    def __len__(self) -> int:
        return len(self.customer)

    def rows(self, positions: np.ndarray | slice | None = None) -> pd.DataFrame:
        """Candidate rows (all, or those at ``positions``): the customer's inputs plus ``product_line``."""
        chosen = slice(None) if positions is None else positions
        frame = self.inputs.iloc[self.customer[chosen]]
        names = np.asarray(self.product_lines, dtype=object)[self.line[chosen]]
        return frame.assign(product_line=pd.array(names, dtype="str"))

    def chunks(self, size: int = PREDICT_CHUNK_ROWS):
        """Consecutive slices of at most ``size`` rows."""
        for start in range(0, len(self), size):
            yield slice(start, min(start + size, len(self)))


def candidate_rows(inputs: pd.DataFrame, held: pd.DataFrame, product_lines: Sequence[str]) -> pd.DataFrame:
    """One row per (customer, line she does not hold): her inputs plus ``product_line``; index customer_id."""
    frames = [
        inputs.loc[~held[line].to_numpy(dtype=bool)].assign(product_line=line)
        for line in product_lines
        if not held[line].all()
    ]
    if not frames:
        return inputs.iloc[:0].assign(product_line=pd.Series(dtype="str"))
    return pd.concat(frames)


def stacked_rows(parts: Sequence[CandidateSet], keep: np.ndarray | None = None) -> pd.DataFrame:
    """The candidate rows of several snapshots stacked in order, or only those at the sorted positions ``keep``
    of the stack (a training sample), without building the rows that are left out."""
    frames, start = [], 0
    for part in parts:
        if keep is None:
            frames.append(part.rows())
        else:
            inside = keep[(keep >= start) & (keep < start + len(part))]
            frames.append(part.rows(inside - start))
        start += len(part)
    return pd.concat(frames)


@dataclass
class PropensityModel:
    """The pooled propensity model fitted as of a month, each line's expected margin, and the evidence."""

    as_of_month: date
    product_lines: list[str]
    pipeline: Pipeline
    expected_margin: dict[str, float]
    value_basis: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, candidates: pd.DataFrame) -> np.ndarray:
        """P(buy the row's product_line next month) for rows of :func:`candidate_rows` (in chunks of
        :data:`PREDICT_CHUNK_ROWS`, so the design matrix stays bounded)."""
        if candidates.empty:
            return np.zeros(0)
        return np.concatenate(
            [
                self.pipeline.predict_proba(candidates.iloc[start : start + PREDICT_CHUNK_ROWS])[:, 1]
                for start in range(0, len(candidates), PREDICT_CHUNK_ROWS)
            ]
        )

    def predict_candidates(self, candidates: CandidateSet, chunk_rows: int = PREDICT_CHUNK_ROWS) -> np.ndarray:
        """:meth:`predict_proba` of every row of a :class:`CandidateSet`, built ``chunk_rows`` at a time."""
        if not len(candidates):
            return np.zeros(0)
        return np.concatenate(
            [self.pipeline.predict_proba(candidates.rows(chunk))[:, 1] for chunk in candidates.chunks(chunk_rows)]
        )

    def candidates(
        self, orders: pd.DataFrame, as_of_month: date, snapshots: SnapshotStore | None = None
    ) -> CandidateSet:
        """Every (customer, line not held) as of the month; lines first sold after the fit month are left out.
        ``snapshots``: see :func:`propensity_inputs`."""
        purchases = _LinePurchases(orders, self.product_lines)
        inputs, held = propensity_inputs(orders, purchases, month_start(as_of_month), self.product_lines, snapshots)
        return CandidateSet.build(inputs, held, self.product_lines)

    def score(self, orders: pd.DataFrame, as_of_month: date, snapshots: SnapshotStore | None = None) -> pd.DataFrame:
        """P(buy the line next month) and expected margin for every (customer, line not held) as of the month.

        Columns: customer_id, product_line, probability, expected_margin (probability * the line's expected
        margin), sorted by customer and line. Lines first sold after the fit month are not scored.
        """
        return _score_candidates(self, self.candidates(orders, as_of_month, snapshots))

    def next_best_products(
        self,
        orders: pd.DataFrame,
        as_of_month: date,
        chunk_rows: int = PREDICT_CHUNK_ROWS,
        snapshots: SnapshotStore | None = None,
    ) -> pd.DataFrame:
        """Per customer (index customer_id): :data:`NEXT_BEST_COLUMNS` (absent when she holds every line).

        The same choice as :func:`next_best_products` of :meth:`score`, made on positions rather than on a
        sorted frame of every (customer, line) pair."""
        candidates = self.candidates(orders, as_of_month, snapshots)
        probability = self.predict_candidates(candidates, chunk_rows)
        expected_margin = probability * self._line_margins()[candidates.line]
        # customer ascending, expected margin descending, then the alphabetically first line (lines are sorted)
        order = np.lexsort((candidates.line, -expected_margin, candidates.customer))
        first = order[np.r_[True, np.diff(candidates.customer[order]) != 0]] if len(order) else order
        frame = pd.DataFrame(
            {
                "next_best_product": pd.array(
                    np.asarray(self.product_lines, dtype=object)[candidates.line[first]], dtype="str"
                ),
                "next_best_product_probability": probability[first],
                "next_best_product_expected_margin": expected_margin[first],
            },
            index=pd.Index(candidates.inputs.index.to_numpy()[candidates.customer[first]], dtype="str"),
        )
        frame.index.name = "customer_id"
        return frame

    def _line_margins(self) -> np.ndarray:
        return np.array([self.expected_margin.get(line, np.nan) for line in self.product_lines], dtype="float64")


def _score_candidates(model: PropensityModel, candidates: CandidateSet) -> pd.DataFrame:
    probability = model.predict_candidates(candidates)
    margin = model._line_margins()[candidates.line]
    customer_ids = candidates.inputs.index
    scored = pd.DataFrame(
        {
            "customer_id": pd.array(customer_ids.to_numpy()[candidates.customer], dtype="str"),
            "product_line": pd.array(np.asarray(model.product_lines, dtype=object)[candidates.line], dtype="str"),
            "probability": probability,
            "expected_margin": probability * margin,
        }
    )
    if customer_ids.is_monotonic_increasing:  # inputs come sorted by customer_id: sort on positions
        return scored.take(np.lexsort((candidates.line, candidates.customer))).reset_index(drop=True)
    return scored.sort_values(["customer_id", "product_line"], kind="stable").reset_index(drop=True)


def next_best_products(scored: pd.DataFrame) -> pd.DataFrame:
    """The line with the highest expected margin per customer (ties: alphabetically first line)."""
    ranked = scored.sort_values(["customer_id", "expected_margin", "product_line"], ascending=[True, False, True])
    best = ranked.drop_duplicates("customer_id").set_index("customer_id")
    frame = pd.DataFrame(
        {
            "next_best_product": best["product_line"].astype("str"),
            "next_best_product_probability": best["probability"].astype("float64"),
            "next_best_product_expected_margin": best["expected_margin"].astype("float64"),
        }
    )
    frame.index = pd.Index(frame.index, dtype="str", name="customer_id")
    return frame


def _line_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    both = np.unique(y).size == 2
    return {
        "auc": float(roc_auc_score(y, probability)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, probability)) if both else float("nan"),
        "top_decile_lift": top_decile_lift(y, probability),
        "n_validation": len(y),
        "validation_buyers": int(y.sum()),
    }


def propensity_snapshots(
    as_of_month: date, n_training_snapshots: int = DEFAULT_TRAINING_SNAPSHOTS
) -> tuple[list[date], date, list[date]]:
    """(rehearsal training months, validation month, final training months) of the model fitted as of
    ``as_of_month`` (module docstring), oldest first."""
    validation_month = add_months(month_start(as_of_month), -1)
    rehearsal_months = [add_months(validation_month, -k) for k in range(n_training_snapshots, 0, -1)]
    final_months = [add_months(validation_month, -k) for k in range(n_training_snapshots - 1, -1, -1)]
    return rehearsal_months, validation_month, final_months


def propensity_snapshot_months(as_of_month: date, n_training_snapshots: int = DEFAULT_TRAINING_SNAPSHOTS) -> list[date]:
    """Every snapshot month the propensity model fitted as of ``as_of_month`` reads, sorted."""
    rehearsal, validation, final = propensity_snapshots(as_of_month, n_training_snapshots)
    return sorted({*rehearsal, validation, *final})


def train_propensity_models(
    orders: pd.DataFrame,
    as_of_month: date,
    n_training_snapshots: int = DEFAULT_TRAINING_SNAPSHOTS,
    max_training_rows: int | None = 100_000,
    random_state: int = 0,
    snapshots: SnapshotStore | None = None,
) -> PropensityModel:
    """The pooled propensity model as of the end of ``as_of_month`` (module docstring), validated out of time.

    Raises :class:`NoProductDataError` when the orders carry no product line (a plain transaction log), and
    ``ValueError`` when the training snapshots hold no first purchase of any line (nothing to learn).
    ``max_training_rows``: the model is fitted on a seeded uniform sample of the stacked (customer, line) rows
    when there are more (bounded time and memory); the lines' margins and counts use every row.
    ``snapshots``: a :class:`models.snapshots.SnapshotStore` of the same orders (see :func:`propensity_inputs`).

    Metrics: per line (``lines``): ``auc``, ``pr_auc``, ``top_decile_lift`` on the validation snapshot,
    ``n_validation`` (customers not holding the line), ``validation_buyers``, ``n_train``, ``train_buyers``,
    ``expected_margin``; overall: ``mean_auc``, ``next_best_hit_rate`` (among validation customers who bought a
    line new to them, the share whose most probable line was one of them) next to ``popularity_hit_rate``
    (always recommending the unheld line with the highest first-purchase rate in training), and the snapshots.
    """
    as_of_month = month_start(as_of_month)
    product_lines = product_lines_of(orders, as_of_month)
    if not product_lines:
        raise NoProductDataError("the orders carry no product line: no propensity or next best product")
    purchases = _LinePurchases(orders, product_lines)
    rehearsal_months, validation_month, final_months = propensity_snapshots(as_of_month, n_training_snapshots)
    cache: dict[date, tuple[CandidateSet, np.ndarray, np.ndarray]] = {}

    def snapshot(month: date) -> tuple[CandidateSet, np.ndarray, np.ndarray]:
        """(candidate rows, bought the line next month, value bought) of one snapshot."""
        if month not in cache:
            inputs, held = propensity_inputs(orders, purchases, month, product_lines, snapshots)
            candidates = CandidateSet.build(inputs, held, product_lines)
            bought = purchases.bought_in(add_months(month, 1), inputs.index, product_lines)
            value = bought.to_numpy(dtype="float64")[candidates.customer, candidates.line]
            cache[month] = (candidates, ~np.isnan(value), value)
        return cache[month]

    def fit(months: list[date]) -> tuple[PropensityModel, dict[str, dict[str, int]]]:
        parts = [snapshot(month) for month in months if len(snapshot(month)[0])]
        if not parts:
            raise ValueError(f"no customer in the training snapshots {months[0]:%Y-%m} .. {months[-1]:%Y-%m}")
        label = np.concatenate([part[1] for part in parts]).astype("int64")
        value = np.concatenate([part[2] for part in parts])
        if np.unique(label).size < 2:
            raise ValueError("the training snapshots hold no first purchase of any product line: nothing to learn")
        line = np.concatenate([part[0].line for part in parts])
        first_purchase = {name: (line == j) & (label == 1) for j, name in enumerate(product_lines)}
        margin = {name: float(value[m].mean()) if m.any() else 0.0 for name, m in first_purchase.items()}
        counts = {
            name: {"n_train": int((line == j).sum()), "train_buyers": int(first_purchase[name].sum())}
            for j, name in enumerate(product_lines)
        }
        keep = None
        if max_training_rows is not None and len(label) > max_training_rows:
            # A seeded uniform sample: the rates (and so the calibration) stay those of the full data. Only the
            # sampled rows are built.
            keep = np.sort(np.random.default_rng(random_state).choice(len(label), max_training_rows, replace=False))
            label = label[keep]
        rows = stacked_rows([part[0] for part in parts], keep)
        pipeline = make_propensity_pipeline(product_lines)
        with fit_threads(len(label)):
            pipeline.fit(rows, label)
        model = PropensityModel(months[-1], product_lines, pipeline, margin, purchases.basis)
        model.metrics["popularity"] = {name: c["train_buyers"] / max(c["n_train"], 1) for name, c in counts.items()}
        return model, counts

    rehearsal, _ = fit(rehearsal_months)
    final, counts = fit(final_months)
    final.as_of_month = as_of_month

    candidates, bought, _ = snapshot(validation_month)
    probability = rehearsal.predict_candidates(candidates)
    line = candidates.line
    line_metrics = {
        name: {
            **_line_metrics(bought[line == j].astype("int64"), probability[line == j]),
            **counts[name],
            "expected_margin": final.expected_margin[name],
        }
        for j, name in enumerate(product_lines)
    }
    aucs = [m["auc"] for m in line_metrics.values() if np.isfinite(m["auc"])]
    final.metrics = {
        "model": "pooled_logistic_regression",
        "lines": line_metrics,
        "mean_auc": float(np.mean(aucs)) if aucs else float("nan"),
        **_hit_rates(candidates, bought, probability, rehearsal.metrics["popularity"]),
        "validation_as_of": validation_month.isoformat(),
        "rehearsal_train_as_of": [m.isoformat() for m in rehearsal_months if len(cache[m][0])],
        "train_as_of": [m.isoformat() for m in final_months if len(cache[m][0])],
        "value_basis": purchases.basis,
        "inputs": [*BASE_INPUTS, "product_line", "product_line x line_share__<line>"],
    }
    return final


def _hit_rates(
    candidates: CandidateSet, bought: np.ndarray, probability: np.ndarray, popularity: dict[str, float]
) -> dict[str, float]:
    """How often the most probable new line (and, as a baseline, the most popular one) was bought next month."""
    frame = pd.DataFrame(
        {
            "customer_id": candidates.customer,
            "product_line": candidates.line,  # positions in the sorted lines: ties go to the first line by name
            "bought": bought,
            "probability": probability,
        }
    )
    popularity_by_line = np.array([popularity[line] for line in candidates.product_lines], dtype="float64")
    buyers = frame.loc[frame["bought"], "customer_id"].unique()
    if len(buyers) == 0:
        return {"next_best_hit_rate": float("nan"), "popularity_hit_rate": float("nan"), "new_line_buyers": 0}
    rows = frame[frame["customer_id"].isin(buyers)]
    rows = rows.assign(popularity=popularity_by_line[rows["product_line"].to_numpy()])

    def hit_rate(by: str) -> float:
        top = rows.sort_values(["customer_id", by, "product_line"], ascending=[True, False, True])
        return float(top.drop_duplicates("customer_id")["bought"].mean())

    return {
        "next_best_hit_rate": hit_rate("probability"),
        "popularity_hit_rate": hit_rate("popularity"),
        "new_line_buyers": len(buyers),
    }
