"""Run the `crm-loop` command line in this process and kill it with SIGKILL at a chosen point (test helper).

    python tests/fault_injection.py dbt     run --month 2025-01   # killed a moment after dbt build started
    python tests/fault_injection.py execute run --month 2025-01   # killed right after the channel took a batch
    python tests/fault_injection.py none    run                   # not killed

The kill takes the whole process group (start this process in a session of its own): the run's process and
its dbt child die together, as when a job's container or machine is lost.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

DBT_SECONDS_BEFORE_KILL = float(os.environ.get("CRM_TEST_DBT_SECONDS_BEFORE_KILL", "1.5"))


def _say(text: str) -> None:
    """To the process's real standard output (the command line sends library output to a log file)."""
    os.write(1, f"{text}\n".encode())


def _kill_everything() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _children_running_dbt() -> bool:
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] != me:
                continue
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if b"dbt" in command and b"build" in command:
            return True
    return False


def kill_during_dbt() -> None:
    def watch() -> None:
        while not _children_running_dbt():
            time.sleep(0.05)
        time.sleep(DBT_SECONDS_BEFORE_KILL)
        _say("fault injection: SIGKILL during dbt build")
        _kill_everything()

    threading.Thread(target=watch, daemon=True).start()


def kill_during_execute() -> None:
    from orchestration.resources.channel import ChannelResource

    deliver = ChannelResource.deliver

    def deliver_then_die(self, *args, **kwargs):
        sent = deliver(self, *args, **kwargs)
        _say(f"fault injection: SIGKILL after the channel took {sent} contacts")
        _kill_everything()
        return sent

    ChannelResource.deliver = deliver_then_die


if __name__ == "__main__":
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "dbt":
        kill_during_dbt()
    elif mode == "execute":
        kill_during_execute()
    from orchestration.cli import main

    sys.exit(main(argv))
