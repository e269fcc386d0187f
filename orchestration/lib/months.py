"""Calendar months, the loop's unit of time: a month is the date of its first day."""

from __future__ import annotations

from datetime import date


def partition_month(partition_key: str) -> date:
    """The first day of a monthly partition's month (its key is YYYY-MM-01)."""
    return date.fromisoformat(partition_key)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_key(month: date) -> str:
    """The partition key of `month` (YYYY-MM-01)."""
    return month.isoformat()
