"""Invoice numbers: unique and gapless by construction.

A counter row per (series, year) is read `FOR UPDATE` inside the issuing transaction, so a
rolled-back issue gives its number back and two sidecars on PostgreSQL queue on the row lock
(SQLite serialises writers anyway). No database sequences: they leave gaps on rollback. The
`UNIQUE(series, number)` constraint on `invoice` is the last line of defence.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from addon.models import NumberSeries


def format_number(pattern: str, issue_date: date, seq: int) -> str:
    """Fill a pattern such as `RE-{YYYY}-{seq:05}`.

    >>> format_number("RE-{YYYY}-{seq:05}", date(2026, 11, 25), 42)
    'RE-2026-00042'
    """
    return pattern.format(
        YYYY=f"{issue_date.year:04d}", YY=f"{issue_date.year % 100:02d}", MM=f"{issue_date.month:02d}", seq=seq
    )


def next_number(session: Session, series: str, pattern: str, issue_date: date) -> str:
    """Take the next number of `series` for the issue year; caller's transaction owns the lock.

    The counter restarts each year only if the pattern contains the year, else it runs on.
    """
    year = issue_date.year if "{YY" in pattern else 0
    row = session.execute(
        select(NumberSeries).where(NumberSeries.name == series, NumberSeries.year == year).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        row = _create_counter(session, series, year)
    seq = row.next_value
    row.next_value = seq + 1
    session.flush()
    return format_number(pattern, issue_date, seq)


def peek_number(session: Session, series: str, pattern: str, issue_date: date, ahead: int = 0) -> str:
    """The number `next_number` will give after `ahead` more, without taking or locking any:
    a prediction (addon.invoicing.prerender), never a number to print."""
    year = issue_date.year if "{YY" in pattern else 0
    row = session.execute(select(NumberSeries).where(NumberSeries.name == series, NumberSeries.year == year)
                          ).scalar_one_or_none()
    return format_number(pattern, issue_date, (row.next_value if row is not None else 1) + ahead)


def _create_counter(session: Session, series: str, year: int) -> NumberSeries:
    """Insert the counter row; if a concurrent issuer inserted it first, lock theirs."""
    try:
        with session.begin_nested():
            row = NumberSeries(name=series, year=year, next_value=1)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        return session.execute(
            select(NumberSeries).where(NumberSeries.name == series, NumberSeries.year == year).with_for_update()
        ).scalar_one()
