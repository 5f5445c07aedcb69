"""Step 3 (net corrections): negative bookings reduce positive entries *before* rounding.

Why before: Zammad's "book −100" workaround only works if the correction is netted against the
raw minutes; rounding first would leave a phantom quarter hour on every corrected entry.

Example, group (5001, anna, remote, 2026-05): e1 +50 (10:00) and e2 −20 -> e1 nets to 30 min,
e2 is absorbed into e1. Group 5003: e5 +30, e6 −45 -> e5 reduced to 0, flag `negative net` −15.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from .classify import PreparedEntry
from .results import Exclusion, Problem


class NettedEntry(NamedTuple):
    """A positive entry after netting: `net_minutes` ≤ its raw minutes; `corrections` names the
    negative bookings netted into it."""

    prepared: PreparedEntry
    net_minutes: int
    corrections: tuple[str, ...] = ()


@dataclass(frozen=True)
class NettingResult:
    entries: tuple[NettedEntry, ...]
    excluded: tuple[Exclusion, ...]
    problems: tuple[Problem, ...]


def net_corrections(billable: Iterable[PreparedEntry]) -> NettingResult:
    """Net negatives per (ticket, agent, activity, period), latest positive start first."""
    groups: dict[tuple[str, str, str, str], list[PreparedEntry]] = {}
    for item in billable:
        entry = item.entry
        key = (entry.ticket, entry.agent, entry.activity, item.period)
        group = groups.get(key)
        if group is None:
            groups[key] = [item]
        else:
            group.append(item)
    netted: list[NettedEntry] = []
    excluded: list[Exclusion] = []
    problems: list[Problem] = []
    for key in sorted(groups):
        items = groups[key]
        if len(items) == 1 and items[0].minutes > 0:  # a lone positive entry: nothing to net
            netted.append(NettedEntry(items[0], items[0].minutes))
            continue
        positives = sorted((p for p in items if p.minutes > 0), key=lambda p: (p.start, p.id))
        negatives = sorted((p for p in items if p.minutes < 0), key=lambda p: (p.start, p.id))
        if not negatives:
            netted.extend(NettedEntry(p, p.minutes) for p in positives)
            continue
        to_remove = -sum(p.minutes for p in negatives)
        correction_ids = tuple(p.id for p in negatives)
        reduced: dict[str, int] = {}
        for item in reversed(positives):
            taken = min(item.minutes, to_remove)
            reduced[item.id] = item.minutes - taken
            to_remove -= taken
        survivors = [p for p in positives if reduced.get(p.id, p.minutes) > 0]
        for item in positives:
            left = reduced.get(item.id, item.minutes)
            if left > 0:
                touched = item.id in reduced and left < item.minutes
                netted.append(NettedEntry(item, left, correction_ids if touched else ()))
            else:
                excluded.append(Exclusion(item.id, "netted to zero"))
        if to_remove > 0:
            problems.append(Problem(
                "negative net", f"corrections exceed the booked time by {to_remove} min",
                entry_ids=correction_ids, ticket=key[0], minutes=-to_remove))
            excluded.extend(Exclusion(p.id, "negative net") for p in negatives)
        elif not survivors:
            excluded.extend(Exclusion(p.id, "netted to zero") for p in negatives)
    return NettingResult(tuple(netted), tuple(excluded), tuple(problems))
