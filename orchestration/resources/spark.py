"""The warehouse on Spark as a Dagster resource: the same reads and writes as the DuckDB warehouse resource.

The Python stages speak one SQL dialect, DuckDB's (the embedded default), with `?` for parameters. On Spark each
statement is translated once by sqlglot (identifiers quoted with backticks, `* exclude (...)` as
`* except (...)`, NULLs ordered last as DuckDB orders them) and the parameters become typed literals. Results
come back as DuckDB's do in pandas: decimals as float64, dates and timestamps as datetime64[us].

Spark is opened with the `server_side_parameters` of a dbt target of method `session` (dbt_project/profiles.yml),
so that dbt run in the same process builds in the same session (dbt-spark reuses an open session), and
`SparkSession.builder.getOrCreate()` hands every user of the process that one session: its embedded Derby
metastore admits one JVM at a time.

Tables written here are Parquet tables (no table format is installed): replacing a month rewrites the table
from its other rows and the new ones, through a staging table.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import expressions

from orchestration.lib.lock import warehouse_lock
from orchestration.resources.warehouse import (
    TABLE_COLUMNS,
    WarehouseResource,
    check_assignments,
    check_rows_in_range,
    check_rows_match,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# DuckDB's SQL types (as the stages name them in table schemas) in Spark.
SPARK_TYPES = {
    "varchar": "string",
    "text": "string",
    "double": "double",
    "float": "float",
    "bigint": "bigint",
    "integer": "int",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp_ntz",
}


PARAMETER_NAME = "crm_parameter_{}"

# The warehouse locks this process holds for its Spark session, per lock file (released when the process exits).
_SESSION_LOCKS: dict[str, contextlib.ExitStack] = {}


@lru_cache(maxsize=512)
def _parsed(sql: str) -> expressions.Expression:
    """One statement (or a bare condition) in DuckDB's dialect, parsed once; its `?` parameters, in the order
    of the text, become the columns crm_parameter_0, crm_parameter_1, ..."""
    tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
    offsets = [token.start for token in tokens if token.token_type == sqlglot.TokenType.PLACEHOLDER]
    numbered, previous = [], 0
    for number, offset in enumerate(offsets):
        numbered.append(sql[previous:offset] + PARAMETER_NAME.format(number))
        previous = offset + 1
    statements = sqlglot.parse("".join(numbered) + sql[previous:], read="duckdb")
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"one SQL statement expected, got {len(statements)}: {sql}")
    return statements[0]


def _literal(value: Any) -> expressions.Expression:
    """A Python value as a typed Spark SQL literal (timestamps without a time zone, as the warehouse keeps them)."""
    if value is None or value is pd.NaT:
        return expressions.null()
    if isinstance(value, bool | np.bool_):
        return expressions.true() if value else expressions.false()
    if isinstance(value, datetime | pd.Timestamp | np.datetime64):
        text = pd.Timestamp(value).isoformat(sep=" ")
        return expressions.cast(expressions.Literal.string(text), expressions.DataType.Type.TIMESTAMPNTZ)
    if isinstance(value, date):
        return expressions.cast(expressions.Literal.string(value.isoformat()), expressions.DataType.Type.DATE)
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        return expressions.Literal.number(value)
    if isinstance(value, str):
        return expressions.Literal.string(value)
    raise TypeError(f"no Spark SQL literal for {type(value).__name__} {value!r}")


def spark_sql(sql: str, parameters: Sequence[Any] = ()) -> str:
    """`sql` (a statement or a condition) in DuckDB's dialect with `?` parameters, as Spark SQL with the
    parameters as literals, in the order they appear in the text."""
    tree = _parsed(sql).copy()
    names = [PARAMETER_NAME.format(number) for number in range(len(parameters))]
    literals = dict(zip(names, map(_literal, parameters), strict=True))
    found = [column for column in tree.find_all(expressions.Column) if column.name.startswith("crm_parameter_")]
    if {column.name for column in found} != set(names):
        raise ValueError(f"{len({column.name for column in found})} parameters in the SQL, {len(names)} given: {sql}")
    for column in found:
        column.replace(literals[column.name].copy())
    return tree.sql(dialect="spark")


def _as_duckdb_frame(result: pa.Table) -> pd.DataFrame:
    """Spark's result with the column types DuckDB hands to pandas: decimals as float64, dates and timestamps
    as datetime64[us], booleans with nulls as pandas' nullable boolean."""
    frame = result.to_pandas(date_as_object=False)
    nullable_booleans = {
        field.name
        for field, values in zip(result.schema, result.columns, strict=True)
        if pa.types.is_boolean(field.type) and values.null_count
    }
    converted = {}
    for column in frame.columns:
        values = frame[column]
        present = values.dropna()
        if isinstance(values.dtype, pd.DatetimeTZDtype):  # a Spark timestamp: the session's time zone is UTC
            converted[column] = values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        elif pd.api.types.is_datetime64_any_dtype(values):
            converted[column] = values.astype("datetime64[us]")
        elif values.dtype == object and len(present) and isinstance(present.iloc[0], Decimal):
            converted[column] = values.astype("float64")
        elif column in nullable_booleans:
            converted[column] = values.astype("boolean")  # a boolean with nulls, as DuckDB hands it over
    return frame.assign(**converted) if converted else frame


class SparkWarehouseResource(WarehouseResource):
    """Reads and writes the warehouse in Spark: the Spark implementation of the warehouse the Python stages use.

    `target` names the dbt target (of method `session`) whose Spark configuration the session is opened with;
    `crm_home` is $CRM_HOME, where the loop keeps its files beside the warehouse. Spark's Parquet tables have no
    transactions: `transaction()` groups nothing, and each table is rewritten in one swap (see `_swap`).
    """

    crm_home: str
    target: str = "spark"

    @property
    def engine(self) -> str:
        return "spark"

    @property
    def home(self) -> Path:
        return Path(self.crm_home)

    @property
    def lock_file(self) -> Path:
        return self.home / "spark.metastore"

    @property
    def dbt_target(self) -> str:
        return self.target

    def spark(self) -> SparkSession:
        """The process's Spark session (opened with the dbt target's configuration when none is).

        A local session's Derby metastore admits one process: the session is opened under the warehouse lock
        (`lock_file`), which this process then keeps until it exits, so that another process waits for it and
        then fails with a message naming the holder rather than with Derby's.
        """
        from pyspark.sql import SparkSession

        from orchestration.lib.spark_warehouse import open_spark, spark_session_parameters

        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        key = str(self.lock_file)
        if key not in _SESSION_LOCKS:
            lock = contextlib.ExitStack()
            lock.enter_context(warehouse_lock(self.lock_file, "Spark session", self.lock_timeout_seconds))
            _SESSION_LOCKS[key] = lock
        return open_spark(spark_session_parameters(self.target))

    def _frame(self, sql: str, parameters: Sequence[Any] = ()) -> DataFrame:
        return self.spark().sql(spark_sql(sql, parameters))

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> pd.DataFrame:
        result = self._frame(sql, parameters or [])
        return _as_duckdb_frame(result.toArrow())

    def table_exists(self, table: str) -> bool:
        return self.spark().catalog.tableExists(table)

    def table_columns(self, schema: str | None = None) -> pd.DataFrame:
        """Every column of every table (not views) of the metastore, from Spark's catalog."""
        spark = self.spark()
        schemas = [schema] if schema is not None else sorted(d.name for d in spark.catalog.listDatabases())
        rows = []
        for database in schemas:
            if not spark.catalog.databaseExists(database):
                continue
            for table in sorted(spark.catalog.listTables(database), key=lambda t: t.name):
                if table.isTemporary or table.tableType == "VIEW":
                    continue
                for column in spark.catalog.listColumns(f"{database}.{table.name}"):
                    rows.append((database, table.name, column.name, column.dataType))
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def _columns(self, table: str) -> list[str]:
        return list(self.spark().table(table).columns)

    def _incoming(self, frame: pd.DataFrame, staging: Path) -> DataFrame:
        """`frame` as a Spark frame, through Parquet: text stays text and timestamps stay wall-clock times
        (timestamp_ntz), as the loader types the raw tables."""
        file = staging / "incoming.parquet"
        frame.reset_index(drop=True).to_parquet(file, index=False)
        return self.spark().read.parquet(str(file))

    def _rewrite(self, table: str, frame: pd.DataFrame, keep_sql: str | None, keep_parameters: Sequence[Any]) -> int:
        """Rewrite `table` as its rows satisfying `keep_sql` plus `frame` (through `_swap`); creates schema and
        table on first use. `keep_sql` None: no existing row is kept."""
        from pyspark.sql import functions

        spark = self.spark()
        schema, _ = table.split(".")
        spark.sql(f"create database if not exists `{schema}`")
        with tempfile.TemporaryDirectory(prefix="crm-spark-write-") as staging:
            incoming = self._incoming(frame, Path(staging))
            if not spark.catalog.tableExists(table):
                incoming.write.format("parquet").saveAsTable(table)
                return len(frame)
            existing = spark.table(table)
            types = dict(existing.dtypes)
            unknown = [column for column in incoming.columns if column not in types]
            if unknown:
                raise ValueError(f"{table}: no column {', '.join(unknown)} (add it with ensure_table first)")
            aligned = incoming.select(
                *[
                    functions.col(f"`{column}`").cast(types[column]).alias(column)
                    if column in incoming.columns
                    else functions.lit(None).cast(types[column]).alias(column)
                    for column in existing.columns
                ]
            )
            kept = existing.where(spark_sql(keep_sql, keep_parameters)) if keep_sql else None
            self._swap(table, aligned if kept is None else kept.unionByName(aligned))
        return len(frame)

    def _swap(self, table: str, rows: DataFrame) -> None:
        """Replace `table` by `rows` (which may read `table` itself): `rows` are written to `<table>__next`, which
        then replaces the table. No table format gives Spark an atomic delete here: a failure between the drop
        and the rename leaves every row in `<table>__next`. The cost grows with the table."""
        spark = self.spark()
        partitions = [column.name for column in spark.catalog.listColumns(table) if column.isPartition]
        next_table = f"{table}__next"
        spark.sql(f"drop table if exists {next_table}")
        # Partitioned as before: dbt's insert_overwrite of a month replaces that month's partition only.
        rows.select(*[c for c in rows.columns if c not in partitions], *partitions).write.format("parquet").partitionBy(
            *partitions
        ).saveAsTable(next_table)
        spark.sql(f"drop table {table}")
        spark.sql(f"alter table {next_table} rename to {table}")

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Replace the rows of `table` matching `where` (e.g. one month) with `frame`: re-running a month rewrites
        that month only and never duplicates rows."""
        check_rows_match(table, frame, where)
        replaced = " and ".join(f'"{column}" = ?' for column in where)
        return self._rewrite(table, frame, f"not coalesce({replaced}, false)", list(where.values()))

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int:
        """Replace the rows of `table` whose `column` lies in [first, last] (`first` None: no lower bound)."""
        check_rows_in_range(table, frame, column, first, last)
        if first is None:
            return self._rewrite(table, frame, f'not coalesce("{column}" <= ?, false)', [last])
        return self._rewrite(table, frame, f'not coalesce("{column}" between ? and ?, false)', [first, last])

    def append_rows(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows (creating the table on first use)."""
        from pyspark.sql import functions

        spark = self.spark()
        if not spark.catalog.tableExists(table):
            return self._rewrite(table, frame, None, [])
        with tempfile.TemporaryDirectory(prefix="crm-spark-write-") as staging:
            incoming = self._incoming(frame, Path(staging))
            types = dict(spark.table(table).dtypes)
            aligned = incoming.select(
                *[
                    functions.col(f"`{column}`").cast(sql_type).alias(column)
                    if column in incoming.columns
                    else functions.lit(None).cast(sql_type).alias(column)
                    for column, sql_type in types.items()
                ]
            )
            aligned.write.insertInto(table)
        return len(frame)

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None:
        """Create `table` with `columns` (name -> DuckDB SQL type) if it does not exist; add any column it lacks."""
        spark = self.spark()
        schema, _ = table.split(".")
        spark.sql(f"create database if not exists `{schema}`")
        definitions = ", ".join(f"`{name}` {spark_type(sql_type)}" for name, sql_type in columns.items())
        spark.sql(f"create table if not exists {table} ({definitions}) using parquet")
        present = set(self._columns(table))
        missing = {name: sql_type for name, sql_type in columns.items() if name not in present}
        if missing:
            added = ", ".join(f"`{name}` {spark_type(sql_type)}" for name, sql_type in missing.items())
            spark.sql(f"alter table {table} add columns ({added})")

    def update_rows(
        self, table: str, assignments: Mapping[str, str], where: str, parameters: Sequence[Any] = ()
    ) -> int:
        """As on DuckDB; Spark's Parquet tables have no UPDATE: the table is rewritten with the assigned columns
        computed for the rows where `where` holds (`_swap`), when any row does."""
        check_assignments(table, assignments)
        condition = f"coalesce(({where}), false)"
        changed = int(self.query(f"select count(*) as n from {table} where {condition}", parameters)["n"].iloc[0])
        if not changed:
            return 0
        spark = self.spark()
        types = dict(spark.table(table).dtypes)
        unknown = [column for column in assignments if column not in types]
        if unknown:
            raise ValueError(f"{table}: no column {', '.join(unknown)}")
        selected, values = [], []
        for column in types:
            if column in assignments:
                selected.append(f'case when {condition} then {assignments[column]} else "{column}" end as "{column}"')
                values.extend(parameters)
            else:
                selected.append(f'"{column}"')
        self._swap(table, self._frame(f"select {', '.join(selected)} from {table}", values))
        return changed


def spark_type(sql_type: str) -> str:
    """A DuckDB column type as the stages write it, in Spark."""
    try:
        return SPARK_TYPES[sql_type.lower()]
    except KeyError:
        raise ValueError(f"no Spark type for the warehouse column type {sql_type!r}") from None
