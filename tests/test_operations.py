"""Operating the loop: what starts a month (schedule, files sensor, ordered backfill), the command line, the
instance it writes, the charts in the metadata, and one backfill through the CLI end to end.

The launchers are evaluated against a Dagster instance holding made-up run records, so each rule is checked
without running the loop: month M+1 only after month M succeeded, one month at a time, and a reason a person
can act on whenever nothing starts.
"""

from __future__ import annotations

import base64
import os
import struct
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.test_utils import create_run_for_test

from orchestration.cli import main
from orchestration.jobs import (
    FILES_TAG,
    LOOP_JOB_NAME,
    THROUGH_TAG,
    LoopOrderError,
    build_backfill_sensor,
    build_files_sensor,
    build_monthly_schedule,
    months_between,
)
from orchestration.lib import charts
from orchestration.lib.prepare import INSTANCE_HEADER, MANIFEST, prepare_dbt, prepare_instance
from orchestration.lib.settings import Settings

JAN, FEB, MAR, APR, MAY = (date(2025, month, 1) for month in range(1, 6))


def _settings(tmp_path: Path, source: str = "simulator") -> Settings:
    return Settings(
        home=tmp_path / "crm",
        source=source,
        files_dir=tmp_path / "inbox",
        sim_seed=7,
        sim_customers=500,
        channel="simulated" if source == "simulator" else "file",
        start_month=JAN,
    )


@pytest.fixture
def instance():
    with instance_for_test() as test_instance:
        yield test_instance


def _record(instance, month: date, status: DagsterRunStatus, **tags: str):
    return create_run_for_test(
        instance, job_name=LOOP_JOB_NAME, status=status, tags={"dagster/partition": month.isoformat(), **tags}
    )


def _tick(schedule, instance, when: datetime):
    return schedule(build_schedule_context(instance=instance, scheduled_execution_time=when))


def _write_orders(files_dir: Path, month: date, text: str = "customer_id,order_date,amount\nc1,2025-01-05,10\n"):
    folder = files_dir / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{month:%Y-%m}.csv"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------- schedule
def test_schedule_starts_the_first_month_then_each_next_month_in_order(tmp_path, instance):
    schedule = build_monthly_schedule(_settings(tmp_path))
    first = _tick(schedule, instance, datetime(2025, 6, 1, 6))
    assert isinstance(first, RunRequest) and first.partition_key == "2025-01-01"
    _record(instance, JAN, DagsterRunStatus.SUCCESS)
    _record(instance, FEB, DagsterRunStatus.SUCCESS)
    following = _tick(schedule, instance, datetime(2025, 7, 1, 6))
    assert isinstance(following, RunRequest) and following.partition_key == "2025-03-01"


def test_schedule_waits_for_a_running_month_and_never_passes_a_failed_one(tmp_path, instance):
    schedule = build_monthly_schedule(_settings(tmp_path))
    _record(instance, JAN, DagsterRunStatus.SUCCESS)
    running = _record(instance, FEB, DagsterRunStatus.STARTED)
    busy = _tick(schedule, instance, datetime(2025, 6, 1, 6))
    assert isinstance(busy, SkipReason)
    assert (
        "in progress" in busy.skip_message
        and "2025-02" in busy.skip_message
        and running.run_id[:8] in busy.skip_message
    )

    instance.report_run_failed(running)
    failed = _tick(schedule, instance, datetime(2025, 6, 1, 6))
    assert isinstance(failed, SkipReason)
    assert "2025-02 did not succeed" in failed.skip_message
    assert "crm-loop run --month 2025-02" in failed.skip_message


def test_schedule_does_not_run_ahead_of_the_calendar(tmp_path, instance):
    schedule = build_monthly_schedule(_settings(tmp_path))
    for month in (JAN, FEB, MAR, APR, MAY):
        _record(instance, month, DagsterRunStatus.SUCCESS)
    # On 1 June the month that just ended is May: the loop has it already.
    up_to_date = _tick(schedule, instance, datetime(2025, 6, 1, 6))
    assert isinstance(up_to_date, SkipReason) and "up to date" in up_to_date.skip_message
    assert "2025-06 has not ended" in up_to_date.skip_message
    assert _tick(schedule, instance, datetime(2025, 7, 1, 6)).partition_key == "2025-06-01"


# ----------------------------------------------------------------------------------------- files sensor
def test_files_sensor_is_on_for_the_files_source_only(tmp_path, instance):
    assert build_files_sensor(_settings(tmp_path, "files")).default_status == DefaultSensorStatus.RUNNING
    simulated = build_files_sensor(_settings(tmp_path))
    assert simulated.default_status == DefaultSensorStatus.STOPPED
    skipped = simulated(build_sensor_context(instance=instance))
    assert isinstance(skipped, SkipReason) and "CRM_SOURCE=simulator" in skipped.skip_message


def test_files_sensor_starts_the_next_month_when_its_file_lands_and_not_before(tmp_path, instance):
    settings = _settings(tmp_path, "files")
    sensor = build_files_sensor(settings)
    waiting = sensor(build_sensor_context(instance=instance))
    assert isinstance(waiting, SkipReason)
    assert str(settings.files_dir / "orders" / "2025-01.csv") in waiting.skip_message

    _write_orders(settings.files_dir, JAN)
    first = sensor(build_sensor_context(instance=instance))
    assert isinstance(first, RunRequest) and first.partition_key == "2025-01-01"
    assert first.run_key.startswith("2025-01:") and first.tags[FILES_TAG] in first.run_key

    # March's file landing first does not start March: February comes first.
    _record(instance, JAN, DagsterRunStatus.SUCCESS)
    _write_orders(settings.files_dir, MAR)
    held = sensor(build_sensor_context(instance=instance))
    assert isinstance(held, SkipReason) and "orders/2025-02.csv" in held.skip_message


def test_files_sensor_starts_a_failed_month_again_only_when_its_files_change(tmp_path, instance):
    settings = _settings(tmp_path, "files")
    sensor = build_files_sensor(settings)
    orders = _write_orders(settings.files_dir, JAN)
    request = sensor(build_sensor_context(instance=instance))
    _record(instance, JAN, DagsterRunStatus.FAILURE, **{FILES_TAG: request.tags[FILES_TAG]})
    same_files = sensor(build_sensor_context(instance=instance))
    assert isinstance(same_files, SkipReason) and "starts it again when its files change" in same_files.skip_message

    orders.write_text("customer_id,order_date,amount\nc1,2025-01-05,10\nc2,2025-01-06,12\n")
    retry = sensor(build_sensor_context(instance=instance))
    assert isinstance(retry, RunRequest) and retry.partition_key == "2025-01-01"
    assert retry.run_key != request.run_key


# -------------------------------------------------------------------------------------- ordered backfill
def _success(instance, run):
    event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=LOOP_JOB_NAME)
    return build_run_status_sensor_context(
        sensor_name="loop_backfill_in_month_order", dagster_event=event, dagster_instance=instance, dagster_run=run
    )


def test_ordered_backfill_starts_the_next_month_after_a_success_until_its_last_month(instance):
    sensor = build_backfill_sensor()
    feb = _record(instance, FEB, DagsterRunStatus.SUCCESS, **{THROUGH_TAG: "2025-04"})
    request = sensor(_success(instance, feb))
    assert isinstance(request, RunRequest) and request.partition_key == "2025-03-01"
    assert request.tags[THROUGH_TAG] == "2025-04"

    apr = _record(instance, APR, DagsterRunStatus.SUCCESS, **{THROUGH_TAG: "2025-04"})
    done = sensor(_success(instance, apr))
    assert isinstance(done, SkipReason) and "through 2025-04 is complete" in done.skip_message

    plain = _record(instance, MAR, DagsterRunStatus.SUCCESS)
    assert isinstance(sensor(_success(instance, plain)), SkipReason)


def test_a_backfill_range_reruns_months_reached_then_advances_and_never_skips_one(tmp_path):
    settings = _settings(tmp_path)
    assert months_between(settings, [JAN, FEB], FEB, APR) == [FEB, MAR, APR]
    assert months_between(settings, [JAN, FEB], JAN, JAN) == [JAN]
    with pytest.raises(LoopOrderError, match="2025-03 has not succeeded. Run 2025-03 first"):
        months_between(settings, [JAN, FEB], APR, MAY)
    with pytest.raises(LoopOrderError, match="is empty"):
        months_between(settings, [JAN, FEB], MAR, FEB)


# ------------------------------------------------------------------------------------------ the instance
def test_the_instance_runs_one_month_at_a_time_and_keeps_a_hand_edited_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = _settings(tmp_path)
    config = prepare_instance(settings) / "dagster.yaml"
    text = config.read_text()
    assert "max_concurrent_runs: 1" in text and "default_limit: 1" in text and "enabled: false" in text
    assert os.environ["DAGSTER_HOME"] == str(settings.dagster_home)

    config.write_text(f"{INSTANCE_HEADER}\ntelemetry:\n  enabled: false\n")  # written by an older release
    prepare_instance(settings)
    assert "max_concurrent_runs: 1" in config.read_text()

    edited = "# my own settings\ntelemetry:\n  enabled: false\n"
    config.write_text(edited)
    prepare_instance(settings)
    assert config.read_text() == edited


def test_a_process_loading_the_definitions_never_reads_half_a_manifest(dbt_manifest):
    """`crm-loop prepare` parses beside the manifest and replaces it in one rename: a process that reads it
    during the parse (a run or the UI loading the definitions) reads a whole manifest every time."""
    import json
    import threading

    stop, reads, errors = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                reads.append(len(json.loads(MANIFEST.read_bytes())["nodes"]))
            except (ValueError, OSError) as error:  # a half-written file, or none at all
                errors.append(error)

    reader = threading.Thread(target=read)
    with MANIFEST.open("rb") as before:  # a reader that opened the manifest before the parse
        old_file = os.fstat(before.fileno()).st_ino
        reader.start()
        try:
            prepare_dbt()
        finally:
            stop.set()
            reader.join()
        assert json.loads(before.read())["nodes"], "the file it opened was never rewritten under it"
    assert MANIFEST.stat().st_ino != old_file, "the new manifest is a new file, renamed into place"
    assert not errors, errors[:3]
    assert len(reads) > 10 and min(reads) > 0
    assert not list(MANIFEST.parent.glob(".parse-*")), "the scratch directory is removed"


# ----------------------------------------------------------------------------------------- command line
def test_backfill_out_of_order_fails_fast_and_says_which_month_to_run(crm_home, dbt_manifest, capsys):
    assert main(["backfill", "--from", "2025-03", "--to", "2025-04"]) == 2
    error = capsys.readouterr().err
    assert "cannot run 2025-03" in error and "Run 2025-01 first" in error
    assert main(["backfill", "--from", "2025-01", "--to", "2024-12"]) == 2
    assert "is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["backfill", "--from", "March", "--to", "2025-04"])
    assert "'March' is not a month" in capsys.readouterr().err


def test_report_shows_the_last_measured_month_and_every_month_on_request(crm_home, capsys):
    assert main(["report"]) == 1
    assert "no report yet" in capsys.readouterr().out
    reports = crm_home / "reports"
    reports.mkdir(parents=True)
    pd.DataFrame(
        {
            "month": ["2025-02", "2025-02", "2025-03"],
            "campaign": ["2025-02-retention", "2025-02-winback", "2025-03-retention"],
            "n_test": [60, 38, 70],
            "n_control": [7, 4, 8],
            "measured_uplift": [0.01, 0.10, 0.05],
            "ci_low": [-0.3, -0.3, -0.2],
            "ci_high": [0.2, 0.3, 0.25],
            "incremental_profit": [300.0, -16.0, 120.0],
            "roi": [2.8, -0.2, 1.1],
        }
    ).to_csv(reports / "loop_summary.csv", index=False)
    assert main(["report"]) == 0
    last = capsys.readouterr().out
    assert "2025-03-retention" in last and "2025-02-winback" not in last
    assert "all months: 3 campaigns, incremental profit 404.00" in last
    assert main(["report", "--month", "2025-02"]) == 0
    february = capsys.readouterr().out
    assert "2025-02-winback" in february and "2025-03-retention" not in february
    assert main(["report", "--all"]) == 0
    assert {"2025-02-winback", "2025-03-retention"} <= set(capsys.readouterr().out.split())
    assert main(["report", "--month", "2025-09"]) == 1
    assert "no campaign measured in 2025-09" in capsys.readouterr().out


def test_evaluate_policy_prints_what_each_policy_would_have_earned(crm_home, capsys):
    from orchestration.lib.campaign_records import write_rows
    from orchestration.lib.queries import POLICY_VALUES_TABLE
    from orchestration.lib.settings import load_settings
    from orchestration.resources import warehouse_resource
    from orchestration.stages.improve.assets import POLICY_VALUES_SCHEMA

    assert main(["evaluate-policy"]) == 1
    assert "no policy evaluated yet" in capsys.readouterr().out
    rows = [
        ("2025-03-01", "retain_voucher", "champion", "dr", 120, 310.5, 80.0, 153.7, 467.3),
        ("2025-03-01", "retain_voucher", "contact all", "dr", 900, -120.0, 150.0, -414.0, 174.0),
        ("2025-04-01", "retain_voucher", "champion", "dr", 130, 420.0, 90.0, 243.6, 596.4),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "as_of_month",
            "offer_id",
            "policy",
            "estimator",
            "n_selected",
            "incremental_profit",
            "standard_error",
            "ci_low",
            "ci_high",
        ],
    ).assign(as_of_month=lambda f: pd.to_datetime(f["as_of_month"]), held_out_campaigns="2025-02-retention")
    write_rows(
        warehouse_resource(load_settings()),
        POLICY_VALUES_TABLE,
        frame,
        POLICY_VALUES_SCHEMA,
        {"offer_id": "retain_voucher"},
    )
    assert main(["evaluate-policy"]) == 0
    latest = capsys.readouterr().out
    assert "in 2025-04" in latest and "420.00" in latest and "310.50" not in latest
    assert main(["evaluate-policy", "--month", "2025-03"]) == 0
    march = capsys.readouterr().out
    assert "contact all" in march and "-120.00" in march and "held out: 2025-02-retention" in march
    assert main(["evaluate-policy", "--month", "2025-09"]) == 1
    assert "months evaluated: 2025-03, 2025-04" in capsys.readouterr().out


def test_status_on_a_new_home_names_the_first_month(crm_home, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "months completed: none" in out and "next month: 2025-01" in out


# ---------------------------------------------------------------------------------------------- charts
def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_charts_are_small_pngs_drawn_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    rfm = pd.DataFrame(
        [(r, f, (r * 7 + f * 13) % 40) for r in range(1, 6) for f in range(1, 6)],
        columns=["r_score", "f_score", "customers"],
    )
    # The worst case for size: three years of cohorts, every cell a different colour.
    cohorts = pd.date_range("2022-01-01", "2025-01-01", freq="MS")
    retention = pd.DataFrame(
        [
            (cohort, k, 1.0 if k == 0 else ((i * 31 + k * 17) % 100) / 250, 100 + i)
            for i, cohort in enumerate(cohorts)
            for k in range(len(cohorts) - i)
        ],
        columns=["acquisition_cohort", "months_since_first_order", "retention_share", "cohort_size"],
    )
    tiers = pd.DataFrame(
        {
            "pyramid_tier": ["platinum", "gold", "silver", "iron", "lead", "no tier"],
            "customers": [10, 40, 150, 300, 500, 20],
            "customer_equity": [9000.0, 12000.0, 15000.0, 9000.0, 4000.0, 0.0],
        }
    )
    pngs = {
        "rfm": charts.rfm_heat_map(rfm, "RFM"),
        "cohorts": charts.cohort_retention_heat_map(retention, "Cohorts"),
        "tiers": charts.clv_by_tier(tiers, "Tiers"),
    }
    for name, png in pngs.items():
        width, height = _png_size(png)
        assert 250 <= width <= 700 and 150 <= height <= 700, name
        assert len(png) < charts.MAX_PNG_BYTES, f"{name}: {len(png)} bytes"
    markdown = charts.markdown_image(pngs["rfm"], "RFM heat map")
    assert markdown.startswith("![RFM heat map](data:image/png;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")) == pngs["rfm"]


def test_an_empty_grid_still_draws():
    empty = pd.DataFrame({"r_score": [], "f_score": [], "customers": []})
    assert _png_size(charts.rfm_heat_map(empty, "no customers"))[0] > 0


# ----------------------------------------------------------------------------------------- definitions
def test_the_graph_tells_what_runs_each_asset(dbt_manifest):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    kinds = {key: graph.get(key).kinds for key in graph.materializable_asset_keys}
    assert all(kinds.values()), [key for key, value in kinds.items() if not value]
    assert {"dbt", "duckdb"} <= kinds[AssetKey(["marts", "customer_rfm"])]
    assert graph.get(AssetKey(["marts", "customer_rfm"])).tags["layer"] == "marts"
    assert graph.get(AssetKey(["staging", "stg_crm__orders"])).tags["layer"] == "staging"
    everything = set().union(*kinds.values())
    assert {"dbt", "duckdb", "scikit-learn", "great_expectations", "matplotlib"} <= everything
    assert "great_expectations" in kinds[AssetKey(["raw", "orders"])]
    for chart in ("rfm_heat_map", "cohort_retention_heat_map", "clv_by_tier"):
        assert graph.get(AssetKey(["charts", chart])).group_name == "analyse"


def test_the_loop_has_its_schedule_and_sensors(dbt_manifest):
    from orchestration.definitions import defs

    assert defs.resolve_schedule_def("monthly_loop").cron_schedule == "0 6 1 * *"
    assert {"new_month_of_files", "loop_backfill_in_month_order"} <= {sensor.name for sensor in defs.sensors}
    assert defs.resolve_job_def(LOOP_JOB_NAME).executor_def.name == "in_process"


# ------------------------------------------------------------------------------- a backfill, end to end
@pytest.mark.slow
def test_cli_backfill_runs_months_in_order_with_progress_charts_and_lineage(tmp_path, dbt_manifest):
    """`crm-loop backfill` on a tiny world: two months, in order, each step shown as it finishes; the
    materialisations carry the charts (small inline images), row counts and dbt column lineage."""
    import subprocess
    import sys

    home = tmp_path / "crm"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRM_", "DAGSTER_HOME"))}
    env.update(CRM_HOME=str(home), CRM_SIM_CUSTOMERS="500", CRM_SIM_SEED="7")
    cli = Path(sys.executable).with_name("crm-loop")
    done = subprocess.run(
        [str(cli), "backfill", "--from", "2025-01", "--to", "2025-02"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    progress = done.stderr.splitlines()
    finished = [line.split()[0] for line in progress if " ok " in line]
    assert finished and finished == sorted(finished), "months finish in order"
    assert any("2025-01 (1 of 2)" in line and "customer_warehouse" in line for line in progress)
    assert done.stdout.index("cycle 2025-01 done") < done.stdout.index("cycle 2025-02 done")
    assert "STEP_SUCCESS" not in done.stdout + done.stderr  # the progress display, not the raw event log
    assert list((home / "logs").glob("2025-0[12]-*.log")), "dbt's own output goes to a log file"

    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.from_ref(_instance_ref(home)) as instance:
        runs = sorted(instance.get_run_records(RunsFilter(job_name=LOOP_JOB_NAME)), key=lambda r: r.create_timestamp)
        assert [record.dagster_run.tags["dagster/partition"] for record in runs] == ["2025-01-01", "2025-02-01"]
        assert runs[0].end_time <= runs[1].start_time, "February started after January ended"
        for name in ("rfm_heat_map", "cohort_retention_heat_map", "clv_by_tier"):
            event = instance.get_latest_materialization_event(AssetKey(["charts", name]))
            metadata = event.asset_materialization.metadata
            assert event.asset_materialization.partition == "2025-02-01"
            assert metadata["chart"].value.startswith("![")  # an image, not "No chart"
            assert 0 < metadata["chart_bytes"].value < charts.MAX_PNG_BYTES
        rfm = instance.get_latest_materialization_event(AssetKey(["marts", "customer_rfm"])).asset_materialization
        assert rfm.metadata["dagster/row_count"].value > 0
        lineage = rfm.metadata["dagster/column_lineage"].value.deps_by_column
        assert any(dep.asset_key.path[0] == "intermediate" for deps in lineage.values() for dep in deps)

    report = subprocess.run([str(cli), "report"], env=env, capture_output=True, text=True)
    assert report.returncode == 0 and "Campaigns delivered and measured in 2025-02" in report.stdout


def _instance_ref(home: Path):
    from dagster._core.instance.ref import InstanceRef

    return InstanceRef.from_dir(str(home / "dagster"))
