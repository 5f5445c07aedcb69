"""Step 1 (classify) with input validation: resolve intervals, sort entries into internal,
no-charge and billable, and turn bad input into review flags instead of exceptions.

Example: an entry with `booked_at=2026-10-25T03:30+01:00, minutes=540` and no start becomes a
*derived* entry starting 2026-10-24T19:30+02:00 (subtraction on instants, not on wall time);
`internal=True` puts it into `internal`; an end before its start is held with flag
`end before start`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .model import Agent, Contract, Period, TimeEntry
from .periods import period_of_day
from .results import Exclusion, Problem

MAX_ENTRY_MINUTES = 24 * 60


class PreparedEntry(NamedTuple):
    """An entry with a resolved interval (UTC instants, whole minutes) and its local period.

    For a correction (negative minutes) `end == start` and `minutes < 0`.
    """

    entry: TimeEntry
    start: datetime
    end: datetime
    minutes: int
    derived: bool
    period: Period
    day: date
    role: str | None

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def ticket(self) -> str:
        return self.entry.ticket

    @property
    def agent(self) -> str:
        return self.entry.agent

    @property
    def activity(self) -> str:
        return self.entry.activity


@dataclass(frozen=True)
class Classified:
    """Result of step 1: entries by class, entries held back, and the flags raised."""

    billable: tuple[PreparedEntry, ...]
    no_charge: tuple[PreparedEntry, ...]
    internal: tuple[PreparedEntry, ...]
    held: tuple[Exclusion, ...]
    problems: tuple[Problem, ...]


def _to_minute(instant: datetime) -> datetime:
    """UTC instant truncated to the whole minute (helpdesks book minutes; seconds are noise).

    A UTC datetime already on the minute is its own result (astimezone(UTC) returns it, replace()
    would build an equal copy)."""
    if instant.tzinfo is UTC and not instant.second and not instant.microsecond and type(instant) is datetime:
        return instant
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


def _aware(value: datetime | None) -> bool:
    return value is None or (value.tzinfo is not None and value.utcoffset() is not None)


def resolve_interval(entry: TimeEntry) -> tuple[datetime, datetime, int, bool] | Problem:
    """(start, end, signed minutes, derived) of an entry, or the problem that prevents it.

    >>> from datetime import datetime, timezone as tz
    >>> e = TimeEntry("e1", "t", "a", "x", booked_at=datetime(2026, 1, 1, 10, tzinfo=tz.utc), minutes=30)
    >>> resolve_interval(e)[0].isoformat(), resolve_interval(e)[3]
    ('2026-01-01T09:30:00+00:00', True)
    """
    ids = (entry.id,)
    if not (_aware(entry.start) and _aware(entry.end) and _aware(entry.booked_at)):
        return Problem("naive timestamp", "a timestamp has no UTC offset", entry_ids=ids, ticket=entry.ticket)
    if entry.start is not None and entry.end is not None:
        start, end = _to_minute(entry.start), _to_minute(entry.end)
        minutes = int((end - start).total_seconds() // 60)
        if minutes < 0:
            return Problem("end before start", f"the entry ends {-minutes} min before it starts",
                           entry_ids=ids, ticket=entry.ticket, minutes=minutes)
        if entry.minutes is not None and entry.minutes != minutes:
            return Problem("inconsistent duration",
                           f"start/end give {minutes} min but the entry says {entry.minutes} min",
                           entry_ids=ids, ticket=entry.ticket, minutes=entry.minutes)
        return start, end, minutes, False
    if entry.minutes is None:
        return Problem("no interval", "the entry has neither start+end nor minutes", entry_ids=ids,
                       ticket=entry.ticket)
    if entry.start is not None:
        start = _to_minute(entry.start)
        if entry.minutes < 0:
            return start, start, entry.minutes, False
        return start, start + timedelta(minutes=entry.minutes), entry.minutes, False
    if entry.booked_at is not None:
        if entry.minutes < 0:
            return Problem("correction without start",
                           "a negative booking needs a start to decide its period", entry_ids=ids,
                           ticket=entry.ticket, minutes=entry.minutes)
        end = _to_minute(entry.booked_at)
        return end - timedelta(minutes=entry.minutes), end, entry.minutes, True
    return Problem("no interval", "the entry has minutes but neither start nor booked_at", entry_ids=ids,
                   ticket=entry.ticket)


def _check_duration(entry: TimeEntry, minutes: int) -> Problem | None:
    if minutes == 0:
        return Problem("zero duration", "the entry lasts 0 minutes", entry_ids=(entry.id,), ticket=entry.ticket,
                       minutes=0)
    if abs(minutes) > MAX_ENTRY_MINUTES:
        return Problem("absurd duration", f"{minutes} min is more than 24 h in one entry",
                       entry_ids=(entry.id,), ticket=entry.ticket, minutes=minutes)
    return None


def overlap_problems(entries: Iterable[PreparedEntry]) -> tuple[Problem, ...]:
    """Warn when one agent's positive entries overlap in time (double booking is likely).

    e1 09:00-10:00 and e2 09:30-10:30 of the same agent -> one `overlap` warning naming both.
    """
    by_agent: dict[str, list[PreparedEntry]] = {}
    for item in entries:
        if item.minutes > 0:
            by_agent.setdefault(item.agent, []).append(item)
    found: list[Problem] = []
    for agent, items in sorted(by_agent.items()):
        items.sort(key=lambda p: (p.start, p.id))
        latest: PreparedEntry | None = None
        for item in items:
            if latest is not None and item.start < latest.end:
                found.append(Problem(
                    "overlap", f"entries of agent {agent} overlap in time", severity="warning",
                    entry_ids=(latest.id, item.id), ticket=item.ticket))
            if latest is None or item.end > latest.end:
                latest = item
    return tuple(found)


def classify(entries: Iterable[TimeEntry], contract: Contract, agents: Mapping[str, Agent]) -> Classified:
    """Sort entries into internal / no-charge / billable; hold invalid ones with a reason.

    Internal means the entry's flag or an activity type listed in `contract.internal_activities`.
    """
    billable: list[PreparedEntry] = []
    no_charge: list[PreparedEntry] = []
    internal: list[PreparedEntry] = []
    held: list[Exclusion] = []
    problems: list[Problem] = []
    entries = tuple(entries)
    zone = ZoneInfo(contract.timezone)
    periods: dict[date, Period] = {}
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.id] = seen.get(entry.id, 0) + 1
    for entry in entries:
        resolved = resolve_interval(entry)
        problem = resolved if isinstance(resolved, Problem) else _check_duration(entry, resolved[2])
        if seen[entry.id] > 1:
            problem = Problem("duplicate entry id", f"{seen[entry.id]} entries share the id {entry.id!r}",
                              entry_ids=(entry.id,), ticket=entry.ticket)
        if problem is None and entry.agent not in agents:
            problem = Problem("unknown agent", f"agent {entry.agent!r} is not known", entry_ids=(entry.id,),
                              ticket=entry.ticket)
        is_internal = entry.internal or entry.activity in contract.internal_activities
        if (problem is None and not is_internal and contract.known_activities is not None
                and entry.activity not in contract.known_activities):
            problem = Problem("unknown activity", f"activity {entry.activity!r} is not known",
                              entry_ids=(entry.id,), ticket=entry.ticket)
        if problem is not None or isinstance(resolved, Problem):
            problems.append(problem)
            held.append(Exclusion(entry.id, problem.code))
            continue
        start, end, minutes, derived = resolved
        day = start.astimezone(zone).date()  # local_date(start, contract.timezone)
        period = periods.get(day)
        if period is None:
            period = periods[day] = period_of_day(day)
        agent = agents[entry.agent]
        prepared = PreparedEntry(entry, start, end, minutes, derived, period, day, agent.role)
        if is_internal:
            internal.append(prepared)
        elif entry.no_charge:
            no_charge.append(prepared)
        else:
            billable.append(prepared)
    return Classified(tuple(billable), tuple(no_charge), tuple(internal), tuple(held), tuple(problems))
