"""Where customer data comes from: the embedded simulated world, or files exported by a real system."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource

from orchestration.settings import ConfigurationError

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


class SourceError(RuntimeError):
    """A source cannot deliver a month: the message names the file, the rule and what to do."""


def conform(table: str, frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Cast a raw table to its schema, failing with a message that names the origin, column and rule."""
    schema = RAW_SCHEMAS[table]
    missing = [column for column in schema if column not in frame.columns]
    if missing:
        raise SourceError(f"{origin}: missing column(s) {', '.join(missing)} required for table {table}")
    out = pd.DataFrame(index=frame.index)
    for column, dtype in schema.items():
        values = frame[column]
        try:
            if dtype.startswith("datetime64"):
                out[column] = pd.to_datetime(values, errors="raise").astype(dtype)
            else:
                out[column] = values.astype(dtype)
        except (ValueError, TypeError) as error:
            raise SourceError(f"{origin}: column {column} cannot be read as {dtype} ({error})") from None
    return out.reset_index(drop=True)


class SourceResource(ConfigurableResource):
    """Extracts one month of raw tables.

    kind `simulator`: the embedded simulated company (its first month carries the burn-in history).
    kind `files`: a folder with one sub-folder per table and one file per month,
    `<files_dir>/<table>/<YYYY-MM>.csv` (or `.parquet`); only `orders` is required.
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

    def extract(self, month: date) -> dict[str, pd.DataFrame | None]:
        """All raw tables for `month`; a table the source does not have is None."""
        if self.kind == "simulator":
            world = self.world()
            tables = {
                "products": world.products(),
                "customers": world.customers(month),
                "orders": world.orders(month),
                "contact_log": world.contact_log(month),
            }
            return {name: conform(name, frame, f"simulator {name} {month:%Y-%m}") for name, frame in tables.items()}
        return {name: self._read_file(name, month) for name in RAW_TABLES}

    def consent_at_send_time(self, as_of_month: date) -> pd.DataFrame | None:
        """Customers' current consent and contact details, re-read when a campaign is sent.

        Returns customer_id, email, phone, email_consent; None when the source has no customer data
        (then nobody may be contacted).
        """
        if self.kind == "simulator":
            customers = self.world().customers(as_of_month)
        else:
            customers = self._latest_customers_file(as_of_month)
            if customers is None:
                return None
        return customers[["customer_id", "email", "phone", "email_consent"]].reset_index(drop=True)

    def _month_file(self, table: str, month: date) -> Path | None:
        folder = Path(self.files_dir) / table
        for suffix in (".parquet", ".csv"):
            candidate = folder / f"{month:%Y-%m}{suffix}"
            if candidate.exists():
                return candidate
        return None

    def _read(self, path: Path, table: str) -> pd.DataFrame:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        return conform(table, frame, str(path))

    def _read_file(self, table: str, month: date) -> pd.DataFrame | None:
        path = self._month_file(table, month)
        if path is None:
            if table in REQUIRED_TABLES:
                raise SourceError(
                    f"{Path(self.files_dir) / table}: no file for {month:%Y-%m} "
                    f"(expected {month:%Y-%m}.csv or {month:%Y-%m}.parquet); table {table} is required"
                )
            return None
        return self._read(path, table)

    def _latest_customers_file(self, as_of_month: date) -> pd.DataFrame | None:
        folder = Path(self.files_dir) / "customers"
        if not folder.exists():
            return None
        candidates = sorted(
            path
            for path in folder.iterdir()
            if path.suffix in (".csv", ".parquet") and path.stem <= f"{as_of_month:%Y-%m}"
        )
        return self._read(candidates[-1], "customers") if candidates else None
