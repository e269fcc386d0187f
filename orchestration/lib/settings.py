"""Runtime configuration of the loop: one `Settings` object, read from the environment by `load_settings`.

Every setting has a default so that the loop runs with zero set-up on the embedded simulated world. The variables
are read here and nowhere else, when a command starts or the Dagster definitions load; the stages receive the
values through their resources and config.

| variable                 | default                 | meaning                                                   |
|--------------------------|-------------------------|-----------------------------------------------------------|
| CRM_HOME                 | ./data                  | warehouse, reports, model artefacts, Dagster instance     |
| CRM_SOURCE               | simulator               | `simulator` or `files`                                    |
| CRM_FILES_DIR            | $CRM_HOME/inbox         | folder of files per table for the `files` source          |
| CRM_SIM_SEED             | 7                       | seed of the simulated world                               |
| CRM_SIM_CUSTOMERS        | 20000                   | customers in the simulated world at its first month       |
| CRM_CHANNEL              | simulated; file (files) | `simulated` (hands contacts to the simulator) or `file`   |
| CRM_START_MONTH          | 2025-01; files: oldest  | first monthly partition; the files source: the month of   |
|                          | orders file             | the oldest file in `$CRM_FILES_DIR/orders/`               |
| CRM_WAREHOUSE_ENGINE     | duckdb                  | `duckdb` (one file) or `spark` (dbt target `spark`)       |
| CRM_SPARK_HOME           | $CRM_HOME/spark         | the Spark warehouse's tables and metastore                |
| CRM_CUSTOMERS_PER_CHUNK  | 200000                  | customers the analyse stage reads and scores at a time    |
| CRM_TRAINING_CUSTOMERS   | 400000                  | customers at most that the models are fitted on           |
| CRM_GLOBAL_CONTROL_SHARE | 0                       | share of customers held out of every campaign             |
| CRM_LOCK_TIMEOUT_SECONDS | 600                     | how long a process waits for the warehouse lock           |

A mistake (an unknown value, a missing folder, an impossible combination, another world's seed or size on an
existing home) raises `ConfigurationError` with one sentence naming the variable, the value and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from models.customer_chunks import DEFAULT_CUSTOMERS_PER_CHUNK, DEFAULT_TRAINING_CUSTOMERS
from orchestration.lib.raw_tables import SourceError, month_files
from simulator.world import stored_world

SOURCES = ("simulator", "files")
ENGINES = ("duckdb", "spark")
CHANNELS = ("simulated", "file")
DEFAULT_START_MONTH = date(2025, 1, 1)
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0


class ConfigurationError(ValueError):
    """A setting has a value the loop cannot run with (the message names the variable, the value and the fix)."""


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
    global_control_share: float = 0.0
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS

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


class _Environment:
    """Typed reads of the environment; every mistake becomes one `ConfigurationError`."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value.strip() if value is not None and value.strip() else None

    def path(self, name: str, default: Path) -> Path:
        raw = self.raw(name)
        return Path(raw).expanduser().resolve() if raw else default

    def whole_number(self, name: str, default: int, minimum: int) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name}={raw!r} is not a whole number: set it to one, e.g. {default}") from None
        if value < minimum:
            raise ConfigurationError(f"{name}={value} must be at least {minimum}: set it higher (default {default})")
        return value

    def number(self, name: str, default: float, low: float, high: float, high_included: bool = True) -> float:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name}={raw!r} is not a number: set it to one, e.g. {default:g}") from None
        inside = low <= value <= high if high_included else low <= value < high
        if not inside:
            bound = f"{high:g}]" if high_included else f"{high:g})"
            raise ConfigurationError(
                f"{name}={raw!r} is outside [{low:g}, {bound}: set it inside (default {default:g})"
            )
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.raw(name)
        value = (raw or default).lower()
        if value not in choices:
            raise ConfigurationError(f"{name}={raw!r} is not one of {', '.join(choices)}: set it to one of them")
        return value

    def month(self, name: str, default: date) -> date:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            parsed = date.fromisoformat(raw if len(raw) > 7 else f"{raw}-01")
        except ValueError:
            raise ConfigurationError(f"{name}={raw!r} is not a month: set it as YYYY-MM, e.g. 2025-01") from None
        if parsed.day != 1:
            raise ConfigurationError(f"{name}={raw!r} is not the first day of a month: set it as YYYY-MM")
        return parsed


def _oldest_orders_month(files_dir: Path) -> date:
    """The month of the oldest file in `<files_dir>/orders/`: the files source's first month by default."""
    try:
        months = month_files(files_dir, "orders")
    except SourceError as error:
        raise ConfigurationError(f"CRM_FILES_DIR={str(files_dir)!r}: {error}") from None
    if not months:
        raise ConfigurationError(
            f"CRM_FILES_DIR={str(files_dir)!r} has no orders files (<dir>/orders/<YYYY-MM>.csv or .parquet): "
            "put the export there, or set CRM_FILES_DIR to the folder that holds it"
        )
    return min(months)


def _check_world(settings: Settings) -> None:
    """Refuse another seed or size than the simulated world this home already holds (before anything runs)."""
    stored = stored_world(settings.home)
    if stored is None:
        return
    for name, asked, found in (
        ("CRM_SIM_SEED", settings.sim_seed, stored["seed"]),
        ("CRM_SIM_CUSTOMERS", settings.sim_customers, stored["n_customers"]),
    ):
        if found is not None and asked != found:
            raise ConfigurationError(
                f"{name}={asked} differs from the simulated world in CRM_HOME={str(settings.home)!r} (created with "
                f"{found}): set {name}={found}, choose another CRM_HOME, or delete it (`make clean`) for a new world"
            )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from `environ` (default: the process environment); absolute paths."""
    env = _Environment(os.environ if environ is None else environ)
    home = env.path("CRM_HOME", Path("data").resolve())
    source = env.choice("CRM_SOURCE", "simulator", SOURCES)
    files_dir = env.path("CRM_FILES_DIR", home / "inbox")
    channel = env.choice("CRM_CHANNEL", "simulated" if source == "simulator" else "file", CHANNELS)
    if channel == "simulated" and source != "simulator":
        raise ConfigurationError(
            f"CRM_CHANNEL='simulated' delivers to the simulated world, but CRM_SOURCE={source!r}: "
            "set CRM_CHANNEL=file (or leave it unset)"
        )
    if source == "files" and not files_dir.is_dir():
        raise ConfigurationError(
            f"CRM_FILES_DIR={str(files_dir)!r} is not a folder: create it with one folder per table "
            "(<dir>/orders/<YYYY-MM>.csv), or set CRM_FILES_DIR to the export's folder"
        )
    default_start = _oldest_orders_month(files_dir) if source == "files" and not env.raw("CRM_START_MONTH") else None
    settings = Settings(
        home=home,
        source=source,
        files_dir=files_dir,
        sim_seed=env.whole_number("CRM_SIM_SEED", 7, minimum=0),
        sim_customers=env.whole_number("CRM_SIM_CUSTOMERS", 20_000, minimum=100),
        channel=channel,
        start_month=env.month("CRM_START_MONTH", default_start or DEFAULT_START_MONTH),
        warehouse_engine=env.choice("CRM_WAREHOUSE_ENGINE", "duckdb", ENGINES),
        spark_home=env.path("CRM_SPARK_HOME", home / "spark"),
        customers_per_chunk=env.whole_number("CRM_CUSTOMERS_PER_CHUNK", DEFAULT_CUSTOMERS_PER_CHUNK, minimum=1),
        training_customers=env.whole_number("CRM_TRAINING_CUSTOMERS", DEFAULT_TRAINING_CUSTOMERS, minimum=1),
        global_control_share=env.number("CRM_GLOBAL_CONTROL_SHARE", 0.0, 0.0, 1.0, high_included=False),
        lock_timeout_seconds=env.number("CRM_LOCK_TIMEOUT_SECONDS", DEFAULT_LOCK_TIMEOUT_SECONDS, 0.0, 86_400.0),
    )
    if settings.is_simulation:
        _check_world(settings)
    return settings
