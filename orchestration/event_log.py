"""The Dagster instance's event log: Dagster's own SQLite storage, with one SQLAlchemy engine per database file.

`dagster._core.storage.event_log.SqliteEventLogStorage` (the default of a local instance) builds a new SQLAlchemy
engine for every read and write, and an engine's statement cache goes with it: a monthly cycle opens about 3,800
of them and compiles every statement again each time (at 300 customers, 6.8 s of connecting and 5.6 s of
compiling per cycle in a profile of `crm-loop run`, whatever the customer count). The subclass here keeps one
engine per database file for the life of the storage. The engines still use SQLAlchemy's `NullPool`, so no
connection outlives the `with` block that opened it: other processes (the UI, the daemon, a second `crm-loop`)
see the same files, locks and transactions as with Dagster's class. The files, tables and migrations are
Dagster's; nothing else changes.

`crm-loop prepare` names this class in the instance's dagster.yaml (orchestration.lib.prepare). It overrides
two members outside Dagster's public API, `_connect(shard)` and `has_table(name)`;
`tests/test_event_log.py` pins them to the Dagster release in pyproject.toml.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

__all__ = ["ReusedEngineSqliteEventLogStorage"]

# Engines kept, the most recently used first: a run writes to its own file and the index, while the UI reads many
# runs' files; an engine is a few kilobytes and holds no connection.
ENGINES_KEPT = 32


class ReusedEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run SQLite event log, keeping one SQLAlchemy engine (and its compiled statements) per file."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()  # the engine table only (Dagster's `_db_lock` guards the files)
        self._tables_found: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ReusedEngineSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = self._engines[shard] = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)  # nothing to close: with NullPool an engine holds no connection
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """As Dagster's `_connect`: the database created on first use, one transaction per block, under the
        storage's lock; only the engine is kept."""
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection

    def has_table(self, table_name: str) -> bool:
        """Whether the index database has `table_name` (asked a few hundred times a cycle; a table once found
        stays: migrations add tables, never drop the ones asked about)."""
        if table_name in self._tables_found:
            return True
        engine = self._engine(INDEX_SHARD_NAME)  # not under the lock: Dagster's own calls come from inside `_connect`
        with engine.connect() as connection:
            found = bool(engine.dialect.has_table(connection, table_name))
        if found:
            self._tables_found.add(table_name)
        return found

    def dispose(self) -> None:
        super().dispose()
        with self._engines_lock:
            engines, self._engines = self._engines, OrderedDict()
        for engine in engines.values():
            engine.dispose()
