"""Shared fixtures: the dbt manifest, and isolated CRM homes for loop runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"

# Tests never phone home.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """`dbt parse` once per session: the manifest the Dagster definitions load."""
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [str(dbt), "parse", "--quiet", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)],
        check=True,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    return DBT_PROJECT / "target" / "manifest.json"


@pytest.fixture
def crm_home(tmp_path, monkeypatch) -> Path:
    """An empty CRM_HOME with the process environment restored after the test."""
    home = tmp_path / "crm"
    monkeypatch.setenv("CRM_HOME", str(home))
    for variable in ("DAGSTER_HOME", "CRM_WAREHOUSE", "CRM_SOURCE", "CRM_CHANNEL", "CRM_SIM_SEED", "CRM_SIM_CUSTOMERS"):
        monkeypatch.delenv(variable, raising=False)
    return home
