"""Step 2 helpers: billing periods are calendar months of the contract's local time.

Why local: work started at 00:30 on 1 April in Berlin is April work although it is still
31 March (22:30) in UTC; Zammad's own reports get this wrong.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from zoneinfo import ZoneInfo

from .model import Period


def period_of_day(day: date) -> Period:
    """The period that contains a local day: date(2026, 3, 31) -> "2026-03"."""
    return f"{day.year:04d}-{day.month:02d}"


def local_date(instant: datetime, timezone: str) -> date:
    """The local calendar day of an instant: 2026-03-31T22:30Z in Berlin -> 2026-04-01."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def period_of_instant(instant: datetime, timezone: str) -> Period:
    """The period of an instant in the contract's zone (by local start, not UTC month)."""
    return period_of_day(local_date(instant, timezone))


def shift_period(period: Period, months: int) -> Period:
    """Move a period by whole months.

    >>> shift_period("2026-12", 1), shift_period("2026-01", -1)
    ('2027-01', '2025-12')
    """
    year, month = int(period[:4]), int(period[5:7])
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def first_day(period: Period) -> date:
    """date(2026, 2, 1) for "2026-02"."""
    return date(int(period[:4]), int(period[5:7]), 1)


def last_day(period: Period) -> date:
    """date(2026, 2, 28) for "2026-02"."""
    year, month = int(period[:4]), int(period[5:7])
    return date(year, month, calendar.monthrange(year, month)[1])


def periods_between(first: Period, last: Period) -> tuple[Period, ...]:
    """Inclusive range of periods; empty when `first` is after `last`."""
    out: list[Period] = []
    current = first
    while current <= last:
        out.append(current)
        current = shift_period(current, 1)
    return tuple(out)


def is_period(text: str) -> bool:
    """Whether `text` is a well-formed "YYYY-MM"."""
    return len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit() and 1 <= int(text[5:]) <= 12
