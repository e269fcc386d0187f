"""Behavioural segmentation: clusters of customers who buy alike, each with a profile and a readable name.

Inputs (from :func:`models.features.customer_features`): how recently (log recency in days), how often (log
lifetime orders, active months of the last 12), how much (log average order revenue, log 12-month revenue) and
for how long (log tenure). They are standardised and clustered with k-means (Lloyd 1982; k-means++ seeding,
Arthur & Vassilvitskii 2007). The number of segments is chosen by the silhouette (Rousseeuw 1987) on a seeded
sample among ``k_range``, unless fixed. Product mix is not a clustering input (it would split customers by
what they buy rather than how); it is reported in each segment's profile instead.

Segments are numbered by revenue per customer, highest first, and named from their profile (see
:func:`segment_label`): status from the median months since the last order, buying pattern from the median
number of orders, value from the 12-month revenue per customer relative to the whole base, plus "new" for
young segments, e.g. "Active frequent high-value buyers" or "Lapsed one-time buyers".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from models.features import LAPSED_AFTER_MONTHS, line_share_columns
from models.parallelism import fit_threads

SEGMENTATION_INPUTS = [
    "recency_days",
    "frequency",
    "active_months_12m",
    "avg_order_revenue",
    "revenue_12m",
    "tenure_days",
]
LOG_INPUTS = {"recency_days", "frequency", "avg_order_revenue", "revenue_12m", "tenure_days"}
DEFAULT_K_RANGE = (4, 5, 6, 7)
SILHOUETTE_SAMPLE = 2000
#: Customers assigned to their segment at a time.
ASSIGN_CHUNK_ROWS = 200_000

PROFILE_COLUMNS = [
    "segment_id",
    "segment",
    "customers",
    "share_of_customers",
    "revenue_per_customer_12m",
    "margin_per_customer_12m",
    "avg_order_revenue",
    "median_orders",
    "median_months_since_last_order",
    "lapsed_share",
    "top_products",
    "dominant_tier",
]


def segmentation_matrix(features: pd.DataFrame) -> np.ndarray:
    """The clustering inputs on the scales they are compared on (log1p for counts, days and money)."""
    columns = []
    for name in SEGMENTATION_INPUTS:
        values = features[name].to_numpy(dtype="float64", na_value=np.nan)
        values = np.nan_to_num(values, nan=0.0)
        columns.append(np.log1p(np.clip(values, 0.0, None)) if name in LOG_INPUTS else values)
    return np.column_stack(columns)


def segment_label(profile: pd.Series, base: dict[str, float]) -> str:
    """A readable name from a segment's profile, relative to the whole customer ``base``.

    - status: median months since the last order < 3 "Active", < :data:`LAPSED_AFTER_MONTHS` "Cooling",
      otherwise "Lapsed";
    - pattern: median orders 1 "one-time", at least the base's 75th percentile of orders (and >= 3)
      "frequent", otherwise "repeat";
    - value: 12-month revenue per customer >= 1.5 x the base's "high-value", <= 0.5 x "low-value" (only for
      segments that bought in the last year), otherwise no word;
    - "new" when the median tenure is under 90 days.
    """
    months = profile["median_months_since_last_order"]
    status = "Active" if months < 3 else "Cooling" if months < LAPSED_AFTER_MONTHS else "Lapsed"
    orders = profile["median_orders"]
    if orders <= 1:
        pattern = "one-time"
    elif orders >= max(base["orders_p75"], 3):
        pattern = "frequent"
    else:
        pattern = "repeat"
    words = [status]
    if profile["median_tenure_days"] < 90:
        words.append("new")
    words.append(pattern)
    revenue = profile["revenue_per_customer_12m"]
    if status != "Lapsed" and base["revenue_per_customer_12m"] > 0:
        ratio = revenue / base["revenue_per_customer_12m"]
        if ratio >= 1.5:
            words.append("high-value")
        elif ratio <= 0.5:
            words.append("low-value")
    return " ".join(words) + " buyers"


def _unique_labels(labels: list[str], profile: pd.DataFrame) -> list[str]:
    """Disambiguate equal names by revenue rank ("... (higher spend)", "... (lower spend)", or a number)."""
    result = list(labels)
    for label in set(labels):
        positions = [i for i, name in enumerate(labels) if name == label]
        if len(positions) < 2:
            continue
        ordered = sorted(positions, key=lambda i: -profile["revenue_per_customer_12m"].iloc[i])
        suffixes = ["higher spend", "lower spend"] if len(ordered) == 2 else [f"{n + 1}" for n in range(len(ordered))]
        for position, suffix in zip(ordered, suffixes, strict=True):
            result[position] = f"{label} ({suffix})"
    return result


@dataclass
class SegmentationModel:
    """Fitted scaler and k-means, the segment names, and the profile of the fit month."""

    scaler: StandardScaler
    kmeans: KMeans
    cluster_to_segment: dict[int, int]
    labels: dict[int, str]
    as_of_month: date
    profile: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, Any] = field(default_factory=dict)

    def assign(self, features: pd.DataFrame, chunk_rows: int = ASSIGN_CHUNK_ROWS) -> pd.DataFrame:
        """Segment of each feature-frame row (index kept): ``segment_id`` (1 = highest revenue) and ``segment``.

        Customers are assigned ``chunk_rows`` at a time (the nearest centre of a row depends on that row alone)."""
        if features.empty:
            return pd.DataFrame({"segment_id": pd.Series(dtype="int64"), "segment": pd.Series(dtype="str")})
        chunks = (features.iloc[start : start + chunk_rows] for start in range(0, len(features), chunk_rows))
        clusters = np.concatenate([self.kmeans.predict(self.scaler.transform(segmentation_matrix(c))) for c in chunks])
        segment_id = pd.Series(clusters).map(self.cluster_to_segment).to_numpy("int64")
        return pd.DataFrame(
            {
                "segment_id": segment_id,
                "segment": pd.array([self.labels[i] for i in segment_id], dtype="str"),
            },
            index=features.index,
        )


def segment_profiles(features: pd.DataFrame, segment_id: pd.Series, tiers: pd.Series | None = None) -> pd.DataFrame:
    """One row per segment: size, value, buying pattern, top product lines and dominant pyramid tier.

    ``top_products``: the three product lines with the largest share of the segment's lifetime revenue
    ("Coffee & Tea 41%, ..."; "n/a" without product data). ``dominant_tier``: the most common pyramid tier
    and its share ("lead 72%"; "unknown" when no tier is given).
    """
    frame = features.assign(segment_id=segment_id.reindex(features.index).to_numpy())
    grouped = frame.groupby("segment_id", sort=True)
    profile = pd.DataFrame(
        {
            "customers": grouped.size(),
            "revenue_per_customer_12m": grouped["revenue_12m"].mean(),
            "margin_per_customer_12m": grouped["margin_12m"].mean(),
            "avg_order_revenue": grouped["avg_order_revenue"].mean(),
            "median_orders": grouped["frequency"].median(),
            "median_months_since_last_order": grouped["months_since_last_order"].median(),
            "median_tenure_days": grouped["tenure_days"].median(),
            "lapsed_share": grouped["is_lapsed"].mean(),
        }
    )
    profile["share_of_customers"] = profile["customers"] / profile["customers"].sum()
    share_columns = line_share_columns(features)
    if share_columns:
        lifetime = (frame["avg_order_revenue"].fillna(0) * frame["frequency"]).to_numpy()
        line_revenue = frame[share_columns].mul(lifetime, axis=0).groupby(frame["segment_id"]).sum()
        shares = line_revenue.div(line_revenue.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        names = [c.removeprefix("line_share__") for c in share_columns]
        profile["top_products"] = [
            ", ".join(f"{names[j]} {row[j]:.0%}" for j in np.argsort(-row, kind="stable")[:3] if row[j] > 0) or "n/a"
            for row in shares.reindex(profile.index).to_numpy()
        ]
    else:
        profile["top_products"] = "n/a"
    if tiers is not None and tiers.notna().any():
        tier = tiers.reindex(features.index).fillna("unknown").astype("str")
        counts = pd.crosstab(frame["segment_id"], tier.to_numpy())
        top = counts.idxmax(axis=1)
        share = counts.max(axis=1) / counts.sum(axis=1)
        profile["dominant_tier"] = [f"{t} {s:.0%}" for t, s in zip(top, share, strict=True)]
    else:
        profile["dominant_tier"] = "unknown"
    profile.index.name = "segment_id"
    return profile.reset_index()


def fit_segmentation(
    features: pd.DataFrame,
    as_of_month: date,
    tiers: pd.Series | None = None,
    n_segments: int | None = None,
    k_range: tuple[int, ...] = DEFAULT_K_RANGE,
    random_state: int = 0,
) -> SegmentationModel:
    """Cluster the customers of a feature snapshot and profile the segments (module docstring).

    ``tiers``: pyramid tier per customer_id (for ``dominant_tier``). ``n_segments`` fixes k; otherwise the k of
    ``k_range`` with the highest silhouette on a seeded sample of :data:`SILHOUETTE_SAMPLE` customers.
    Metrics: ``n_segments``, ``silhouette`` (per k tried), ``inertia``.
    """
    if features.empty:
        raise ValueError("no customers to segment")
    matrix = segmentation_matrix(features)
    scaler = StandardScaler().fit(matrix)
    scaled = scaler.transform(matrix)
    n_distinct = len(np.unique(scaled.round(9), axis=0))
    candidates = [k for k in ((n_segments,) if n_segments else k_range) if 2 <= k <= n_distinct]
    if not candidates:
        candidates = [max(1, min(n_distinct, 2))]
    rng = np.random.default_rng(random_state)
    sample = rng.choice(len(scaled), size=min(SILHOUETTE_SAMPLE, len(scaled)), replace=False)
    fits: dict[int, KMeans] = {}
    silhouettes: dict[int, float] = {}
    with fit_threads(len(scaled)):
        for k in candidates:
            fits[k] = KMeans(n_clusters=k, n_init=3, random_state=random_state).fit(scaled)
            labels = fits[k].labels_[sample]
            silhouettes[k] = (
                float(silhouette_score(scaled[sample], labels)) if 1 < len(np.unique(labels)) < len(sample) else -1.0
            )
    best_k = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    kmeans = fits[best_k]

    clusters = pd.Series(kmeans.labels_, index=features.index)
    by_cluster = segment_profiles(features, clusters, tiers)
    order = by_cluster.sort_values(["revenue_per_customer_12m", "segment_id"], ascending=[False, True])
    cluster_to_segment = {int(cluster): rank + 1 for rank, cluster in enumerate(order["segment_id"])}
    segment_id = clusters.map(cluster_to_segment)
    profile = segment_profiles(features, segment_id, tiers)
    base = {
        "orders_p75": float(features["frequency"].quantile(0.75)),
        "revenue_per_customer_12m": float(features["revenue_12m"].mean()),
    }
    names = _unique_labels([segment_label(row, base) for _, row in profile.iterrows()], profile)
    profile.insert(1, "segment", names)
    labels = dict(zip(profile["segment_id"].astype(int), names, strict=True))
    return SegmentationModel(
        scaler=scaler,
        kmeans=kmeans,
        cluster_to_segment=cluster_to_segment,
        labels=labels,
        as_of_month=as_of_month,
        profile=profile[PROFILE_COLUMNS],
        metrics={
            "n_segments": best_k,
            "silhouette": {str(k): round(v, 4) for k, v in silhouettes.items()},
            "inertia": float(kmeans.inertia_),
            "inputs": list(SEGMENTATION_INPUTS),
        },
    )
