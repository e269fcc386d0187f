"""Where customer data comes from: the embedded simulated world, or files exported by a real system."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource

from orchestration.lib.raw_tables import (
    LOADED_MONTH,
    RAW_SCHEMAS,
    RAW_TABLES,
    REQUIRED_TABLES,
    SourceError,
    absent_columns,
    conform,
    delivered_frame,
    month_files,
    monthly_files,
    read_delivered_file,
    read_table_file,
)
from orchestration.lib.settings import ConfigurationError
from simulator import SimulatedWorld

__all__ = [
    "RAW_SCHEMAS",
    "RAW_TABLES",
    "REQUIRED_TABLES",
    "Delivery",
    "DeliveredFileRecord",
    "SourceError",
    "SourceResource",
    "conform",
]


@dataclass(frozen=True)
class DeliveredFileRecord:
    """One file (or simulator extract) of a delivery, as the delivery log `audit.deliveries` records it.

    `problems` are what breaks the file as a whole (see orchestration.lib.raw_tables.read_delivered_file), `month`
    the month it is named after (None when it is not named after a month).
    """

    origin: str
    month: date | None
    rows: int
    columns: tuple[str, ...]
    problems: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Delivery:
    """What a source delivered of one raw table for one partition.

    `rows` has the contract's columns, `_loaded_month` (the month each row was delivered for: the month of its
    file; the partition month for the simulator), and where each row came from with what of it could not be
    read (`_source_file`, `_source_line`, `_unreadable_line`, `_unreadable_<column>`; see
    orchestration.lib.raw_tables). `origins` names where the rows came from; `absent_columns` are optional columns
    the source did not have (NULL in the rows that came without them); `files` describes every file read.
    Bad values never stop a delivery: the gates judge them (orchestration/stages/collect/gates.py).
    """

    rows: pd.DataFrame
    origins: tuple[str, ...]
    absent_columns: tuple[str, ...]
    files: tuple[DeliveredFileRecord, ...] = ()


class SourceResource(ConfigurableResource):
    """Extracts one month of raw tables.

    kind `simulator`: the embedded simulated company (its first month carries the burn-in history).
    kind `files`: a folder with one sub-folder per table and one file per month,
    `<files_dir>/<table>/<YYYY-MM>.csv` (or `.parquet`); only `orders` is required. The loop's first
    month also reads every earlier file, so that a company's history arrives with its first cycle.
    """

    kind: str = "simulator"
    home: str = "data"
    files_dir: str = "data/inbox"
    sim_seed: int = 7
    sim_customers: int = 20_000

    def world(self):
        """The simulated world (simulator source only)."""
        if self.kind != "simulator":
            raise ConfigurationError("the simulated world exists only with CRM_SOURCE=simulator")

        return SimulatedWorld(Path(self.home), seed=self.sim_seed, n_customers=self.sim_customers)

    def extract(self, month: date, with_history: bool = False) -> dict[str, Delivery | None]:
        """Every raw table for `month`; a table the source does not have is None.

        `with_history` (the loop's first month): the files source also delivers every file dated before
        `month`, each row with its file's month as `_loaded_month`. The simulator's first month carries its
        burn-in history anyway.
        """
        if self.kind == "simulator":
            return self._extract_simulated(month)
        return {table: self._extract_files(table, month, with_history) for table in RAW_TABLES}

    def consent_at_send_time(self, as_of_month: date) -> pd.DataFrame | None:
        """Customers' current consent and contact details, re-read when a campaign is sent.

        Returns customer_id, email, phone, email_consent; None when the source has no customer data
        (then nobody may be contacted).
        """
        if self.kind == "simulator":
            customers = self.world().customers(as_of_month)
        else:
            files = month_files(Path(self.files_dir), "customers")
            delivered = [month for month in files if month <= as_of_month]
            if not delivered:
                return None
            customers = read_table_file(files[max(delivered)], "customers").rows
        return customers[["customer_id", "email", "phone", "email_consent"]].reset_index(drop=True)

    def _extract_simulated(self, month: date) -> dict[str, Delivery | None]:
        world = self.world()
        tables = {
            "customers": world.customers(month),
            "orders": world.orders(month),
            "products": world.products(),
            "contact_log": world.contact_log(month),
        }
        deliveries: dict[str, Delivery | None] = {}
        for table, frame in tables.items():
            origin = f"simulator {table} {month:%Y-%m}"
            rows = delivered_frame(table, frame, origin).assign(**{LOADED_MONTH: pd.Timestamp(month)})
            record = DeliveredFileRecord(origin, month, len(rows), tuple(map(str, frame.columns)))
            deliveries[table] = Delivery(rows, (origin,), tuple(absent_columns(table, frame.columns)), (record,))
        return deliveries

    def _extract_files(self, table: str, month: date, with_history: bool) -> Delivery | None:
        """Every file of `table` the partition reads, without stopping at bad content: rows are typed where they
        can be, and what breaks a file as a whole is recorded with it. A required table without a file for the
        month stops the collect (the month is not there yet)."""
        by_month, misnamed = monthly_files(Path(self.files_dir), table)
        if month not in by_month and table in REQUIRED_TABLES:
            files = {file_month: paths[0] for file_month, paths in by_month.items()}
            raise SourceError(self._missing_month_message(table, month, files, with_history))
        wanted = sorted(m for m in by_month if (m <= month if with_history else m == month))
        if not wanted and not misnamed:
            return None
        frames, records, absent = [], [], set()
        for file_month in wanted:
            paths = by_month[file_month]
            for path in paths:
                delivered = read_delivered_file(path, table)
                problems = delivered.problems
                if len(paths) > 1:
                    others = " and ".join(other.name for other in paths)
                    problems += (f"two files for {file_month:%Y-%m} ({others}); keep one of them",)
                frames.append(delivered.rows.assign(**{LOADED_MONTH: pd.Timestamp(file_month)}))
                records.append(
                    DeliveredFileRecord(
                        str(path),
                        file_month,
                        len(delivered.rows),
                        delivered.columns,
                        problems,
                        delivered.sha256,
                        delivered.size,
                    )
                )
                absent.update(delivered.absent_columns)
        for path in misnamed:
            problem = (
                f"not a monthly file: the files source reads <YYYY-MM>.csv or <YYYY-MM>.parquet (e.g. 2024-01.csv); "
                f"rename the file or move it out of {path.parent}"
            )
            records.append(DeliveredFileRecord(str(path), None, 0, (), (problem,), None, path.stat().st_size))
        if frames:
            rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        else:
            rows = delivered_frame(table, pd.DataFrame(), "").assign(
                **{LOADED_MONTH: pd.Series(dtype="datetime64[us]")}
            )
        ordered_absent = tuple(column for column in RAW_SCHEMAS[table] if column in absent)
        return Delivery(rows, tuple(record.origin for record in records), ordered_absent, tuple(records))

    def _missing_month_message(self, table: str, month: date, files: dict[date, Path], with_history: bool) -> str:
        folder = Path(self.files_dir) / table
        message = (
            f"{folder}: no file for {month:%Y-%m} (expected {month:%Y-%m}.csv or {month:%Y-%m}.parquet); "
            f"table {table} is required every month"
        )
        if not files:
            return f"{message}. The folder has no monthly files: import a transaction log with `crm-loop import-orders`"
        latest = max(files)
        if with_history and latest < month:
            return (
                f"{message}. The latest file is {latest:%Y-%m}: set CRM_START_MONTH={latest:%Y-%m} to start the "
                "loop there (its first cycle reads every earlier file)"
            )
        return f"{message}. Files found: {min(files):%Y-%m} .. {latest:%Y-%m}"
