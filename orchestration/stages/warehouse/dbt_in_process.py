"""dbt run inside the Dagster process, for a warehouse engine that admits one process: Spark in local mode, whose
embedded Derby metastore one JVM opens at a time.

dagster-dbt runs dbt as a subprocess and turns the JSON events on its output into Dagster events. On Spark that
subprocess would start a second JVM beside the run's own session and find the metastore locked. Here dbt runs
through its programmatic runner (`dbtRunner`) in this process: dbt-spark's `session` method takes the Spark
session already open (`SparkSession.builder.getOrCreate()`), and each event dbt fires is converted to Dagster's
exactly as dagster-dbt converts the same event read from a subprocess (orchestration.resources.dbt's
`dagster_events_of`): materialisations of the selected models and seeds, blocking asset checks for the data tests.

The target's project is parsed once per process and project version, and the parsed manifest handed to each
build: no build parses it again, not even partially. That holds because the parsed project is the same for every
month: a build's month is $CRM_AS_OF_MONTH while the command runs (`month=`, orchestration.lib.dbt_project's
`dbt_build_month`), read by the models when they run, not a `--vars` value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, MetadataValue
from dagster_dbt import DagsterDbtTranslator
from dbt.cli.main import dbtRunner
from dbt_common.events.functions import msg_to_dict

from orchestration.lib.dbt_project import DBT_PROJECT_DIR, dbt_build_month
from orchestration.resources.dbt import dagster_events_of


class DbtBuildFailed(Failure):
    """A dbt build in this process failed: the message names each failing node and why."""


def failed_nodes(result: Any) -> list[str]:
    """`unique_id: status message` of each node of a dbt result that neither succeeded nor passed."""
    return [
        f"{node.node.unique_id}: {node.status} {node.message or ''}".strip()
        for node in getattr(result, "results", None) or []
        if str(node.status) not in ("success", "pass", "warn", "skipped")
    ]


class InProcessDbt:
    """dbt commands on one target, in this process, with the project's manifest parsed once."""

    _parsed: dict[tuple[str, str], Any] = {}

    def __init__(self, target: str, work_dir: Path, project_dir: Path = DBT_PROJECT_DIR) -> None:
        self.target = target
        self.project_dir = Path(project_dir)
        self.target_path = Path(work_dir) / "target"
        self.arguments = [
            "--target",
            target,
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.project_dir),
            "--target-path",
            str(self.target_path),
            "--log-path",
            str(Path(work_dir) / "logs"),
        ]

    def _manifest(self, version: str) -> Any:
        """The target's parsed project (a dbt `Manifest`), parsed once per process and project `version`."""

        key = (self.target, version)
        if key not in self._parsed:
            parsed = dbtRunner().invoke(["parse", *self.arguments])
            if not parsed.success:
                raise DbtBuildFailed(description=f"dbt parse --target {self.target} failed: {parsed.exception}")
            self._parsed.clear()
            self._parsed[key] = parsed.result
        return self._parsed[key]

    def invoke(self, command: Sequence[str], version: str, month: str | None = None) -> tuple[Any, list[dict]]:
        """Run `dbt <command>` (as of `month` when given, YYYY-MM-DD); returns dbt's result and the events it fired,
        as dicts shaped like the lines of `--log-format json` (what dagster-dbt reads from a dbt subprocess)."""

        events: list[dict] = []
        runner = dbtRunner(
            manifest=self._manifest(version), callbacks=[lambda message: events.append(msg_to_dict(message))]
        )
        with dbt_build_month(month) if month else nullcontext():
            return runner.invoke([*command, *self.arguments]), events

    def run(self, command: Sequence[str], version: str, month: str | None = None) -> None:
        """Run `dbt <command>` (as of `month` when given) for its effect alone; raise `DbtBuildFailed` naming the
        failing nodes if it failed."""
        result, _ = self.invoke(command, version, month)
        self._raise_if_failed(command, result)

    def build(
        self,
        command: Sequence[str],
        version: str,
        context: AssetExecutionContext,
        manifest: Mapping[str, Any],
        translator: DagsterDbtTranslator,
        month: str | None = None,
    ) -> Iterator:
        """Run `dbt <command>` (as of `month` when given) and yield its Dagster events (as a dbt subprocess's would
        be), then raise `DbtBuildFailed` naming the failing nodes if it failed."""
        result, events = self.invoke(command, version, month)
        for event in events:
            yield from dagster_events_of(
                event, manifest=manifest, translator=translator, context=context, target_path=self.target_path
            )
        self._raise_if_failed(command, result)

    def _raise_if_failed(self, command: Sequence[str], result: Any) -> None:
        if not result.success:
            failures = failed_nodes(result.result)
            reason = "; ".join(failures) if failures else str(result.exception)
            raise DbtBuildFailed(
                description=f"dbt {' '.join(command[:1])} on target {self.target} failed: {reason}",
                metadata={"failed_nodes": MetadataValue.json(failures)},
            )
