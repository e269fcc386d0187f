"""The raw tables' contract, and the `files` layout a real export arrives in (no Dagster here).

Every source (the simulator, a folder of files) delivers the same four tables with the columns of
`RAW_SCHEMAS`. A folder of files is laid out as `<dir>/<table>/<YYYY-MM>.csv` (or `.parquet`), one file per
table and month. Only `orders` is required, and of its columns only `customer_id`, `order_date` and `amount`:
a plain transaction log is a valid input. A column the source does not have becomes a NULL column.

Values are kept as they came: CSV is read as text, so an id "00001" stays "00001"; numbers and dates are
checked and typed, never rounded or re-interpreted. A value that breaks a rule stops the read with a message
naming the file, the line (CSV) or row (Parquet), the column, the value and the rule.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

RAW_TABLES = ("customers", "orders", "products", "contact_log")
REQUIRED_TABLES = ("orders",)

# The columns every source emits for each raw table, in order, with their pandas dtypes.
RAW_SCHEMAS: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "str",
        "full_name": "str",
        "email": "str",
        "phone": "str",
        "signup_date": "datetime64[us]",
        "email_consent": "boolean",
    },
    "orders": {
        "order_id": "str",
        "customer_id": "str",
        "order_date": "datetime64[us]",
        "product_id": "str",
        "quantity": "Int64",
        "amount": "float64",
        "order_type": "str",
    },
    "products": {
        "product_id": "str",
        "product_line": "str",
        "product_name": "str",
        "unit_price": "float64",
        "unit_cost": "float64",
    },
    "contact_log": {
        "campaign_id": "str",
        "customer_id": "str",
        "offer_id": "str",
        "channel": "str",
        "contacted_at": "datetime64[us]",
    },
}

# Columns a source must deliver (and fill in every row); every other column is optional (NULL when absent).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "orders": ("customer_id", "order_date", "amount"),
    "products": ("product_id",),
    "contact_log": ("campaign_id", "customer_id", "contacted_at"),
}

# orders.order_type: NULL means a sale; a return carries a positive amount.
ORDER_TYPES = ("sale", "return")

# The month a row was delivered for (the file's month; the partition month for the simulator).
LOADED_MONTH = "_loaded_month"

# How each pandas dtype of the contract is stored in the warehouse.
WAREHOUSE_TYPES = {
    "str": "varchar",
    "datetime64[us]": "timestamp",
    "boolean": "boolean",
    "Int64": "bigint",
    "float64": "double",
}

FILE_SUFFIXES = (".csv", ".parquet")
_MONTH_NAME = re.compile(r"^(\d{4})-(\d{2})$")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


class SourceError(RuntimeError):
    """A source cannot deliver a month: the message names the file, the row, the column and the rule."""


def warehouse_columns(table: str) -> dict[str, str]:
    """Column -> warehouse type of `raw.<table>`: the contract's columns plus `_loaded_month`."""
    columns = {column: WAREHOUSE_TYPES[dtype] for column, dtype in RAW_SCHEMAS[table].items()}
    return {**columns, LOADED_MONTH: "timestamp"}


def empty_table(table: str) -> pd.DataFrame:
    """A table with the contract's columns and dtypes and no rows."""
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in RAW_SCHEMAS[table].items()})


def absent_columns(table: str, columns: pd.Index | list[str]) -> list[str]:
    """The contract's optional columns that a delivery with `columns` lacks, so that what needs them degrades.

    They are NULL once conformed. orders.order_type is not counted: NULL is a full value there (a sale).
    """
    present = set(columns)
    return [
        column for column in RAW_SCHEMAS[table] if column not in present and (table, column) != ("orders", "order_type")
    ]


# --------------------------------------------------------------------------------------------------
# Conforming a frame to the contract
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where a frame came from, to name its rows in messages: file lines when known, else 1-based rows."""

    origin: str
    line_numbers: np.ndarray | None = None

    def row(self, position: int) -> str:
        if self.line_numbers is not None:
            return f"line {int(self.line_numbers[position])}"
        return f"row {position + 1}"

    def fail(self, column: str, values: pd.Series, bad, rule: str) -> SourceError:
        """An error naming the first row of `values` flagged in `bad`, its value, and how many rows break `rule`."""
        positions = np.flatnonzero(np.asarray(bad, dtype=bool))
        first = int(positions[0])
        count = f"; {len(positions)} rows break this rule" if len(positions) > 1 else ""
        value = values.iloc[first]
        shown = "(empty)" if pd.isna(value) else repr(value)
        return SourceError(f"{self.origin}: {self.row(first)}, column {column}: {shown} {rule}{count}")


def _wrong_type(place: _Place, column: str, values: pd.Series, expected: str) -> SourceError:
    return SourceError(f"{place.origin}: column {column} must be {expected}, but it holds {values.dtype} values")


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    )


def _as_text(values: pd.Series, column: str, place: _Place) -> pd.Series:
    if _is_text(values):
        return values.astype("str")
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("Int64").astype("str")
    raise _wrong_type(place, column, values, "text (ids are text: 00042 keeps its zeros)")


def _as_datetime(values: pd.Series, column: str, place: _Place) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]")
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("date", "datetime", "empty") or _is_text(values):
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
        bad = values.notna().to_numpy() & parsed.isna().to_numpy()
        if bad.any():
            raise place.fail(column, values, bad, "is not a date (expected ISO 8601, e.g. 2024-01-31)")
        return parsed.astype("datetime64[us]")
    raise _wrong_type(place, column, values, "a date")


def _as_number(values: pd.Series, column: str, place: _Place) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        raise _wrong_type(place, column, values, "a number")
    if pd.api.types.is_numeric_dtype(values.dtype):
        parsed = values.astype("float64")
    elif _is_text(values) or pd.api.types.infer_dtype(values, skipna=True) == "empty":
        parsed = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = values.notna().to_numpy() & parsed.isna().to_numpy()
        if bad.any():
            raise place.fail(column, values, bad, "is not a number (use . for decimals, no thousands separator)")
    else:
        raise _wrong_type(place, column, values, "a number")
    infinite = parsed.notna().to_numpy() & ~np.isfinite(parsed.fillna(0).to_numpy())
    if infinite.any():
        raise place.fail(column, values, infinite, "is not a finite number")
    return parsed


def _as_whole_number(values: pd.Series, column: str, place: _Place) -> pd.Series:
    parsed = _as_number(values, column, place)
    fractional = parsed.notna().to_numpy() & (parsed.fillna(0).to_numpy() % 1 != 0)
    if fractional.any():
        raise place.fail(column, values, fractional, "is not a whole number")
    return parsed.astype("Int64")


def _as_flag(values: pd.Series, column: str, place: _Place) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    if _is_text(values) or pd.api.types.is_integer_dtype(values.dtype):
        text = values.astype("str").str.strip().str.lower()
        flags = pd.Series(pd.NA, index=values.index, dtype="boolean")
        flags[text.isin(_TRUE)] = True
        flags[text.isin(_FALSE)] = False
        bad = values.notna().to_numpy() & flags.isna().to_numpy()
        if bad.any():
            rule = f"is not a yes/no value (one of {', '.join(_TRUE + _FALSE)})"
            raise place.fail(column, values, bad, rule)
        return flags
    raise _wrong_type(place, column, values, "true/false")


_CONVERTERS = {
    "str": _as_text,
    "datetime64[us]": _as_datetime,
    "float64": _as_number,
    "Int64": _as_whole_number,
    "boolean": _as_flag,
}


def conform(table: str, frame: pd.DataFrame, origin: str, line_numbers: np.ndarray | None = None) -> pd.DataFrame:
    """`frame` with exactly the contract's columns of `table`, typed; absent optional columns are NULL.

    Fails with a `SourceError` naming `origin`, the row (its file line when `line_numbers` gives the line of
    each row, else its 1-based position), the column, the value and the rule: a required column missing or empty,
    a value of the wrong type, an unparsable date or number, an unknown order_type, a negative amount.
    Columns outside the contract are left out.
    """
    place = _Place(origin, line_numbers)
    schema = RAW_SCHEMAS[table]
    missing = [column for column in REQUIRED_COLUMNS[table] if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise SourceError(
            f"{origin}: missing required column(s) {', '.join(missing)} of table {table} "
            f"(columns found: {found}; required: {', '.join(REQUIRED_COLUMNS[table])})"
        )
    out = pd.DataFrame(index=frame.index)
    for column, dtype in schema.items():
        if column in frame.columns:
            out[column] = _CONVERTERS[dtype](frame[column], column, place)
        else:
            out[column] = pd.Series(pd.NA if dtype in ("Int64", "boolean") else np.nan, index=frame.index, dtype=dtype)
    for column in REQUIRED_COLUMNS[table]:
        empty = out[column].isna()
        if empty.any():
            raise place.fail(column, frame[column], empty, "is not allowed: the column is required in every row")
    if table == "orders":
        unknown = out["order_type"].notna() & ~out["order_type"].isin(ORDER_TYPES)
        if unknown.any():
            raise place.fail("order_type", frame["order_type"], unknown, "is not an order type (sale, return or empty)")
        negative = out["amount"] < 0
        if negative.any():
            raise place.fail(
                "amount",
                frame["amount"],
                negative,
                "is negative (a return is a positive amount with order_type return)",
            )
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# The files layout
# --------------------------------------------------------------------------------------------------


def month_of_file(path: Path) -> date:
    """The month a file `<YYYY-MM>.csv|.parquet` holds; fails for any other name."""
    match = _MONTH_NAME.match(path.stem)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise SourceError(
            f"{path}: not a monthly file: the files source reads <YYYY-MM>.csv or <YYYY-MM>.parquet "
            f"(e.g. 2024-01.csv); rename the file or move it out of {path.parent}"
        )
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_files(files_dir: Path, table: str) -> dict[date, Path]:
    """Every monthly file of `table` under `files_dir`, by month (no folder: none).

    Other files (hidden files, other suffixes) are not read; a .csv or .parquet file that is not named
    after its month, or two files for one month, stop the read.
    """
    folder = Path(files_dir) / table
    if not folder.is_dir():
        return {}
    found: dict[date, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in FILE_SUFFIXES or not path.is_file():
            continue
        month = month_of_file(path)
        if month in found:
            raise SourceError(
                f"{folder}: two files for {month:%Y-%m} ({found[month].name} and {path.name}); keep one of them"
            )
        found[month] = path
    return found


@dataclass(frozen=True)
class TableFile:
    """One file of a raw table: its rows conformed to the contract, and the optional columns it lacked."""

    rows: pd.DataFrame
    absent_columns: tuple[str, ...]


def read_table_file(path: Path, table: str) -> TableFile:
    """One file of `table`, conformed to the contract (CSV: UTF-8 text with a header line; or Parquet)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise SourceError(f"{path}: not a readable Parquet file ({error})") from None
        return TableFile(conform(table, frame, str(path)), tuple(absent_columns(table, frame.columns)))
    raw = path.read_bytes()
    if not raw.strip():
        raise SourceError(
            f"{path}: empty file; a month without rows still needs the header line "
            f"(at least {','.join(REQUIRED_COLUMNS[table])})"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SourceError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "export the file as UTF-8"
        ) from None
    try:
        # header=None: every line is data, so a line with more fields than the header is an error here
        # instead of silently becoming an index column
        lines = pd.read_csv(
            io.StringIO(text), header=None, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False
        )
    except pd.errors.ParserError as error:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found:
            expected, line, saw = found.groups()
            raise SourceError(
                f"{path}: line {line}: {saw} fields, but the header has {expected} "
                "(a decimal comma, or a comma inside an unquoted value?)"
            ) from None
        raise SourceError(f"{path}: not a readable CSV file ({error})") from None
    header = lines.iloc[0].fillna("").str.strip().tolist()
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise SourceError(f"{path}: line 1 (the header) names column(s) {', '.join(map(repr, repeated))} twice")
    frame = lines.iloc[1:].set_axis(header, axis=1)
    frame = frame[frame.notna().any(axis=1)]  # a blank line holds nothing; the index is the line number - 1
    rows = conform(table, frame, str(path), line_numbers=frame.index.to_numpy() + 1)
    return TableFile(rows, tuple(absent_columns(table, frame.columns)))
