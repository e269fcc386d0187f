"""`make bench` as a smoke test at a small size: it runs a cycle through Dagster and compares like with like."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestration import benchmark

pytestmark = pytest.mark.slow

STAGES = {"collect", "warehouse", "analyse", "measure", "improve", "design", "execute"}


def test_benchmark_reports_every_stage_and_fair_comparisons(crm_home, dbt_manifest):
    assert benchmark.main(["--sizes", "2000"]) == 0

    table = pd.read_csv(crm_home / "reports" / "benchmark.csv")
    monthly = table[table["cycle"] == "monthly cycle"]
    assert {measure.removeprefix("stage ") for measure in monthly["measure"]} >= STAGES
    whole = monthly[monthly["measure"] == "whole cycle"].iloc[0]
    stage_seconds = monthly.loc[monthly["measure"].str.startswith("stage"), "value"].sum()
    assert 0 < stage_seconds <= whole["value"]
    assert whole["peak_memory_gb"] > 0
    # CPU time (what the work costs on a loaded machine) per stage and for the cycle
    stage_cpu = monthly.loc[monthly["measure"].str.startswith("stage"), "cpu_seconds"]
    assert (stage_cpu >= 0).all() and whole["cpu_seconds"] > 0
    assert monthly.loc[monthly["measure"] == "stage analyse", "cpu_seconds"].iloc[0] > 0

    comparisons = table[table["cycle"] == "comparison"]
    clv = comparisons[comparisons["measure"].str.startswith("BG/NBD")].iloc[0]
    rfm = comparisons[comparisons["measure"].str.startswith("RFM")].iloc[0]
    assert "params differ" not in str(clv["verdict"])
    assert "scores differ" not in str(rfm["verdict"])
    suites = comparisons[comparisons["measure"].str.startswith("raw suites")].iloc[0]
    assert suites["customers"] == benchmark.RAW_SUITE_CUSTOMERS and suites["value"] > 0
    assert "orders" in suites["measure"] and "customers" in suites["measure"] and "broken" not in str(suites["verdict"])
    assert (crm_home / "reports" / "benchmark.md").read_text().startswith("# Benchmark")

    # the analyse stage alone in a fresh process, in one piece and split: its own time and peak memory
    alone = table[table["cycle"] == "analyse stage alone"]
    assert [measure.split(" ")[0] for measure in alone["measure"]] == ["in", "split"]
    assert (alone["peak_memory_gb"] > 0).all() and (alone["value"] > 0).all()


def test_a_clv_fit_is_timed_by_the_median_of_three_runs(monkeypatch):
    """A first call pays one-time set-up; the median of three runs measures the fit itself."""
    ticks = iter([0.0, 5.0, 10.0, 11.0, 20.0, 22.0])  # runs of 5 s (the first), 1 s and 2 s
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(ticks))
    calls: list[int] = []
    fitted, seconds = benchmark._timed_fit(lambda: calls.append(1) or len(calls))
    assert seconds == 2.0
    assert fitted == 3 and len(calls) == benchmark.CLV_FIT_REPEATS == 3
