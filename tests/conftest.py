"""Shared fixtures: the dbt manifest, isolated CRM homes for loop runs, and a simulated year of the loop."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from orchestration.lib.dbt_project import manifest_is_stale
from orchestration.lib.prepare import prepare_dbt

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"

# Tests never phone home.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


# The modules that take longest (their fixtures run the loop or build the warehouse), longest first, as measured
# by `make test` (docs/testing.md). The two workers of `make test` take whole modules in collection order
# (`--dist loadfile --no-loadscope-reorder`): these first, then the rest in name order, so that no long module
# starts when the others are done.
LONGEST_FIRST = (
    "test_spark_warehouse.py",
    "test_faults.py",
    "test_dbt_warehouse.py",
    "test_browser.py",
    "test_dbt_marts.py",
    "test_benchmark.py",
    "test_bad_input.py",
    "test_operations.py",
    "test_import_cdnow.py",
    "test_warehouse_backfill.py",
    "test_forget.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's own order is kept


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The manifest the Dagster definitions load: `dbt parse` unless it is newer than every file of the dbt
    project, one test process at a time (test processes running side by side share the project's target/)."""
    target = DBT_PROJECT / "target"
    target.mkdir(exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest_is_stale():
            return target / "manifest.json"
        prepare_dbt()  # `crm-loop prepare`'s parse: the manifest replaced in one rename
    return target / "manifest.json"


@pytest.fixture
def crm_home(tmp_path, monkeypatch) -> Path:
    """An empty CRM_HOME with the process environment restored after the test."""
    home = tmp_path / "crm"
    monkeypatch.setenv("CRM_HOME", str(home))
    for variable in ("DAGSTER_HOME", "CRM_WAREHOUSE", "CRM_SOURCE", "CRM_CHANNEL", "CRM_SIM_SEED", "CRM_SIM_CUSTOMERS"):
        monkeypatch.delenv(variable, raising=False)
    return home


# The default world over a simulated year: `crm-loop run --cycles 12` for seeds 11, 22 and 33 at 3,000
# customers, each seed in a process of its own (side by side). The end-to-end tests and issue 5's proof on the
# hidden truth read the same three worlds.
YEAR_SEEDS = (11, 22, 33)
YEAR_CYCLES = 12
YEAR_CUSTOMERS = 3000


@dataclass(frozen=True)
class SimulatedYear:
    seed: int
    home: Path
    summary: pd.DataFrame  # reports/loop_summary.csv as the year's run left it
    log: str

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    def environment(self) -> dict[str, str]:
        """The variables of this world, for a process (or `monkeypatch`) that runs more of it."""
        return {
            "CRM_HOME": str(self.home),
            "CRM_SIM_SEED": str(self.seed),
            "CRM_SIM_CUSTOMERS": str(YEAR_CUSTOMERS),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "CRM_WAREHOUSE": str(self.warehouse),
        }


def _run_simulated_year(seed: int, home: Path) -> tuple[int, float, str]:
    home.mkdir(parents=True, exist_ok=True)
    world = SimulatedYear(seed, home, pd.DataFrame(), "")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRM_", "DAGSTER_HOME"))}
    env.update(world.environment(), DO_NOT_TRACK="1")
    started = time.monotonic()
    command = [str(Path(sys.executable).with_name("crm-loop")), "run", "--cycles", str(YEAR_CYCLES)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return finished.returncode, time.monotonic() - started, finished.stdout + finished.stderr


@pytest.fixture(scope="session")
def simulated_years(tmp_path_factory, dbt_manifest) -> dict[int, SimulatedYear]:
    root = tmp_path_factory.mktemp("simulated_years")
    # All seeds at once: on two cores three processes finish sooner than two followed by one.
    with ThreadPoolExecutor(max_workers=len(YEAR_SEEDS)) as pool:
        outcomes = pool.map(lambda seed: _run_simulated_year(seed, root / f"seed{seed}"), YEAR_SEEDS)
        runs = dict(zip(YEAR_SEEDS, outcomes, strict=True))
    years = {}
    for seed, (returncode, seconds, log) in runs.items():
        tail = "\n".join(log.splitlines()[-30:])
        assert returncode == 0, f"seed {seed}: crm-loop failed after {seconds:.0f} s\n{tail}"
        print(f"seed {seed}: {YEAR_CYCLES} cycles in {seconds:.0f} s")
        home = root / f"seed{seed}"
        summary = pd.read_csv(home / "reports" / "loop_summary.csv", dtype={"month": str})
        years[seed] = SimulatedYear(seed, home, summary, log)
    return years
