"""Where customer data comes from: the embedded simulated world, or files exported by a real system."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource

from orchestration.raw_tables import (
    LOADED_MONTH,
    RAW_SCHEMAS,
    RAW_TABLES,
    REQUIRED_TABLES,
    SourceError,
    absent_columns,
    conform,
    month_files,
    read_table_file,
)
from orchestration.settings import ConfigurationError

__all__ = ["RAW_SCHEMAS", "RAW_TABLES", "REQUIRED_TABLES", "Delivery", "SourceError", "SourceResource", "conform"]


@dataclass(frozen=True)
class Delivery:
    """What a source delivered of one raw table for one partition.

    `rows` has the contract's columns plus `_loaded_month`, the month each row was delivered for (the
    month of its file; the partition month for the simulator). `origins` names where the rows came from;
    `absent_columns` are optional columns the source did not have (NULL in the rows that came without them).
    """

    rows: pd.DataFrame
    origins: tuple[str, ...]
    absent_columns: tuple[str, ...]


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
        from simulator import SimulatedWorld

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
            rows = conform(table, frame, origin).assign(**{LOADED_MONTH: pd.Timestamp(month)})
            deliveries[table] = Delivery(rows, (origin,), tuple(absent_columns(table, frame.columns)))
        return deliveries

    def _extract_files(self, table: str, month: date, with_history: bool) -> Delivery | None:
        files = month_files(Path(self.files_dir), table)
        if month not in files and table in REQUIRED_TABLES:
            raise SourceError(self._missing_month_message(table, month, files, with_history))
        wanted = sorted(m for m in files if (m <= month if with_history else m == month))
        if not wanted:
            return None
        frames, absent = [], set()
        for file_month in wanted:
            table_file = read_table_file(files[file_month], table)
            frames.append(table_file.rows.assign(**{LOADED_MONTH: pd.Timestamp(file_month)}))
            absent.update(table_file.absent_columns)
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        ordered_absent = tuple(column for column in RAW_SCHEMAS[table] if column in absent)
        return Delivery(rows, tuple(str(files[m]) for m in wanted), ordered_absent)

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
