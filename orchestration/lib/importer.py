"""Turn a plain transaction log into the monthly order files the `files` source reads (no Dagster here).

A transaction log is one line per purchase: who bought, when, and for how much, optionally the quantity,
an order id, a product id and whether the line is a sale or a return. The common shapes are read as they
come: comma, semicolon, tab or whitespace separated (like CDNOW_master.txt: `00001 19970101 1 11.77`),
with or without a header line, with CRLF or LF line ends, UTF-8 with or without a byte-order mark.

`import_transaction_log` writes `<target>/orders/<YYYY-MM>.csv`, one file per calendar month from the first
to the last month of the log (a month without orders gets a file with the header only). Every line of the
log lands in exactly one file, in the log's order, with its values as they came (ids keep their leading
zeros, amounts keep their digits); only dates are rewritten, as ISO 8601. Nothing is dropped: a line that
cannot be read stops the import with its line number. The output is deterministic, so importing the same
log again finds identical files and writes nothing; a file that exists with different content is never
overwritten silently.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.raw_tables import RAW_SCHEMAS, REQUIRED_COLUMNS, SourceError, conform

ORDER_COLUMNS = tuple(RAW_SCHEMAS["orders"])
SKIPPED_COLUMN_NAMES = ("-", "skip")
DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "whitespace": r"\s+"}
EXAMPLE_COLUMNS = "customer_id,order_date,quantity,amount"


class TransactionLogError(ValueError):
    """The log cannot be imported as asked: the message names the file, the line and what to do."""


@dataclass(frozen=True)
class LogShape:
    """How a log was read: separator, header line, the column each field is, the date format."""

    delimiter: str
    header: str | None
    columns: tuple[str, ...]
    date_format: str


@dataclass(frozen=True)
class ImportSummary:
    """What an import found and wrote."""

    source: Path
    target: Path
    shape: LogShape
    months: tuple[str, ...]
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    months_without_orders: tuple[str, ...]
    rows: int
    customers: int
    revenue: float
    returns: int
    other_files: tuple[Path, ...] = field(default=())

    @property
    def first_month(self) -> str:
        return self.months[0]

    @property
    def last_month(self) -> str:
        return self.months[-1]

    def environment(self) -> dict[str, str]:
        """The settings that run the loop on the imported files, starting at the last imported month."""
        return {
            "CRM_SOURCE": "files",
            "CRM_CHANNEL": "file",
            "CRM_FILES_DIR": str(self.target),
            "CRM_START_MONTH": self.last_month,
        }


# --------------------------------------------------------------------------------------------------
# Reading the log
# --------------------------------------------------------------------------------------------------


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise TransactionLogError(f"{path}: empty file, there is nothing to import")
    try:
        return raw.decode("utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise TransactionLogError(
            f"{path}: line {line}: not {encoding} text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "pass the file's encoding, e.g. --encoding latin-1"
        ) from None
    except LookupError:
        raise TransactionLogError(f"--encoding {encoding!r} is not an encoding Python knows") from None


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == DELIMITERS["whitespace"]:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def _delimiter(option: str | None, first_line: str) -> tuple[str, str]:
    """(name, separator): the option's (a name of DELIMITERS or one character), else the first of
    comma, tab, semicolon and pipe that the first line holds, else whitespace."""
    if option:
        if option in DELIMITERS:
            return option, DELIMITERS[option]
        if len(option) != 1:
            raise TransactionLogError(f"--delimiter {option!r}: give one character or one of {', '.join(DELIMITERS)}")
        return repr(option), option
    for name in ("comma", "tab", "semicolon", "pipe"):
        if DELIMITERS[name] in first_line:
            return name, DELIMITERS[name]
    return "whitespace", DELIMITERS["whitespace"]


def _looks_like_header(fields: list[str]) -> bool:
    """A header line has no number in it; every data line has at least one (its amount)."""
    numbers = pd.to_numeric(pd.Series([value.strip() for value in fields], dtype=object), errors="coerce")
    return bool(numbers.isna().all())


def _column_names(path: Path, names: Sequence[str], source: str) -> tuple[str, ...]:
    """Validated orders column names (`-` or `skip` for a field to leave out)."""
    cleaned = tuple(name.strip() for name in names)
    kept = [name for name in cleaned if name not in SKIPPED_COLUMN_NAMES]
    unknown = [name for name in kept if name not in ORDER_COLUMNS]
    if unknown:
        hint = (
            f"name every column with --columns (e.g. --columns {EXAMPLE_COLUMNS}), using - for a column to leave out"
            if source == "header line"
            else "use - for a column to leave out"
        )
        raise TransactionLogError(
            f"{path}: the {source} names {', '.join(repr(n) for n in unknown)}, which are not order columns "
            f"({', '.join(ORDER_COLUMNS)}); {hint}"
        )
    repeated = sorted({name for name in kept if kept.count(name) > 1})
    if repeated:
        raise TransactionLogError(f"{path}: the {source} names {', '.join(repeated)} more than once")
    missing = [name for name in REQUIRED_COLUMNS["orders"] if name not in kept]
    if missing:
        raise TransactionLogError(
            f"{path}: the {source} has no {', '.join(missing)}; a transaction log needs at least "
            f"{', '.join(REQUIRED_COLUMNS['orders'])} (e.g. --columns {EXAMPLE_COLUMNS})"
        )
    return cleaned


def _parse_dates(path: Path, values: pd.Series, lines: np.ndarray, date_format: str | None) -> tuple[pd.Series, str]:
    """Dates in `date_format`, or (none given) YYYYMMDD when every value has 8 digits, else ISO 8601."""
    if date_format is None:
        date_format = "%Y%m%d" if values.str.fullmatch(r"\d{8}").all() else "ISO8601"
    try:
        parsed = pd.to_datetime(values, format=date_format, errors="coerce")
    except ValueError as error:
        raise TransactionLogError(f"--date-format {date_format!r} is not a date format ({error})") from None
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        wanted = "ISO 8601 (e.g. 1997-01-31)" if date_format == "ISO8601" else f"the format {date_format}"
        more = f"; {len(bad)} lines break this rule" if len(bad) > 1 else ""
        raise TransactionLogError(
            f"{path}: line {lines[bad[0]]}, column order_date: {values.iloc[bad[0]]!r} is not a date in "
            f"{wanted}{more}. Name the format with --date-format (e.g. --date-format %d/%m/%Y)"
        )
    return parsed, date_format


def read_transaction_log(
    path: Path | str,
    columns: Sequence[str] | None = None,
    date_format: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> tuple[pd.DataFrame, LogShape]:
    """The log's lines as text columns named after the orders contract, plus the parsed `order_date`.

    `columns` names each field in order (`-` to leave one out); without it the header line names them.
    `delimiter`: a name of `DELIMITERS` or one character; by default the first line decides. `header`:
    True/False, or None to detect it (a first line without any number is a header). `date_format`: a
    strftime format; by default YYYYMMDD or ISO 8601. Returns the frame (index: the log's line numbers;
    column `order_date` holds the dates as ISO text, `_order_date` the parsed dates) and how it was read.
    """
    path = Path(path)
    text = _decode(path, encoding)
    lines = text.splitlines()
    first = next(index for index, line in enumerate(lines) if line.strip())
    delimiter_name, separator = _delimiter(delimiter, lines[first])
    first_fields = _split(lines[first], separator)
    has_header = _looks_like_header(first_fields) if header is None else header
    if columns is not None:
        names = _column_names(path, columns, "--columns option")
    elif has_header:
        names = _column_names(path, [name.strip() for name in first_fields], "header line")
    else:
        raise TransactionLogError(
            f"{path}: line {first + 1} is data, not a header naming the columns: name them in order with "
            f"--columns (e.g. --columns {EXAMPLE_COLUMNS})"
        )
    skip = first + 1 if has_header else first  # lines before the first data line
    while skip < len(lines) and not lines[skip].strip():
        skip += 1
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            header=None,
            skiprows=skip,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as error:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found:
            expected, line, saw = (int(group) for group in found.groups())
            raise TransactionLogError(
                f"{path}: line {line}: {saw} fields, but the lines before it have {expected}"
            ) from None
        raise TransactionLogError(f"{path}: not a readable table ({error})") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=range(len(names)))
    frame.index = frame.index + skip + 1  # the log's line numbers
    frame = frame[frame.notna().any(axis=1)]  # blank lines hold nothing
    if frame.empty:
        raise TransactionLogError(f"{path}: no transaction lines, there is nothing to import")
    if frame.shape[1] != len(names):
        raise TransactionLogError(
            f"{path}: the lines have {frame.shape[1]} fields, but {len(names)} column names were given "
            f"({', '.join(names)}); name every field with --columns, using - for one to leave out"
        )
    line_numbers = frame.index.to_numpy()
    if separator == DELIMITERS["whitespace"]:  # a missing field can only be a short line
        short = frame.iloc[:, -1].isna().to_numpy()
        if short.any():
            line = line_numbers[np.flatnonzero(short)[0]]
            raise TransactionLogError(f"{path}: line {line}: fewer fields than the {len(names)} columns")
    frame.columns = list(names)
    frame = frame[[name for name in ORDER_COLUMNS if name in names]]
    frame = frame.apply(lambda column: column.str.strip()).replace("", np.nan)
    empty_dates = frame["order_date"].isna().to_numpy()
    if empty_dates.any():
        line = line_numbers[np.flatnonzero(empty_dates)[0]]
        raise TransactionLogError(f"{path}: line {line}, column order_date: empty, but every line needs a date")
    parsed, used_format = _parse_dates(path, frame["order_date"], line_numbers, date_format)
    has_time = bool((parsed != parsed.dt.normalize()).any())
    frame["order_date"] = parsed.dt.strftime("%Y-%m-%d %H:%M:%S" if has_time else "%Y-%m-%d")
    frame["_order_date"] = parsed
    shape = LogShape(
        delimiter=delimiter_name,
        header=lines[first].strip() if has_header else None,
        columns=names,
        date_format=used_format,
    )
    return frame, shape


# --------------------------------------------------------------------------------------------------
# Writing the monthly files
# --------------------------------------------------------------------------------------------------


def _month_range(months: pd.Series) -> list[str]:
    periods = months.dt.to_period("M")
    return [f"{period:%Y-%m}" for period in pd.period_range(periods.min(), periods.max(), freq="M")]


def monthly_order_files(orders: pd.DataFrame) -> dict[str, str]:
    """The CSV text of `orders/<YYYY-MM>.csv` for every month from the first to the last order.

    Columns in contract order, the log's line order within a month, LF line ends, a header in every file.
    """
    columns = [name for name in ORDER_COLUMNS if name in orders.columns]
    month_of_line = orders["_order_date"].dt.strftime("%Y-%m")
    files = {}
    for month in _month_range(orders["_order_date"]):
        rows = orders.loc[month_of_line == month, columns]
        files[month] = rows.to_csv(index=False, lineterminator="\n")
    return files


def _write_atomically(path: Path, content: str) -> None:
    partial = path.with_name(f".{path.name}.partial")  # hidden: the files source does not read it
    partial.write_text(content, encoding="utf-8", newline="")
    os.replace(partial, path)


def import_transaction_log(
    path: Path | str,
    target: Path | str,
    columns: Sequence[str] | None = None,
    date_format: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    overwrite: bool = False,
) -> ImportSummary:
    """Import the log at `path` into `<target>/orders/<YYYY-MM>.csv` (see the module docstring).

    Refuses, before writing anything, when a month's file exists with different content (unless
    `overwrite`) or as Parquet. Reading options as in `read_transaction_log`.
    """
    path, target = Path(path), Path(target).expanduser().resolve()
    orders, shape = read_transaction_log(path, columns, date_format, delimiter, header, encoding)
    typed = _validate(path, orders)
    files = monthly_order_files(orders)
    folder = target / "orders"
    planned = {folder / f"{month}.csv": content for month, content in files.items()}
    unchanged = [file for file, content in planned.items() if file.exists() and file.read_bytes() == content.encode()]
    conflicts = [file for file in planned if file.exists() and file not in unchanged]
    parquet = [folder / f"{month}.parquet" for month in files if (folder / f"{month}.parquet").exists()]
    if parquet:
        raise TransactionLogError(
            f"{folder} already holds Parquet files for imported months ({', '.join(p.name for p in parquet[:5])}); "
            "the files source reads one file per month: move them away or import into another folder (--to)"
        )
    if conflicts and not overwrite:
        listed = ", ".join(file.name for file in conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise TransactionLogError(
            f"{folder}: {len(conflicts)} monthly file(s) already exist with different content ({listed}); "
            "nothing was written. Import into an empty folder (--to), or pass --overwrite to replace them "
            "(months the loop has already collected must then be re-run with `crm-loop run --month`)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = [file for file in planned if file not in unchanged]
    for file in written:
        _write_atomically(file, planned[file])
    others = sorted(
        file
        for file in folder.iterdir()
        if file.suffix in (".csv", ".parquet") and not file.name.startswith(".") and file not in planned
    )
    is_return = typed["order_type"].eq("return").fillna(False).to_numpy()
    amounts = typed["amount"].to_numpy()
    return ImportSummary(
        source=path,
        target=target,
        shape=shape,
        months=tuple(files),
        written=tuple(written),
        unchanged=tuple(unchanged),
        months_without_orders=tuple(sorted(set(files) - set(orders["_order_date"].dt.strftime("%Y-%m")))),
        rows=len(orders),
        customers=int(orders["customer_id"].nunique()),
        revenue=float(amounts[~is_return].sum() - amounts[is_return].sum()),
        returns=int(is_return.sum()),
        other_files=tuple(others),
    )


def _validate(path: Path, orders: pd.DataFrame) -> pd.DataFrame:
    """The orders typed by the files source's own rules, so that every written file reads back."""
    try:
        return conform("orders", orders.drop(columns="_order_date"), str(path), line_numbers=orders.index.to_numpy())
    except SourceError as error:
        raise TransactionLogError(str(error)) from None


def describe(summary: ImportSummary) -> str:
    """What the import wrote and the settings that run the loop on it (the `crm-loop import-orders` output)."""
    shape = summary.shape
    header = f"header line skipped: {shape.header!r}" if shape.header else "no header line"
    named = ", ".join(name for name in shape.columns)
    lines = [
        f"read {summary.source}: {shape.delimiter}-separated, {header}",
        f"  columns: {named}; dates: {shape.date_format}",
        f"orders/ under {summary.target}: {len(summary.months)} monthly files "
        f"{summary.first_month} .. {summary.last_month} ({len(summary.written)} written, "
        f"{len(summary.unchanged)} already identical)",
        f"  rows {summary.rows:,}   customers {summary.customers:,}   revenue {summary.revenue:,.2f}"
        + (f"   (net of {summary.returns:,} returns)" if summary.returns else ""),
    ]
    if summary.months_without_orders:
        lines.append(f"  months without orders (header-only files): {', '.join(summary.months_without_orders)}")
    if summary.other_files:
        shown = ", ".join(file.name for file in summary.other_files[:6])
        lines.append(f"  note: orders/ also holds files this import did not write: {shown}")
    lines += [
        "",
        "Run the loop on these files (a CRM_HOME of its own keeps them apart from the simulated company):",
        *(f"  export {name}={value}" for name, value in summary.environment().items()),
        "  crm-loop run",
        f"The first cycle, {summary.last_month}, loads every month up to it; each later month needs its own "
        "orders/<YYYY-MM>.csv.",
        f"To replay the history month by month instead, set CRM_START_MONTH={summary.first_month}.",
    ]
    return "\n".join(lines)
