"""Settings: one object read from the environment; a mistake is one line naming the variable, the value and the
fix, with exit status 2, before anything runs; settings that follow from others default to them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from orchestration.lib.settings import ConfigurationError, load_settings
from simulator import SimulatedWorld

CRM_LOOP = str(Path(sys.executable).with_name("crm-loop"))


def _environment(home: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRM_", "DAGSTER_HOME"))}
    return {**env, "CRM_HOME": str(home), "DO_NOT_TRACK": "1", **variables}


def _crm_loop(home: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CRM_LOOP, *args], env=_environment(home, **variables), capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CRM_SOURCE": "ftp"}, "CRM_SOURCE='ftp' is not one of simulator, files"),
        ({"CRM_SIM_CUSTOMERS": "many"}, "CRM_SIM_CUSTOMERS='many' is not a whole number"),
        ({"CRM_START_MONTH": "2025-13"}, "CRM_START_MONTH='2025-13' is not a month"),
        ({"CRM_GLOBAL_CONTROL_SHARE": "1.5"}, "CRM_GLOBAL_CONTROL_SHARE='1.5' is outside [0, 1)"),
        ({"CRM_SOURCE": "files", "CRM_FILES_DIR": "/nonexistent/inbox"}, "CRM_FILES_DIR='/nonexistent/inbox'"),
        ({"CRM_SOURCE": "files", "CRM_CHANNEL": "simulated"}, "CRM_CHANNEL='simulated' delivers to the simulated"),
    ],
    ids=["unknown value", "not a number", "not a month", "share out of range", "missing folder", "impossible pair"],
)
def test_a_configuration_mistake_is_one_line_naming_variable_value_and_fix_with_status_2(
    tmp_path, variables, named
) -> None:
    if variables.get("CRM_SOURCE") == "files" and "CRM_FILES_DIR" not in variables:
        (tmp_path / "inbox" / "orders").mkdir(parents=True)
        (tmp_path / "inbox" / "orders" / "2024-03.csv").write_text("customer_id,order_date,amount\n")
        variables = {**variables, "CRM_FILES_DIR": str(tmp_path / "inbox")}
    finished = _crm_loop(tmp_path / "home", "run", "--cycles", "1", **variables)
    assert finished.returncode == 2, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert named in lines[0] and "set" in lines[0].lower(), lines[0]
    assert not (tmp_path / "home" / "dagster").exists()  # refused before a run was recorded


def test_another_world_size_or_seed_on_an_existing_home_is_refused_before_a_run_starts(tmp_path) -> None:
    home = tmp_path / "home"
    SimulatedWorld(home, seed=3, n_customers=300)
    for variables, named in (
        ({"CRM_SIM_SEED": "3", "CRM_SIM_CUSTOMERS": "400"}, "CRM_SIM_CUSTOMERS=400"),
        ({"CRM_SIM_SEED": "4", "CRM_SIM_CUSTOMERS": "300"}, "CRM_SIM_SEED=4"),
    ):
        finished = _crm_loop(home, "run", "--cycles", "1", **variables)
        assert finished.returncode == 2, finished.stderr
        assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr
        assert named in finished.stderr and "created with" in finished.stderr
    assert not (home / "dagster").exists()
    assert load_settings(_environment(home, CRM_SIM_SEED="3", CRM_SIM_CUSTOMERS="300")).sim_customers == 300


def test_the_files_source_implies_the_file_channel_and_starts_at_its_oldest_orders_file(tmp_path) -> None:
    orders = tmp_path / "inbox" / "orders"
    orders.mkdir(parents=True)
    for month in ("2024-05", "2024-03", "2024-04"):
        (orders / f"{month}.csv").write_text("customer_id,order_date,amount\n")
    settings = load_settings(_environment(tmp_path / "home", CRM_SOURCE="files", CRM_FILES_DIR=str(tmp_path / "inbox")))
    assert settings.channel == "file"
    assert settings.start_month == date(2024, 3, 1)
    named = load_settings(
        _environment(
            tmp_path / "home", CRM_SOURCE="files", CRM_FILES_DIR=str(tmp_path / "inbox"), CRM_START_MONTH="2024-05"
        )
    )
    assert named.start_month == date(2024, 5, 1)
    with pytest.raises(ConfigurationError, match="has no orders files"):
        load_settings(_environment(tmp_path / "home", CRM_SOURCE="files", CRM_FILES_DIR=str(tmp_path)))


def test_the_simulator_defaults_need_no_variable(tmp_path) -> None:
    settings = load_settings(_environment(tmp_path / "home"))
    assert (settings.source, settings.channel, settings.start_month) == ("simulator", "simulated", date(2025, 1, 1))
    assert settings.global_control_share == 0.0 and settings.lock_timeout_seconds == 600.0
