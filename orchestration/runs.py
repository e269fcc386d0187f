"""What happens to a run whose process died: every run records its process in its tags, and the next run marks
the runs whose process is gone as failed and frees their concurrency slots (orchestration.lib.lock explains why)."""

from __future__ import annotations

import multiprocessing
import socket

from dagster import DagsterRunStatus, RunsFilter

from orchestration.lib.lock import HOST_TAG, PID_TAG, PROCESS_STARTED_TAG, process_identity, process_is_alive


def register_run_process(instance, run_id: str) -> bool:
    """Record in the run's tags the process it executes in (see `recover_dead_runs`).

    Only the process that owns the run does: a step process of a multi-process executor (a child of the run's
    process, gone once its step is done) records nothing, so such runs are never judged dead.
    """
    if multiprocessing.parent_process() is not None:
        return False
    instance.add_run_tags(run_id, process_identity())
    return True


def dead_runs(instance) -> list:
    """Runs recorded as starting, started or cancelling whose process on this host is gone.

    Runs of other hosts, and runs that never recorded their process, are left alone (nothing proves them dead).
    """
    in_flight = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    host = socket.gethostname()
    found = []
    for run in instance.get_runs(filters=RunsFilter(statuses=in_flight)):
        pid = run.tags.get(PID_TAG)
        if not pid or run.tags.get(HOST_TAG) != host:
            continue
        if not process_is_alive(int(pid), run.tags.get(PROCESS_STARTED_TAG, "")):
            found.append(run)
    return found


def recover_dead_runs(instance, exclude: str | None = None) -> list[str]:
    """Mark every dead run (see `dead_runs`) as failed, and free the concurrency slots of every run that no
    longer runs (dead or finished), so that the next run neither waits for them nor thinks a month is in
    progress. Returns the ids of the runs marked failed."""
    marked = []
    for run in dead_runs(instance):
        if run.run_id == exclude:
            continue
        instance.report_run_failed(
            run,
            message=(
                f"Run {run.run_id} stopped without a trace: its process (pid {run.tags[PID_TAG]} on "
                f"{run.tags[HOST_TAG]}) is gone, killed or crashed. Marked as failed by the next run; "
                "re-run the month to complete it (what it wrote is replaced, nothing is sent twice)."
            ),
        )
        marked.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holding = set(storage.get_concurrency_run_ids()) - ({exclude} if exclude else set())
        for run_id in holding:
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED) or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return marked
