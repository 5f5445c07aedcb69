"""Step 5 (split at surcharge windows), evaluated in the contract's local time, DST included.

An entry's interval is cut at local midnights and window edges, converted to instants, so a DST
night has its real length. Per piece the applicable windows give one percentage: the highest
(default) or the sum (`additive`). The rounding/netting delta (billed − interval minutes) is
added to the segment that contains the end; removed minutes come off the end first.

Example (Berlin, night 20-06 +25, Saturday +50, Sunday +100, highest): Sat 2026-10-24 19:30+02:00
to Sun 03:30+01:00 -> [270 min at +50 (Samstag), 270 min at +100 (Sonntag)]: 02:00-03:00 happened
twice that night and is paid twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays

from .model import Contract, Surcharge
from .rounding import RoundedEntry

NO_SURCHARGE = Decimal(0)


@dataclass(frozen=True)
class Segment:
    """A piece of an entry with one surcharge situation. `minutes` are billed minutes."""

    start: datetime
    end: datetime
    minutes: int
    percent: Decimal = NO_SURCHARGE
    windows: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Names of the windows that priced this segment ('' when none)."""
        return "+".join(self.windows)


@dataclass(frozen=True)
class SplitEntry:
    rounded: RoundedEntry
    segments: tuple[Segment, ...]

    @property
    def id(self) -> str:
        return self.rounded.id


@lru_cache(maxsize=256)
def _holiday_calendar(region: str, year: int) -> frozenset[date]:
    """Public holidays of a region like "DE-HE" (country DE, subdivision HE) in one year."""
    country, _, subdivision = region.partition("-")
    try:
        found = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError:  # unknown region: contract_checks flags it, no day counts as holiday
        return frozenset()
    return frozenset(found.keys())


def known_region(region: str) -> bool:
    """Whether the `holidays` package knows a region like "DE-HE"."""
    country, _, subdivision = region.partition("-")
    try:
        holidays.country_holidays(country, subdiv=subdivision or None, years=2000)
    except NotImplementedError:
        return False
    return True


def is_holiday(day: date, region: str | None) -> bool:
    """Whether a local day is a public holiday of the region (False without a region)."""
    return region is not None and day in _holiday_calendar(region, day.year)


def _in_time_range(moment: time, start: time | None, end: time | None) -> bool:
    if start is None or end is None:
        return True
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def window_applies(window: Surcharge, local: datetime, region: str | None) -> bool:
    """Whether a surcharge window covers a local moment."""
    day = local.date()
    if window.kind == "saturday" and day.weekday() != 5:
        return False
    if window.kind == "sunday" and day.weekday() != 6:
        return False
    if window.kind == "holiday" and not is_holiday(day, region):
        return False
    if window.kind == "night" and (window.start is None or window.end is None):
        return False
    return _in_time_range(local.time().replace(tzinfo=None), window.start, window.end)


def _boundaries(start: datetime, end: datetime, contract: Contract, zone: ZoneInfo) -> list[datetime]:
    times = {time(0, 0)}
    for window in contract.surcharges:
        times.update(t for t in (window.start, window.end) if t is not None)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    cuts = {start, end}
    while day <= last:
        for moment in times:
            instant = datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)
            if start < instant < end:
                cuts.add(instant)
        day += timedelta(days=1)
    return sorted(cuts)


def surcharge_at(moment: datetime, contract: Contract) -> tuple[Decimal, tuple[str, ...]]:
    """The percentage and window names that apply at an instant under the contract's policy."""
    local = moment.astimezone(ZoneInfo(contract.timezone))
    applying = [w for w in contract.surcharges if window_applies(w, local, contract.holiday_region)]
    if not applying:
        return NO_SURCHARGE, ()
    if contract.surcharge_policy == "additive":
        return sum((w.percent for w in applying), NO_SURCHARGE), tuple(w.name for w in applying)
    best = max(applying, key=lambda w: w.percent)  # first listed wins a tie
    return best.percent, (best.name,)


def split_interval(start: datetime, end: datetime, contract: Contract) -> tuple[Segment, ...]:
    """Cut [start, end) into segments of constant surcharge (real minutes on instants).

    Inputs are normalised to UTC first: Python subtracts two datetimes of the *same* zone as wall
    clock times, which would give a DST night the wrong length.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not contract.surcharges:
        return (Segment(start, end, int((end - start).total_seconds() // 60)),)
    zone = ZoneInfo(contract.timezone)
    cuts = _boundaries(start, end, contract, zone)
    merged: list[Segment] = []
    for left, right in pairwise(cuts):
        percent, names = surcharge_at(left, contract)
        minutes = int((right - left).total_seconds() // 60)
        if merged and merged[-1].percent == percent and merged[-1].windows == names:
            prev = merged[-1]
            merged[-1] = Segment(prev.start, right, prev.minutes + minutes, percent, names)
        else:
            merged.append(Segment(left, right, minutes, percent, names))
    return tuple(merged)


def apply_delta(segments: tuple[Segment, ...], delta: int) -> tuple[Segment, ...]:
    """Add `delta` minutes to the end segment; a negative delta empties segments latest first.

    >>> s = (Segment(datetime.min, datetime.min, 45), Segment(datetime.min, datetime.min, 100))
    >>> [x.minutes for x in apply_delta(s, -10)], [x.minutes for x in apply_delta(s, -110)]
    ([45, 90], [35])
    """
    items = list(segments)
    if delta >= 0:
        last = items[-1]
        items[-1] = Segment(last.start, last.end, last.minutes + delta, last.percent, last.windows)
        return tuple(items)
    remove = -delta
    for index in range(len(items) - 1, -1, -1):
        seg = items[index]
        taken = min(seg.minutes, remove)
        items[index] = Segment(seg.start, seg.end, seg.minutes - taken, seg.percent, seg.windows)
        remove -= taken
    return tuple(s for s in items if s.minutes > 0)


def split_at_surcharges(entries: Iterable[RoundedEntry], contract: Contract) -> tuple[SplitEntry, ...]:
    """Segments per entry, carrying the entry's billed minutes in total."""
    out: list[SplitEntry] = []
    for item in entries:
        prepared = item.netted.prepared
        segments = split_interval(prepared.start, prepared.end, contract)
        out.append(SplitEntry(item, apply_delta(segments, item.billed_minutes - prepared.minutes)))
    return tuple(out)
