"""The warehouse the Python stages read and write, and its DuckDB implementation as a Dagster resource
(short-lived connections under the warehouse lock). The Spark implementation is
orchestration.resources.spark.SparkWarehouseResource."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd
from dagster import ConfigurableResource, InitResourceContext

from orchestration.resources.lock import name_current_run, recover_dead_runs, register_run_process, warehouse_lock


class Warehouse(Protocol):
    """The warehouse as the Python stages use it, whatever the engine: queries in DuckDB's SQL dialect with `?`
    parameters, answered as pandas frames with DuckDB's column types, and writes that replace the rows of one
    month (or a range of months) so that a re-run never duplicates rows."""

    def query(self, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame: ...

    def table_exists(self, table: str) -> bool: ...

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int: ...

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int: ...

    def append_rows(self, table: str, frame: pd.DataFrame) -> int: ...

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None: ...


def check_rows_match(table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> None:
    """Rows written to replace the rows matching `where` must all match it: a write never reaches another month."""
    for column, value in where.items():
        if column not in frame.columns:
            raise ValueError(f"{table}: rows to write have no column {column!r}")
        if len(frame) and not (frame[column] == value).all():
            raise ValueError(f"{table}: every row must have {column} = {value!r}")


def check_rows_in_range(table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> None:
    """Rows written to replace the range [first, last] of `column` (`first` None: no lower bound) lie in it."""
    if column not in frame.columns:
        raise ValueError(f"{table}: rows to write have no column {column!r}")
    values = frame[column]
    inside = values <= last if first is None else values.between(first, last)
    if len(frame) and not inside.all():
        raise ValueError(f"{table}: every row must have {column} between {first!r} and {last!r}")


class WarehouseResource(ConfigurableResource):
    """Reads and writes the warehouse file.

    Connections are opened per call and closed at once, so that dbt (a subprocess) can open the same file
    between Python steps of one run.
    """

    path: str
    lock_timeout_seconds: float = 600.0

    @property
    def file(self) -> Path:
        return Path(self.path)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """At the start of every run: mark the runs whose process died as failed (freeing their concurrency
        slots), record this run's process in its tags, and name the run in the warehouse lock when this
        process holds it (orchestration.resources.lock)."""
        instance, run = context.instance, context.dagster_run
        if instance is None or run is None:
            return
        recover_dead_runs(instance, exclude=run.run_id)
        register_run_process(instance, run.run_id)
        name_current_run(run.run_id)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        name_current_run(None)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with warehouse_lock(self.file, "warehouse access", self.lock_timeout_seconds):
            connection = duckdb.connect(str(self.file))
            try:
                yield connection
            finally:
                connection.close()

    def query(self, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
        with self.connect() as connection:
            return connection.execute(sql, parameters or []).df()

    def table_exists(self, table: str) -> bool:
        schema, name = table.split(".")
        with self.connect() as connection:
            found = connection.execute(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchone()
        return bool(found and found[0])

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Replace the rows of `table` matching `where` (e.g. one month) with `frame`, atomically.

        Creates the schema and table from the frame's columns on first use. Re-running a month therefore
        rewrites that month only and never duplicates rows.
        """
        schema, _ = table.split(".")
        check_rows_match(table, frame, where)
        predicate = " and ".join(f'"{column}" = ?' for column in where)
        with self.connect() as connection:
            connection.execute("begin transaction")
            connection.execute(f'create schema if not exists "{schema}"')
            connection.register("incoming_rows", frame)
            connection.execute(f"create table if not exists {table} as select * from incoming_rows limit 0")
            connection.execute(f"delete from {table} where {predicate}", list(where.values()))
            connection.execute(f"insert into {table} by name select * from incoming_rows")
            connection.unregister("incoming_rows")
            connection.execute("commit")
        return len(frame)

    def append_rows(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows (creating the table on first use)."""
        schema, _ = table.split(".")
        with self.connect() as connection:
            connection.execute(f'create schema if not exists "{schema}"')
            connection.register("incoming_rows", frame)
            connection.execute(f"create table if not exists {table} as select * from incoming_rows limit 0")
            connection.execute(f"insert into {table} by name select * from incoming_rows")
            connection.unregister("incoming_rows")
        return len(frame)

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None:
        """Create `table` with `columns` (name -> SQL type) if it does not exist; add any column it lacks.

        Existing rows get NULL in an added column; existing columns and rows are left as they are. This keeps
        a table's schema fixed whatever the first rows written to it happen to be (or when there are none).
        """
        schema, _ = table.split(".")
        definitions = ", ".join(f'"{name}" {sql_type}' for name, sql_type in columns.items())
        with self.connect() as connection:
            connection.execute("begin transaction")
            connection.execute(f'create schema if not exists "{schema}"')
            connection.execute(f"create table if not exists {table} ({definitions})")
            for name, sql_type in columns.items():
                connection.execute(f'alter table {table} add column if not exists "{name}" {sql_type}')
            connection.execute("commit")

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int:
        """Replace the rows of `table` whose `column` lies in [first, last] with `frame`, atomically.

        `first` None means no lower bound. Every row of `frame` must lie in the range. For a run that owns
        several months (the history a first partition loads); `replace_rows` covers one value.
        """
        check_rows_in_range(table, frame, column, first, last)
        predicate = f'"{column}" <= ?' if first is None else f'"{column}" between ? and ?'
        bounds = [last] if first is None else [first, last]
        schema, _ = table.split(".")
        with self.connect() as connection:
            connection.execute("begin transaction")
            connection.execute(f'create schema if not exists "{schema}"')
            connection.register("incoming_rows", frame)
            connection.execute(f"create table if not exists {table} as select * from incoming_rows limit 0")
            connection.execute(f"delete from {table} where {predicate}", bounds)
            connection.execute(f"insert into {table} by name select * from incoming_rows")
            connection.unregister("incoming_rows")
            connection.execute("commit")
        return len(frame)
