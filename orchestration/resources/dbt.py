"""Everything the project takes from dagster-dbt and dbt-duckdb beyond their public API, in one module.

Three internals, each pinned by the test `test_the_internals_used_here_are_those_of_the_pinned_releases` in
tests/test_dbt_resource.py (an upgrade of dagster-dbt or dbt-duckdb that changes them fails there, naming this
module):

* `DbtCliResource._cli_version` and `DbtCliResource._initialize_dbt_core_adapter`. Before every `dbt build`,
  `DbtCliResource.cli` starts a second process (`dbt --version`) to learn which dbt it will run, and loads a dbt
  adapter and the project's macros in the Dagster process so that column schemas can be read after the build.
  `WarehouseDbtResource` reads the version of the dbt beside this Python from the installed `dbt-core` package,
  and loads the adapter only for a build whose column metadata will be read (`cli(..., load_adapter=False)`
  skips it; the warehouse step reads column metadata once per version of the project, and row counts itself).
  Measured on the reference machine (2 cores, busy): `dbt --version` 3.1-3.7 s of CPU, the adapter 2.7 s in a
  fresh run worker (1.0 s once dbt is imported), per monthly build, whatever the size of the customer base.
* `dagster_dbt.core.dbt_cli_event.DbtCoreCliEventMessage` (the public `DbtCliEventMessage` is abstract): turns a
  dbt event fired in this process into Dagster events exactly as dagster-dbt turns the same event read from a dbt
  subprocess (`dagster_events_of`, for the Spark engine's in-process dbt).
* `DuckDBConnectionManager._ENV`: dbt-duckdb keeps its DuckDB connection in a class attribute that
  `close_all_connections` forgets without closing (`release_dbt_adapter`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster_dbt import DagsterDbtTranslator, DbtCliResource
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.adapters.factory import reset_adapters
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


def dagster_events_of(
    raw_event: Mapping[str, Any],
    *,
    manifest: Mapping[str, Any],
    translator: DagsterDbtTranslator,
    context: Any,
    target_path: Path,
) -> Iterator:
    """The Dagster events (materialisations, check results) of one dbt event, shaped like a line of dbt's
    `--log-format json`, as dagster-dbt yields them for the same event read from a dbt subprocess."""
    message = DbtCoreCliEventMessage(raw_event=dict(raw_event), event_history_metadata={})
    yield from message.to_default_asset_events(
        manifest=manifest, dagster_dbt_translator=translator, context=context, target_path=target_path
    )


def release_dbt_adapter() -> None:
    """Close the dbt adapter's DuckDB connection in this process.

    dagster-dbt reads row counts and column schemas through a read-only adapter connection; while it stays
    open, the read-write connections of the next steps in this process are refused by DuckDB.
    """
    reset_adapters()
    environment = DuckDBConnectionManager._ENV
    if environment is not None and hasattr(environment, "close"):
        environment.close()
    DuckDBConnectionManager.close_all_connections()
