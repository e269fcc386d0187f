"""One OS-level lock per warehouse file.

DuckDB admits one writing process, and its own file lock also stops readers in other processes. Every
process that opens the warehouse therefore takes this lock first; it is re-entrant within a process, so a
loop run that holds it for a whole cycle can open and close connections (and run dbt) freely.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse lock for longer than we are willing to wait."""


_held: dict[str, int] = {}
_fds: dict[str, int] = {}
_guard = threading.RLock()


def _lock_path(warehouse_path: Path) -> Path:
    return warehouse_path.with_name(warehouse_path.name + ".lock")


def lock_holder(warehouse_path: Path) -> str:
    """Who holds the lock, as written by the holder (pid and purpose), or '' when unknown."""
    try:
        return _lock_path(warehouse_path).read_text().strip()
    except OSError:
        return ""


@contextmanager
def warehouse_lock(warehouse_path: Path, purpose: str = "", timeout_seconds: float = 600.0) -> Iterator[None]:
    """Hold the OS-level lock of `warehouse_path` (re-entrant in this process).

    Waits up to `timeout_seconds` for another process, then raises `WarehouseBusyError` naming the holder.
    """
    key = str(Path(warehouse_path).resolve())
    with _guard:
        if _held.get(key):
            _held[key] += 1
            try:
                yield
            finally:
                _held[key] -= 1
            return
        path = _lock_path(Path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = lock_holder(Path(key)) or "another process"
                    raise WarehouseBusyError(
                        f"The warehouse {key} is locked by {holder}; waited {timeout_seconds:.0f} s. "
                        "Wait for that run to finish (or stop it) and try again."
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({purpose or 'crm-loop'})\n".encode())
        _held[key], _fds[key] = 1, fd
    try:
        yield
    finally:
        with _guard:
            _held[key] -= 1
            if _held[key] == 0:
                del _held[key]
                fd = _fds.pop(key)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
