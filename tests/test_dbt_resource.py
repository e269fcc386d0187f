"""The warehouse's dbt resource: no `dbt --version` subprocess, a dbt adapter only where columns are read, and the
month of a build in the environment only while it is built."""

from __future__ import annotations

import os

import pytest
from dagster_dbt.core import resource as dagster_dbt_resource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

from orchestration.lib.dbt_project import BUILD_MONTH_VARIABLE, dbt_build_month, dbt_executable
from orchestration.resources.dbt import WarehouseDbtResource, installed_dbt_version, release_dbt_adapter
from orchestration.stages.warehouse.assets import dbt_build_arguments, dbt_project


def _resource(executable: str | None = None) -> WarehouseDbtResource:
    return WarehouseDbtResource(
        project_dir=dbt_project,
        profiles_dir=str(dbt_project.project_dir),
        target="dev",
        dbt_executable=executable or dbt_executable(),
    )


def _no_subprocess(*args, **kwargs):
    raise AssertionError(f"a subprocess was started: {args}")


def test_the_version_of_the_dbt_beside_this_python_is_read_without_a_subprocess(monkeypatch):
    monkeypatch.setattr(dagster_dbt_resource, "check_output", _no_subprocess)
    assert _resource()._cli_version == installed_dbt_version()
    assert installed_dbt_version().major == 1 and installed_dbt_version().minor == 11


def test_another_dbt_executable_is_asked_for_its_version(monkeypatch, tmp_path):
    other = tmp_path / "dbt"
    other.write_text("#!/bin/sh\necho 'Core:\n  - installed: 1.10.4'\n")
    other.chmod(0o755)
    asked = []

    def check_output(command, *args, **kwargs):
        asked.append(command)
        return b"Core:\n  - installed: 1.10.4\n"

    monkeypatch.setattr(dagster_dbt_resource, "check_output", check_output)
    assert str(_resource(str(other))._cli_version) == "1.10.4"
    assert asked == [[str(other), "--version"]]


@pytest.mark.parametrize("load_adapter", [True, False])
def test_the_dbt_adapter_is_loaded_only_when_asked(monkeypatch, dbt_manifest, tmp_path, load_adapter):
    """The adapter (loaded in this process to read column schemas) is what `load_adapter` says; dbt itself is
    not started here: the invocation's arguments are captured instead."""
    monkeypatch.setenv("CRM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setattr(dagster_dbt_resource, "check_output", _no_subprocess)
    captured = {}

    def run(**kwargs):
        captured.update(kwargs)
        return "invocation"

    monkeypatch.setattr(DbtCliInvocation, "run", staticmethod(run))
    resource = _resource()
    assert resource.cli(dbt_build_arguments(), load_adapter=load_adapter) == "invocation"
    assert (captured["adapter"] is not None) is load_adapter
    assert captured["args"][1:4] == ["build", "--exclude-resource-type", "unit_test"]
    assert "--vars" not in captured["args"]  # the month is in the environment: dbt's partial parse lasts
    # the next invocation loads the adapter again unless told otherwise
    resource.cli(["build"])
    assert captured["adapter"] is not None
    release_dbt_adapter()


def test_the_build_month_is_in_the_environment_only_while_it_is_built(monkeypatch):
    monkeypatch.delenv(BUILD_MONTH_VARIABLE, raising=False)
    with dbt_build_month("2025-03-01"):
        assert os.environ[BUILD_MONTH_VARIABLE] == "2025-03-01"
    assert BUILD_MONTH_VARIABLE not in os.environ
    monkeypatch.setenv(BUILD_MONTH_VARIABLE, "2024-12-01")  # the user's own, back once the build is done
    with pytest.raises(RuntimeError), dbt_build_month("2025-03-01"):
        raise RuntimeError("the build failed")
    assert os.environ[BUILD_MONTH_VARIABLE] == "2024-12-01"


def test_the_internals_used_here_are_those_of_the_pinned_releases():
    """orchestration/resources/dbt.py relies on three members outside dagster-dbt's and dbt-duckdb's public API;
    an upgrade that moves them must fail here, not in a monthly run."""
    import inspect
    from functools import cached_property
    from importlib.metadata import version as installed

    from dagster_dbt import DbtCliEventMessage, DbtCliResource
    from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    releases = {"dagster-dbt": installed("dagster-dbt"), "dbt-duckdb": installed("dbt-duckdb")}
    assert releases == {"dagster-dbt": "0.29.27", "dbt-duckdb": "1.11.1"}, (
        f"{releases}: re-check the internals listed in orchestration/resources/dbt.py's docstring, then this pin"
    )
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    assert list(inspect.signature(DbtCliResource._initialize_dbt_core_adapter).parameters) == ["self", "args"]
    assert issubclass(DbtCoreCliEventMessage, DbtCliEventMessage)
    assert "to_default_asset_events" in vars(DbtCliEventMessage)
    assert "_ENV" in vars(DuckDBConnectionManager)
