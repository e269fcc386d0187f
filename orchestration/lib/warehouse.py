"""The warehouse as the plain library uses it: a protocol every engine's resource implements, and the rules
every write keeps (a write replaces the rows of one month or range, never another's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

#: Columns of `table_columns`: one row per column of every base table.
TABLE_COLUMNS = ["table_schema", "table_name", "column_name", "data_type"]


class Warehouse(Protocol):
    """The warehouse as the plain-library functions use it (the methods of `WarehouseResource`)."""

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> pd.DataFrame: ...

    def table_exists(self, table: str) -> bool: ...

    def table_columns(self, schema: str | None = None) -> pd.DataFrame: ...

    def replace_rows(self, table: str, frame: pd.DataFrame, where: Mapping[str, Any]) -> int: ...

    def replace_rows_between(self, table: str, frame: pd.DataFrame, column: str, first: Any, last: Any) -> int: ...

    def append_rows(self, table: str, frame: pd.DataFrame) -> int: ...

    def ensure_table(self, table: str, columns: Mapping[str, str]) -> None: ...

    def update_rows(
        self, table: str, assignments: Mapping[str, str], where: str, parameters: Sequence[Any] = ()
    ) -> int: ...


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


def check_assignments(table: str, assignments: Mapping[str, str]) -> None:
    if not assignments:
        raise ValueError(f"{table}: an update needs at least one column to set")
