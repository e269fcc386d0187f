"""The loop job, and what launches it: one run per month, strictly in month order.

Month M+1 starts only after month M's loop run succeeded: its data depends on the campaign month M delivered.
Every launcher here reads the instance's run history to keep that rule, and skips with a reason a person can act on:

- `monthly_loop` (schedule, off by default): on the 1st of each month, the next month of the loop, if it is
  a month that has ended and nothing else is running.
- `new_month_of_files` (sensor, on by default with CRM_SOURCE=files): when the next month's files are in
  CRM_FILES_DIR, that month; a month that failed is started again only when its files change.
- `loop_backfill_in_month_order` (run-status sensor, on by default): when a loop run tagged
  `crm/through=<YYYY-MM>` succeeds, the following month with the same tag, until that month: an ordered
  backfill launched from the UI's launchpad (`crm-loop backfill` is the same from the command line).

None of them opens the warehouse: the webserver and the daemon never hold the DuckDB file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    run_status_sensor,
    schedule,
    sensor,
)

from orchestration.lib.months import month_key, next_month, partition_month, previous_month
from orchestration.lib.raw_tables import RAW_TABLES, SourceError, month_files
from orchestration.lib.settings import Settings

LOOP_JOB_NAME = "crm_loop"
PARTITION_TAG = "dagster/partition"
THROUGH_TAG = "crm/through"  # an ordered backfill: continue month by month up to and including this month
LAUNCHED_BY_TAG = "crm/launched_by"
FILES_TAG = "crm/files"  # fingerprint of the files a sensor-launched month was started with
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]

crm_loop_job = define_asset_job(
    LOOP_JOB_NAME,
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    description="One monthly cycle: collect, warehouse, analyse, measure, improve, design, execute.",
)


class LoopOrderError(RuntimeError):
    """A month was asked for out of order."""


# ------------------------------------------------------------------------------------------ month order
def _month_of_run(run: DagsterRun) -> date | None:
    key = run.tags.get(PARTITION_TAG)
    return partition_month(key) if key else None


def completed_months(instance: DagsterInstance) -> list[date]:
    """Months whose loop run succeeded, in order."""
    runs = instance.get_runs(filters=RunsFilter(job_name=LOOP_JOB_NAME, statuses=[DagsterRunStatus.SUCCESS]))
    return sorted({month for run in runs if (month := _month_of_run(run)) is not None})


def runs_in_flight(instance: DagsterInstance) -> list[DagsterRun]:
    """Loop runs queued, starting or running (oldest first)."""
    runs = instance.get_runs(filters=RunsFilter(job_name=LOOP_JOB_NAME, statuses=IN_FLIGHT))
    return sorted(runs, key=lambda run: (_month_of_run(run) or date.min, run.run_id))


def latest_run_for(instance: DagsterInstance, month: date) -> DagsterRun | None:
    """The most recent loop run of `month`, whatever its status."""
    runs = instance.get_runs(
        filters=RunsFilter(job_name=LOOP_JOB_NAME, tags={PARTITION_TAG: month_key(month)}), limit=1
    )
    return runs[0] if runs else None


def next_loop_month(start_month: date, done: Sequence[date]) -> date:
    """The month the loop advances into next: the one after the last month that succeeded."""
    return next_month(max(done)) if done else start_month


def months_to_run(settings: Settings, done: list[date], cycles: int, month: date | None) -> list[date]:
    """The months a `run` command launches, in order; refuses a month whose predecessor has not succeeded."""
    upcoming = next_loop_month(settings.start_month, done)
    if month is None:
        months, current = [], upcoming
        for _ in range(cycles):
            months.append(current)
            current = next_month(current)
        return months
    if month < settings.start_month:
        raise LoopOrderError(f"{month:%Y-%m} is before the first month of the loop ({settings.start_month:%Y-%m})")
    if month > upcoming:
        raise LoopOrderError(
            f"cannot run {month:%Y-%m}: the loop advances one month at a time and "
            f"{previous_month(month):%Y-%m} has not succeeded. Run {upcoming:%Y-%m} first."
        )
    return [month]


def months_between(settings: Settings, done: list[date], first: date, last: date) -> list[date]:
    """The months of a backfill from `first` to `last`, in order: months already reached are re-run, the
    months after them advance the loop. Refuses a range that starts beyond the next month of the loop."""
    if last < first:
        raise LoopOrderError(f"the range {first:%Y-%m} .. {last:%Y-%m} is empty: the first month comes after the last")
    months = months_to_run(settings, done, 1, first)
    while months[-1] < last:
        months.append(next_month(months[-1]))
    return months


def describe_run(run: DagsterRun) -> str:
    """`2025-03 (run 1a2b3c4d, STARTED, launched by monthly_loop)`."""
    month = _month_of_run(run)
    launched_by = (
        run.tags.get(LAUNCHED_BY_TAG) or run.tags.get("dagster/schedule_name") or run.tags.get("dagster/sensor_name")
    )
    by = f", launched by {launched_by}" if launched_by else ""
    return f"{month:%Y-%m} (run {run.run_id[:8]}, {run.status.value}{by})" if month else f"run {run.run_id[:8]}"


@dataclass(frozen=True)
class LoopPosition:
    """Where the loop stands: the month it advances into next, the last attempt at that month, and any loop
    run queued or running."""

    upcoming: date
    completed: list[date]
    last_attempt: DagsterRun | None
    in_flight: list[DagsterRun]

    @property
    def failed(self) -> bool:
        """The last attempt at the upcoming month failed or was cancelled."""
        return self.last_attempt is not None and self.last_attempt.status in (
            DagsterRunStatus.FAILURE,
            DagsterRunStatus.CANCELED,
        )

    def reached(self) -> str:
        return f"months completed up to {max(self.completed):%Y-%m}" if self.completed else "no month completed yet"

    def blocked(self) -> str | None:
        """Why no month may start now (a run in flight), else None."""
        if self.in_flight:
            return (
                f"a loop run is in progress: {describe_run(self.in_flight[0])}; months run one at a time "
                "(a run whose process was killed stays 'in progress' until `crm-loop status` marks it failed)"
            )
        return None

    def failure(self) -> str:
        return (
            f"{self.upcoming:%Y-%m} did not succeed: {describe_run(self.last_attempt)}. Later months wait for it. "
            f"Fix the cause, then re-execute that run in the UI or run `crm-loop run --month {self.upcoming:%Y-%m}`"
        )


def loop_position(instance: DagsterInstance, start_month: date) -> LoopPosition:
    done = completed_months(instance)
    upcoming = next_loop_month(start_month, done)
    return LoopPosition(upcoming, done, latest_run_for(instance, upcoming), runs_in_flight(instance))


# -------------------------------------------------------------------------------------------- launchers
def build_monthly_schedule(settings: Settings) -> ScheduleDefinition:
    @schedule(
        job=crm_loop_job,
        cron_schedule="0 6 1 * *",
        name="monthly_loop",
        default_status=DefaultScheduleStatus.STOPPED,
        description=(
            "On the 1st of each month at 06:00: one cycle of the loop for the next month, in order. Skips while "
            "a loop run is in progress, after a failed month (until it is re-run by hand), and when the loop has "
            "already reached the month that just ended."
        ),
    )
    def monthly_loop(context: ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or datetime.now()
        last_closed = previous_month(date(tick.year, tick.month, 1))
        position = loop_position(context.instance, settings.start_month)
        if position.blocked():
            return SkipReason(position.blocked())
        if position.upcoming > last_closed:
            return SkipReason(
                f"the loop is up to date ({position.reached()}); {position.upcoming:%Y-%m} has not ended yet"
            )
        if position.failed:
            return SkipReason(position.failure())
        if settings.source == "files" and (waiting := missing_orders_file(settings, position)):
            return SkipReason(waiting)
        return RunRequest(partition_key=month_key(position.upcoming), tags={LAUNCHED_BY_TAG: "monthly_loop"})

    return monthly_loop


def files_of_month(files_dir: Path, month: date, with_history: bool) -> list[Path]:
    """Every file of every raw table the loop reads for `month` (all months up to it for the first month)."""

    found = []
    for table in RAW_TABLES:
        for file_month, path in month_files(files_dir, table).items():
            if file_month == month or (with_history and file_month < month):
                found.append(path)
    return sorted(found)


def missing_orders_file(settings: Settings, position: LoopPosition, files: list[Path] | None = None) -> str | None:
    """What the files source still waits for before the upcoming month can start, or None."""

    month = position.upcoming
    if files is None:
        try:
            files = files_of_month(settings.files_dir, month, with_history=False)
        except SourceError as error:
            return f"cannot start {month:%Y-%m}: {error}"
    if any(path.parent.name == "orders" and path.stem == f"{month:%Y-%m}" for path in files):
        return None
    return (
        f"waiting for {settings.files_dir / 'orders' / month.strftime('%Y-%m')}.csv (or .parquet): "
        f"{month:%Y-%m} is the next month of the loop ({position.reached()})"
    )


def fingerprint(paths: Sequence[Path]) -> str:
    """Changes when a file is added, removed, replaced or rewritten."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def build_files_sensor(settings: Settings) -> SensorDefinition:
    files_source = settings.source == "files"

    @sensor(
        job=crm_loop_job,
        name="new_month_of_files",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING if files_source else DefaultSensorStatus.STOPPED,
        description=(
            "CRM_SOURCE=files: starts the next month of the loop when its orders file lands in CRM_FILES_DIR "
            "(orders/<YYYY-MM>.csv or .parquet), once the month before it has succeeded. A month that failed is "
            "started again when its files change."
        ),
    )
    def new_month_of_files(context: SensorEvaluationContext):

        if not files_source:
            return SkipReason(f"CRM_SOURCE={settings.source}: this sensor watches CRM_FILES_DIR for CRM_SOURCE=files")
        position = loop_position(context.instance, settings.start_month)
        if position.blocked():
            return SkipReason(position.blocked())
        month = position.upcoming
        try:
            files = files_of_month(settings.files_dir, month, with_history=month == settings.start_month)
        except SourceError as error:
            return SkipReason(f"cannot start {month:%Y-%m}: {error}")
        if waiting := missing_orders_file(settings, position, files):
            return SkipReason(waiting)
        files_print = fingerprint(files)
        if position.failed and position.last_attempt.tags.get(FILES_TAG) == files_print:
            return SkipReason(f"{position.failure()}; this sensor starts it again when its files change")
        return RunRequest(
            partition_key=month_key(month),
            run_key=f"{month:%Y-%m}:{files_print}",
            tags={LAUNCHED_BY_TAG: "new_month_of_files", FILES_TAG: files_print},
        )

    return new_month_of_files


def build_backfill_sensor() -> SensorDefinition:
    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[crm_loop_job],
        request_job=crm_loop_job,
        name="loop_backfill_in_month_order",
        minimum_interval_seconds=5,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Ordered backfill: when a loop run tagged crm/through=<YYYY-MM> succeeds, starts the next month with "
            "the same tag, until that month. A failure stops the chain; re-execute the failed run to go on."
        ),
    )
    def loop_backfill_in_month_order(context: RunStatusSensorContext):
        run = context.dagster_run
        through, month = run.tags.get(THROUGH_TAG), _month_of_run(run)
        if not through or month is None:
            return SkipReason(f"{describe_run(run)} is not part of an ordered backfill (no {THROUGH_TAG} tag)")
        try:
            last = partition_month(through if len(through) > 7 else f"{through}-01")
        except ValueError:
            return SkipReason(f"{describe_run(run)}: {THROUGH_TAG}={through!r} is not a month (YYYY-MM)")
        following = next_month(month)
        if following > last:
            return SkipReason(f"ordered backfill through {last:%Y-%m} is complete")
        # The run queue (one loop run at a time) holds the request while anything else runs.
        return RunRequest(
            partition_key=month_key(following),
            run_key=f"{run.run_id}:{following:%Y-%m}",
            tags={THROUGH_TAG: f"{last:%Y-%m}", LAUNCHED_BY_TAG: "loop_backfill_in_month_order"},
        )

    return loop_backfill_in_month_order


def build_schedules(settings: Settings) -> list[ScheduleDefinition]:
    return [build_monthly_schedule(settings)]


def build_sensors(settings: Settings) -> list[SensorDefinition]:
    return [build_files_sensor(settings), build_backfill_sensor()]
