"""`make bench`: one full monthly cycle of the loop at given sizes, with wall time and peak memory per stage.

For each size the benchmark builds a fresh simulated world under ``$CRM_HOME/bench/<size>``, runs the first
month (which collects the world's burn-in history) and then the second month (a steady-state cycle: measure and
improve have a delivered campaign to work on), both through Dagster exactly as ``crm-loop run`` does. It
records, per stage (Dagster asset group) and for the whole cycle, wall time, CPU time (user + system, what the
work costs whatever else the machine is running) and the peak resident memory of the process and its children
(dbt runs as a subprocess), sampled every 50 ms.

It also measures, in the same run and on the same data, what a user would otherwise use:

* the CLV fit: ``lifetimes``' BG/NBD fitter against ``models.clv.BetaGeoNBD`` on the same RFM summary
  (parameters must agree within 0.5%; each fit runs three times and its median time counts);
* the RFM table: one hand-written DuckDB query over ``raw.orders`` against the warehouse's dbt models that
  build ``customer_rfm`` (their execution times as dbt reports them), after checking both give the same scores.

And it runs the analyse stage of the second month alone, in a fresh process, twice: in one piece (the models
fitted on every customer, the base scored in one chunk) and split (chunks of :data:`ANALYSE_CHUNK_CUSTOMERS`, a
training sample of :data:`ANALYSE_TRAINING_CUSTOMERS`; ``models.customer_chunks``), with the peak resident memory
of each: split, it must stay flat from one size to the next, while in one piece it grows with the base.

Once per benchmark, Great Expectations' raw suites on the first month of a world of
:data:`RAW_SUITE_CUSTOMERS` customers (the month the loop collects its burn-in history): each suite's median of
three validations, against :data:`RAW_SUITE_SECONDS_TARGET`.

Results go to ``$CRM_HOME/reports/benchmark.md`` and ``benchmark.csv``, with each target and by how much it is
met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from dagster import AssetSelection, DagsterEventType, DagsterInstance

from expectations import raw_customers, raw_orders
from expectations.adapter import validate
from models.clv import BetaGeoNBD, rfm_summary
from orchestration.definitions import build_definitions
from orchestration.jobs import LOOP_JOB_NAME
from orchestration.lib.dbt_project import DBT_PROJECT_DIR
from orchestration.lib.lock import warehouse_lock
from orchestration.lib.months import next_month
from orchestration.lib.prepare import prepare_instance
from orchestration.lib.queries import orders_as_of
from orchestration.lib.raw_tables import LOADED_MONTH, delivered_frame
from orchestration.lib.settings import Settings, load_settings
from orchestration.resources import DuckDBWarehouseResource
from orchestration.stages.collect.gates import raw_parameters
from simulator import SimulatedWorld

#: Targets of the benchmark on the reference machine (2 cores, 24 GB).
CYCLE_SECONDS_TARGET = {100_000: 45.0, 1_000_000: 180.0}
PEAK_MEMORY_GB_TARGET = {1_000_000: 4.0}
CLV_SPEEDUP_TARGET = 10.0
RFM_RATIO_TARGET = 3.0
CLV_PARAMETER_TOLERANCE = 0.005
SAMPLE_SECONDS = 0.05
#: The raw suites' timing: a first month of this many customers, each suite within this many seconds.
RAW_SUITE_CUSTOMERS = 20_000
RAW_SUITE_SECONDS_TARGET = 1.0
#: The analyse stage's split in the memory comparison: small enough that every benchmark size is split.
ANALYSE_CHUNK_CUSTOMERS = 20_000
ANALYSE_TRAINING_CUSTOMERS = 40_000
#: "In one piece": more customers than any benchmark world has.
IN_ONE_PIECE = 10**9
FIRST_MONTH = date(2025, 1, 1)


# ------------------------------------------------------------------------------------------------ memory
def _children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            pids.extend(int(child) for child in text)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return pids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by this process, its finished children (``os.times``) and its live descendants.

    On a shared machine wall time grows with the load; CPU time measures the work itself."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    stack = _children(pid)
    while stack:
        current = stack.pop()
        total += _cpu_seconds_of(current)
        stack.extend(_children(current))
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss_bytes(current)
        stack.extend(_children(current))
    return total


class MemorySampler:
    """Samples the resident memory and the CPU time of this process tree in a background thread."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.cpu_samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            moment = time.time()
            self.samples.append((moment, tree_rss_bytes(pid)))
            self.cpu_samples.append((moment, tree_cpu_seconds(pid)))
            self._stop.wait(self.interval)

    def cpu_at(self, moment: float) -> float:
        """CPU seconds of the tree at the last sample taken by ``moment`` (0 before the first)."""
        before = [cpu for sampled, cpu in self.cpu_samples if sampled <= moment]
        return before[-1] if before else 0.0

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for moment, rss in self.samples if start <= moment <= end]
        return max(inside, default=0)


# ------------------------------------------------------------------------------------------------ cycles
@dataclass
class CycleMeasurement:
    size: int
    month: date
    seconds: float
    peak_bytes: int
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_seconds: float = float("nan")
    run_id: str = ""


def _step_stages(defs) -> dict[str, str]:
    """Dagster step key -> loop stage (asset group); a check counts towards its asset's stage."""
    graph = defs.resolve_asset_graph()
    stages: dict[str, str] = {}
    for key in graph.materializable_asset_keys:
        stages[defs.resolve_assets_def(key).node_def.name] = graph.get(key).group_name
    for check_key, checks_def in graph._assets_defs_by_check_key.items():
        stages.setdefault(checks_def.node_def.name, graph.get(check_key.asset_key).group_name)
    return stages


def _stage_times(entries, step_stages: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per stage: seconds spent in its steps (summed, so stages never overlap) and its first/last event time.

    Steps run one after another in the in-process executor, so the stage seconds add up to at most the cycle.
    """
    started: dict[str, float] = {}
    stages: dict[str, dict[str, Any]] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        kind = event.event_type_value
        if kind not in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            continue
        stage = step_stages.get(event.step_key, "other")
        times = stages.setdefault(
            stage, {"seconds": 0.0, "first": entry.timestamp, "last": entry.timestamp, "steps": []}
        )
        times["first"] = min(times["first"], entry.timestamp)
        times["last"] = max(times["last"], entry.timestamp)
        if kind == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.step_key in started:
            step_started = started.pop(event.step_key)
            times["seconds"] += entry.timestamp - step_started
            times["steps"].append((step_started, entry.timestamp))
    return stages


def run_benchmark_cycles(settings: Settings, months: list[date]) -> list[CycleMeasurement]:
    """Run `months` of the loop (in order) through Dagster, measuring each cycle and its stages."""

    prepare_instance(settings)

    defs = build_definitions(settings)
    job = defs.resolve_job_def(LOOP_JOB_NAME)
    step_stages = _step_stages(defs)
    measurements = []
    with DagsterInstance.get() as instance, MemorySampler() as sampler:
        for month in months:
            started = time.time()
            with warehouse_lock(settings.warehouse_path, f"benchmark {month:%Y-%m}", settings.lock_timeout_seconds):
                result = job.execute_in_process(partition_key=month.isoformat(), instance=instance, raise_on_error=True)
            ended = time.time()
            times = _stage_times(instance.all_logs(result.run_id), step_stages)
            stages = {
                stage: {
                    "seconds": t["seconds"],
                    "cpu_seconds": sum(sampler.cpu_at(end) - sampler.cpu_at(begin) for begin, end in t["steps"]),
                    "peak_bytes": sampler.peak_between(t["first"], t["last"]),
                }
                for stage, t in sorted(times.items(), key=lambda item: item[1]["first"])
            }
            measurements.append(
                CycleMeasurement(
                    size=settings.sim_customers,
                    month=month,
                    seconds=ended - started,
                    cpu_seconds=sampler.cpu_at(ended) - sampler.cpu_at(started),
                    peak_bytes=sampler.peak_between(started, ended),
                    stages=stages,
                    run_id=result.run_id,
                )
            )
    return measurements


# ------------------------------------------------------------------------------------------- comparisons
#: Each fitter of the CLV comparison runs this many times; its median time is reported (a single run of a
#: fit that takes tens of milliseconds measures the first call's set-up as much as the fit).
CLV_FIT_REPEATS = 3


def _timed_fit(fit: Any) -> tuple[Any, float]:
    """The fitted model and the median wall time of ``CLV_FIT_REPEATS`` calls of ``fit``."""
    seconds = []
    for _ in range(CLV_FIT_REPEATS):
        started = time.perf_counter()
        fitted = fit()
        seconds.append(time.perf_counter() - started)
    return fitted, float(np.median(seconds))


def compare_clv_fit(settings: Settings, month: date) -> dict[str, float]:
    """Fit BG/NBD with the project's code and with `lifetimes` on the same RFM summary (weeks)."""
    from lifetimes import BetaGeoFitter

    orders = orders_as_of(DuckDBWarehouseResource(path=str(settings.warehouse_path)), month)
    month_end = (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()
    summary = rfm_summary(orders, "customer_id", "order_date", None, month_end, time_unit="W")
    frequency, recency, age = summary["frequency"], summary["recency"], summary["T"]

    ours, ours_seconds = _timed_fit(lambda: BetaGeoNBD().fit(frequency, recency, age))
    reference, lifetimes_seconds = _timed_fit(lambda: BetaGeoFitter(penalizer_coef=0.0).fit(frequency, recency, age))

    relative = {
        name: abs(ours.params_[name] - float(reference.params_[name])) / abs(float(reference.params_[name]))
        for name in ("r", "alpha", "a", "b")
    }
    return {
        "customers": len(summary),
        "ours_seconds": ours_seconds,
        "lifetimes_seconds": lifetimes_seconds,
        "speedup": lifetimes_seconds / ours_seconds,
        "max_relative_parameter_difference": max(relative.values()),
        **{f"ours_{name}": ours.params_[name] for name in ("r", "alpha", "a", "b")},
        **{f"lifetimes_{name}": float(reference.params_[name]) for name in ("r", "alpha", "a", "b")},
    }


#: The same RFM table as marts.customer_rfm, written as one query over the raw orders a user would write.
RAW_RFM_QUERY = """
with orders as (
    select
        customer_id,
        cast(order_date as date) as order_date,
        case when coalesce(order_type, 'sale') = 'return' then -amount else amount end as net_amount,
        coalesce(order_type, 'sale') <> 'return' as is_sale
    from raw.orders
    where cast(order_date as date) <= $month_end
),
per_customer as (
    select
        customer_id,
        date_diff('day', max(order_date) filter (where is_sale), $month_end) as recency_days,
        count(*) filter (where is_sale) as frequency,
        round(sum(net_amount) * 100) / count(*) filter (where is_sale) as monetary_cents
    from orders
    group by customer_id
    having count(*) filter (where is_sale) > 0
)
select
    customer_id, recency_days, frequency, monetary_cents / 100 as monetary,
    1 + floor(5 * (rank() over (order by recency_days desc) - 1) / count(*) over ()) as r_score,
    1 + floor(5 * (rank() over (order by frequency) - 1) / count(*) over ()) as f_score,
    1 + floor(5 * (rank() over (order by monetary_cents) - 1) / count(*) over ()) as m_score
from per_customer
"""


def _dbt_model_seconds(instance, run_id: str, manifest: dict, model: str) -> tuple[float, float, dict[str, float]]:
    """dbt's execution time of `model` alone, of `model` plus every model upstream of it, in one run, and of
    each model of that chain (by name, slowest first)."""

    durations: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        metadata = entry.asset_materialization.metadata
        if "unique_id" in metadata and "Execution Duration" in metadata:
            durations[metadata["unique_id"].value] = float(metadata["Execution Duration"].value)
    target = f"model.{manifest['metadata'].get('project_name', 'crm_warehouse')}.{model}"
    upstream, stack = set(), [target]
    while stack:
        node = stack.pop()
        for parent in manifest["parent_map"].get(node, []):
            if parent.startswith("model.") and parent not in upstream:
                upstream.add(parent)
                stack.append(parent)
    alone = durations.get(target, float("nan"))
    chain = alone + sum(durations.get(node, 0.0) for node in upstream)
    by_model = {node.rsplit(".", 1)[-1]: durations.get(node, 0.0) for node in [target, *upstream]}
    return alone, chain, dict(sorted(by_model.items(), key=lambda item: -item[1]))


def compare_rfm(settings: Settings, month: date, run_id: str) -> dict[str, float]:
    """The single raw DuckDB query against the warehouse's dbt RFM, on the same orders, same scores."""

    month_end = (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        started = time.perf_counter()
        raw = connection.execute(f"create temp table raw_rfm as {RAW_RFM_QUERY}", {"month_end": month_end}).fetchall()
        raw_seconds = time.perf_counter() - started
        del raw
        mismatches = connection.execute(
            """
            select count(*) from raw_rfm
            full outer join (select * from marts.customer_rfm where as_of_month = $month) as mart using (customer_id)
            where raw_rfm.r_score is distinct from mart.r_score
               or raw_rfm.f_score is distinct from mart.f_score
               or raw_rfm.m_score is distinct from mart.m_score
            """,
            {"month": month},
        ).fetchone()[0]
        customers = connection.execute("select count(*) from raw_rfm").fetchone()[0]
        orders = connection.execute("select count(*) from raw.orders").fetchone()[0]
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    with DagsterInstance.get() as instance:
        model_seconds, chain_seconds, chain_models = _dbt_model_seconds(instance, run_id, manifest, "customer_rfm")
    return {
        "customers": customers,
        "orders": orders,
        "raw_query_seconds": raw_seconds,
        "dbt_customer_rfm_seconds": model_seconds,
        "dbt_rfm_chain_seconds": chain_seconds,
        "dbt_rfm_chain_models": chain_models,
        "ratio": chain_seconds / raw_seconds,
        "score_mismatches": mismatches,
    }


# ------------------------------------------------------------------------------------- the analyse stage
def run_analyse_stage(month: date) -> None:
    """Materialise the analyse stage (asset group ``analyse`` and its checks) of `month` in this process, with
    the settings of the environment (``--analyse-stage``: the child process of :func:`measure_analyse_stage`)."""

    defs = build_definitions(load_settings())
    keys = AssetSelection.groups("analyse").resolve(defs.resolve_asset_graph())
    job = defs.resolve_implicit_global_asset_job_def()
    with DagsterInstance.ephemeral() as instance:
        job.execute_in_process(
            partition_key=month.isoformat(), asset_selection=sorted(keys), instance=instance, raise_on_error=True
        )


def measure_analyse_stage(
    settings: Settings, month: date, customers_per_chunk: int, training_customers: int
) -> dict[str, float]:
    """Wall time and peak resident memory of the analyse stage of `month` alone, in a fresh process."""
    environment = {
        **os.environ,
        "CRM_HOME": str(settings.home),
        "CRM_SOURCE": "simulator",
        "CRM_CHANNEL": "simulated",
        "CRM_SIM_CUSTOMERS": str(settings.sim_customers),
        "CRM_SIM_SEED": str(settings.sim_seed),
        "CRM_START_MONTH": FIRST_MONTH.isoformat(),
        "CRM_WAREHOUSE_ENGINE": "duckdb",
        "CRM_CUSTOMERS_PER_CHUNK": str(customers_per_chunk),
        "CRM_TRAINING_CUSTOMERS": str(training_customers),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestration.benchmark", "--analyse-stage", month.isoformat()],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss_bytes(child.pid))
        time.sleep(SAMPLE_SECONDS)
    errors = child.stderr.read() if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"the analyse stage of {month:%Y-%m} failed alone:\n{errors[-3000:]}")
    return {"seconds": time.perf_counter() - started, "peak_bytes": peak}


def analyse_memory_rows(settings: Settings, size: int, month: date) -> list[dict]:
    """The analyse stage of `month` alone, in one piece and split: two rows of the benchmark table."""
    runs = {
        "in one piece (every customer trained on, one chunk)": (IN_ONE_PIECE, IN_ONE_PIECE),
        (f"split (chunks of {ANALYSE_CHUNK_CUSTOMERS:,}, trained on {ANALYSE_TRAINING_CUSTOMERS:,})"): (
            ANALYSE_CHUNK_CUSTOMERS,
            ANALYSE_TRAINING_CUSTOMERS,
        ),
    }
    rows = []
    for label, (per_chunk, training) in runs.items():
        numbers = measure_analyse_stage(settings, month, per_chunk, training)
        rows.append(
            {
                "customers": size,
                "cycle": "analyse stage alone",
                "measure": label,
                "value": round(numbers["seconds"], 2),
                "unit": "s",
                "cpu_seconds": "",
                "peak_memory_gb": round(_gb(numbers["peak_bytes"]), 2),
                "target": "",
                "verdict": "",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- reporting
# ------------------------------------------------------------------------------------------ raw suites
def first_month_raw_frames(home: Path, customers: int, seed: int) -> dict[str, pd.DataFrame]:
    """raw.orders and raw.customers as collect hands them to their gates in a world's first month (its burn-in
    history), with the columns collect adds for the row checks."""
    world = SimulatedWorld(home, seed=seed, n_customers=customers)
    loaded = {LOADED_MONTH: pd.Timestamp(FIRST_MONTH)}
    orders = delivered_frame("orders", world.orders(FIRST_MONTH), "simulator").assign(**loaded)
    for column in ("_unknown_customer_id", "_unknown_product_id", "_order_id_collected_before"):
        orders[column] = pd.Series(None, index=orders.index, dtype="str")
    customers_frame = delivered_frame("customers", world.customers(FIRST_MONTH), "simulator").assign(**loaded)
    return {"orders": orders, "customers": customers_frame}


def time_raw_suites(home: Path, seed: int, customers: int = RAW_SUITE_CUSTOMERS) -> dict[str, dict[str, Any]]:
    """Per raw suite: its rows, the median seconds of three validations (after one that builds GX's context),
    and the rules it found broken (none on the simulator's clean data)."""
    frames = first_month_raw_frames(home, customers, seed)
    suites = {"orders": raw_orders.suite, "customers": raw_customers.suite}
    parameters = raw_parameters(FIRST_MONTH)
    validate(frames["orders"], suites["orders"], parameters)
    timed = {}
    for name, suite in suites.items():
        validation, seconds = _timed_fit(lambda frame=frames[name], suite=suite: validate(frame, suite, parameters))
        timed[name] = {"rows": len(frames[name]), "seconds": seconds, "broken": [b.rule for b in validation.breaks]}
    return timed


def raw_suite_rows(timed: dict[str, dict[str, Any]], customers: int = RAW_SUITE_CUSTOMERS) -> list[dict]:
    slowest = max(numbers["seconds"] for numbers in timed.values())
    broken = [rule for numbers in timed.values() for rule in numbers["broken"]]
    return [
        {
            "customers": customers,
            "cycle": "comparison",
            "measure": f"raw suites (Great Expectations) on a first month of {customers:,} customers: "
            + ", ".join(f"{name} {n['seconds']:.2f} s ({n['rows']:,} rows)" for name, n in timed.items()),
            "value": round(slowest, 3),
            "unit": "s, the slowest suite",
            "cpu_seconds": "",
            "peak_memory_gb": "",
            "target": f"<= {RAW_SUITE_SECONDS_TARGET:.0f} s each, nothing broken",
            "verdict": _verdict(slowest, RAW_SUITE_SECONDS_TARGET) + (f", broken: {broken}" if broken else ""),
        }
    ]


def _gb(n_bytes: float) -> float:
    return n_bytes / 1024**3


def _verdict(value: float, target: float | None, higher_is_better: bool = False) -> str:
    if target is None or not np.isfinite(value):
        return ""
    met = value >= target if higher_is_better else value <= target
    if met:
        return "met"
    shortfall = (target / value - 1) if higher_is_better else (value / target - 1)
    return f"missed by {shortfall:.0%}"


def benchmark_rows(size: int, cycles: list[CycleMeasurement], clv: dict, rfm: dict) -> list[dict]:
    """Rows of the benchmark table for one size."""
    rows = []
    for position, cycle in enumerate(cycles):
        label = "first month (burn-in history)" if position == 0 else "monthly cycle"
        for stage, numbers in cycle.stages.items():
            rows.append(
                {
                    "customers": size,
                    "cycle": label,
                    "measure": f"stage {stage}",
                    "value": round(numbers["seconds"], 2),
                    "unit": "s",
                    "cpu_seconds": round(numbers.get("cpu_seconds", float("nan")), 2),
                    "peak_memory_gb": round(_gb(numbers["peak_bytes"]), 2),
                    "target": "",
                    "verdict": "",
                }
            )
        target = CYCLE_SECONDS_TARGET.get(size) if position == 1 else None
        memory_target = PEAK_MEMORY_GB_TARGET.get(size) if position == 1 else None
        rows.append(
            {
                "customers": size,
                "cycle": label,
                "measure": "whole cycle",
                "value": round(cycle.seconds, 2),
                "unit": "s",
                "cpu_seconds": round(cycle.cpu_seconds, 2),
                "peak_memory_gb": round(_gb(cycle.peak_bytes), 2),
                "target": (f"<= {target:.0f} s" if target else "")
                + (f", <= {memory_target:.0f} GB" if memory_target else ""),
                "verdict": ", ".join(
                    v
                    for v in (
                        _verdict(cycle.seconds, target),
                        _verdict(_gb(cycle.peak_bytes), memory_target),
                    )
                    if v
                ),
            }
        )
    rows.append(
        {
            "customers": size,
            "cycle": "comparison",
            "measure": (
                f"BG/NBD fit: lifetimes {clv['lifetimes_seconds']:.2f} s / ours {clv['ours_seconds']:.3f} s "
                f"(params within {clv['max_relative_parameter_difference']:.2e})"
            ),
            "value": round(clv["speedup"], 1),
            "unit": "x faster",
            "cpu_seconds": "",
            "peak_memory_gb": "",
            "target": f">= {CLV_SPEEDUP_TARGET:.0f}x, params within {CLV_PARAMETER_TOLERANCE:.1%}",
            "verdict": _verdict(clv["speedup"], CLV_SPEEDUP_TARGET, higher_is_better=True)
            + ("" if clv["max_relative_parameter_difference"] <= CLV_PARAMETER_TOLERANCE else ", params differ"),
        }
    )
    rows.append(
        {
            "customers": size,
            "cycle": "comparison",
            "measure": (
                f"RFM: dbt models {rfm['dbt_rfm_chain_seconds']:.2f} s ("
                + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in rfm.get("dbt_rfm_chain_models", {}).items())
                + f") / one raw DuckDB query {rfm['raw_query_seconds']:.2f} s "
                f"over {rfm['orders']:,} orders; score mismatches {rfm['score_mismatches']}"
            ),
            "value": round(rfm["ratio"], 2),
            "unit": "x the raw query",
            "cpu_seconds": "",
            "peak_memory_gb": "",
            "target": f"<= {RFM_RATIO_TARGET:.0f}x, same scores",
            "verdict": _verdict(rfm["ratio"], RFM_RATIO_TARGET)
            + ("" if rfm["score_mismatches"] == 0 else ", scores differ"),
        }
    )
    return rows


def write_report(rows: list[dict], reports_dir: Path) -> tuple[Path, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    csv_path, md_path = reports_dir / "benchmark.csv", reports_dir / "benchmark.md"
    table.to_csv(csv_path, index=False)
    header = (
        "# Benchmark: one monthly cycle of the loop\n\n"
        f"Machine: {os.cpu_count()} cores; peak memory includes dbt's subprocess. "
        f"Max RSS of this process (getrusage): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB."
        "\n\n"
    )
    md_path.write_text(header + table.to_markdown(index=False) + "\n")
    return md_path, csv_path


def benchmark_size(settings: Settings, size: int) -> list[dict]:
    """Fresh world of `size` customers: two months through Dagster, then the two comparisons."""
    home = settings.home / "bench" / str(size)
    shutil.rmtree(home, ignore_errors=True)
    sized = Settings(
        home=home,
        source="simulator",
        files_dir=home / "inbox",
        sim_seed=settings.sim_seed,
        sim_customers=size,
        channel="simulated",
        start_month=FIRST_MONTH,
    )
    months = [FIRST_MONTH, next_month(FIRST_MONTH)]
    cycles = run_benchmark_cycles(sized, months)
    clv = compare_clv_fit(sized, months[-1])
    rfm = compare_rfm(sized, months[-1], cycles[-1].run_id)
    return benchmark_rows(size, cycles, clv, rfm) + analyse_memory_rows(sized, size, months[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated customer counts")
    parser.add_argument("--analyse-stage", metavar="MONTH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.analyse_stage:
        run_analyse_stage(date.fromisoformat(args.analyse_stage))
        return 0
    settings = load_settings()
    if settings.start_month != FIRST_MONTH:
        raise SystemExit(f"the benchmark uses its own worlds starting {FIRST_MONTH:%Y-%m}; unset CRM_START_MONTH")
    rows: list[dict] = []
    for size in (int(text.replace("_", "")) for text in args.sizes.split(",")):
        print(f"benchmark: {size:,} customers ...", flush=True)
        rows.extend(benchmark_size(settings, size))
        md_path, _ = write_report(rows, settings.reports_dir)
    print(f"benchmark: raw suites on {RAW_SUITE_CUSTOMERS:,} customers ...", flush=True)
    suites_home = settings.home / "bench" / "raw_suites"
    shutil.rmtree(suites_home, ignore_errors=True)
    rows.extend(raw_suite_rows(time_raw_suites(suites_home, settings.sim_seed)))
    md_path, _ = write_report(rows, settings.reports_dir)
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
