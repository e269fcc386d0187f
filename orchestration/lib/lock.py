"""One OS-level lock per warehouse file, and what happens to a run whose process died.

DuckDB admits one writing process, and its own file lock also stops readers in other processes. Every
process that opens the warehouse therefore takes this lock first; it is re-entrant within a process, so a
loop run that holds it for a whole cycle can open and close connections (and run dbt) freely. Another process
waits for it (the setting CRM_LOCK_TIMEOUT_SECONDS, default 600) and then fails with a message naming the holder: its
process, what it is doing and, inside a loop run, the Dagster run id. The lock is an `flock`: the OS releases it
when its process dies, however it dies.

A run killed outright (SIGKILL, the machine lost) cannot tell Dagster it stopped: its record stays STARTED and
keeps its concurrency slots, so the next month never starts. Every run therefore records its process in its
tags, and each new run first marks the runs whose process is gone as failed and frees their slots
(orchestration.runs, with `process_identity` and `process_is_alive` from here).
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_TIMEOUT_SECONDS = 600.0

# Run tags: the process a run executes in (host, pid and the process's start time, so a reused pid is not
# mistaken for the run's process).
PID_TAG = "crm/pid"
HOST_TAG = "crm/host"
PROCESS_STARTED_TAG = "crm/process_started"


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse lock for longer than we are willing to wait."""


_held: dict[str, int] = {}
_fds: dict[str, int] = {}
_purposes: dict[str, str] = {}
_on_release: dict[str, list[Callable[[], None]]] = {}
_guard = threading.RLock()
_current_run = {"note": ""}  # the Dagster run this process executes, named in every lock it takes


def _lock_path(warehouse_path: Path) -> Path:
    return warehouse_path.with_name(warehouse_path.name + ".lock")


def lock_holder(warehouse_path: Path) -> str:
    """Who holds the lock, as written by the holder (pid and purpose), or '' when unknown."""
    try:
        return _lock_path(Path(warehouse_path).resolve()).read_text().strip()
    except OSError:
        return ""


def _write_holder(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{text}\n".encode(), 0)


def _described(purpose: str) -> str:
    note = _current_run["note"]
    return f"{purpose}; {note}" if note and note not in purpose else purpose


def name_current_run(run_id: str | None) -> None:
    """Name the Dagster run this process executes (None: it no longer executes one) in every warehouse lock it
    holds or takes from now on."""
    with _guard:
        _current_run["note"] = f"Dagster run {run_id}" if run_id else ""
        if run_id:
            for key in _held:
                _purposes[key] = _described(_purposes[key])
                _write_holder(_fds[key], f"pid {os.getpid()} ({_purposes[key]})")


def at_release(warehouse_path: Path, callback: Callable[[], None]) -> None:
    """Call `callback` when this process lets go of the lock of `warehouse_path` (its outermost hold ends),
    before another process can take it: e.g. to close the database this process keeps open while it holds the
    lock. Only while the lock is held."""
    key = str(Path(warehouse_path).resolve())
    with _guard:
        if not _held.get(key):
            raise RuntimeError(f"at_release: this process does not hold the lock of {key}")
        _on_release.setdefault(key, []).append(callback)


@contextmanager
def warehouse_lock(
    warehouse_path: Path, purpose: str = "", timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold the OS-level lock of `warehouse_path` (re-entrant in this process).

    Waits up to `timeout_seconds` (the setting CRM_LOCK_TIMEOUT_SECONDS, 600 s by default) for another process,
    then raises `WarehouseBusyError` naming the holder.
    """
    timeout = timeout_seconds
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
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = lock_holder(Path(key)) or "another process"
                    raise WarehouseBusyError(
                        f"The warehouse {key} is locked by {holder}; waited {timeout:.0f} s. "
                        "Wait for that run to finish (or stop it) and try again."
                    ) from None
                time.sleep(0.2)
        purpose = _described(purpose or "crm-loop")
        _write_holder(fd, f"pid {os.getpid()} ({purpose})")
        _held[key], _fds[key], _purposes[key] = 1, fd, purpose
    try:
        yield
    finally:
        with _guard:
            _held[key] -= 1
            if _held[key] == 0:
                try:
                    for callback in _on_release.pop(key, []):
                        callback()
                finally:
                    del _held[key]
                    del _purposes[key]
                    fd = _fds.pop(key)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)


# ----------------------------------------------------------------------------------------- dead runs
def _process_started(pid: int) -> str:
    """When the process started (clock ticks since boot, from /proc), or '' where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), counted after the command name


def process_identity(pid: int | None = None) -> dict[str, str]:
    """The run tags that identify a process: host, pid, start time."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_STARTED_TAG: _process_started(pid)}


def process_is_alive(pid: int, started: str = "") -> bool:
    """Whether process `pid` of this host is running and is the one that started at `started` (when known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return not started or _process_started(pid) in ("", started)
