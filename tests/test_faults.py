"""Faults: runs killed with SIGKILL, and two loop processes at once, on small simulated worlds.

- A run killed in the middle of dbt, and one killed in the middle of execute (after the channel took a batch,
  before the delivery log recorded it): the next launch marks the dead run failed and frees its concurrency
  slot; the re-run completes with the same results as a run that was never killed, and no contact is sent twice.
- Two processes at once on one warehouse and one Dagster instance: every process that opens the warehouse takes
  its OS-level lock; the second waits, or fails after its timeout naming the run that holds the lock; a second
  `crm-loop run` refuses while the first is in progress, naming it. Nothing is duplicated.

Each world runs in processes of its own (tests/fault_injection.py), with CRM_SIM_CUSTOMERS=500.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "fault_injection.py"
CUSTOMERS = 500
SEED = 7
MONTH = date(2025, 1, 1)
KILLED = (-9, 137)

pytestmark = pytest.mark.slow

# The tables a month produces, as compared between worlds (sent_at is a wall-clock time).
COMPARED = {
    "raw_orders": "select * exclude (_source_file) from raw.orders order by all",
    "fct_orders": "select * from marts.fct_orders order by all",
    "rfm": "select * from marts.customer_rfm order by all",
    "scores": "select * from analytics.customer_scores where as_of_month = '2025-01-01' order by customer_id",
    "plan": "select * from campaigns.campaign_plan where designed_in_month = '2025-01-01' order by all",
    "deliveries": "select * exclude (sent_at) from campaigns.campaign_deliveries order by all",
}


def _environment(home: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CRM_", "DAGSTER_")) and key != "PYTEST_CURRENT_TEST"
    }
    env.update(
        CRM_HOME=str(home),
        CRM_SIM_CUSTOMERS=str(CUSTOMERS),
        CRM_SIM_SEED=str(SEED),
        DO_NOT_TRACK="1",
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def _launch(home: Path, mode: str, *argv: str, **extra: str) -> subprocess.Popen:
    """`crm-loop <argv>` in a process group of its own (killed as a whole by the fault injection); its output
    goes to a file in the world's home, named in `process.log`."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"{mode}-{'-'.join(argv)}-{time.monotonic_ns()}.out"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(DRIVER), mode, *argv],
            cwd=ROOT,
            env=_environment(home, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log = log
    return process


def _output(process: subprocess.Popen) -> str:
    return process.log.read_text()


def _run(home: Path, mode: str, *argv: str, timeout: float = 600, **extra: str) -> tuple[int, str]:
    process = _launch(home, mode, *argv, **extra)
    return process.wait(timeout=timeout), _output(process)


def _instance_runs(home: Path) -> list:
    """The loop's runs in the world's Dagster instance (read in a subprocess: the instance is the world's)."""
    code = (
        "import json, os; from dagster import DagsterInstance;"
        "i = DagsterInstance.get(); s = i.event_log_storage;"
        "claims = {k: [c.run_id for c in s.get_concurrency_info(k).claimed_slots] for k in s.get_concurrency_keys()};"
        "print(json.dumps({'runs': [{'id': r.run_id, 'status': r.status.value, 'tags': dict(r.tags)}"
        " for r in i.get_runs()], 'claims': claims}))"
    )
    env = _environment(home, DAGSTER_HOME=str(home / "dagster"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def _read(home: Path, sql: str) -> pd.DataFrame:
    """A query on the world's warehouse (an empty frame when the table was never written)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        try:
            return connection.execute(sql).df()
        except duckdb.CatalogException:
            return pd.DataFrame()


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    return {name: _read(home, sql) for name, sql in COMPARED.items()}


def _wait_for_started_run(home: Path, process: subprocess.Popen, timeout: float = 900) -> str:
    """The id of the Dagster run that `process` started, once it holds the warehouse lock (the lock names it)."""
    lock = home / "warehouse.duckdb.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Dagster run ([0-9a-f-]{36})", lock.read_text() if lock.exists() else "")
        if found:
            return found.group(1)
        assert process.poll() is None, _output(process)
        time.sleep(0.2)
    raise AssertionError(f"no run started in {timeout} s")


@pytest.fixture(scope="module")
def worlds(dbt_manifest, tmp_path_factory):
    """Two worlds side by side. The reference runs its first month undisturbed, while a second `crm-loop run`
    and two lock probes try the same warehouse. The other world's first month is killed in dbt, then its
    re-run is killed in execute, then its third run completes."""
    base = tmp_path_factory.mktemp("faults")
    reference, faulty = base / "reference", base / "faulty"
    first = _launch(reference, "none", "run")
    in_dbt = _launch(faulty, "dbt", "run")

    holder = _wait_for_started_run(reference, first)
    second_loop = _run(reference, "none", "run")
    probe = (
        "from orchestration.resources import DuckDBWarehouseResource; import os;"
        "w = DuckDBWarehouseResource(path=os.environ['CRM_HOME'] + '/warehouse.duckdb', lock_timeout_seconds={t});"
        "print('rows', w.query('select count(*) as n from raw.orders')['n'][0])"
    )
    impatient = subprocess.run(
        [sys.executable, "-c", probe.format(t=2)], env=_environment(reference), cwd=ROOT, capture_output=True, text=True
    )
    patient = subprocess.Popen(
        [sys.executable, "-c", probe.format(t=600)],
        env=_environment(reference),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    killed, state_after_kill, deliveries_after_kill = {}, {}, None
    killed["dbt"] = in_dbt.wait(timeout=900)
    state_after_kill["dbt"] = _instance_runs(faulty)
    in_execute = _launch(faulty, "execute", "run")
    killed["execute"] = in_execute.wait(timeout=900)
    state_after_kill["execute"] = _instance_runs(faulty)
    deliveries_after_kill = _read(faulty, COMPARED["deliveries"])
    last = _launch(faulty, "none", "run")

    assert first.wait(timeout=900) == 0, _output(first)
    patient_out, _ = patient.communicate(timeout=120)
    assert last.wait(timeout=900) == 0, _output(last)
    return {
        "reference": reference,
        "faulty": faulty,
        "holder": holder,
        "second_loop": second_loop,
        "impatient": impatient,
        "patient": (patient.returncode, patient_out),
        "killed": killed,
        "outputs": {"dbt": _output(in_dbt), "execute": _output(in_execute)},
        "state_after_kill": state_after_kill,
        "deliveries_after_kill": deliveries_after_kill,
    }


def test_a_second_process_waits_for_the_lock_or_names_the_run_that_holds_it(worlds):
    reference, holder = worlds["reference"], worlds["holder"]
    code, output = worlds["second_loop"]
    assert code == 2 and "a loop run is in progress" in output and holder[:8] in output, output
    impatient = worlds["impatient"]
    assert impatient.returncode != 0
    assert "WarehouseBusyError" in impatient.stderr and f"Dagster run {holder}" in impatient.stderr, impatient.stderr
    assert "crm-loop run 2025-01" in impatient.stderr and "waited 2 s" in impatient.stderr
    code, output = worlds["patient"]
    assert code == 0 and "rows" in output, output  # waited for the loop run, then read
    # the warehouse is whole: one successful run, nothing duplicated
    runs = _instance_runs(reference)["runs"]
    assert [run["status"] for run in runs] == ["SUCCESS"]
    for table, key in (("raw.orders", "order_id"), ("campaigns.campaign_deliveries", "idempotency_key")):
        counts = _read(reference, f"select count(*) as n, count(distinct {key}) as k from {table}")
        assert counts["n"][0] == counts["k"][0] > 0, table


@pytest.mark.parametrize("stage", ["dbt", "execute"])
def test_a_killed_run_is_left_started_holding_its_slot(worlds, stage):
    assert worlds["killed"][stage] in KILLED, worlds["outputs"][stage]
    assert (
        f"fault injection: SIGKILL {'during dbt' if stage == 'dbt' else 'after the channel'}"
        in (worlds["outputs"][stage])
    )
    state = worlds["state_after_kill"][stage]
    dead = [run for run in state["runs"] if run["status"] == "STARTED"]
    assert len(dead) == 1 and state["claims"]["duckdb"] == [dead[0]["id"]], state
    # the run before it (if any) was marked failed by this one
    assert all(run["status"] == "FAILURE" for run in state["runs"] if run["id"] != dead[0]["id"])


def test_the_next_run_marks_dead_runs_failed_frees_their_slots_and_gives_the_same_results(worlds):
    faulty = worlds["faulty"]
    state = _instance_runs(faulty)
    statuses = [run["status"] for run in reversed(state["runs"])]
    assert statuses == ["FAILURE", "FAILURE", "SUCCESS"], state
    assert state["claims"].get("duckdb", []) == []
    expected, actual = _tables(worlds["reference"]), _tables(faulty)
    for name in COMPARED:
        pd.testing.assert_frame_equal(actual[name], expected[name], obj=name)


def test_a_run_killed_in_execute_sends_nothing_twice(worlds):
    from simulator import SimulatedWorld

    faulty = worlds["faulty"]
    deliveries = _read(faulty, "select * from campaigns.campaign_deliveries")
    assert len(worlds["deliveries_after_kill"]) < len(deliveries), "the kill came in the middle of execute"
    assert not deliveries.duplicated(["campaign_id", "customer_id"]).any()
    contacted = SimulatedWorld(faulty, seed=SEED, n_customers=CUSTOMERS).contact_log(date(2025, 2, 1))
    assert not contacted.duplicated(["campaign_id", "customer_id"]).any()
    pairs = lambda frame: set(zip(frame["campaign_id"], frame["customer_id"], strict=True))  # noqa: E731
    assert pairs(contacted) == pairs(deliveries), "the channel and the delivery log agree"
