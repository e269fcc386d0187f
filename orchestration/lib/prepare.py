"""What the loop needs before its Dagster definitions can load: the dbt manifest and the Dagster instance.

Nothing here imports Dagster: `crm-loop prepare` writes the manifest that the dbt assets read when their module
is imported, so it must run before any definitions exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from orchestration.lib.dbt_project import DBT_PROJECT_DIR, dbt_executable
from orchestration.lib.settings import Settings

INSTANCE_HEADER = "# Dagster instance of the CRM loop (runs, materialisations, check results), kept under CRM_HOME."


def instance_config(dagster_home: Path) -> str:
    """The dagster.yaml of the loop's instance."""
    return f"""\
{INSTANCE_HEADER}
# Written by `crm-loop prepare`; edit freely after removing the line above (it is then left alone).
telemetry:
  enabled: false
concurrency:
  # DuckDB admits one process: one run at a time (runs wait in the queue, in the order they were launched),
  runs:
    max_concurrent_runs: 1
  # and one step at a time in the pools of the steps that open the warehouse (`duckdb`).
  pools:
    default_limit: 1
# Dagster's SQLite event log in its usual place, keeping its database engines (orchestration/event_log.py).
event_log_storage:
  module: orchestration.event_log
  class: ReusedEngineSqliteEventLogStorage
  config:
    base_dir: {json.dumps(str(dagster_home / "history" / "runs"))}
"""


MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


class SetupError(RuntimeError):
    """Something the loop needs is not prepared (the dbt manifest, the Dagster instance)."""


def prepare_instance(settings: Settings) -> Path:
    """Create the Dagster home under CRM_HOME (telemetry off, one run at a time, pools of one, the event log of
    orchestration/event_log.py) and point
    DAGSTER_HOME at it. A dagster.yaml written by an older release is updated; one edited by hand (its first
    line changed) is left as it is."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = instance_config(home.resolve())
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(INSTANCE_HEADER) and current != wanted):
        config.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ["CRM_WAREHOUSE"] = str(settings.warehouse_path)
    return home


def prepare_dbt() -> None:
    """`dbt parse`: writes the manifest that the Dagster definitions load.

    dbt parses into a scratch directory beside the manifest, which then takes the manifest's place in one rename:
    a process that loads the definitions meanwhile (a run, the UI, a second `crm-loop prepare`) reads the old
    manifest or the new one, never a half-written file. dbt's partial-parse state goes in and comes back with it.
    """
    target = MANIFEST.parent
    target.mkdir(parents=True, exist_ok=True)
    partial_parse = target / "partial_parse.msgpack"
    with tempfile.TemporaryDirectory(dir=target, prefix=".parse-") as scratch:
        if partial_parse.exists():
            shutil.copy2(partial_parse, scratch)
        subprocess.run(
            [
                dbt_executable(),
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                scratch,
            ],
            check=True,
            env={**os.environ, "DO_NOT_TRACK": "1"},
        )
        if (Path(scratch) / "partial_parse.msgpack").exists():
            os.replace(Path(scratch) / "partial_parse.msgpack", partial_parse)
        os.replace(Path(scratch) / "manifest.json", MANIFEST)


def require_manifest() -> Path:
    """The dbt manifest, or a SetupError that says how to write it."""
    if not MANIFEST.exists():
        raise SetupError(f"the dbt manifest {MANIFEST} does not exist: run `crm-loop prepare` (or `make install`)")
    return MANIFEST
