"""Calendar-month partitions: a partition is a loop cycle, named by its month (orchestration.lib.months)."""

from __future__ import annotations

from dagster import MonthlyPartitionsDefinition

from orchestration.lib.settings import load_settings

monthly_partitions = MonthlyPartitionsDefinition(start_date=load_settings().start_month.isoformat(), end_offset=1)
