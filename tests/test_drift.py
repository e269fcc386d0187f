"""Score drift (models/drift.py): the population stability index flags a moved distribution, not noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.drift import drift_status, population_stability_index, score_drift


def test_psi_is_zero_for_the_same_distribution_and_small_for_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 20_000)
    assert population_stability_index(reference, reference) == pytest.approx(0.0)
    assert population_stability_index(reference, rng.beta(2, 5, 20_000)) < 0.01


def test_psi_flags_a_shift_and_grows_with_it() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 20_000)
    moderate = population_stability_index(reference, rng.normal(0.4, 1, 20_000))
    large = population_stability_index(reference, rng.normal(1.0, 1, 20_000))
    assert 0.1 < moderate < 0.25 < large
    assert (drift_status(0.01), drift_status(moderate), drift_status(large)) == ("stable", "moderate", "significant")


def test_psi_against_a_hand_computation() -> None:
    # Reference: 10 distinct values, one per decile bin; current: half the mass in the lowest bin.
    reference = np.arange(10.0)
    current = np.array([0.0] * 5 + [9.0] * 5)
    expected = 0.1 * np.ones(10)
    actual = np.maximum(np.array([0.5] + [0.0] * 8 + [0.5]), 1e-4)
    assert population_stability_index(reference, current) == pytest.approx(
        np.sum((actual - expected) * np.log(actual / expected))
    )


def test_point_masses_and_empty_samples() -> None:
    assert population_stability_index(np.ones(100), np.ones(50)) == pytest.approx(0.0)
    assert np.isnan(population_stability_index([], [1.0]))
    table = score_drift(pd.DataFrame({"p": [0.1, 0.2, 0.3]}), pd.DataFrame({"p": [0.1, 0.2, 0.3]}), ["p"])
    assert table.loc[0, "status"] == "stable" and table.loc[0, "psi"] == pytest.approx(0.0)
