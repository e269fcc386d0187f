"""Calendar months as integer indices (0 = the first burn-in month) and back."""

from __future__ import annotations

import calendar
from datetime import date, datetime

import numpy as np
import pandas as pd


def as_month(value: date | datetime | pd.Timestamp | str) -> date:
    """The month `value` denotes, as the date of its first day; rejects dates that are not a first day."""
    if isinstance(value, str | np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp | datetime):
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"a month must be a date (the first day of the month), got {value!r}")
    if value.day != 1:
        raise ValueError(f"a month is the date of its first day, got {value.isoformat()}")
    return value


def month_index(month: date, origin: date) -> int:
    """Number of months from `origin` to `month`."""
    return (month.year - origin.year) * 12 + (month.month - origin.month)


def month_at(index: int, origin: date) -> date:
    """The month `index` months after `origin`."""
    total = origin.year * 12 + origin.month - 1 + int(index)
    return date(total // 12, total % 12 + 1, 1)


def days_in_month(month: date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def days_in_months(indices: np.ndarray, origin: date) -> np.ndarray:
    """Vectorised number of days of each month index."""
    unique, inverse = np.unique(indices, return_inverse=True)
    lengths = np.array([days_in_month(month_at(i, origin)) for i in unique], dtype=np.int64)
    return lengths[inverse]


def label(month: date) -> str:
    return f"{month:%Y-%m}"
