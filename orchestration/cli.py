"""`crm-loop`: run the monthly loop through Dagster, in month order, against the instance under CRM_HOME.

crm-loop run --cycles 6        run the next six months, one Dagster run each, stopping at a failure
crm-loop run --month 2025-03   re-run one month already reached (its predecessor must have succeeded)
crm-loop backfill --from 2025-01 --to 2025-06
                               run a range of months in order: months reached are re-run, later ones advance
crm-loop status                months completed, the next month, runs in progress or failed
crm-loop report                the campaigns measured in the last month (--all: every month)
crm-loop evaluate-policy       what the champion, the challenger, contacting all and random targeting would have
                               earned on the last held-out campaigns (--month YYYY-MM)
crm-loop prepare               parse the dbt project (writes the manifest Dagster loads) and the Dagster instance
crm-loop import-orders LOG --to DIR --columns customer_id,order_date,quantity,amount
                               turn a transaction log into DIR/orders/<YYYY-MM>.csv for CRM_SOURCE=files
crm-loop approve --month 2025-03 --by NAME
                               approve the plan designed in a month (outside simulation execute waits for it)
crm-loop forget CUSTOMER_ID    erase a customer's personal data from the warehouse and the exports (recorded)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
import warnings
from datetime import date
from pathlib import Path
from typing import TextIO

import pandas as pd
from dagster import BetaWarning, DagsterEventType, DagsterInstance, PreviewWarning

from orchestration.jobs import (
    FILES_TAG,
    LAUNCHED_BY_TAG,
    LOOP_JOB_NAME,
    LoopOrderError,
    completed_months,
    describe_run,
    files_of_month,
    fingerprint,
    loop_position,
    months_between,
    months_to_run,
    runs_in_flight,
)
from orchestration.lib.campaign_records import approve_from_command_line
from orchestration.lib.importer import TransactionLogError, describe, import_transaction_log
from orchestration.lib.lock import warehouse_lock
from orchestration.lib.months import next_month
from orchestration.lib.prepare import SetupError, prepare_dbt, prepare_instance, require_manifest
from orchestration.lib.privacy import forget
from orchestration.lib.queries import POLICY_VALUES_TABLE
from orchestration.lib.reports import cumulative_true_profit, cycle_row, write_loop_summary
from orchestration.lib.settings import ConfigurationError, Settings, load_settings
from orchestration.resources import warehouse_resource
from orchestration.runs import recover_dead_runs
from orchestration.stages.design.checks import clear_plan_gates

__all__ = ["LoopOrderError", "completed_months", "main", "months_to_run", "run_cycles"]


def _print_table(rows: list[dict]) -> None:
    if rows:
        print(pd.DataFrame(rows).to_string(index=False), flush=True)


# ------------------------------------------------------------------------------------------- progress
class RunProgress:
    """Shows a Dagster run's steps as they happen, read from the instance's event log.

    On a terminal: one line redrawn in place (month, a bar, steps done, the running step, elapsed time).
    Elsewhere (a log file, CI): one line per finished step with its duration.
    """

    EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED")

    def __init__(self, instance, run_id: str, label: str, total_steps: int, stream: TextIO | None = None):
        self.instance, self.run_id, self.label, self.total = instance, run_id, label, max(total_steps, 1)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.done, self.failed, self.running = 0, 0, ""
        self.started: dict[str, float] = {}
        self._cursor: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"progress-{label}", daemon=True)
        self._begin = time.monotonic()

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._poll()
            except Exception:  # the run's event log may not exist yet; progress is best effort
                continue
            if self.live:
                self._draw()

    def _poll(self) -> None:

        kinds = {DagsterEventType(name) for name in self.EVENTS}
        connection = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, of_type=kinds)
        self._cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            kind, step = entry.dagster_event_type, entry.step_key or ""
            if kind == DagsterEventType.STEP_START:
                self.started[step], self.running = entry.timestamp, step
                continue
            self.done += 1
            self.failed += kind == DagsterEventType.STEP_FAILURE
            seconds = entry.timestamp - self.started.get(step, entry.timestamp)
            if not self.live:
                outcome = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[kind.value]
                print(
                    f"  {self.label}  {self.done:>2}/{self.total}  {step:<58} {outcome:<7} {seconds:6.1f} s",
                    file=self.stream,
                    flush=True,
                )

    def _draw(self) -> None:
        width = 24
        filled = round(width * min(self.done / self.total, 1))
        elapsed = int(time.monotonic() - self._begin)
        failed = f"  {self.failed} failed" if self.failed else ""
        line = (
            f"{self.label}  [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} steps  "
            f"{elapsed // 60}:{elapsed % 60:02d}  {self.running}{failed}"
        )
        columns = 120
        with contextlib.suppress(OSError, ValueError):
            columns = os.get_terminal_size(self.stream.fileno()).columns
        self.stream.write("\r\033[K" + line[: columns - 1])
        self.stream.flush()


# ----------------------------------------------------------------------------------------- running
def _quiet_logging_config(verbose: bool) -> dict:
    """Dagster's console log at DEBUG (verbose) or only critical messages (the progress display instead)."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}


def _load_definitions(settings: Settings):
    """The loop's definitions, or a SetupError that says how to prepare them."""
    require_manifest()
    # Imported here, not at the top: the dbt assets read the manifest when their module is imported, and
    # `crm-loop prepare` (which writes the manifest) must run without one.
    from orchestration.definitions import build_definitions

    return build_definitions(settings)


def _refuse_if_busy(instance) -> None:

    recover_dead_runs(instance)  # a run whose process was killed is failed, not "in progress" forever
    in_flight = runs_in_flight(instance)
    if in_flight:
        raise LoopOrderError(
            f"a loop run is in progress in the Dagster instance: {describe_run(in_flight[0])}. Months run one at "
            "a time: wait for it to finish (follow it with `make ui` or `crm-loop status`), then try again."
        )


def _run_tags(settings: Settings, month: date, launched_by: str) -> dict[str, str]:

    tags = {LAUNCHED_BY_TAG: launched_by}
    if settings.source == "files":
        # A badly named file: no fingerprint here; collect names the file and the rule when the run reads it.
        with contextlib.suppress(Exception):
            tags[FILES_TAG] = fingerprint(files_of_month(settings.files_dir, month, month == settings.start_month))
    return tags


def run_months(
    settings: Settings,
    plan_months,
    quiet: bool = False,
    verbose: bool = False,
    launched_by: str = "crm-loop run",
) -> list[dict]:
    """Launch the loop job for the months `plan_months(done)` returns, one run each, in order; each month
    starts only after the previous one succeeded. Prints progress and the cycle table unless `quiet`."""
    prepare_instance(settings)

    rows: list[dict] = []
    with DagsterInstance.get() as instance:
        _refuse_if_busy(instance)
        plan = plan_months(completed_months(instance))
        defs = _load_definitions(settings)
        resources = defs.resources
        warehouse, source = resources["warehouse"], resources["source"]
        job = defs.resolve_job_def(LOOP_JOB_NAME)
        steps = len(job.graph.nodes)
        for position, current in enumerate(plan, start=1):
            started = time.monotonic()
            run_id = str(uuid.uuid4())
            label = f"{current:%Y-%m}" + (f" ({position} of {len(plan)})" if len(plan) > 1 else "")
            log_file = settings.home / "logs" / f"{current:%Y-%m}-{run_id[:8]}.log"
            with warehouse_lock(
                settings.warehouse_path, f"crm-loop run {current:%Y-%m}", settings.lock_timeout_seconds
            ):
                result = _execute_month(
                    job,
                    instance,
                    current,
                    run_id,
                    _run_tags(settings, current, launched_by),
                    progress=None if quiet or verbose else RunProgress(instance, run_id, label, steps),
                    log_file=None if verbose else log_file,
                    verbose=verbose,
                )
            if not result.success:
                failure = _first_failure(result)
                remaining = plan[position:]
                later = f" {', '.join(f'{m:%Y-%m}' for m in remaining)} not started." if remaining else ""
                output = f" dbt and library output: {log_file}." if not verbose else ""
                raise RuntimeError(
                    f"the loop failed in {current:%Y-%m} (run {result.run_id}): {failure}\n"
                    f"Later months wait for it.{later} Fix the cause, then `crm-loop run --month {current:%Y-%m}` "
                    f"(the run's events: `make ui`, Runs).{output}"
                )
            row = {**cycle_row(warehouse, current), "seconds": round(time.monotonic() - started, 1)}
            rows.append(row)
            if not quiet:
                print(f"cycle {current:%Y-%m} done in {row['seconds']} s (run {result.run_id})", flush=True)
    summary = write_loop_summary(settings, warehouse, source.world() if source.kind == "simulator" else None)
    if not quiet:
        print("\nCycles")
        _print_table(rows)
        print(f"\nMeasured campaigns ({settings.reports_dir / 'loop_summary.csv'})")
        print(summary.to_string(index=False, float_format=lambda value: f"{value:.4f}") if len(summary) else "none yet")
        totals = cumulative_true_profit(summary)
        if len(totals):
            version = summary["world_version"].iloc[0]
            print(
                f"\nGround truth of the simulated world {version} (the platform never reads it): true incremental "
                "profit over the measured campaigns, EUR"
            )
            width = int(totals["policy"].str.len().max())
            for policy, profit, campaigns in totals.itertuples(index=False):
                print(f"  {policy:<{width}}  {profit:>12,.0f}  ({campaigns} campaigns)")
    return rows


def _execute_month(job, instance, month: date, run_id: str, tags, progress, log_file: Path | None, verbose: bool):
    """One loop run in this process. Output that dbt and the libraries print goes to `log_file` (when given),
    so that the progress display stays readable."""
    with contextlib.ExitStack() as stack:
        if progress is not None:
            stack.enter_context(progress)
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(log_file.open("a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        return job.execute_in_process(
            partition_key=month.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_id=run_id,
            tags=tags,
            run_config=_quiet_logging_config(verbose),
        )


def run_cycles(
    settings: Settings, cycles: int, month: date | None = None, quiet: bool = False, verbose: bool = False
) -> list[dict]:
    """Launch the loop job month by month (each month starts only after the previous one succeeded)."""
    return run_months(settings, lambda done: months_to_run(settings, done, cycles, month), quiet, verbose)


def backfill(settings: Settings, first: date, last: date, quiet: bool = False, verbose: bool = False) -> list[dict]:
    """Run every month from `first` to `last`, in order, stopping at the first failure."""
    return run_months(
        settings,
        lambda done: months_between(settings, done, first, last),
        quiet,
        verbose,
        launched_by=f"crm-loop backfill {first:%Y-%m}..{last:%Y-%m}",
    )


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                return f"step {event.step_key}: {_root_message(error)}"
    return "see the run in the Dagster UI (make ui)"


def _root_message(error) -> str:
    """The innermost cause of a serialised Dagster error (the user's exception, not the wrapper)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


# ------------------------------------------------------------------------------------ status, report
def show_status(settings: Settings) -> None:
    prepare_instance(settings)

    with DagsterInstance.get() as instance:
        for run_id in recover_dead_runs(instance):  # killed runs are failures, not "in progress" forever
            print(f"run {run_id[:8]}: its process is gone (killed or crashed); marked as failed")
        position = loop_position(instance, settings.start_month)
    done = position.completed
    print(f"CRM_HOME: {settings.home}  (source: {settings.source}, channel: {settings.channel})")
    print(f"months completed: {_month_ranges(done) or 'none'}")
    print(f"next month: {position.upcoming:%Y-%m}")
    for run in position.in_flight:
        print(f"in progress: {describe_run(run)}")
    if position.failed:
        print(
            f"last attempt failed: {describe_run(position.last_attempt)}; re-run it with "
            f"`crm-loop run --month {position.upcoming:%Y-%m}`"
        )


def _month_ranges(months: list[date]) -> str:
    """`2025-01 .. 2025-06, 2025-09` (runs of consecutive months collapsed)."""

    spans: list[list[date]] = []
    for month in months:
        if spans and next_month(spans[-1][-1]) == month:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(
        f"{span[0]:%Y-%m}" if len(span) == 1 else f"{span[0]:%Y-%m} .. {span[-1]:%Y-%m} ({len(span)})" for span in spans
    )


def show_report(settings: Settings, month: date | None = None, every_month: bool = False) -> int:
    """Print the measured campaigns of the last month measured (or `month`, or every month)."""
    summary_file = settings.reports_dir / "loop_summary.csv"
    if not summary_file.exists():
        print(f"no report yet: {summary_file} does not exist (run `crm-loop run` first)")
        return 1
    summary = pd.read_csv(summary_file, dtype={"month": str})
    if summary.empty:
        print(f"no campaign measured yet ({summary_file}): a campaign is measured in the month after its design")
        return 1
    if every_month:
        shown, title = summary, f"Every measured campaign ({summary_file})"
    else:
        wanted = f"{month:%Y-%m}" if month else summary["month"].max()
        shown = summary[summary["month"] == wanted]
        if shown.empty:
            print(f"no campaign measured in {wanted}; months measured: {', '.join(sorted(summary['month'].unique()))}")
            return 1
        title = f"Campaigns delivered and measured in {wanted} ({summary_file}; --all for every month)"
    print(title)
    print(shown.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    if not every_month:
        total = summary["incremental_profit"].sum()
        print(f"\nall months: {len(summary)} campaigns, incremental profit {total:,.2f}")
        extra = sorted(path for path in settings.reports_dir.glob(f"*{wanted}*") if path.is_file())
        for path in extra:
            print(f"report: {path}")
    return 0


def show_policy_values(settings: Settings, month: date | None = None) -> int:
    """Print the off-policy values the improve stage recorded for `month` (default: the latest)."""
    warehouse = warehouse_resource(settings)
    if not warehouse.table_exists(POLICY_VALUES_TABLE):
        print(f"no policy evaluated yet: {POLICY_VALUES_TABLE} does not exist (improve needs a measured campaign)")
        return 1
    values = warehouse.query(f"select * from {POLICY_VALUES_TABLE} order by as_of_month, offer_id")
    months = sorted({f"{stamp:%Y-%m}" for stamp in pd.to_datetime(values["as_of_month"])})
    wanted = f"{month:%Y-%m}" if month else (months[-1] if months else "")
    shown = values[pd.to_datetime(values["as_of_month"]).dt.strftime("%Y-%m") == wanted]
    if shown.empty:
        print(f"no policy evaluated in {wanted or 'any month'}; months evaluated: {', '.join(months) or 'none'}")
        return 1
    print(
        f"Off-policy values in {wanted}: incremental profit (EUR) each policy would have earned on the held-out "
        "campaigns, inverse-propensity (ipw) and doubly robust (dr) estimates with 95% intervals"
    )
    order = {"champion": 0, "challenger": 1, "contact all": 2}  # then random; ipw before dr
    for offer_id, rows in shown.groupby("offer_id", sort=True):
        print(f"\n{offer_id} (held out: {rows['held_out_campaigns'].iloc[0]})")
        table = rows.sort_values(
            ["policy", "estimator"],
            key=lambda column: column.map(order).fillna(3) if column.name == "policy" else column != "ipw",
        )[["policy", "estimator", "n_selected", "incremental_profit", "ci_low", "ci_high"]]
        print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))
    return 0


def _month_argument(text: str) -> date:
    try:
        return date.fromisoformat(text if len(text) > 7 else f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)") from None


def _add_import_parser(commands) -> None:
    command = commands.add_parser(
        "import-orders",
        aliases=["import"],
        help="turn a transaction log (CSV or whitespace-separated) into monthly order files for CRM_SOURCE=files",
        description=(
            "Import a transaction log (one line per purchase: customer, date, amount, optionally quantity, "
            "order_id, product_id, order_type) into DIR/orders/<YYYY-MM>.csv, the layout the files source reads. "
            "Deterministic: importing the same log again writes nothing; a file with different content is "
            "never overwritten without --overwrite."
        ),
    )
    command.add_argument("log", type=Path, help="the transaction log (e.g. CDNOW_master.txt)")
    command.add_argument(
        "--to", type=Path, metavar="DIR", help="the files folder to write to (default: $CRM_FILES_DIR)"
    )
    command.add_argument(
        "--columns",
        help="the log's fields in order, e.g. customer_id,order_date,quantity,amount (- leaves a field out); "
        "default: the header line's names",
    )
    command.add_argument(
        "--date-format", help="strftime format of the dates, e.g. %%Y%%m%%d or %%d/%%m/%%Y (default: YYYYMMDD or ISO)"
    )
    command.add_argument(
        "--delimiter", help="comma, semicolon, tab, pipe, whitespace or one character (default: from the first line)"
    )
    command.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the first line is (not) a header (default: a first line without any number is a header)",
    )
    command.add_argument("--encoding", default="utf-8", help="text encoding of the log (default utf-8)")
    command.add_argument("--overwrite", action="store_true", help="replace monthly files whose content differs")


def import_orders(args: argparse.Namespace, settings: Settings) -> int:
    """`crm-loop import-orders`: write the monthly order files and print what was written and how to run on it."""

    if not args.log.is_file():
        print(f"crm-loop: {args.log}: no such file", file=sys.stderr)
        return 2
    try:
        summary = import_transaction_log(
            args.log,
            args.to or settings.files_dir,
            columns=args.columns.split(",") if args.columns else None,
            date_format=args.date_format,
            delimiter=args.delimiter,
            header=args.header,
            encoding=args.encoding,
            overwrite=args.overwrite,
        )
    except TransactionLogError as error:
        print(f"crm-loop: {error}", file=sys.stderr)
        return 2
    print(describe(summary))
    return 0


def _quiet_library_warnings() -> None:
    """Warnings meant for the authors of Dagster definitions, not for the person running the loop."""
    warnings.filterwarnings("ignore", category=PreviewWarning)
    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", message=".*varying BackfillPolicies.*")


def _add_approve_parser(commands) -> None:
    command = commands.add_parser(
        "approve",
        help="approve the campaign plan designed in a month (needed before execute outside simulation)",
    )
    command.add_argument("--month", type=_month_argument, required=True, help="the month the plan was designed in")
    command.add_argument("--by", required=True, help="who approves (recorded with the approval)")
    command.add_argument("--hash", dest="plan_hash", help="approve only if the plan still has this hash (prefix)")


def approve_plan(settings: Settings, args) -> int:

    warehouse = warehouse_resource(settings)
    print(approve_from_command_line(warehouse, args.month, args.by, args.plan_hash, clear_plan_gates))
    return 0


def forget_customer(settings: Settings, args) -> int:
    """`crm-loop forget CUSTOMER_ID`: erase the customer's personal data (orchestration.lib.privacy)."""

    warehouse = warehouse_resource(settings)
    erasure = forget(
        warehouse, args.customer_id, home=settings.home, exports_dir=settings.exports_dir, requested_by=args.by
    )
    print(erasure.describe(args.customer_id))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-loop", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run monthly cycles of the loop, in order")
    run.add_argument("--cycles", type=int, default=1, help="how many months to advance (default 1)")
    run.add_argument("--month", type=_month_argument, help="re-run this month (YYYY-MM) instead")
    fill = commands.add_parser(
        "backfill",
        help="run a range of months in order (re-run months reached, then advance)",
        description=(
            "Run every month from --from to --to, one Dagster run each, strictly in month order, stopping at the "
            "first failure. Months the loop already reached are re-run (same tables, nothing re-sent); months "
            "after them advance the loop. --from may not lie beyond the next month of the loop."
        ),
    )
    fill.add_argument("--from", dest="first", type=_month_argument, required=True, help="first month (YYYY-MM)")
    fill.add_argument("--to", dest="last", type=_month_argument, required=True, help="last month (YYYY-MM)")
    for command in (run, fill):
        command.add_argument(
            "--verbose", action="store_true", help="print Dagster's full event log instead of the progress display"
        )
    commands.add_parser("status", help="months completed, the next month, runs in progress or failed")
    report = commands.add_parser("report", help="the campaigns measured in the last month (or --month, --all)")
    report.add_argument("--month", type=_month_argument, help="the campaigns delivered in this month (YYYY-MM)")
    report.add_argument("--all", action="store_true", help="every measured campaign of every month")
    evaluate = commands.add_parser(
        "evaluate-policy",
        help="what each targeting policy would have earned on the last held-out campaigns (or --month)",
    )
    evaluate.add_argument("--month", type=_month_argument, help="the improve run of this month (YYYY-MM)")
    commands.add_parser("prepare", help="parse the dbt project (writes the manifest) and set up the Dagster instance")
    _add_import_parser(commands)
    _add_approve_parser(commands)
    forget = commands.add_parser("forget", help="erase a customer's personal data (warehouse, exports), recorded")
    forget.add_argument("customer_id", help="the customer_id to forget")
    forget.add_argument("--by", default="crm-loop forget", help="who asked (recorded with the erasure)")
    args = parser.parse_args(argv)
    _quiet_library_warnings()
    try:
        settings = load_settings()
        if args.command == "prepare":
            prepare_dbt()
            print(f"dbt manifest written; Dagster instance in {prepare_instance(settings)}")
        elif args.command in ("import-orders", "import"):
            return import_orders(args, settings)
        elif args.command == "run":
            if args.cycles < 1:
                parser.error("--cycles must be at least 1")
            run_cycles(settings, args.cycles, args.month, verbose=args.verbose)
        elif args.command == "backfill":
            backfill(settings, args.first, args.last, verbose=args.verbose)
        elif args.command == "status":
            show_status(settings)
        elif args.command == "report":
            return show_report(settings, args.month, args.all)
        elif args.command == "evaluate-policy":
            return show_policy_values(settings, args.month)
        elif args.command == "approve":
            return approve_plan(settings, args)
        elif args.command == "forget":
            return forget_customer(settings, args)
    except subprocess.CalledProcessError as error:
        print(
            f"crm-loop: {' '.join(map(str, error.cmd[:2]))} failed (exit {error.returncode}); see above",
            file=sys.stderr,
        )
        return 2
    except (ConfigurationError, LoopOrderError, SetupError, RuntimeError) as error:
        print(f"crm-loop: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ncrm-loop: interrupted; the month in progress did not complete. `crm-loop status` shows where the "
            "loop stands; run that month again when ready.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
