"""Calendar-month partitions: a partition is a loop cycle, named by its month."""

from __future__ import annotations

from datetime import date

from dagster import MonthlyPartitionsDefinition

from orchestration.settings import load_settings

monthly_partitions = MonthlyPartitionsDefinition(start_date=load_settings().start_month.isoformat(), end_offset=1)


def partition_month(partition_key: str) -> date:
    """The first day of the partition's month."""
    return date.fromisoformat(partition_key)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_key(month: date) -> str:
    return month.isoformat()
