"""Monthly customer snapshots shared by the analyse models: point-in-time features and the BG/NBD view.

A snapshot of month ``S`` is what the models know about every customer at the end of ``S``: the features of
:func:`models.features.customer_features` and the BG/NBD summary of the purchase history with the BG/NBD fitted
on it (:func:`models.clv.bgnbd_snapshot_summary`, :func:`models.clv.fit_snapshot_bgnbd`; Fader, Hardie & Lee
2005). One monthly cycle needs the same snapshots several times: churn trains and validates on about nine
monthly snapshots, propensity on seven (five of them the same months), and scoring and segmentation need the
as-of month itself three times over (features, churn inputs, propensity candidates). A :class:`SnapshotStore`
computes each month once and hands the same snapshot to every model; the BG/NBD's horizon-specific view (90
days for churn, the next month for propensity) is derived from the one fit (:func:`models.clv.bgnbd_view`),
since the fit itself does not depend on the horizon.

The snapshot of ``S`` depends only on the orders dated by the end of ``S`` (no look-ahead), on the product lines
its line shares are built for, and on nothing else: handing a model a stored snapshot gives exactly the inputs
it would have computed from the orders. A store with a directory persists each snapshot as Parquet (features,
BG/NBD summary) and JSON (BG/NBD parameters) under ``<directory>/<YYYY-MM>/``, so that the separate analyse
steps of one cycle share them; the directory belongs to one order history (the analyse stage keeps one per
cycle month) and :meth:`SnapshotStore.clear` empties it when that history is re-read.

A store over one chunk of the customer base (:mod:`models.customer_chunks`) takes each month's BG/NBD from the
store the models were trained with (``bgnbd_from``) instead of fitting it on the chunk: the BG/NBD is a
population model, and a customer's BG/NBD view must not depend on which other customers share her chunk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from models.clv import BetaGeoNBD, bgnbd_snapshot_summary, bgnbd_view, fit_snapshot_bgnbd
from models.features import customer_features, month_start, product_lines_up_to

#: Threads computing features in :meth:`SnapshotStore.compute` (each a DuckDB query, which releases the GIL).
FEATURE_THREADS = 2

#: Files of one stored snapshot (under ``<directory>/<YYYY-MM>/``).
FEATURES_FILE = "features.parquet"
BGNBD_SUMMARY_FILE = "bgnbd_summary.parquet"
BGNBD_FILE = "bgnbd.json"


@dataclass
class CustomerSnapshot:
    """One month's point-in-time customer features and BG/NBD (see the module docstring)."""

    as_of_month: date
    product_lines: list[str]
    features: pd.DataFrame
    bgnbd_summary: pd.DataFrame
    bgnbd: BetaGeoNBD | None

    def bgnbd_view(self, horizon_days: int) -> pd.DataFrame:
        """``bgnbd_p_alive``, ``bgnbd_p_no_purchase`` and ``bgnbd_expected_purchases`` over ``horizon_days``
        for every customer with a sale by the month end (:func:`models.clv.bgnbd_features`)."""
        return bgnbd_view(self.bgnbd_summary, self.bgnbd, horizon_days)

    def inputs(self, horizon_days: int) -> pd.DataFrame:
        """The features joined with the BG/NBD view over ``horizon_days`` (index customer_id; customers with
        returns only have NaN BG/NBD columns)."""
        if self.features.empty:
            return self.features.assign(
                bgnbd_p_alive=float("nan"), bgnbd_p_no_purchase=float("nan"), bgnbd_expected_purchases=float("nan")
            )
        return self.features.join(self.bgnbd_view(horizon_days), how="left")


def compute_snapshot(
    orders: pd.DataFrame, as_of_month: date, product_lines: Sequence[str], bgnbd_from: SnapshotStore | None = None
) -> CustomerSnapshot:
    """The snapshot of ``as_of_month`` from the order history, with line shares for ``product_lines``; its
    BG/NBD fitted on the history, or the one ``bgnbd_from`` holds for the month."""
    as_of_month = month_start(as_of_month)
    lines = sorted({str(line) for line in product_lines})
    features = customer_features(orders, as_of_month, product_lines=lines)
    summary = bgnbd_snapshot_summary(orders, as_of_month)
    bgnbd = bgnbd_from.fitted_bgnbd(as_of_month) if bgnbd_from is not None else fit_snapshot_bgnbd(summary)
    return CustomerSnapshot(as_of_month, lines, features, summary, bgnbd)


class SnapshotStore:
    """Customer snapshots of one order history, each month computed once.

    ``product_lines``: the lines every snapshot's shares are built for (default: the lines ordered by the end
    of ``lines_as_of``, the month the models are fitted as of; a line not yet sold at a snapshot gets a zero
    share, exactly as :func:`models.features.customer_features` with a fixed list). ``directory``: where
    snapshots are persisted (see the module docstring); without it they are kept in memory. ``orders`` may be
    a function that returns them: it is called only when a snapshot has to be computed (or the default
    product lines found), so that a reader of stored snapshots never loads the history. ``bgnbd_from``:
    the store whose monthly BG/NBD fits this store's snapshots use (a chunk of the base; see the module
    docstring); by default each snapshot's BG/NBD is fitted on this store's orders.
    """

    def __init__(
        self,
        orders: pd.DataFrame | Callable[[], pd.DataFrame],
        lines_as_of: date,
        product_lines: Sequence[str] | None = None,
        directory: Path | str | None = None,
        bgnbd_from: SnapshotStore | None = None,
    ) -> None:
        self._orders = orders
        self.bgnbd_from = bgnbd_from
        if product_lines is None:
            product_lines = product_lines_up_to(orders, month_start(lines_as_of))
        self.product_lines = sorted({str(line) for line in product_lines})
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[date, CustomerSnapshot] = {}
        self.computed: list[date] = []

    @property
    def orders(self) -> pd.DataFrame:
        """The order history (read on first use when the store was given a function that reads it)."""
        if callable(self._orders):
            self._orders = self._orders()
        return self._orders

    def _path(self, month: date) -> Path:
        assert self.directory is not None
        return self.directory / f"{month:%Y-%m}"

    def clear(self) -> None:
        """Forget every stored snapshot (the order history they were computed from has been re-read)."""
        self._memory.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def get(self, month: date) -> CustomerSnapshot:
        """The snapshot of ``month``: stored, or computed now (and stored)."""
        month = month_start(month)
        stored = self._stored(month)
        if stored is not None:
            return stored
        snapshot = compute_snapshot(self.orders, month, self.product_lines, self.bgnbd_from)
        self._keep(snapshot)
        return snapshot

    def fitted_bgnbd(self, month: date) -> BetaGeoNBD | None:
        """The BG/NBD of the snapshot of ``month`` (for a stored snapshot, read from its record alone)."""
        month = month_start(month)
        if month not in self._memory and self.directory is not None:
            record = self._read_record(month)
            if record is not None:
                return BetaGeoNBD.from_params(**record["params"]) if record["params"] is not None else None
        return self.get(month).bgnbd

    def customers(self, month: date) -> int:
        """How many customers the snapshot of ``month`` covers: for a snapshot on disk, from its Parquet footer
        (no rows read); otherwise from :meth:`get`."""
        month = month_start(month)
        if month not in self._memory and self.directory is not None and self._read_record(month) is not None:
            return pq.ParquetFile(self._path(month) / FEATURES_FILE).metadata.num_rows
        return len(self.get(month).features)

    def compute(self, months: Iterable[date]) -> None:
        """Compute and store every snapshot of ``months`` not stored yet: the same snapshots as :meth:`get`.

        The features of the months (one DuckDB query each) run in :data:`FEATURE_THREADS` background threads
        while this thread summarises and fits the BG/NBD of each month in turn, so that the query of one month
        and the fit of another share the machine's cores."""
        missing = [month for month in sorted({month_start(m) for m in months}) if self._stored(month) is None]
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=FEATURE_THREADS, thread_name_prefix="snapshot_features") as pool:
            features = {
                month: pool.submit(customer_features, self.orders, month, product_lines=self.product_lines)
                for month in missing
            }
            for month in missing:
                summary = bgnbd_snapshot_summary(self.orders, month)
                if self.bgnbd_from is not None:
                    bgnbd = self.bgnbd_from.fitted_bgnbd(month)
                else:
                    bgnbd = fit_snapshot_bgnbd(summary)
                self._keep(CustomerSnapshot(month, self.product_lines, features[month].result(), summary, bgnbd))

    def _stored(self, month: date) -> CustomerSnapshot | None:
        if month in self._memory:
            return self._memory[month]
        return self._read(month) if self.directory is not None else None

    def _keep(self, snapshot: CustomerSnapshot) -> None:
        self.computed.append(snapshot.as_of_month)
        if self.directory is not None:
            self._write(snapshot)
        else:
            self._memory[snapshot.as_of_month] = snapshot

    def _write(self, snapshot: CustomerSnapshot) -> None:
        path = self._path(snapshot.as_of_month)
        staging = path.with_name(path.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        snapshot.features.to_parquet(staging / FEATURES_FILE)
        snapshot.bgnbd_summary.to_parquet(staging / BGNBD_SUMMARY_FILE)
        params = snapshot.bgnbd.params_ if snapshot.bgnbd is not None else None
        (staging / BGNBD_FILE).write_text(json.dumps({"product_lines": snapshot.product_lines, "params": params}))
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)  # a snapshot is either complete on disk or absent

    def _read_record(self, month: date) -> dict | None:
        """The stored snapshot's record (product lines, BG/NBD parameters), None when it is not stored for
        this store's product lines."""
        path = self._path(month) / BGNBD_FILE
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        return record if record["product_lines"] == self.product_lines else None  # else: recompute, overwrite

    def _read(self, month: date) -> CustomerSnapshot | None:
        path = self._path(month)
        record = self._read_record(month)
        if record is None:
            return None
        params = record["params"]
        return CustomerSnapshot(
            as_of_month=month,
            product_lines=list(record["product_lines"]),
            features=pd.read_parquet(path / FEATURES_FILE),
            bgnbd_summary=pd.read_parquet(path / BGNBD_SUMMARY_FILE),
            bgnbd=BetaGeoNBD.from_params(**params) if params is not None else None,
        )
