"""The simulated world at a million customers: the first month with its burn-in, and a month with a
large campaign, within a few seconds and low-GB memory."""

from __future__ import annotations

import resource
import time
from datetime import date

import pandas as pd
import pytest

from simulator import SimulatedWorld

pytestmark = pytest.mark.slow

JAN, FEB = date(2025, 1, 1), date(2025, 2, 1)
MILLION = 1_000_000


def test_a_million_customers_run_in_seconds(tmp_path):
    started = time.perf_counter()
    world = SimulatedWorld(tmp_path, seed=7, n_customers=MILLION)
    history = world.orders(JAN)
    first_month_seconds = time.perf_counter() - started
    assert history["customer_id"].nunique() > 0.3 * MILLION
    assert first_month_seconds < 60, f"creation + 25 months of orders took {first_month_seconds:.1f}s"

    customers = world.customers(JAN)
    assert len(customers) == MILLION and customers["customer_id"].iloc[-1] == "C1000000"
    contacted = customers["customer_id"].sample(100_000, random_state=0)
    world.deliver(FEB, "2025-02-retention", pd.DataFrame({"customer_id": contacted, "offer_id": "retain_voucher"}))
    world.seal_month(FEB)

    reopened = SimulatedWorld(tmp_path, seed=7, n_customers=MILLION)  # as a new run would: no caches
    started = time.perf_counter()
    february = reopened.orders(FEB)
    month_seconds = time.perf_counter() - started
    assert february["order_date"].between("2025-02-01", "2025-02-28").all()
    assert contacted.isin(february["customer_id"]).any()
    assert month_seconds < 15, f"one month with a 100,000-contact campaign took {month_seconds:.1f}s"

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux
    assert peak_gb < 4, f"peak memory {peak_gb:.1f} GB"
