"""`crm-loop`: run the monthly loop through Dagster, in month order, against the instance under CRM_HOME.

crm-loop run --cycles 6        run the next six months, one Dagster run each, stopping at a failure
crm-loop run --month 2025-03   re-run one month already reached (its predecessor must have succeeded)
crm-loop status                months completed and the next month to run
crm-loop report                the measured campaigns (loop_summary.csv)
crm-loop prepare               parse the dbt project (writes the manifest Dagster loads)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

from orchestration.dbt_cli import DBT_PROJECT_DIR, dbt_executable
from orchestration.settings import ConfigurationError, Settings, load_settings

INSTANCE_CONFIG = """\
# Dagster instance of the CRM loop (runs, materialisations, check results), kept under CRM_HOME.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


class LoopOrderError(RuntimeError):
    """A month was asked for out of order."""


def prepare_instance(settings: Settings) -> Path:
    """Create the Dagster home under CRM_HOME (telemetry off) and point DAGSTER_HOME at it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ["CRM_WAREHOUSE"] = str(settings.warehouse_path)
    return home


def prepare_dbt() -> None:
    """`dbt parse`: writes the manifest that the Dagster definitions load."""
    subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        check=True,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )


def completed_months(instance) -> list[date]:
    """Months whose loop run succeeded, in order."""
    from dagster import DagsterRunStatus, RunsFilter

    from orchestration.jobs import LOOP_JOB_NAME

    runs = instance.get_runs(filters=RunsFilter(job_name=LOOP_JOB_NAME, statuses=[DagsterRunStatus.SUCCESS]))
    keys = {run.tags.get("dagster/partition") for run in runs}
    return sorted(date.fromisoformat(key) for key in keys if key)


def months_to_run(settings: Settings, done: list[date], cycles: int, month: date | None) -> list[date]:
    """The months a `run` command launches, in order; refuses a month whose predecessor has not succeeded."""
    from orchestration.partitions import next_month, previous_month

    upcoming = next_month(done[-1]) if done else settings.start_month
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


def _print_table(rows: list[dict]) -> None:
    if rows:
        print(pd.DataFrame(rows).to_string(index=False), flush=True)


def run_cycles(settings: Settings, cycles: int, month: date | None = None, quiet: bool = False) -> list[dict]:
    """Launch the loop job month by month (each month starts only after the previous one succeeded)."""
    prepare_instance(settings)
    from dagster import DagsterInstance

    from orchestration.definitions import build_definitions
    from orchestration.jobs import LOOP_JOB_NAME
    from orchestration.reports import cycle_row, write_loop_summary
    from orchestration.resources.lock import warehouse_lock

    defs = build_definitions(settings)
    resources = defs.resources
    warehouse, source = resources["warehouse"], resources["source"]
    job = defs.resolve_job_def(LOOP_JOB_NAME)
    rows: list[dict] = []
    with DagsterInstance.get() as instance:
        plan = months_to_run(settings, completed_months(instance), cycles, month)
        for current in plan:
            started = time.monotonic()
            with warehouse_lock(settings.warehouse_path, f"crm-loop run {current:%Y-%m}"):
                result = job.execute_in_process(
                    partition_key=current.isoformat(), instance=instance, raise_on_error=False
                )
            if not result.success:
                failure = _first_failure(result)
                raise RuntimeError(
                    f"the loop failed in {current:%Y-%m} (run {result.run_id}): {failure}\n"
                    "Later months were not started. Fix the cause and run `crm-loop run` again."
                )
            row = {**cycle_row(warehouse, current), "seconds": round(time.monotonic() - started, 1)}
            rows.append(row)
            if not quiet:
                print(f"cycle {current:%Y-%m} done in {row['seconds']} s (run {result.run_id})", flush=True)
    summary = write_loop_summary(settings, warehouse, source)
    if not quiet:
        print("\nCycles")
        _print_table(rows)
        print(f"\nMeasured campaigns ({settings.reports_dir / 'loop_summary.csv'})")
        print(summary.to_string(index=False, float_format=lambda value: f"{value:.4f}") if len(summary) else "none yet")
    return rows


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                return f"step {event.step_key}: {error.message.strip()}"
    return "see the run in the Dagster UI (make ui)"


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
    from orchestration.importer import TransactionLogError, describe, import_transaction_log

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-loop", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run monthly cycles of the loop, in order")
    run.add_argument("--cycles", type=int, default=1, help="how many months to advance (default 1)")
    run.add_argument("--month", type=_month_argument, help="re-run this month (YYYY-MM) instead")
    commands.add_parser("status", help="months completed and the next month to run")
    commands.add_parser("report", help="print the measured campaigns")
    commands.add_parser("prepare", help="parse the dbt project (writes the manifest)")
    _add_import_parser(commands)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "prepare":
            prepare_dbt()
        elif args.command == "run":
            if args.cycles < 1:
                parser.error("--cycles must be at least 1")
            run_cycles(settings, args.cycles, args.month)
        elif args.command == "status":
            prepare_instance(settings)
            from dagster import DagsterInstance

            with DagsterInstance.get() as instance:
                done = completed_months(instance)
            print(f"CRM_HOME: {settings.home}")
            print(f"months completed: {', '.join(f'{m:%Y-%m}' for m in done) or 'none'}")
            print(f"next month: {months_to_run(settings, done, 1, None)[0]:%Y-%m}")
        elif args.command in ("import-orders", "import"):
            return import_orders(args, settings)
        elif args.command == "report":
            summary_file = settings.reports_dir / "loop_summary.csv"
            if not summary_file.exists():
                print(f"no report yet: {summary_file} does not exist (run `crm-loop run` first)")
                return 1
            print(pd.read_csv(summary_file).to_string(index=False))
    except (ConfigurationError, LoopOrderError, RuntimeError) as error:
        print(f"crm-loop: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
