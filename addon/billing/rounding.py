"""Step 4 (round): billed = max(minimum, round(raw, increment, mode)) for raw > 0.

Scope `entry` rounds each netted entry; scope `ticket` rounds the sum of one ticket's minutes per
(activity, period) across agents and puts the delta on the group's latest entry (minutes removed by
`down`/`nearest` come off the latest entries first). Raw minutes are kept beside the billed ones.

Example (increment 15, up, minimum 15): entries 7, 7, 7, 7 min -> scope entry: 4 × 15 = 60;
scope ticket: 28 -> 30, the latest entry is billed 7 + 2 = 9, the others 7 each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .model import Rounding
from .money import round_minutes
from .netting import NettedEntry
from .results import Exclusion


class RoundedEntry(NamedTuple):
    """A netted entry with its billed minutes and how the rounding unit came to them."""

    netted: NettedEntry
    billed_minutes: int
    rounding: Mapping[str, object]

    @property
    def id(self) -> str:
        return self.netted.prepared.id


@dataclass(frozen=True)
class RoundingResult:
    entries: tuple[RoundedEntry, ...]
    excluded: tuple[Exclusion, ...]


def billed_minutes(raw: int, rule: Rounding, activity: str) -> int:
    """Billed minutes of one rounding unit; 0 raw stays 0 (no charge from nothing).

    >>> rule = Rounding(mode="nearest", increment=10, minimum=10)
    >>> billed_minutes(4, rule, "phone"), billed_minutes(25, rule, "phone"), billed_minutes(0, rule, "phone")
    (10, 30, 0)
    """
    if raw <= 0:
        return 0
    return max(rule.minimum_for(activity), round_minutes(raw, rule.increment, rule.mode))


def _describe(rule: Rounding, scope_key: str, raw: int, billed: int, activity: str) -> dict[str, object]:
    return {"scope": rule.scope, "unit": scope_key, "mode": rule.mode, "increment": rule.increment,
            "minimum": rule.minimum_for(activity), "raw_minutes": raw, "billed_minutes": billed}


def round_entries(entries: Iterable[NettedEntry], rule: Rounding) -> RoundingResult:
    """Apply the contract's rounding; entries billed at 0 minutes are excluded."""
    rounded: list[RoundedEntry] = []
    if rule.scope == "entry":
        minimums: dict[str, int] = {}
        scope, mode, increment = rule.scope, rule.mode, rule.increment
        for item in entries:
            entry = item.prepared.entry
            raw = item.net_minutes
            minimum = minimums.get(entry.activity)
            if minimum is None:
                minimum = minimums[entry.activity] = rule.minimum_for(entry.activity)
            # billed_minutes() and _describe(), inlined: this loop runs once per entry
            billed = 0 if raw <= 0 else max(minimum, round_minutes(raw, increment, mode))
            rounded.append(RoundedEntry(item, billed, {
                "scope": scope, "unit": entry.id, "mode": mode, "increment": increment, "minimum": minimum,
                "raw_minutes": raw, "billed_minutes": billed}))
    else:
        groups: dict[tuple[str, str, str], list[NettedEntry]] = {}
        for item in entries:
            p = item.prepared
            groups.setdefault((p.ticket, p.activity, p.period), []).append(item)
        for key in sorted(groups):
            items = sorted(groups[key], key=lambda n: (n.prepared.start, n.prepared.id))
            raw = sum(n.net_minutes for n in items)
            billed = billed_minutes(raw, rule, key[1])
            shares = [n.net_minutes for n in items]
            delta = billed - raw
            index = len(shares) - 1
            shares[index] += delta
            while shares[index] < 0 and index > 0:  # rounding down took more than the latest entry had
                shares[index - 1] += shares[index]
                shares[index] = 0
                index -= 1
            info = _describe(rule, "|".join(key), raw, billed, key[1])
            rounded.extend(RoundedEntry(n, max(share, 0), info) for n, share in zip(items, shares, strict=True))
    kept = tuple(r for r in rounded if r.billed_minutes > 0)
    zeroed = tuple(r for r in rounded if r.billed_minutes <= 0) if len(kept) < len(rounded) else ()
    # A correction netted only into entries that round to zero ends on no line: say so.
    orphaned = {c for r in zeroed for c in r.netted.corrections}
    if orphaned:
        orphaned -= {c for r in kept for c in r.netted.corrections}
    excluded = tuple(Exclusion(r.id, "rounded to zero") for r in zeroed) + tuple(
        Exclusion(c, "netted into an entry rounded to zero") for c in sorted(orphaned)
    )
    return RoundingResult(kept, excluded)
