"""Runtime configuration of the loop, read from environment variables.

Every setting has a default so that the loop runs with zero set-up on the embedded simulated world.

| variable            | default        | meaning                                                        |
|---------------------|----------------|----------------------------------------------------------------|
| CRM_HOME            | ./data         | warehouse, reports, model artefacts, Dagster instance          |
| CRM_SOURCE          | simulator      | `simulator` or `files`                                         |
| CRM_FILES_DIR       | $CRM_HOME/inbox| folder of files per table for the `files` source               |
| CRM_SIM_SEED        | 7              | seed of the simulated world                                    |
| CRM_SIM_CUSTOMERS   | 20000          | customers in the simulated world at its first month            |
| CRM_CHANNEL         | simulated      | `simulated` (hands contacts to the simulator) or `file` (CSV)  |
| CRM_START_MONTH     | 2025-01-01     | first monthly partition (the simulator's first loop month)     |
| CRM_WAREHOUSE_ENGINE| duckdb         | `duckdb` (one file) or `spark` (dbt target `spark`)            |
| CRM_SPARK_HOME      | $CRM_HOME/spark| the Spark warehouse's tables and metastore (engine `spark`)    |
| CRM_CUSTOMERS_PER_CHUNK | 200000     | customers the analyse stage reads and scores at a time         |
| CRM_TRAINING_CUSTOMERS  | 400000     | customers at most that the models are fitted on (a sample)     |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from models.customer_chunks import DEFAULT_CUSTOMERS_PER_CHUNK, DEFAULT_TRAINING_CUSTOMERS

SOURCES = ("simulator", "files")
ENGINES = ("duckdb", "spark")
CHANNELS = ("simulated", "file")


class ConfigurationError(ValueError):
    """A setting has a value the loop cannot run with."""


@dataclass(frozen=True)
class Settings:
    home: Path
    source: str
    files_dir: Path
    sim_seed: int
    sim_customers: int
    channel: str
    start_month: date
    warehouse_engine: str = "duckdb"
    spark_home: Path | None = None
    customers_per_chunk: int = DEFAULT_CUSTOMERS_PER_CHUNK
    training_customers: int = DEFAULT_TRAINING_CUSTOMERS

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def artefacts_dir(self) -> Path:
        return self.home / "artefacts"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def is_simulation(self) -> bool:
        return self.source == "simulator"


def _int_setting(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None


def _choice_setting(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _month_setting(name: str, default: str) -> date:
    raw = os.environ.get(name, default)
    try:
        parsed = date.fromisoformat(raw if len(raw) > 7 else f"{raw}-01")
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a month (YYYY-MM or YYYY-MM-01)") from None
    if parsed.day != 1:
        raise ConfigurationError(f"{name}={raw!r} must be the first day of a month")
    return parsed


def load_settings() -> Settings:
    """Read the settings from the environment (absolute paths, validated values)."""
    home = Path(os.environ.get("CRM_HOME", "data")).expanduser().resolve()
    files_dir = Path(os.environ.get("CRM_FILES_DIR", str(home / "inbox"))).expanduser().resolve()
    settings = Settings(
        home=home,
        source=_choice_setting("CRM_SOURCE", "simulator", SOURCES),
        files_dir=files_dir,
        sim_seed=_int_setting("CRM_SIM_SEED", 7),
        sim_customers=_int_setting("CRM_SIM_CUSTOMERS", 20_000),
        channel=_choice_setting("CRM_CHANNEL", "simulated", CHANNELS),
        start_month=_month_setting("CRM_START_MONTH", "2025-01-01"),
        warehouse_engine=_choice_setting("CRM_WAREHOUSE_ENGINE", "duckdb", ENGINES),
        spark_home=Path(os.environ.get("CRM_SPARK_HOME", str(home / "spark"))).expanduser().resolve(),
        customers_per_chunk=_int_setting("CRM_CUSTOMERS_PER_CHUNK", DEFAULT_CUSTOMERS_PER_CHUNK),
        training_customers=_int_setting("CRM_TRAINING_CUSTOMERS", DEFAULT_TRAINING_CUSTOMERS),
    )
    for name, value in (
        ("CRM_CUSTOMERS_PER_CHUNK", settings.customers_per_chunk),
        ("CRM_TRAINING_CUSTOMERS", settings.training_customers),
    ):
        if value < 1:
            raise ConfigurationError(f"{name}={value} must be at least 1")
    if settings.sim_customers < 100:
        raise ConfigurationError(f"CRM_SIM_CUSTOMERS={settings.sim_customers} is too small (at least 100)")
    if settings.channel == "simulated" and not settings.is_simulation:
        raise ConfigurationError(
            "CRM_CHANNEL=simulated delivers to the simulated world, but CRM_SOURCE=files: set CRM_CHANNEL=file"
        )
    return settings
