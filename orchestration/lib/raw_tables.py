"""The raw tables' contract, and the `files` layout a real export arrives in (no Dagster here).

Every source (the simulator, a folder of files) delivers the same four tables with the columns of
`RAW_SCHEMAS`. A folder of files is laid out as `<dir>/<table>/<YYYY-MM>.csv` (or `.parquet`), one file per
table and month. Only `orders` is required, and of its columns only `customer_id`, `order_date` and `amount`:
a plain transaction log is a valid input. A column the source does not have becomes a NULL column.

Values are kept as they came: CSV is read as text, so an id "00001" stays "00001"; numbers and dates are
checked and typed, never rounded or re-interpreted.

Two ways to read a file:

- `read_delivered_file` (the collect stage): never stops at a bad value. Every line that holds a row lands in
  the result, typed where it can be; a value that cannot be read as its column's type is NULL there and kept,
  as delivered, in `_unreadable_<column>`; a line that cannot be split into the header's fields (too many or
  too few fields, bytes that are not UTF-8) is kept whole in `_unreadable_line`; each row names its file and
  line (`_source_file`, `_source_line`). What breaks the file as a whole (empty, not a readable Parquet file, a
  required column missing, a column outside the contract, a column of the wrong type) is listed in
  `problems`. The raw gates (`orchestration/stages/collect/gates.py`, suites in `expectations/`) then decide,
  rule by rule.
- `read_table_file` and `conform` (the importer, consent at send time, the simulator): stop at the first value
  that breaks a rule, with a message naming the file, the line (CSV) or row (Parquet), the column, the value and
  the rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

RAW_TABLES = ("customers", "orders", "products", "contact_log")
REQUIRED_TABLES = ("orders",)
# Tables whose monthly files hold that month's events: two months never hold the same rows. customers and
# products are snapshots, which may well be delivered unchanged month after month.
EVENT_TABLES = ("orders", "contact_log")

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
        # what the order was discounted by (a promotional code or a campaign's voucher) and where it came from
        "discount_code": "str",
        "discount_amount": "float64",
        "order_source": "str",
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
        # what the customer did with the message, as the channel reports it
        "opened": "boolean",
        "clicked": "boolean",
        "unsubscribed": "boolean",
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

# Where each raw row came from, and what of it could not be read (see the module docstring).
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
UNREADABLE_LINE = "_unreadable_line"
UNREADABLE_PREFIX = "_unreadable_"

# Contract columns that are typed (dates, numbers, flags): a value that does not read as the type is kept aside.
TYPED_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(column for column, dtype in schema.items() if dtype != "str") for table, schema in RAW_SCHEMAS.items()
}

# The rule each type states, as people read it.
TYPE_RULES = {
    "datetime64[us]": "a date (ISO 8601, e.g. 2024-01-31)",
    "float64": "a number (. for decimals, no thousands separator)",
    "Int64": "a whole number",
    "boolean": "a yes/no value (true/false, yes/no, y/n, t/f, 1/0)",
}

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


def unreadable_column(column: str) -> str:
    """The column that keeps, as delivered, the values of `column` that could not be read as its type."""
    return f"{UNREADABLE_PREFIX}{column}"


def provenance_columns(table: str) -> dict[str, str]:
    """Column -> warehouse type of the columns `raw.<table>` keeps beside the contract: where each row came
    from and what of it could not be read."""
    return {
        SOURCE_FILE: "varchar",
        SOURCE_LINE: "bigint",
        UNREADABLE_LINE: "varchar",
        **{unreadable_column(column): "varchar" for column in TYPED_COLUMNS[table]},
    }


def warehouse_columns(table: str) -> dict[str, str]:
    """Column -> warehouse type of `raw.<table>`: the contract's columns, `_loaded_month`, and the provenance
    columns (`_source_file`, `_source_line`, `_unreadable_*`)."""
    columns = {column: WAREHOUSE_TYPES[dtype] for column, dtype in RAW_SCHEMAS[table].items()}
    return {**columns, LOADED_MONTH: "timestamp", **provenance_columns(table)}


def empty_table(table: str) -> pd.DataFrame:
    """A table with the contract's columns and dtypes and no rows."""
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in RAW_SCHEMAS[table].items()})


# Optional columns whose NULL is a full value, so a source without them is not reported as lacking anything:
# a sale (order_type), no discount (discount_code, discount_amount), a source or an engagement the system does not
# record (order_source; opened, clicked, unsubscribed: the trace features are then unknown, not wrong).
ANNOTATION_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("order_type", "discount_code", "discount_amount", "order_source"),
    "contact_log": ("opened", "clicked", "unsubscribed"),
}


def absent_columns(table: str, columns: pd.Index | list[str]) -> list[str]:
    """The contract's optional columns that a delivery with `columns` lacks, so that what needs them degrades.

    They are NULL once conformed. `ANNOTATION_COLUMNS` are not counted: NULL is a full value there.
    """
    present = set(columns)
    annotations = ANNOTATION_COLUMNS.get(table, ())
    return [column for column in RAW_SCHEMAS[table] if column not in present and column not in annotations]


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


class _WrongColumnType(ValueError):
    """A whole column holds values of another type (a Parquet column of floats where ids are text)."""


@dataclass(frozen=True)
class _Read:
    """A column read as its contract type: NULL where a value could not be read; `bad` lists those cells
    (a mask over the rows) with the rule each mask breaks."""

    values: pd.Series
    bad: tuple[tuple[np.ndarray, str], ...] = ()

    def unreadable(self) -> np.ndarray | None:
        if not self.bad:
            return None
        mask = np.zeros(len(self.values), dtype=bool)
        for cells, _ in self.bad:
            mask |= cells
        return mask


def _wrong_type(column: str, values: pd.Series, expected: str) -> _WrongColumnType:
    return _WrongColumnType(f"column {column} must be {expected}, but it holds {values.dtype} values")


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    )


def _as_text(values: pd.Series, column: str) -> _Read:
    if _is_text(values):
        return _Read(values.astype("str"))
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return _Read(values.astype("Int64").astype("str"))
    raise _wrong_type(column, values, "text (ids are text: 00042 keeps its zeros)")


def _as_datetime(values: pd.Series, column: str) -> _Read:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return _Read(values.astype("datetime64[us]"))
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("date", "datetime", "empty") or _is_text(values):
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
        bad = values.notna().to_numpy() & parsed.isna().to_numpy()
        rule = "is not a date (expected ISO 8601, e.g. 2024-01-31)"
        return _Read(parsed.astype("datetime64[us]"), ((bad, rule),) if bad.any() else ())
    raise _wrong_type(column, values, "a date")


def _as_number(values: pd.Series, column: str) -> _Read:
    if pd.api.types.is_bool_dtype(values.dtype):
        raise _wrong_type(column, values, "a number")
    bad: list[tuple[np.ndarray, str]] = []
    if pd.api.types.is_numeric_dtype(values.dtype):
        parsed = values.astype("float64")
    elif _is_text(values) or pd.api.types.infer_dtype(values, skipna=True) == "empty":
        parsed = pd.to_numeric(values, errors="coerce").astype("float64")
        unparsable = values.notna().to_numpy() & parsed.isna().to_numpy()
        if unparsable.any():
            bad.append((unparsable, "is not a number (use . for decimals, no thousands separator)"))
    else:
        raise _wrong_type(column, values, "a number")
    infinite = parsed.notna().to_numpy() & ~np.isfinite(parsed.fillna(0).to_numpy())
    if infinite.any():
        bad.append((infinite, "is not a finite number"))
        parsed = parsed.mask(infinite)
    return _Read(parsed, tuple(bad))


def _as_whole_number(values: pd.Series, column: str) -> _Read:
    number = _as_number(values, column)
    parsed = number.values
    fractional = parsed.notna().to_numpy() & (parsed.fillna(0).to_numpy() % 1 != 0)
    bad = number.bad + (((fractional, "is not a whole number"),) if fractional.any() else ())
    return _Read(parsed.mask(fractional).astype("Int64"), bad)


def _as_flag(values: pd.Series, column: str) -> _Read:
    if pd.api.types.is_bool_dtype(values.dtype):
        return _Read(values.astype("boolean"))
    if _is_text(values) or pd.api.types.is_integer_dtype(values.dtype):
        text = values.astype("str").str.strip().str.lower()
        flags = pd.Series(pd.NA, index=values.index, dtype="boolean")
        flags[text.isin(_TRUE)] = True
        flags[text.isin(_FALSE)] = False
        bad = values.notna().to_numpy() & flags.isna().to_numpy()
        rule = f"is not a yes/no value (one of {', '.join(_TRUE + _FALSE)})"
        return _Read(flags, ((bad, rule),) if bad.any() else ())
    raise _wrong_type(column, values, "true/false")


_CONVERTERS = {
    "str": _as_text,
    "datetime64[us]": _as_datetime,
    "float64": _as_number,
    "Int64": _as_whole_number,
    "boolean": _as_flag,
}


def _null_column(dtype: str, index: pd.Index) -> pd.Series:
    return pd.Series(pd.NA if dtype in ("Int64", "boolean") else np.nan, index=index, dtype=dtype)


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
        if column not in frame.columns:
            out[column] = _null_column(dtype, frame.index)
            continue
        try:
            read = _CONVERTERS[dtype](frame[column], column)
        except _WrongColumnType as error:
            raise SourceError(f"{origin}: {error}") from None
        if read.bad:
            first = min(read.bad, key=lambda cells_rule: int(np.flatnonzero(cells_rule[0])[0]))
            raise place.fail(column, frame[column], first[0], first[1])
        out[column] = read.values
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
        negative = out["discount_amount"] < 0
        if negative.any():
            raise place.fail("discount_amount", frame["discount_amount"], negative, "is negative (a discount is >= 0)")
    return out.reset_index(drop=True)


def read_columns(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """`frame`'s rows with the contract's columns of `table`, typed, without stopping at a bad value.

    A value that cannot be read as its column's type is NULL in the column and kept as delivered (text) in
    `_unreadable_<column>`; absent columns are NULL. Returns the rows and the problems of whole columns (a
    column of the wrong type: NULL in every row). Rules on values (required, order types, signs) are the
    gates' business, not this function's.
    """
    out = pd.DataFrame(index=frame.index)
    problems: list[str] = []
    unreadable: dict[str, pd.Series] = {}
    for column, dtype in RAW_SCHEMAS[table].items():
        if column not in frame.columns:
            out[column] = _null_column(dtype, frame.index)
            continue
        try:
            read = _CONVERTERS[dtype](frame[column], column)
        except _WrongColumnType as error:
            problems.append(str(error))
            out[column] = _null_column(dtype, frame.index)
            continue
        out[column] = read.values
        cells = read.unreadable()
        if cells is not None and column in TYPED_COLUMNS[table]:
            delivered = frame[column].astype("str")
            unreadable[column] = delivered.where(cells, None).astype("str")
    for column in TYPED_COLUMNS[table]:
        out[unreadable_column(column)] = unreadable.get(column, pd.Series(None, index=frame.index, dtype="str"))
    return out, tuple(problems)


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


# --------------------------------------------------------------------------------------------------
# Reading a delivery without stopping at bad values (the collect stage)
# --------------------------------------------------------------------------------------------------

SHOWN_LINE_CHARACTERS = 300


def monthly_files(files_dir: Path, table: str) -> tuple[dict[date, list[Path]], list[Path]]:
    """Every monthly file of `table` under `files_dir` by month (a month may have several), and the .csv and
    .parquet files that are not named after a month. Hidden files and other suffixes are not read."""
    folder = Path(files_dir) / table
    by_month: dict[date, list[Path]] = {}
    misnamed: list[Path] = []
    if not folder.is_dir():
        return by_month, misnamed
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in FILE_SUFFIXES or not path.is_file():
            continue
        try:
            month = month_of_file(path)
        except SourceError:
            misnamed.append(path)
            continue
        by_month.setdefault(month, []).append(path)
    return by_month, misnamed


@dataclass(frozen=True)
class DeliveredFile:
    """One file of a raw table as delivered: its rows (see `read_delivered_file`) and what breaks it as a whole."""

    path: Path
    rows: pd.DataFrame
    columns: tuple[str, ...]
    problems: tuple[str, ...]
    sha256: str | None
    size: int | None

    @property
    def absent_columns(self) -> tuple[str, ...]:
        return tuple(absent_columns(self.table, self.columns)) if self.columns else ()

    @property
    def table(self) -> str:
        return self.path.parent.name


def _empty_rows(table: str) -> pd.DataFrame:
    rows, _ = read_columns(table, pd.DataFrame())
    return rows.assign(
        **{
            UNREADABLE_LINE: pd.Series(dtype="str"),
            SOURCE_FILE: pd.Series(dtype="str"),
            SOURCE_LINE: pd.Series(dtype="Int64"),
        }
    )


def _shown(text: str) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= SHOWN_LINE_CHARACTERS else text[:SHOWN_LINE_CHARACTERS] + "..."


def _split_lines(raw: bytes) -> tuple[list[list[str] | None], list[int], list[str], dict[int, str]]:
    """The records of a CSV file: fields per record (None: the line is not UTF-8), the line each starts on,
    the text of that line, and why a line could not be read (by record position)."""
    records: list[list[str] | None] = []
    starts: list[int] = []
    texts: list[str] = []
    problems: dict[int, str] = {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        lines = text.split("\n")
        reader = csv.reader(io.StringIO(text, newline=""))
        previous = 0
        try:
            for fields in reader:
                records.append(fields)
                starts.append(previous + 1)
                texts.append(lines[previous] if previous < len(lines) else "")
                previous = reader.line_num
            return records, starts, texts, problems
        except csv.Error:  # e.g. a NUL byte: read the file line by line below
            records, starts, texts = [], [], []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as error:
            bad_byte = line[error.start]
            problems[len(records)] = f"not UTF-8 text (byte 0x{bad_byte:02x} at position {error.start + 1})"
            records.append(None)
            starts.append(number)
            texts.append(line.decode("utf-8", errors="backslashreplace"))
            continue
        try:
            fields = next(csv.reader([decoded.rstrip("\r")]), [])
        except csv.Error as error:
            problems[len(records)] = f"not a CSV line ({error})"
            fields = None
        records.append(fields)
        starts.append(number)
        texts.append(decoded)
    return records, starts, texts, problems


def _read_csv_leniently(path: Path, raw: bytes, table: str) -> tuple[pd.DataFrame, tuple[str, ...], list[str]]:
    records, starts, texts, line_problems = _split_lines(raw)
    problems: list[str] = []
    header_fields = records[0] if records else None
    if header_fields is None:
        problems.append(f"line 1 (the header) is {line_problems.get(0, 'not readable')}")
        header: list[str] = []
    else:
        header = [name.strip() for name in header_fields]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        problems.append(f"line 1 (the header) names column(s) {', '.join(map(repr, repeated))} twice")
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    bad_lines: list[int] = []
    bad_texts: list[str] = []
    for position in range(1, len(records)):
        fields = records[position]
        if fields is not None and (not fields or all(not field.strip() for field in fields)):
            continue  # a blank line holds nothing
        if fields is None or len(fields) != len(header):
            reason = line_problems.get(position)
            if reason is None:
                kind = (
                    "a decimal comma, or a comma inside an unquoted value?"
                    if fields and len(fields) > len(header)
                    else "a truncated line?"
                )
                reason = f"{len(fields or [])} fields, but the header has {len(header)} ({kind})"
            bad_lines.append(starts[position])
            bad_texts.append(f"{reason}: {_shown(texts[position])}")
            continue
        good_rows.append(fields)
        good_lines.append(starts[position])
    unique_header = list(dict.fromkeys(header))
    positions = [header.index(name) for name in unique_header]
    frame = pd.DataFrame([[row[i] for i in positions] for row in good_rows], columns=unique_header, dtype="str")
    frame = frame.replace("", None) if len(frame) else frame
    typed, column_problems = read_columns(table, frame)
    typed[UNREADABLE_LINE] = pd.Series(None, index=typed.index, dtype="str")
    typed[SOURCE_LINE] = pd.array(good_lines, dtype="Int64")
    if bad_lines:
        unreadable = _empty_rows(table).drop(columns=[SOURCE_FILE])
        unreadable = pd.concat(
            [
                unreadable,
                pd.DataFrame(
                    {UNREADABLE_LINE: pd.array(bad_texts, dtype="str"), SOURCE_LINE: pd.array(bad_lines, dtype="Int64")}
                ),
            ],
            ignore_index=True,
        )
        typed = pd.concat([typed, unreadable[typed.columns]], ignore_index=True)
        typed = typed.sort_values(SOURCE_LINE, kind="stable", ignore_index=True)
    return typed, tuple(header), problems + list(column_problems)


def read_delivered_file(path: Path, table: str) -> DeliveredFile:
    """One file of `table` as delivered, without stopping at a bad value (see the module docstring).

    `rows` has the contract's columns, typed, plus `_unreadable_line`, `_unreadable_<column>` for the typed
    columns, `_source_file` and `_source_line`. `problems` lists what breaks the file as a whole: empty, not a
    readable Parquet file, a header that names a column twice, a required column missing, a column outside the
    contract, a column of the wrong type.
    """
    path = Path(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    problems: list[str] = []
    columns: tuple[str, ...] = ()
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as error:  # pyarrow raises several types for a damaged file
            problems.append(f"not a readable Parquet file ({str(error).splitlines()[0][:200]})")
            rows = _empty_rows(table).drop(columns=[SOURCE_FILE])
        else:
            columns = tuple(map(str, frame.columns))
            rows, column_problems = read_columns(table, frame)
            problems += column_problems
            rows[UNREADABLE_LINE] = pd.Series(None, index=rows.index, dtype="str")
            rows[SOURCE_LINE] = pd.array(np.arange(1, len(rows) + 1), dtype="Int64")
    elif not raw.strip():
        problems.append(
            "empty file: a month without rows still needs the header line "
            f"(at least {','.join(REQUIRED_COLUMNS[table])})"
        )
        rows = _empty_rows(table).drop(columns=[SOURCE_FILE])
    else:
        rows, columns, read_problems = _read_csv_leniently(path, raw, table)
        problems += read_problems
    if columns:
        missing = [column for column in REQUIRED_COLUMNS[table] if column not in columns]
        if missing:
            problems.append(
                f"missing required column(s) {', '.join(missing)} of table {table} "
                f"(columns found: {', '.join(columns) or 'none'}; required: {', '.join(REQUIRED_COLUMNS[table])})"
            )
        outside = [column for column in columns if column not in RAW_SCHEMAS[table]]
        if outside:
            problems.append(
                f"column(s) {', '.join(map(repr, outside))} are not columns of table {table} "
                f"(its columns: {', '.join(RAW_SCHEMAS[table])}); remove or rename them"
            )
    rows.insert(len(rows.columns) - 1, SOURCE_FILE, pd.Series(str(path), index=rows.index, dtype="str"))
    return DeliveredFile(path, rows.reset_index(drop=True), columns, tuple(problems), digest, len(raw))


def delivered_frame(table: str, frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """A frame a source produced itself (the simulator) in the shape `read_delivered_file` gives a file's rows."""
    rows, problems = read_columns(table, frame)
    if problems:
        raise SourceError(f"{origin}: {'; '.join(problems)}")
    return rows.assign(
        **{
            UNREADABLE_LINE: pd.Series(None, index=rows.index, dtype="str"),
            SOURCE_FILE: pd.Series(origin, index=rows.index, dtype="str"),
            SOURCE_LINE: pd.array(np.arange(1, len(rows) + 1), dtype="Int64"),
        }
    ).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# What the collect stage and the raw gates record beside the raw tables
# --------------------------------------------------------------------------------------------------

# One row per file (or simulator extract) each collect read, by partition month: the delivery log.
DELIVERY_LOG = "audit.deliveries"
DELIVERY_LOG_SCHEMA: dict[str, str] = {
    "partition_month": "timestamp",
    "table_name": "varchar",
    "origin": "varchar",
    "file_month": "timestamp",
    "rows": "bigint",
    "columns": "varchar",
    "problems": "varchar",
    "sha256": "varchar",
    "bytes": "bigint",
    "collected_at": "timestamp",
    "run_id": "varchar",
}

# quarantine.<table>: every delivered row a gate rejected, one row per row and broken rule, kept for people to
# read (the raw files are never modified). Appended per run: a later run that passes does not erase the record.
QUARANTINE_SCHEMA: dict[str, str] = {
    "run_id": "varchar",
    "rejected_at": "timestamp",
    "rejected_by": "varchar",
    "partition_month": "timestamp",
    "file": "varchar",
    "line": "bigint",
    "rule": "varchar",
    "column_name": "varchar",
    "value": "varchar",
    "row_values": "varchar",
}


def quarantine_table(table: str) -> str:
    return f"quarantine.{table}"
