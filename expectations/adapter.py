"""The small adapter between Great Expectations 1.x and Dagster: validate a frame, report an asset check.

`dagster-ge` only supports GX < 1.0, so the loop carries its own: `validate` runs a suite on a pandas frame in
an ephemeral GX context (nothing is written to disk, nothing is sent anywhere) and returns every rule that
failed with the number of bad rows, a few example values and the positions of the bad rows (so that a gate can
quarantine them); `check_result` turns that into a Dagster `AssetCheckResult` whose description names each rule
and how many rows break it, and whose metadata holds the failing expectations and a few sample rows.

A suite is a plain `gx.ExpectationSuite` (see the modules beside this one). Month-dependent values are suite
parameters (`{"$PARAMETER": "month_end"}`) given at validation time; every expectation carries a `description`
that states its rule in business words, which is what people read when a gate fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
from dagster import AssetCheckResult, MetadataValue
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

SAMPLE_ROWS = 5
EXAMPLE_VALUES = 3


@dataclass(frozen=True)
class RuleBreak:
    """One expectation of a suite that failed: its rule, the column(s) it reads, and the rows that break it.

    `positions` are 0-based row positions in the validated frame (empty for table-level rules such as a row count
    or a column set); `count` is the number of bad rows (for a table-level rule, the rows of the table).
    """

    rule: str
    expectation: str
    column: str | None
    count: int
    examples: tuple[Any, ...]
    positions: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    observed: Any = None


@dataclass(frozen=True)
class Validation:
    """The outcome of one suite on one frame."""

    suite: str
    rows: int
    rules_checked: int
    breaks: tuple[RuleBreak, ...]
    seconds: float

    @property
    def success(self) -> bool:
        return not self.breaks

    def bad_positions(self) -> np.ndarray:
        """Positions of every row that breaks at least one rule (sorted, unique)."""
        if not self.breaks:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate([rule_break.positions for rule_break in self.breaks]))


@lru_cache(maxsize=1)
def _context():
    """One ephemeral GX context per process: in memory, no analytics, no progress bars."""

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


@lru_cache(maxsize=64)
def _batch_definition(asset_name: str):
    """A whole-dataframe batch definition per validated table (created once per process)."""
    context = _context()
    try:
        source = context.data_sources.get("crm_loop")
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas("crm_loop")
    return source.add_dataframe_asset(asset_name).add_batch_definition_whole_dataframe("whole_frame")


def _column_of(config) -> str | None:
    kwargs = config.kwargs
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if "column_list" in kwargs:
        return ", ".join(map(str, kwargs["column_list"]))
    return None


def _rule_of(config) -> str:
    if config.description:
        return str(config.description)
    column = _column_of(config)
    return f"{config.type}({column})" if column else str(config.type)


def _plain(value: Any) -> Any:
    """A value as plain Python (metadata and messages cannot hold numpy or pandas scalars)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_plain(item) for item in value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat(sep=" ")
    if isinstance(value, np.generic):
        return value.item()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def validate(frame: pd.DataFrame, suite, parameters: Mapping[str, Any] | None = None) -> Validation:
    """Validate `frame` against `suite` (a `gx.ExpectationSuite`) with the suite `parameters`.

    The frame is given a 0..n-1 index first, so the reported positions are row positions. GX first judges every
    rule only (result format BOOLEAN_ONLY, about half the time of a full result); when a rule fails, the suite
    runs again in COMPLETE format for the bad rows' positions, counts and examples.
    """
    started = time.perf_counter()
    frame = frame.reset_index(drop=True)
    batch = _batch_definition(suite.name).get_batch(batch_parameters={"dataframe": frame})
    expectation_parameters = dict(parameters or {})
    result = batch.validate(
        suite, result_format={"result_format": "BOOLEAN_ONLY"}, expectation_parameters=expectation_parameters
    )
    if not result.success:
        result = batch.validate(
            suite, result_format={"result_format": "COMPLETE"}, expectation_parameters=expectation_parameters
        )
    breaks = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        details = outcome.result or {}
        info = outcome.exception_info or {}
        if info.get("raised_exception"):  # e.g. the column is missing: the rule cannot hold
            message = str(info.get("exception_message") or "").strip().splitlines()
            breaks.append(
                RuleBreak(
                    rule=f"{_rule_of(config)} (could not be checked: {message[0] if message else 'error'})",
                    expectation=str(config.type),
                    column=_column_of(config),
                    count=len(frame),
                    examples=(),
                )
            )
            continue
        positions = np.asarray(details.get("unexpected_index_list") or [], dtype=np.int64)
        # a rule on the table as a whole (a row count, a column set) concerns every row of the table
        count = int(details["unexpected_count"]) if "unexpected_count" in details else len(frame)
        examples = tuple(_plain(value) for value in (details.get("partial_unexpected_list") or [])[:EXAMPLE_VALUES])
        breaks.append(
            RuleBreak(
                rule=_rule_of(config),
                expectation=str(config.type),
                column=_column_of(config),
                count=count,
                examples=examples,
                positions=positions,
                observed=details.get("observed_value", details.get("details")),
            )
        )
    return Validation(
        suite=suite.name,
        rows=len(frame),
        rules_checked=len(suite.expectations),
        breaks=_in_suite_order(breaks, suite),
        seconds=time.perf_counter() - started,
    )


def _in_suite_order(breaks: list[RuleBreak], suite) -> tuple[RuleBreak, ...]:
    """GX reports results in its own order; people read the rules in the order the suite states them."""
    rank = {_rule_of(expectation.configuration): i for i, expectation in enumerate(suite.expectations)}
    return tuple(sorted(breaks, key=lambda b: rank.get(b.rule, len(rank))))


# ----------------------------------------------------------------------------------------------- reporting
def _rows_phrase(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def describe_break(rule_break: RuleBreak, where: str = "") -> str:
    """`<where>: <rule>: 3 rows (e.g. -1.0, -2.5)`."""
    examples = ", ".join(repr(value) for value in rule_break.examples)
    shown = f" (e.g. {examples})" if examples else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}{rule_break.rule}: {_rows_phrase(rule_break.count)}{shown}"


def breaks_table(validation: Validation) -> pd.DataFrame:
    """One row per failing expectation: rule, expectation type, column, bad rows, examples."""
    return pd.DataFrame(
        [
            {
                "rule": b.rule,
                "expectation": b.expectation,
                "column": b.column or "",
                "bad_rows": b.count,
                "examples": ", ".join(repr(value) for value in b.examples),
            }
            for b in validation.breaks
        ],
        columns=["rule", "expectation", "column", "bad_rows", "examples"],
    )


def sample_rows(frame: pd.DataFrame, validation: Validation, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A few of the rows that break a rule (all columns, or `columns`), with the rules each breaks."""
    frame = frame.reset_index(drop=True)
    positions = validation.bad_positions()[:SAMPLE_ROWS]
    shown = frame.iloc[positions][list(columns) if columns else list(frame.columns)].copy()
    broken = [(b.rule, set(b.positions.tolist())) for b in validation.breaks]
    shown.insert(0, "broken_rules", ["; ".join(rule for rule, rows in broken if p in rows) for p in positions])
    return shown


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    return frame.astype("object").where(frame.notna(), "").to_markdown(index=False)


def check_result(
    validation: Validation,
    frame: pd.DataFrame,
    *,
    description: str | None = None,
    sample_columns: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    asset_key=None,
    check_name: str | None = None,
):
    """The Dagster `AssetCheckResult` of `validation`: passed when every rule holds.

    `description` (default: every failing rule with its count) is what the UI and the run's failure show;
    metadata holds the rows validated, the rules checked and broken, a table of the failing expectations, a few
    sample rows and the validation time.
    """

    if description is None:
        description = (
            "; ".join(describe_break(b) for b in validation.breaks)
            if validation.breaks
            else f"all {validation.rules_checked} rules hold on {_rows_phrase(validation.rows)}"
        )
    meta: dict[str, Any] = {
        "suite": validation.suite,
        "rows_validated": validation.rows,
        "rules_checked": validation.rules_checked,
        "rules_broken": len(validation.breaks),
        "bad_rows": int(validation.bad_positions().size) or sum(b.count for b in validation.breaks),
        "validation_seconds": round(validation.seconds, 3),
    }
    if validation.breaks:
        meta["failing_expectations"] = MetadataValue.md(_markdown(breaks_table(validation)))
        meta["sample_rows"] = MetadataValue.md(_markdown(sample_rows(frame, validation, sample_columns)))
    meta.update(metadata or {})
    extra = {}
    if asset_key is not None:
        extra["asset_key"] = asset_key
    if check_name is not None:
        extra["check_name"] = check_name
    return AssetCheckResult(passed=validation.success, description=description, metadata=meta, **extra)
