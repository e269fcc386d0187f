"""Score drift: how much a score's distribution moved from one month to the next.

The population stability index (PSI) compares the share of customers in each bin of a reference distribution
(last month's scores) with this month's: PSI = sum_i (a_i - e_i) ln(a_i / e_i), with bins at the reference's
deciles (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8). Conventional reading: below 0.1 stable, 0.1 to 0.25
a moderate shift worth a look, above 0.25 a significant shift (retrain or investigate the inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MODERATE_SHIFT = 0.10
SIGNIFICANT_SHIFT = 0.25
_FLOOR = 1e-4  # share given to an empty bin, so that the logarithm stays finite


def population_stability_index(reference: Sequence[float], current: Sequence[float], n_bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` over (up to) ``n_bins`` quantile bins of the reference.

    Bin edges are the reference's quantiles (duplicates merged, so a score with a point mass gets fewer bins);
    the outer bins are open-ended. NaNs are ignored. NaN when either sample is empty.
    """
    expected = np.asarray(reference, dtype="float64")
    actual = np.asarray(current, dtype="float64")
    expected, actual = expected[~np.isnan(expected)], actual[~np.isnan(actual)]
    if expected.size == 0 or actual.size == 0:
        return float("nan")
    inner_edges = np.unique(np.quantile(expected, np.linspace(0, 1, n_bins + 1)[1:-1]))
    expected_share = np.bincount(np.searchsorted(inner_edges, expected, side="right"), minlength=inner_edges.size + 1)
    actual_share = np.bincount(np.searchsorted(inner_edges, actual, side="right"), minlength=inner_edges.size + 1)
    e = np.maximum(expected_share / expected.size, _FLOOR)
    a = np.maximum(actual_share / actual.size, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_status(psi: float) -> str:
    """ "stable", "moderate" or "significant" by the conventional PSI thresholds ("n/a" for NaN)."""
    if np.isnan(psi):
        return "n/a"
    return "stable" if psi < MODERATE_SHIFT else "moderate" if psi < SIGNIFICANT_SHIFT else "significant"


def score_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """PSI and status of each score column between two months' score tables (one row per column)."""
    rows = []
    for column in columns:
        psi = population_stability_index(reference[column], current[column])
        rows.append(
            {
                "score": column,
                "psi": psi,
                "status": drift_status(psi),
                "reference_mean": float(reference[column].mean()),
                "current_mean": float(current[column].mean()),
            }
        )
    return pd.DataFrame(rows, columns=["score", "psi", "status", "reference_mean", "current_mean"])
