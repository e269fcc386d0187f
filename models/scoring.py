"""Score every customer as of a month: features, churn risk, lifetime value, next best product and segment.

The analyse stage fits four models (:func:`fit_scoring_models`) and scores the customer base with them
(:func:`score_with_models`). Scoring is a pure function of the fitted models, the order history and the month,
so scores saved once can be reproduced from the saved model artefacts (``models.artefacts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from models.churn import DEFAULT_HORIZON_DAYS, BGNBDChurnFallback, ChurnModelResult, fit_churn_model
from models.clv import SCORE_COLUMNS, LifetimeValueModel, fit_lifetime_value
from models.features import ENGAGEMENT_FEATURE_COLUMNS, month_start, with_email_engagement
from models.propensity import NEXT_BEST_COLUMNS, NoProductDataError, PropensityModel, train_propensity_models
from models.segmentation import SegmentationModel, fit_segmentation
from models.snapshots import SnapshotStore

#: Customers scored at a time by each model (see :func:`score_with_models`).
SCORE_CHUNK_ROWS = 200_000

LIFETIME_VALUE_COLUMNS = [column for column in SCORE_COLUMNS if column not in ("customer_id", "frequency")]
"""The BG/NBD + Gamma-Gamma columns of a score row (``frequency`` of the models is ``frequency_clv``)."""


@dataclass
class ScoringModels:
    """The four fitted models behind one month's customer scores."""

    as_of_month: date
    churn: ChurnModelResult | BGNBDChurnFallback
    lifetime_value: LifetimeValueModel
    segmentation: SegmentationModel
    propensity: PropensityModel | None = None
    notes: list[str] = field(default_factory=list)


def fit_scoring_models(
    orders: pd.DataFrame,
    as_of_month: date,
    contacted: pd.DataFrame | None = None,
    tiers: pd.Series | None = None,
    churn_horizon_days: int = DEFAULT_HORIZON_DAYS,
    snapshots: SnapshotStore | None = None,
) -> ScoringModels:
    """Fit churn, CLV, propensity (when the orders carry product lines) and segmentation as of the month end.

    ``contacted``: (customer_id, month) of test-group contacts, left out of churn training (a contact changes
    the label). ``tiers``: pyramid tier per customer_id, for the segment profiles. ``snapshots``: the monthly
    customer snapshots the models share (:class:`models.snapshots.SnapshotStore`; by default one in memory).
    """
    as_of_month = month_start(as_of_month)
    if snapshots is None:
        snapshots = SnapshotStore(orders, as_of_month)
    notes: list[str] = []
    lifetime_value = fit_lifetime_value(orders, as_of_month)
    notes.extend(lifetime_value.notes)
    churn = fit_churn_model(
        orders, as_of_month, horizon_days=churn_horizon_days, exclude=contacted, snapshots=snapshots
    )
    if isinstance(churn, BGNBDChurnFallback):
        notes.append(f"churn: BG/NBD fallback ({churn.metrics['reason']})")
    try:
        propensity = train_propensity_models(orders, as_of_month, snapshots=snapshots)
    except NoProductDataError as error:
        propensity = None
        notes.append(str(error))
    segmentation = fit_segmentation(snapshots.get(as_of_month).features, as_of_month, tiers)
    return ScoringModels(as_of_month, churn, lifetime_value, segmentation, propensity, notes)


def score_with_models(
    orders: pd.DataFrame,
    as_of_month: date,
    churn: ChurnModelResult | BGNBDChurnFallback,
    lifetime_value: LifetimeValueModel,
    segmentation: SegmentationModel,
    propensity: PropensityModel | None = None,
    chunk_rows: int = SCORE_CHUNK_ROWS,
    snapshots: SnapshotStore | None = None,
    engagement: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per customer with any order by the month end (lapsed customers included), sorted by id.

    The per-customer inputs (features, the BG/NBD view of the month) are computed once for the whole base and
    shared by the models (``snapshots``, a :class:`models.snapshots.SnapshotStore` of the same orders, e.g. the
    one the models were trained with; by default one for the month); the models then score ``chunk_rows``
    customers at a time, so the memory of their design matrices does not grow with the customer base. Every
    score depends on its own customer's row only: any chunk size gives the same table.

    Columns: ``customer_id``, ``churn_probability``, the point-in-time features of ``models.features``, the
    CLV columns (:data:`LIFETIME_VALUE_COLUMNS`, ``frequency_clv``, ``clv_basis``), the next best product
    (:data:`models.propensity.NEXT_BEST_COLUMNS`; NULL without product data or when every line is held) and
    ``segment_id``/``segment``, and how she reads the campaign messages she received
    (:data:`models.features.ENGAGEMENT_FEATURE_COLUMNS`, from ``engagement``: customer_id and those columns, as
    of the month; none received when not given). A customer whose history holds returns only has no BG/NBD
    view: she gets ``p_alive`` 0 and no expected purchases or value.
    """
    as_of_month = month_start(as_of_month)
    if snapshots is None:
        snapshots = SnapshotStore(orders, as_of_month)
    features = snapshots.get(as_of_month).features
    scores = features.copy()
    churn_probability = churn.score(orders, as_of_month, chunk_rows, snapshots)["churn_probability"]
    scores.insert(0, "churn_probability", churn_probability.reindex(scores.index))
    value = lifetime_value.score(orders, as_of_month).set_index("customer_id")
    scores = scores.join(value, how="left", rsuffix="_clv")
    no_purchase = scores["p_alive"].isna()
    scores.loc[no_purchase, ["p_alive", *LIFETIME_VALUE_COLUMNS[3:]]] = 0.0
    scores["frequency_clv"] = scores["frequency_clv"].fillna(0).astype("int64")
    scores["clv_basis"] = lifetime_value.value_basis
    if propensity is not None:
        best = propensity.next_best_products(orders, as_of_month, chunk_rows, snapshots).reindex(scores.index)
    else:
        best = pd.DataFrame(
            {
                "next_best_product": pd.Series(pd.NA, index=scores.index, dtype="str"),
                "next_best_product_probability": np.nan,
                "next_best_product_expected_margin": np.nan,
            },
            index=scores.index,
        )
    scores = scores.join(best[NEXT_BEST_COLUMNS])
    scores = scores.join(segmentation.assign(features, chunk_rows))
    scores.index.name = "customer_id"
    received = (
        engagement if engagement is not None else pd.DataFrame(columns=["customer_id", *ENGAGEMENT_FEATURE_COLUMNS])
    )
    return with_email_engagement(scores.reset_index(), received)


@dataclass
class CustomerScores:
    """The scored customer base and the evidence behind it."""

    scores: pd.DataFrame
    churn_metrics: dict[str, Any] = field(default_factory=dict)
    churn_model: ChurnModelResult | BGNBDChurnFallback | None = None
    models: ScoringModels | None = None


def score_customer_base(
    orders: pd.DataFrame,
    as_of_month: date,
    contacted: pd.DataFrame | None = None,
    churn_horizon_days: int = DEFAULT_HORIZON_DAYS,
    tiers: pd.Series | None = None,
) -> CustomerScores:
    """Fit every model (:func:`fit_scoring_models`) and score the customer base (:func:`score_with_models`)."""
    snapshots = SnapshotStore(orders, as_of_month)
    models = fit_scoring_models(orders, as_of_month, contacted, tiers, churn_horizon_days, snapshots)
    scores = score_with_models(
        orders,
        as_of_month,
        models.churn,
        models.lifetime_value,
        models.segmentation,
        models.propensity,
        snapshots=snapshots,
    )
    return CustomerScores(scores=scores, churn_metrics=models.churn.metrics, churn_model=models.churn, models=models)
