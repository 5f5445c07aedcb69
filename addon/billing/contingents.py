"""Step 7 (contingents): retainer buckets consumed by billed minutes.

Buckets of a period: its allowance, rollovers of earlier periods, prepaid blocks. Entries of
covered activities consume in order of (local start, entry id); buckets drain earliest expiry
first, ties rollover < block < allowance. An entry crossing the end of the buckets is split; the
rest is *overage*.

Example (s01): allowance 600, billed minutes 150, 180, 105, 120, then e5 90 and e6 45 -> e5 takes
the last 45 min of the allowance and 45 overage, e6 is all overage; snapshot consumed
{allowance: 600}, remaining {allowance: 0}, overage 90.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from .model import Period, Retainer
from .periods import first_day, last_day, periods_between, shift_period
from .rates import RatedEntry
from .results import ContingentSnapshot
from .surcharges import Segment

TIME_AND_MATERIAL = "tm"
OVERAGE = "overage"
_ORDER = {"rollover": 0, "block": 1, "allowance": 2}


class Piece(NamedTuple):
    """Minutes of one segment with one coverage: "tm", "overage" or a bucket name."""

    segment: Segment
    minutes: int
    coverage: str


@dataclass(frozen=True)
class ContingentResult:
    pieces: Mapping[str, tuple[Piece, ...]]
    snapshots: tuple[ContingentSnapshot, ...]


@dataclass
class _Bucket:
    name: str
    expiry: date
    left: int
    valid_until: date | None = None

    @property
    def sort_key(self) -> tuple[date, int, str]:
        return self.expiry, _ORDER[self.name.split(":")[0]], self.name


def _tm(item: RatedEntry) -> tuple[Piece, ...]:
    return tuple(Piece(s, s.minutes, TIME_AND_MATERIAL) for s in item.split.segments)


def _start_and_id(item: tuple[datetime, str, date, tuple[Segment, ...]]) -> tuple[datetime, str]:
    return item[0], item[1]


def allocate_contingents(entries: Iterable[RatedEntry], retainer: Retainer | None,
                         up_to: Period | None) -> ContingentResult:
    """Split every entry's segments into covered/overage pieces and compute each period's ledger.

    The ledger is recomputed from all entries since the retainer start, so it is the same whatever
    order runs happen in; the shell stores the snapshots for display.
    """
    entries = tuple(entries)
    if retainer is None:
        return ContingentResult({e.id: _tm(e) for e in entries}, ())
    pieces: dict[str, tuple[Piece, ...]] = {}
    # per period: (local start, entry id, local day, segments) of the entries that consume buckets
    by_period: dict[Period, list[tuple[datetime, str, date, tuple[Segment, ...]]]] = {}
    start_period = retainer.start_period
    for item in entries:
        prepared = item.split.rounded.netted.prepared
        entry = prepared.entry
        if prepared.period < start_period or not retainer.covers(entry.activity):
            pieces[entry.id] = _tm(item)
        else:
            consuming = (prepared.start, entry.id, prepared.day, item.split.segments)
            group = by_period.get(prepared.period)
            if group is None:
                by_period[prepared.period] = [consuming]
            else:
                group.append(consuming)
    last = up_to or max(by_period, default=retainer.start_period)
    blocks = {b.id: _Bucket(f"block:{b.id}", b.valid_until, b.minutes, b.valid_until)
              for b in retainer.prepaid_blocks}
    rollovers: list[tuple[Period, _Bucket]] = []
    snapshots: list[ContingentSnapshot] = []
    for period in periods_between(retainer.start_period, last):
        allowance = _Bucket("allowance", last_day(period), retainer.included_minutes)
        usable = [b for origin, b in rollovers if period <= shift_period(origin, retainer.rollover.periods)
                  ] if retainer.rollover else []
        usable += [b for b in blocks.values() if b.left > 0 and first_day(period) <= b.expiry]
        usable.append(allowance)
        usable.sort(key=lambda b: b.sort_key)
        start_left = {b.name: b.left for b in usable}
        overage = 0
        ordered = sorted(by_period.get(period, ()), key=_start_and_id)
        active = [b for b in usable if b.left > 0]  # a bucket drained in this period stays empty
        for _start, entry_id, day, segments in ordered:
            out: list[Piece] = []
            for segment in segments:
                need = segment.minutes
                for bucket in active:
                    if need == 0:
                        break
                    if bucket.left == 0 or (bucket.valid_until is not None and day > bucket.valid_until):
                        continue
                    take = min(bucket.left, need)
                    bucket.left -= take
                    need -= take
                    out.append(Piece(segment, take, bucket.name))
                if need:
                    overage += need
                    out.append(Piece(segment, need, OVERAGE))
            pieces[entry_id] = tuple(out)
            if active and out and out[-1].coverage == OVERAGE:  # took all it could: drop drained buckets
                active = [b for b in active if b.left > 0]
        rollover_out = 0
        if retainer.rollover is not None:
            rollover_out = min(allowance.left, retainer.rollover.max_minutes)
            rollovers = [(o, b) for o, b in rollovers if shift_period(o, retainer.rollover.periods) > period]
            if rollover_out > 0:
                expiry = last_day(shift_period(period, retainer.rollover.periods))
                rollovers.append((period, _Bucket(f"rollover:{period}", expiry, rollover_out)))
        snapshots.append(ContingentSnapshot(
            period,
            {b.name: start_left[b.name] - b.left for b in usable},
            {b.name: b.left for b in usable},
            overage,
            rollover_out,
        ))
    return ContingentResult(pieces, tuple(snapshots))
