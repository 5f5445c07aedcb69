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
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

import holidays

from .model import Contract, Surcharge
from .rounding import RoundedEntry

NO_SURCHARGE = Decimal(0)


class Segment(NamedTuple):
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


class SplitEntry(NamedTuple):
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
    return _day_applies(window, local.date(), region) and _in_time_range(
        local.time().replace(tzinfo=None), window.start, window.end)


def _boundary_times(contract: Contract) -> tuple[time, ...]:
    """Local wall-clock times where the surcharge situation can change: midnight and window edges."""
    times = {time(0, 0)}
    for window in contract.surcharges:
        times.update(t for t in (window.start, window.end) if t is not None)
    return tuple(sorted(times))


def _day_applies(window: Surcharge, day: date, region: str | None) -> bool:
    """The day part of `window_applies`: whether the window can apply at all on a local day."""
    if window.kind == "saturday" and day.weekday() != 5:
        return False
    if window.kind == "sunday" and day.weekday() != 6:
        return False
    if window.kind == "holiday" and not is_holiday(day, region):
        return False
    return not (window.kind == "night" and (window.start is None or window.end is None))


#: A surcharge situation: the percentage and the names of the windows that give it.
State = tuple[Decimal, tuple[str, ...]]
#: A piece of an interval with one situation: (left, right, real minutes, situation).
Piece = tuple[datetime, datetime, int, State]


class _Calendar:
    """The surcharge situations of one contract, memoised per local day (one per split run).

    Between two consecutive boundary times of a local day (`_boundary_times`) every window's time
    test is constant, so the situation at local (day, t) is the one at the last boundary time <= t;
    it is computed once per (day, boundary time), not per entry. The cut instants of a local day
    (`datetime.combine` of its boundary times on the zone, as UTC instants) are computed once per
    day too, each with the situation that starts there. The results are those of `surcharge_at`
    and of cutting each entry afresh; tests/billing/test_surcharge_memo.py pins that.
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.zone = ZoneInfo(contract.timezone)
        self.times = _boundary_times(contract)
        self._states: dict[int, tuple[tuple[time, State], ...]] = {}
        self._cuts: dict[int, tuple[tuple[datetime, State], ...]] = {}
        self._combined: dict[tuple[int, ...], State] = {}
        self._windows: dict[tuple[int, int], tuple[tuple[datetime, State], ...]] = {}

    def _combine(self, applying: tuple[int, ...]) -> State:
        """The situation when the windows at these indexes of `contract.surcharges` apply."""
        found = self._combined.get(applying)
        if found is None:
            windows = [self.contract.surcharges[i] for i in applying]
            if not windows:
                found = NO_SURCHARGE, ()
            elif self.contract.surcharge_policy == "additive":
                found = sum((w.percent for w in windows), NO_SURCHARGE), tuple(w.name for w in windows)
            else:
                best = max(windows, key=lambda w: w.percent)  # first listed wins a tie
                found = best.percent, (best.name,)
            self._combined[applying] = found
        return found

    def _day_states(self, ordinal: int) -> tuple[tuple[time, State], ...]:
        """(boundary time, situation from then on) of a local day, latest boundary first."""
        table = self._states.get(ordinal)
        if table is None:
            day = date.fromordinal(ordinal)
            region = self.contract.holiday_region
            windows = [(i, w) for i, w in enumerate(self.contract.surcharges) if _day_applies(w, day, region)]
            table = tuple((moment, self._combine(tuple(i for i, w in windows
                                                          if _in_time_range(moment, w.start, w.end))))
                          for moment in reversed(self.times))
            self._states[ordinal] = table
        return table

    def state_local(self, local: datetime) -> State:
        """The situation at a moment given in the contract's zone."""
        moment = local.time()
        for boundary, state in self._day_states(local.toordinal()):
            if moment >= boundary:
                return state
        raise AssertionError("midnight is a boundary of every day")  # pragma: no cover

    def state_at(self, instant: datetime) -> State:
        """The situation at an instant, `surcharge_at(instant, contract)`."""
        return self.state_local(instant.astimezone(self.zone))

    def day_cuts(self, ordinal: int) -> tuple[tuple[datetime, State], ...]:
        """The boundary instants (UTC) of a local day, in order, with the situation starting at each."""
        cuts = self._cuts.get(ordinal)
        if cuts is None:
            day = date.fromordinal(ordinal)
            instants = sorted({datetime.combine(day, moment, tzinfo=self.zone).astimezone(UTC)
                               for moment in self.times})
            cuts = tuple((instant, self.state_at(instant)) for instant in instants)
            self._cuts[ordinal] = cuts
        return cuts

    def _window(self, first: int, last: int) -> tuple[tuple[datetime, State], ...]:
        """The boundary instants of the local days first-1 .. last+1 (ordinals), deduplicated and
        in order, each with the situation starting there."""
        key = (first, last)
        window = self._windows.get(key)
        if window is None:
            found: dict[datetime, State] = {}
            for ordinal in range(first - 1, last + 2):
                found.update(self.day_cuts(ordinal))
            window = self._windows[key] = tuple(sorted(found.items(), key=_instant))
        return window

    def pieces(self, start: datetime, end: datetime) -> list[Piece]:
        """[start, end) (UTC, start < end) cut at the boundary instants of the local days from the
        day before its start to the day after its end, merged where the situation stays (the
        minutes of a merged piece are the sum of its parts' whole minutes, its situation the
        last part's).

        Like the cut list always did, an empty interval has no piece and a reversed one is the
        single piece [end, start)."""
        if not start < end:
            return [] if start == end else [(end, start, int((start - end).total_seconds() // 60),
                                              self.state_at(end))]
        first = start.astimezone(self.zone)
        state = self.state_local(first)
        out: list[Piece] = []
        left = begin = start
        minutes = 0
        for instant, following in self._window(first.toordinal(), end.astimezone(self.zone).toordinal()):
            if instant <= start:
                continue
            if instant >= end:
                break
            minutes += int((instant - left).total_seconds() // 60)
            left = instant
            if not (following[0] == state[0] and following[1] == state[1]):
                out.append((begin, instant, minutes, state))
                begin, minutes = instant, 0
            state = following
        out.append((begin, end, minutes + int((end - left).total_seconds() // 60), state))
        return out

    def segments(self, start: datetime, end: datetime, delta: int) -> tuple[Segment, ...]:
        """`apply_delta(split_interval(start, end), delta)` for UTC instants."""
        pieces = self.pieces(start, end)
        if len(pieces) == 1 and delta >= 0:
            left, right, minutes, (percent, names) = pieces[0]
            return (Segment(left, right, minutes + delta, percent, names),)
        return _segments(pieces, delta)


def _instant(item: tuple[datetime, State]) -> datetime:
    return item[0]


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


def _segments(pieces: list[Piece], delta: int) -> tuple[Segment, ...]:
    """`apply_delta` on raw pieces, building each Segment once."""
    minutes = [p[2] for p in pieces]
    if not pieces:
        return ()
    if delta >= 0:
        minutes[-1] += delta
        return tuple(Segment(p[0], p[1], m, *p[3]) for p, m in zip(pieces, minutes, strict=True))
    remove = -delta
    for index in range(len(minutes) - 1, -1, -1):
        taken = min(minutes[index], remove)
        minutes[index] -= taken
        remove -= taken
    return tuple(Segment(p[0], p[1], m, *p[3]) for p, m in zip(pieces, minutes, strict=True) if m > 0)


def split_interval(start: datetime, end: datetime, contract: Contract,
                   calendar: _Calendar | None = None) -> tuple[Segment, ...]:
    """Cut [start, end) into segments of constant surcharge (real minutes on instants).

    Inputs are normalised to UTC first: Python subtracts two datetimes of the *same* zone as wall
    clock times, which would give a DST night the wrong length. `calendar` is the memo of a run
    over many entries (`split_at_surcharges`); without it one is made for this interval.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not contract.surcharges:
        return (Segment(start, end, int((end - start).total_seconds() // 60)),)
    return _segments((calendar or _Calendar(contract)).pieces(start, end), 0)


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
    calendar = _Calendar(contract) if contract.surcharges else None
    for item in entries:
        prepared = item.netted.prepared
        delta = item.billed_minutes - prepared.minutes
        if calendar is None:
            segments = apply_delta(split_interval(prepared.start, prepared.end, contract), delta)
        else:
            segments = calendar.segments(prepared.start.astimezone(UTC), prepared.end.astimezone(UTC), delta)
        out.append(SplitEntry(item, segments))
    return tuple(out)
