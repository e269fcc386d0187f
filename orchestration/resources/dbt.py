"""The dbt resource of the warehouse stage: dagster-dbt's `DbtCliResource` without two fixed costs per build.

Before every `dbt build`, `DbtCliResource.cli` starts a second process (`dbt --version`) to learn which dbt it
will run, and loads a dbt adapter and the project's macros in the Dagster process so that column schemas can be
read after the build. Here:

* the dbt that runs is the one installed beside this Python (`orchestration.lib.dbt_project.dbt_executable`), so its
  version is read from the installed `dbt-core` package instead of from a subprocess;
* the adapter is loaded only for a build whose column metadata will be read (`fetch_column_metadata`);
  `cli(..., load_adapter=False)` skips it. The warehouse step reads column metadata once per version of the
  project (`orchestration.stages.warehouse.dbt_column_metadata`) and row counts itself
  (`orchestration.stages.warehouse.dbt_row_counts`).

Both cost two to five seconds per monthly build on the reference machine, whatever the size of the customer base.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource
from dbt.version import __version__
from packaging import version

from orchestration.lib.dbt_project import dbt_executable

_LOAD_ADAPTER: contextvars.ContextVar[bool] = contextvars.ContextVar("crm_dbt_load_adapter", default=True)


def installed_dbt_version() -> version.Version:
    """The version of the `dbt-core` package installed in this Python."""

    return version.parse(__version__)


class WarehouseDbtResource(DbtCliResource):
    """`DbtCliResource` that knows the version of the dbt beside this Python and loads its adapter on demand."""

    @property
    def _cli_version(self) -> version.Version:  # dagster-dbt: a cached property running `dbt --version`
        if Path(self.dbt_executable).resolve() == Path(dbt_executable()).resolve():
            return installed_dbt_version()
        return DbtCliResource._cli_version.func(self)  # another dbt: ask it

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        if not _LOAD_ADAPTER.get():
            return None
        return super()._initialize_dbt_core_adapter(args)

    def cli(self, args: Sequence[str], *, load_adapter: bool = True, **kwargs: Any):
        """`DbtCliResource.cli`; with `load_adapter=False` the invocation has no adapter, so it can stream
        events and artefacts but not fetch column metadata."""
        token = _LOAD_ADAPTER.set(load_adapter)
        try:
            return super().cli(args, **kwargs)
        finally:
            _LOAD_ADAPTER.reset(token)
