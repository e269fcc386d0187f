"""Membership of customer ids in a set of ids answers what `Series.isin` answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ids import is_member


@pytest.mark.parametrize("kind", ["series", "index", "set", "list"])
def test_membership_equals_isin_whatever_holds_the_members(kind: str) -> None:
    ids = pd.Series(["C01", "C02", None, "007", "C01", "7"], index=[10, 11, 12, 13, 14, 15], dtype="str", name="id")
    members = ["C01", "007", "C09", "C01"]
    given = {"series": pd.Series(members, dtype="str"), "index": pd.Index(members), "set": set(members)}
    found = is_member(ids, given.get(kind, members))
    assert found.tolist() == [True, False, False, True, True, False]  # "7" is not "007"; a missing id is not in
    assert found.index.equals(ids.index) and found.name == "id"
    pd.testing.assert_series_equal(found, ids.isin(members) & ids.notna())


def test_no_members_and_many_members() -> None:
    ids = pd.Series([f"C{i:06d}" for i in range(50_000)], dtype="str")
    assert not is_member(ids, []).any()
    members = ids.sample(frac=0.3, random_state=1)
    np.testing.assert_array_equal(is_member(ids, members).to_numpy(), ids.isin(set(members)).to_numpy())
