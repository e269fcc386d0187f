"""The warehouse the Python stages read and write: one Dagster resource with a DuckDB implementation (the embedded
default, below) and a Spark one (orchestration.resources.spark.SparkWarehouseResource).

Every stage speaks DuckDB's SQL dialect with `?` parameters and gets pandas frames with DuckDB's column types,
whatever the engine; writes replace the rows of one month (or a range of months), so a re-run never duplicates
rows. The DuckDB warehouse opens a short-lived connection per call under the warehouse lock, so that dbt (a
subprocess) can open the same file between Python steps of one run; `session()` keeps one connection for a block
of calls (a gate's several reads) and `transaction()` makes a block of writes atomic.

While this process holds the warehouse lock it also keeps the database open (one connection nobody queries):
DuckDB then answers every further `duckdb.connect` of the file from the open database in about 0.5 ms, where
opening the file costs 14-30 ms, about 590 times in a monthly cycle (8.2 s of the cycle's 57 s at 300
customers). The database is closed when the lock is let go, and by `close_database()` before dbt (another
process) opens the file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from models.customer_chunks import DEFAULT_CUSTOMERS_PER_CHUNK, DEFAULT_TRAINING_CUSTOMERS
from orchestration.lib.lock import at_release, name_current_run, warehouse_lock
from orchestration.lib.warehouse import (
    TABLE_COLUMNS,
    check_assignments,
    check_rows_in_range,
    check_rows_match,
)
from orchestration.runs import recover_dead_runs, register_run_process


class WarehouseResource(ConfigurableResource):
    """The warehouse as a Dagster resource, whatever the engine (bind `DuckDBWarehouseResource` or
    `SparkWarehouseResource` to the key `warehouse`).

    Reads are queries in DuckDB's dialect (`?` parameters) answered as pandas frames with DuckDB's column types
    (decimals as float64, dates and timestamps as datetime64[us]). Writes replace the rows of a month, or of a
    range of months, so that re-running a month rewrites that month only.

    `customers_per_chunk` and `training_customers` say how much of the customer base the analyse stage holds in
    memory at once: it scores the base in chunks of at most `customers_per_chunk` customers and fits its models
    on a sample of at most `training_customers` (models.customer_chunks).
    """

    lock_timeout_seconds: float = Field(
        default=600.0, ge=0, description="how long to wait for another process's warehouse lock (seconds)"
    )
    customers_per_chunk: int = Field(
        default=DEFAULT_CUSTOMERS_PER_CHUNK, gt=0, description="Customers the analyse stage scores at a time."
    )
    training_customers: int = Field(
        default=DEFAULT_TRAINING_CUSTOMERS, gt=0, description="Customers at most that the models are fitted on."
    )

    # ----------------------------------------------------------------------------------- where it lives
    @property
    def engine(self) -> str:
        raise NotImplementedError

    @property
    def home(self) -> Path:
        """$CRM_HOME: the folder of the loop's files beside the warehouse (artefacts, reports, snapshots)."""
        raise NotImplementedError

    @property
    def lock_file(self) -> Path:
        """The path whose OS-level lock (orchestration.lib.lock) guards the warehouse's writers."""
        raise NotImplementedError

    @property
    def dbt_target(self) -> str:
        """The target of dbt_project/profiles.yml that builds this warehouse."""
        raise NotImplementedError

    @property
    def dbt_work_dir(self) -> Path:
        """Where dbt writes its artefacts and logs for this warehouse (`target/`, `logs/`): under $CRM_HOME, one
        folder per dbt target, reused by every build (builds of one warehouse never overlap: they hold its lock).
        """
        return self.home / "dbt" / self.dbt_target

    # ------------------------------------------------------------------------------------- the interface
    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection to the warehouse for the calls of the block."""
        yield

    def close_database(self) -> None:
        """Let go of the database this process keeps open, so that another process (dbt) can open it; the next
        call opens it again."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The block's writes all land or none does, where the engine can promise it."""
        yield

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        raise NotImplementedError

    def table_columns(self, schema: str | None = None) -> pd.DataFrame:
        """Every column of every base table (of `schema`), as `TABLE_COLUMNS`, in table and column order."""
        raise NotImplementedError

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int:
        raise NotImplementedError

    def append_rows(self, table: str, frame: pd.DataFrame) -> int:
        raise NotImplementedError

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None:
        raise NotImplementedError

    def update_rows(
        self, table: str, assignments: Mapping[str, str], where: str, parameters: Sequence[Any] = ()
    ) -> int:
        """Set `assignments` (column -> SQL expression of the row's columns, without parameters) on the rows of
        `table` where `where` holds (a condition whose `?` take `parameters`); returns the rows changed."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- run bookkeeping
    def setup_for_execution(self, context: InitResourceContext) -> None:
        """At the start of every run: mark the runs whose process died as failed (freeing their concurrency
        slots), record this run's process in its tags, and name the run in the warehouse lock when this
        process holds it (orchestration.lib.lock)."""
        instance, run = context.instance, context.run
        if instance is None or run is None:
            return
        recover_dead_runs(instance, exclude=run.run_id)
        register_run_process(instance, run.run_id)
        name_current_run(run.run_id)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        name_current_run(None)


# The DuckDB connection a thread holds open for a `session()` block, per warehouse file, and whether a
# transaction is open on it.
_open_connections = threading.local()

# Per warehouse file, the connection that keeps its database open in this process while this process holds the
# file's lock (see the module's docstring).
_open_databases: dict[str, duckdb.DuckDBPyConnection] = {}
_open_databases_guard = threading.Lock()


class DuckDBWarehouseResource(WarehouseResource):
    """The warehouse in one DuckDB file (the embedded default).

    Connections are opened per call and closed at once (or held for a `session()` block), so that dbt (a
    subprocess) can open the same file between Python steps of one run.
    """

    path: str

    @property
    def engine(self) -> str:
        return "duckdb"

    @property
    def file(self) -> Path:
        return Path(self.path)

    @property
    def home(self) -> Path:
        return self.file.parent

    @property
    def lock_file(self) -> Path:
        return self.file

    @property
    def dbt_target(self) -> str:
        return "dev"

    def _held(self) -> dict[str, list]:
        if not hasattr(_open_connections, "by_file"):
            _open_connections.by_file = {}
        return _open_connections.by_file

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection under the warehouse lock: the session's when a `session()` block holds one."""
        held = self._held().get(str(self.file.resolve()))
        if held is not None:
            yield held[0]
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with warehouse_lock(self.file, "warehouse access", self.lock_timeout_seconds):
            self._keep_database_open()
            connection = duckdb.connect(str(self.file))
            try:
                yield connection
            finally:
                connection.close()

    def _keep_database_open(self) -> None:
        """Open the database for as long as this process holds the lock (the caller holds it)."""
        key = str(self.file.resolve())
        with _open_databases_guard:
            if key in _open_databases:
                return
            _open_databases[key] = duckdb.connect(key)
        at_release(self.file, self.close_database)

    def close_database(self) -> None:
        if str(self.file.resolve()) in self._held():
            raise RuntimeError(f"{self.file} is held by a session() block: close the session first")
        with _open_databases_guard:
            database = _open_databases.pop(str(self.file.resolve()), None)
        if database is not None:
            database.close()

    @contextmanager
    def session(self) -> Iterator[None]:
        key = str(self.file.resolve())
        if key in self._held():
            yield
            return
        with self.connect() as connection:
            self._held()[key] = [connection, False]
            try:
                yield
            finally:
                del self._held()[key]

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection and one transaction for the block (a block inside another is part of it)."""
        with self.session(), self.connect() as connection:
            state = self._held()[str(self.file.resolve())]
            if state[1]:
                yield connection
                return
            connection.execute("begin transaction")
            state[1] = True
            try:
                yield connection
            except BaseException:
                connection.execute("rollback")
                raise
            else:
                connection.execute("commit")
            finally:
                state[1] = False

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.connect() as connection:
            return connection.execute(sql, list(parameters or [])).df()

    def table_exists(self, table: str) -> bool:
        schema, name = table.split(".")
        found = self.query(
            "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        )
        return bool(found["n"].iloc[0])

    def table_columns(self, schema: str | None = None) -> pd.DataFrame:
        return self.query(
            """
            select c.table_schema, c.table_name, c.column_name, c.data_type
            from information_schema.columns as c
            join information_schema.tables as t using (table_catalog, table_schema, table_name)
            where t.table_type = 'BASE TABLE' and (? is null or c.table_schema = ?)
            order by c.table_schema, c.table_name, c.ordinal_position
            """,
            [schema, schema],
        )[TABLE_COLUMNS]

    def _insert(self, connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        """Insert `frame` by column name, creating the schema and the table (from the frame) on first use."""
        schema, _ = table.split(".")
        connection.execute(f'create schema if not exists "{schema}"')
        connection.register("incoming_rows", frame)
        try:
            connection.execute(f"create table if not exists {table} as select * from incoming_rows limit 0")
            connection.execute(f"insert into {table} by name select * from incoming_rows")
        finally:
            connection.unregister("incoming_rows")

    def _replace(self, table: str, frame: pd.DataFrame, predicate: str, parameters: list) -> int:
        with self.transaction() as connection:
            if self.table_exists(table):
                connection.execute(f"delete from {table} where {predicate}", parameters)
            self._insert(connection, table, frame)
        return len(frame)

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Replace the rows of `table` matching `where` (e.g. one month) with `frame`, atomically.

        Creates the schema and table from the frame's columns on first use. Re-running a month therefore
        rewrites that month only and never duplicates rows.
        """
        check_rows_match(table, frame, where)
        predicate = " and ".join(f'"{column}" = ?' for column in where)
        return self._replace(table, frame, predicate, list(where.values()))

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int:
        """Replace the rows of `table` whose `column` lies in [first, last] with `frame`, atomically.

        `first` None means no lower bound. Every row of `frame` must lie in the range. For a run that owns
        several months (the history a first partition loads); `replace_rows` covers one value.
        """
        check_rows_in_range(table, frame, column, first, last)
        if first is None:
            return self._replace(table, frame, f'"{column}" <= ?', [last])
        return self._replace(table, frame, f'"{column}" between ? and ?', [first, last])

    def append_rows(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows (creating the table on first use)."""
        with self.connect() as connection:
            self._insert(connection, table, frame)
        return len(frame)

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None:
        """Create `table` with `columns` (name -> SQL type) if it does not exist; add any column it lacks.

        Existing rows get NULL in an added column; existing columns and rows are left as they are. This keeps
        a table's schema fixed whatever the first rows written to it happen to be (or when there are none).
        """
        schema, _ = table.split(".")
        definitions = ", ".join(f'"{name}" {sql_type}' for name, sql_type in columns.items())
        with self.transaction() as connection:
            connection.execute(f'create schema if not exists "{schema}"')
            connection.execute(f"create table if not exists {table} ({definitions})")
            for name, sql_type in columns.items():
                connection.execute(f'alter table {table} add column if not exists "{name}" {sql_type}')

    def update_rows(
        self, table: str, assignments: Mapping[str, str], where: str, parameters: Sequence[Any] = ()
    ) -> int:
        check_assignments(table, assignments)
        settings = ", ".join(f'"{column}" = {expression}' for column, expression in assignments.items())
        with self.connect() as connection:
            changed = connection.execute(f"update {table} set {settings} where {where}", list(parameters)).fetchall()
        return int(changed[0][0]) if changed else 0
