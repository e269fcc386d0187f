"""Analyse: who is valuable, who is leaving, who will buy what, and which behavioural segments exist.

``customer_feature_snapshots`` computes, once per cycle, the monthly customer snapshots (point-in-time
features and the BG/NBD view) that the models train and score on (``models.snapshots``); one asset per model
then saves a versioned artefact under ``$CRM_HOME/artefacts/<model>/<YYYY-MM>/`` and reports its evidence as
metadata; ``customer_scores`` scores every customer from those artefacts, and ``customer_equity`` sums the
discounted CLV by pyramid tier and segment.

Memory does not grow with the customer base (``models.customer_chunks``): the models are fitted on the training
sample's orders (every customer up to the warehouse resource's ``training_customers``), and the base is read and
scored one chunk of at most ``customers_per_chunk`` customers at a time, its rows appended to the month's table.
"""

import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, MetadataValue, asset

from models.artefacts import artefact_dir, load_artefact, save_artefact
from models.churn import BGNBDChurnFallback, churn_snapshot_months, comparison_table, fit_churn_model
from models.clv import fit_lifetime_value
from models.customer_chunks import CustomerRange, TrainingSample, chunk_count, customer_ranges, training_sample
from models.equity import equity_by_tier_and_segment
from models.features import month_end
from models.propensity import NoProductDataError, propensity_snapshot_months, train_propensity_models
from models.scoring import score_with_models
from models.segmentation import fit_segmentation
from models.snapshots import SnapshotStore
from orchestration.lib.campaign_records import append_rows_growing, replace_rows_growing
from orchestration.lib.months import partition_month
from orchestration.lib.queries import (
    SCORES_TABLE,
    contacted_test_customers,
    customer_chunk_starts,
    customers_with_orders,
    email_engagement_as_of,
    orders_as_of,
    product_lines_as_of,
)
from orchestration.partitions import monthly_partitions
from orchestration.resources import WarehouseResource

FCT_ORDERS = AssetKey(["marts", "fct_orders"])
FEATURE_SNAPSHOTS = AssetKey("customer_feature_snapshots")
CUSTOMER_VALUE = AssetKey(["marts", "customer_value"])
SEGMENTS_TABLE = "analytics.customer_segments"
PROPENSITY_TABLE = "analytics.product_propensity"
EQUITY_TABLE = "analytics.customer_equity"


class ChurnConfig(Config):
    """Churn label and training window (the defaults are what the monthly loop runs with)."""

    horizon_days: int = 90
    training_snapshots: int = 6


# ------------------------------------------------------------------------------------------------ helpers
def model_dir(warehouse: WarehouseResource, model: str, month: date) -> Path:
    """``$CRM_HOME/artefacts/<model>/<YYYY-MM>`` (the warehouse file lives in ``$CRM_HOME``)."""
    return artefact_dir(warehouse.home, model, month)


def snapshots_dir(warehouse: WarehouseResource) -> Path:
    """``$CRM_HOME/snapshots``: one folder of monthly customer snapshots per cycle month."""
    return warehouse.home / "snapshots"


@dataclass(frozen=True)
class CustomerBase:
    """How the analyse stage of one month reads the customer base: the training sample the models are fitted
    on, the chunks it is scored in, and the product lines every snapshot has shares for."""

    month: date
    customers: int
    sample: TrainingSample
    chunks: list[CustomerRange]
    product_lines: list[str]

    @property
    def in_one_piece(self) -> bool:
        """The models train on every customer and one chunk holds them all: one store serves both."""
        return self.sample.everyone and len(self.chunks) == 1


def customer_base(warehouse: WarehouseResource, month: date) -> CustomerBase:
    """The customer base with an order by the end of ``month``, split by the warehouse resource's
    ``customers_per_chunk`` and ``training_customers``."""
    customers = customers_with_orders(warehouse, month)
    if chunk_count(customers, warehouse.customers_per_chunk) > 1:
        chunks = customer_ranges(customer_chunk_starts(warehouse, month, warehouse.customers_per_chunk))
    else:
        chunks = [CustomerRange()]
    return CustomerBase(
        month=month,
        customers=customers,
        sample=training_sample(customers, warehouse.training_customers),
        chunks=chunks,
        product_lines=product_lines_as_of(warehouse, month),
    )


def training_orders(warehouse: WarehouseResource, base: CustomerBase) -> pd.DataFrame:
    """The order lines of the training sample's customers, placed by the end of the month."""
    return orders_as_of(warehouse, base.month, sample=base.sample)


def snapshot_store(
    warehouse: WarehouseResource, base: CustomerBase, orders: pd.DataFrame | None = None
) -> SnapshotStore:
    """The training sample's customer snapshots of cycle ``month`` (``$CRM_HOME/snapshots/<YYYY-MM>``), over
    its orders as of the month end (read only if a snapshot is missing, unless given): those
    ``customer_feature_snapshots`` wrote are read, any other month is computed and added."""
    directory = snapshots_dir(warehouse) / f"{base.month:%Y-%m}"
    history = orders if orders is not None else (lambda: training_orders(warehouse, base))
    return SnapshotStore(history, base.month, product_lines=base.product_lines, directory=directory)


def scoring_chunks(
    warehouse: WarehouseResource, base: CustomerBase, training: SnapshotStore
) -> Iterator[tuple[pd.DataFrame, SnapshotStore]]:
    """Each scoring chunk's orders and snapshot store (``<snapshots>/<YYYY-MM>/chunks/<i>-of-<n>``, its BG/NBD
    the training store's), one chunk at a time; the training store itself when the base is in one piece."""
    if base.in_one_piece:
        yield training.orders, training
        return
    for index, customers in enumerate(base.chunks):
        orders = orders_as_of(warehouse, base.month, customers=customers)
        directory = training.directory / "chunks" / f"{index + 1:04d}-of-{len(base.chunks):04d}"
        yield (
            orders,
            SnapshotStore(
                orders, base.month, product_lines=base.product_lines, directory=directory, bgnbd_from=training
            ),
        )


def base_metadata(base: CustomerBase, training_customers: int) -> dict[str, Any]:
    """What the models were fitted on, as asset metadata."""
    return {
        "customers_in_base": base.customers,
        "training_customers": training_customers,
        "training_sample": "every customer" if base.sample.everyone else f"{base.sample.share:.1%} of the base (MD5)",
        "scoring_chunks": len(base.chunks),
    }


def _markdown(frame: pd.DataFrame, floatfmt: str = ".3f") -> MetadataValue:
    return MetadataValue.md(frame.to_markdown(index=False, floatfmt=floatfmt) if len(frame) else "(none)")


def _number(value: Any) -> float | None:
    """A metric as a finite float, or None (Dagster metadata has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _metrics(values: dict[str, Any]) -> dict[str, Any]:
    return {key: number for key, value in values.items() if (number := _number(value)) is not None}


def pyramid_tiers(warehouse: WarehouseResource, month: date) -> pd.Series | None:
    """Pyramid tier per customer_id of ``marts.customer_value`` for the month (None if the mart is absent)."""
    if not warehouse.table_exists("marts.customer_value"):
        return None
    tiers = warehouse.query(
        "select customer_id, pyramid_tier from marts.customer_value where as_of_month = ?", [pd.Timestamp(month)]
    )
    if tiers.empty:
        return None
    return tiers.set_index(tiers["customer_id"].astype("str"))["pyramid_tier"]


def write_month(warehouse: WarehouseResource, table: str, frame: pd.DataFrame, month: date) -> int:
    """Replace the month's rows of ``table``; columns the table lacks (a new product line, a new score) are
    added first, so the schema can grow without a rebuild."""
    return replace_rows_growing(warehouse, table, frame, {"as_of_month": pd.Timestamp(month)})


def write_month_in_chunks(warehouse: WarehouseResource, table: str, chunks: Iterable[pd.DataFrame], month: date) -> int:
    """Replace the month's rows of ``table`` with the rows of every chunk, one chunk in memory at a time: the
    first replaces the month, the others are appended (with the columns they add).

    The chunks are not written in one transaction: DuckDB keeps a transaction's small appends in memory until it
    commits, which would bring back the memory the chunks save (about 0.5 KB per customer). A run that fails
    part-way leaves part of the month; the asset fails, so no later stage reads it, and the re-run replaces it."""
    rows = 0
    for position, frame in enumerate(chunks):
        if position == 0:
            rows += write_month(warehouse, table, frame, month)
        else:
            rows += append_rows_growing(warehouse, table, frame)
    return rows


# ----------------------------------------------------------------------------------------------- snapshots
@asset(
    key="customer_feature_snapshots",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[FCT_ORDERS],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def customer_feature_snapshots(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """The monthly customer snapshots the models of this cycle read: point-in-time features and the BG/NBD
    fitted on each month, for the month itself and every month churn and propensity train and validate on
    (``models.snapshots``), over the training sample; and, when the base is split, the month's snapshot of
    each scoring chunk (with the sample's BG/NBD). Each month is computed once here instead of once per
    model. They are written afresh from this cycle's orders; the folders of other cycles are removed (a
    model re-run for another month recomputes what it needs), so that the disk holds one cycle's snapshots."""
    month = partition_month(context.partition_key)
    started = time.perf_counter()
    base = customer_base(warehouse, month)
    store = snapshot_store(warehouse, base, training_orders(warehouse, base))
    store.clear()
    for other in snapshots_dir(warehouse).glob("*"):
        if other != store.directory:
            shutil.rmtree(other, ignore_errors=True)
    months = sorted({*churn_snapshot_months(month), *propensity_snapshot_months(month), month})
    store.compute(months)
    training = {f"{m:%Y-%m}": store.customers(m) for m in months}
    scored = 0
    if not base.in_one_piece:
        for _, chunk in scoring_chunks(warehouse, base, store):
            chunk.compute([month])
            scored += chunk.customers(month)
    else:
        scored = training[f"{month:%Y-%m}"]
    return MaterializeResult(
        metadata={
            "dagster/row_count": scored,
            **base_metadata(base, training[f"{month:%Y-%m}"]),
            "snapshot_months": ", ".join(training),
            "training_customers_by_month": MetadataValue.json(training),
            "product_lines": ", ".join(store.product_lines) or "none",
            "seconds": round(time.perf_counter() - started, 2),
            "path": MetadataValue.path(str(store.directory)),
        }
    )


# ---------------------------------------------------------------------------------------------- the models
@asset(
    key="clv_model",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[FCT_ORDERS],
    kinds={"python", "scipy"},
    pool="duckdb",
)
def clv_model(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """BG/NBD (purchases and P(alive)) and Gamma-Gamma (value per order) fitted by maximum likelihood on every
    customer's order history up to the month end (Fader, Hardie & Lee 2005). In margin, or in revenue when
    the orders carry no margin (a plain transaction log)."""
    month = partition_month(context.partition_key)
    base = customer_base(warehouse, month)
    orders = training_orders(warehouse, base)
    model = fit_lifetime_value(orders, month)
    directory = model_dir(warehouse, "clv", month)
    record = {
        "model": "bgnbd_gamma_gamma",
        "as_of_month": month,
        "training_window": {"first_order": orders["order_date"].min(), "calibration_end": month_end(month)},
        "inputs": ["frequency (repeat purchase days)", "recency (weeks)", "T (weeks)", "mean repeat value"],
        "params": model.params,
        "log_likelihood": {"bgnbd": model.bgnbd.log_likelihood_, "gamma_gamma": model.gamma_gamma.log_likelihood_},
        "value_basis": model.value_basis,
        "n_customers": model.n_customers,
        "customers_in_base": base.customers,
        "training_sample_share": base.sample.share,
        "n_repeat_buyers_valued": model.n_value_customers,
        "horizon_months": model.horizon_months,
        "annual_discount_rate": model.annual_discount_rate,
        "notes": list(model.notes),
    }
    version = save_artefact(model, directory, record)
    return MaterializeResult(
        metadata={
            **{f"bgnbd_{name}": value for name, value in model.bgnbd.params_.items()},
            **{f"gamma_gamma_{name}": value for name, value in model.gamma_gamma.params_.items()},
            "bgnbd_log_likelihood": model.bgnbd.log_likelihood_,
            "value_basis": model.value_basis,
            **base_metadata(base, model.n_customers),
            "repeat_buyers_valued": model.n_value_customers,
            "notes": "; ".join(model.notes) or "none",
            "model_version": version,
            "artefact": MetadataValue.path(str(directory)),
        }
    )


@asset(
    key="churn_model",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[FCT_ORDERS, FEATURE_SNAPSHOTS],
    kinds={"scikit-learn"},
    pool="duckdb",
)
def churn_model(context: AssetExecutionContext, config: ChurnConfig, warehouse: WarehouseResource) -> MaterializeResult:
    """Early-warning churn (no order in the next 90 days), trained on snapshots whose labels closed before
    the validation snapshot, validated out of time next to a recency rule and the BG/NBD. Customers contacted
    inside a label window are left out (the model learns from control and uncontacted customers)."""
    month = partition_month(context.partition_key)
    base = customer_base(warehouse, month)
    orders = training_orders(warehouse, base)
    snapshots = snapshot_store(warehouse, base, orders)
    result = fit_churn_model(
        orders,
        month,
        horizon_days=config.horizon_days,
        exclude=contacted_test_customers(warehouse, month),
        n_training_snapshots=config.training_snapshots,
        snapshots=snapshots,
    )
    directory = model_dir(warehouse, "churn", month)
    metrics = result.metrics
    version = save_artefact(result, directory, {"as_of_month": month, **metrics})
    metadata: dict[str, Any] = {
        "model": result.kind,
        "horizon_days": config.horizon_days,
        **base_metadata(base, snapshots.customers(month)),
        "model_version": version,
        "artefact": MetadataValue.path(str(directory)),
    }
    if isinstance(result, BGNBDChurnFallback):
        metadata["why_no_model"] = metrics["reason"]
        return MaterializeResult(metadata=metadata)
    scorers = metrics["scorers"]
    baselines = [name for name in scorers if name != "churn_model"]
    metadata.update(
        {
            **{f"churn_{key}": value for key, value in _metrics(scorers["churn_model"]).items()},
            "base_rate": metrics["base_rate"],
            "comparison": _markdown(comparison_table(metrics), ".4f"),
            "calibration": _markdown(pd.DataFrame(metrics["calibration"])),
            "beats_baselines_on_auc": ", ".join(
                name for name in baselines if scorers["churn_model"]["auc"] > scorers[name]["auc"]
            )
            or "none",
            "validation_as_of": metrics["validation_as_of"],
            "trained_on_snapshots": ", ".join(metrics["train_as_of"]),
            "validation_model_trained_on": ", ".join(metrics["rehearsal_train_as_of"]),
            "rows_left_out_as_contacted": metrics["n_excluded"],
            "treatment_handling": metrics["treatment_handling"],
        }
    )
    return MaterializeResult(metadata=metadata)


@asset(
    key="product_propensity",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[FCT_ORDERS, FEATURE_SNAPSHOTS],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def product_propensity(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`analytics.product_propensity`: for each product line, P(buy it next month) and the expected margin
    of every customer who does not hold it yet; one model per line, validated on the last labelled month."""
    month = partition_month(context.partition_key)
    base = customer_base(warehouse, month)
    orders = training_orders(warehouse, base)
    directory = model_dir(warehouse, "propensity", month)
    snapshots = snapshot_store(warehouse, base, orders)
    try:
        model = train_propensity_models(orders, month, snapshots=snapshots)
    except NoProductDataError as error:
        version = save_artefact(None, directory, {"as_of_month": month, "skipped": str(error)})
        write_month(warehouse, PROPENSITY_TABLE, _empty_propensity(month), month)
        return MaterializeResult(metadata={"dagster/row_count": 0, "skipped": str(error), "model_version": version})
    version = save_artefact(model, directory, {"as_of_month": month, **model.metrics})
    scored_chunks = (
        model.score(chunk_orders, month, chunk).assign(
            as_of_month=pd.Timestamp(month), propensity_model_version=version
        )
        for chunk_orders, chunk in scoring_chunks(warehouse, base, snapshots)
    )
    rows = write_month_in_chunks(warehouse, PROPENSITY_TABLE, scored_chunks, month)
    lines = pd.DataFrame(model.metrics["lines"]).T.rename_axis("product_line").reset_index()
    return MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "auc_by_product": _markdown(
                lines[["product_line", "auc", "pr_auc", "top_decile_lift", "validation_buyers", "expected_margin"]]
            ),
            "model": model.metrics["model"],
            "mean_auc": _number(model.metrics["mean_auc"]),
            **{f"auc_{line}": value for line, m in model.metrics["lines"].items() if (value := _number(m["auc"]))},
            "next_best_hit_rate": _number(model.metrics["next_best_hit_rate"]),
            "popularity_hit_rate": _number(model.metrics["popularity_hit_rate"]),
            "value_basis": model.value_basis,
            "validation_as_of": model.metrics["validation_as_of"],
            **base_metadata(base, snapshots.customers(month)),
            "model_version": version,
            "artefact": MetadataValue.path(str(directory)),
        }
    )


def _empty_propensity(month: date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="str"),
            "product_line": pd.Series(dtype="str"),
            "probability": pd.Series(dtype="float64"),
            "expected_margin": pd.Series(dtype="float64"),
            "as_of_month": pd.Series(dtype="datetime64[us]"),
            "propensity_model_version": pd.Series(dtype="str"),
        }
    )


@asset(
    key="customer_segments",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[FCT_ORDERS, CUSTOMER_VALUE, FEATURE_SNAPSHOTS],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def customer_segments(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`analytics.customer_segments`: behavioural clusters (k-means on recency, frequency, spend, activity
    and tenure) with a profile per segment: share of customers, revenue per customer, top products,
    dominant pyramid tier, and a name derived from the profile."""
    month = partition_month(context.partition_key)
    base = customer_base(warehouse, month)
    features = snapshot_store(warehouse, base).get(month).features
    model = fit_segmentation(features, month, pyramid_tiers(warehouse, month))
    directory = model_dir(warehouse, "segmentation", month)
    version = save_artefact(model, directory, {"as_of_month": month, **model.metrics})
    profile = model.profile.assign(as_of_month=pd.Timestamp(month), segmentation_model_version=version)
    write_month(warehouse, SEGMENTS_TABLE, profile, month)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(profile),
            "profiles": _markdown(model.profile, ".2f"),
            "segments": model.metrics["n_segments"],
            "silhouette_by_k": MetadataValue.json(model.metrics["silhouette"]),
            **base_metadata(base, len(features)),
            "model_version": version,
            "artefact": MetadataValue.path(str(directory)),
        }
    )


# ------------------------------------------------------------------------------------------------ scoring
class ScoreSummary:
    """The asset metadata of ``customer_scores``, summed over the scoring chunks."""

    def __init__(self) -> None:
        self.lapsed = 0
        self.sums = {"churn_probability": 0.0, "p_alive": 0.0, "clv": 0.0}
        self.counts = {"churn_probability": 0, "p_alive": 0}
        self.clv_basis = "n/a"
        self.next_best: dict[str, int] = {}
        self.segments: dict[str, int] = {}

    def add(self, table: pd.DataFrame) -> None:
        self.lapsed += int(table["is_lapsed"].sum())
        for column in self.sums:
            self.sums[column] += float(table[column].sum())
        for column in self.counts:
            self.counts[column] += int(table[column].notna().sum())
        if len(table) and self.clv_basis == "n/a":
            self.clv_basis = str(table["clv_basis"].iloc[0])
        for counts, column in ((self.next_best, "next_best_product"), (self.segments, "segment")):
            for value, n in table.groupby(column, sort=False).size().items():
                counts[str(value)] = counts.get(str(value), 0) + int(n)

    def metadata(self) -> dict[str, Any]:
        next_best = pd.DataFrame(
            sorted(self.next_best.items(), key=lambda item: -item[1]), columns=["next_best_product", "count"]
        )
        segments = pd.DataFrame(list(self.segments.items()), columns=["segment", "customers"])
        return {
            "lapsed_customers": self.lapsed,
            **{
                f"mean_{column}": self.sums[column] / self.counts[column]
                for column in self.counts
                if self.counts[column]
            },
            "customer_equity": self.sums["clv"],
            "clv_basis": self.clv_basis,
            "next_best_product": _markdown(next_best) if len(next_best) else "no product data: no next best product",
            "segments": _markdown(segments),
        }


@asset(
    key="customer_scores",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[
        FCT_ORDERS,
        AssetKey(["marts", "campaign_history"]),
        FEATURE_SNAPSHOTS,
        AssetKey("churn_model"),
        AssetKey("clv_model"),
        AssetKey("product_propensity"),
        AssetKey("customer_segments"),
    ],
    kinds={"scikit-learn", "duckdb"},
    pool="duckdb",
)
def customer_scores(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`analytics.customer_scores`: one row per customer with any order by the month end (lapsed included,
    for win-back), keyed by `as_of_month`: churn probability, P(alive), expected purchases, discounted CLV,
    next best product and its expected margin, segment, and the point-in-time features behind them, with how
    the customer reads the campaign messages she received (models.features.ENGAGEMENT_FEATURE_COLUMNS).
    Scored from this month's model artefacts, so the table can be reproduced from them."""
    month = partition_month(context.partition_key)
    base = customer_base(warehouse, month)
    loaded = {
        name: load_artefact(model_dir(warehouse, name, month))
        for name in ("churn", "clv", "propensity", "segmentation")
    }
    churn, churn_record = loaded["churn"]
    summary = ScoreSummary()

    def scored_chunks() -> Iterator[pd.DataFrame]:
        training = snapshot_store(warehouse, base)
        for customers, (chunk_orders, chunk) in zip(
            base.chunks, scoring_chunks(warehouse, base, training), strict=True
        ):
            scores = score_with_models(
                chunk_orders,
                month,
                churn=churn,
                lifetime_value=loaded["clv"][0],
                segmentation=loaded["segmentation"][0],
                propensity=loaded["propensity"][0],
                snapshots=chunk,
                engagement=email_engagement_as_of(warehouse, month, customers),
            )
            table = scores.assign(as_of_month=pd.Timestamp(month), churn_model_version=churn_record["model_version"])
            summary.add(table)
            yield table

    rows = write_month_in_chunks(warehouse, SCORES_TABLE, scored_chunks(), month)
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        **summary.metadata(),
        "churn_model": churn_record.get("model", "n/a"),
        "scoring_chunks": len(base.chunks),
        "model_versions": MetadataValue.json(
            {name: record.get("model_version") for name, (_, record) in loaded.items()}
        ),
    }
    if churn_record.get("auc") is not None:
        metadata["churn_auc"] = float(churn_record["auc"])
    return MaterializeResult(metadata=metadata)


@asset(
    key="customer_equity",
    group_name="analyse",
    partitions_def=monthly_partitions,
    deps=[AssetKey("customer_scores"), CUSTOMER_VALUE],
    kinds={"python", "duckdb"},
    pool="duckdb",
)
def customer_equity(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """`analytics.customer_equity`: customer equity (the sum of discounted CLV) by pyramid tier and
    behavioural segment, with the tier and segment totals and the grand total (tier = segment = 'all')."""
    month = partition_month(context.partition_key)
    scores = warehouse.query(
        f"select customer_id, clv, clv_basis, segment from {SCORES_TABLE} where as_of_month = ?", [pd.Timestamp(month)]
    )
    tiers = pyramid_tiers(warehouse, month)
    scores["pyramid_tier"] = scores["customer_id"].astype("str").map(tiers).to_numpy() if tiers is not None else pd.NA
    table = equity_by_tier_and_segment(scores)
    basis = str(scores["clv_basis"].iloc[0]) if len(scores) else "n/a"
    rows = write_month(warehouse, EQUITY_TABLE, table.assign(as_of_month=pd.Timestamp(month), clv_basis=basis), month)
    total = float(table.loc[(table["pyramid_tier"] == "all") & (table["segment"] == "all"), "customer_equity"].sum())
    by_tier = table[(table["segment"] == "all") & (table["pyramid_tier"] != "all")].drop(columns="segment")
    by_segment = table[(table["pyramid_tier"] == "all") & (table["segment"] != "all")].drop(columns="pyramid_tier")
    return MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "customer_equity": total,
            "clv_basis": basis,
            "by_tier": _markdown(by_tier, ".3f"),
            "by_segment": _markdown(by_segment, ".3f"),
            "tiers_known": tiers is not None,
        }
    )
