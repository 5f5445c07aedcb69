"""Step 9 (lines): price each piece, subtract what valid documents already billed, group the rest.

Pricing: T&M minutes at `rate × (1 + pct/100)`; overage at `overage_rate` (else the rate) with the
same factor; covered minutes in a window at `rate × pct/100`; covered minutes outside windows have
no priced line (the fee accounts for them) but are still recorded as billed.

Only the *difference* to what valid documents billed becomes a line; an entry that was billed
before yields a correction line of its own at its original unit price (an issued invoice never
changes). Groups: (kind, ticket, activity, unit price, coverage, service period, correction).

Example (s11): May billed e1 for 30 min at 100.00; a late −20 correction nets e1 to 10 -> 15 min:
the June invoice gets a correction line −0.2500 h × 100.00 = −25.00.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .classify import PreparedEntry
from .contingents import OVERAGE, TIME_AND_MATERIAL, Piece
from .model import Contract
from .money import minutes_to_hours, surcharge_share, surcharged_rate, time_net
from .periods import first_day, last_day
from .rates import RatedEntry
from .results import Allocation, EntryRef, Line, LineKind, Problem

NO_CHARGE = "no_charge"
_ZERO_PRICE = Decimal("0.00")

AllocationKey = tuple[str, str, str, str, Decimal, str, str]


def allocation_key(a: Allocation) -> AllocationKey:
    """Identity of an allocation when comparing with what was billed before."""
    return a.entry_id, a.ticket, a.activity, a.period, a.unit_price, a.coverage, a.surcharge


@dataclass(frozen=True)
class PricedEntry:
    """All allocations of one entry plus the facts the explanation needs."""

    prepared: PreparedEntry
    allocations: tuple[Allocation, ...]
    rate_rule: str | None
    base_rate: Decimal | None
    rounding: Mapping[str, object]
    corrections: tuple[str, ...]
    #: surcharge label ("Nachtzuschlag") → its percentage, so a line can name "25 %"
    percents: Mapping[str, Decimal] = field(default_factory=dict)


def _price(piece: Piece, rated: RatedEntry, contract: Contract) -> Decimal | None:
    """Unit price of one piece, or None when a rate is needed and none was found."""
    pct = piece.segment.percent
    rate = rated.rate.rate if rated.rate else None
    if piece.coverage == TIME_AND_MATERIAL:
        return None if rate is None else surcharged_rate(rate, pct)
    if piece.coverage == OVERAGE:
        retainer = contract.retainer
        base = retainer.overage_rate if retainer and retainer.overage_rate is not None else rate
        return None if base is None else surcharged_rate(base, pct)
    if pct == 0:
        return _ZERO_PRICE
    return None if rate is None else surcharge_share(rate, pct)


def price_entries(rated: Iterable[RatedEntry], pieces: Mapping[str, tuple[Piece, ...]],
                  contract: Contract) -> tuple[tuple[PricedEntry, ...], tuple[Problem, ...]]:
    """Turn pieces into allocations; an entry that needs a missing rate is held with `no rate`."""
    priced: list[PricedEntry] = []
    problems: list[Problem] = []
    for item in rated:
        p = item.split.rounded.netted.prepared
        merged: dict[tuple[Decimal, str, str], int] = {}
        percents: dict[str, Decimal] = {}
        missing = False
        for piece in pieces.get(item.id, ()):
            price = _price(piece, item, contract)
            if price is None:
                missing = True
                break
            key = (price, piece.coverage, piece.segment.label)
            merged[key] = merged.get(key, 0) + piece.minutes
            if piece.segment.label:
                percents[piece.segment.label] = piece.segment.percent
        if missing:
            problems.append(Problem("no rate", f"no rate found for activity {p.activity!r} of agent {p.agent!r}",
                                    entry_ids=(p.id,), ticket=p.ticket))
            continue
        allocations = tuple(Allocation(p.id, p.ticket, p.activity, p.period, price, coverage, label, minutes)
                            for (price, coverage, label), minutes in merged.items() if minutes)
        priced.append(PricedEntry(p, allocations, item.rate.rule if item.rate else None,
                                  item.rate.rate if item.rate else None, item.split.rounded.rounding,
                                  item.split.rounded.netted.corrections, percents))
    return tuple(priced), tuple(problems)


def no_charge_entries(entries: Iterable[PreparedEntry]) -> tuple[PricedEntry, ...]:
    """No-charge entries: their raw minutes at 0.00, no rounding, no minimum, no consumption."""
    return tuple(
        PricedEntry(p, (Allocation(p.id, p.ticket, p.activity, p.period, _ZERO_PRICE, NO_CHARGE, "", p.minutes),),
                    "no charge", _ZERO_PRICE, {}, ())
        for p in entries if p.minutes > 0)


def _kind(coverage: str, unit_price: Decimal) -> LineKind | None:
    if coverage == NO_CHARGE:
        return "no_charge"
    if coverage == TIME_AND_MATERIAL:
        return "time"
    if coverage == OVERAGE:
        return "overage"
    return "surcharge_share" if unit_price != 0 else None


def _coverage_class(coverage: str) -> str:
    return coverage if coverage in (TIME_AND_MATERIAL, OVERAGE, NO_CHARGE) else "covered"


def diff_allocations(new: Iterable[Allocation], old: Iterable[Allocation]) -> tuple[Allocation, ...]:
    """What is still to bill: new minus already billed, per allocation key (may be negative)."""
    balance: dict[AllocationKey, int] = {}
    template: dict[AllocationKey, Allocation] = {}
    for a in new:
        key = allocation_key(a)
        balance[key] = balance.get(key, 0) + a.minutes
        template.setdefault(key, a)
    for a in old:
        key = allocation_key(a)
        balance[key] = balance.get(key, 0) - a.minutes
        template.setdefault(key, a)
    return tuple(Allocation(*k, minutes) for k, minutes in sorted(balance.items(), key=lambda kv: kv[0]) if minutes)


def build_time_lines(todo: Iterable[Allocation], priced: Mapping[str, PricedEntry],
                     billed_before: frozenset[str], contract: Contract) -> tuple[Line, ...]:
    """Group outstanding allocations into lines with their explanation."""
    groups: dict[tuple, list[Allocation]] = {}
    for a in todo:
        kind = _kind(a.coverage, a.unit_price)
        if kind is None:
            continue
        key = (kind, a.ticket, a.activity, a.unit_price, _coverage_class(a.coverage), a.period,
               a.entry_id in billed_before)
        groups.setdefault(key, []).append(a)
    lines: list[Line] = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        kind, ticket, activity, price, _covered_as, period, correction = key
        items = groups[key]
        minutes = sum(a.minutes for a in items)
        if minutes == 0:
            continue
        per_entry: dict[str, int] = {}
        for a in items:
            per_entry[a.entry_id] = per_entry.get(a.entry_id, 0) + a.minutes
        infos = [priced[e] for e in sorted(per_entry) if e in priced]
        days = [i.prepared.day for i in infos] or [first_day(period), last_day(period)]
        refs = tuple(EntryRef(e, priced[e].prepared.minutes if e in priced else 0, m)
                     for e, m in sorted(per_entry.items()))
        explanation: dict[str, object] = {
            "entries": [{"id": r.entry_id, "raw_minutes": r.raw_minutes, "billed_minutes": r.billed_minutes,
                         "derived_start": priced[r.entry_id].prepared.derived if r.entry_id in priced else False}
                        for r in refs],
            "raw_minutes": sum(r.raw_minutes for r in refs),
            "billed_minutes": minutes,
            "rate_rule": sorted({i.rate_rule for i in infos if i.rate_rule}),
            "base_rate": sorted({str(i.base_rate) for i in infos if i.base_rate is not None}),
            "unit_price": str(price),
            "surcharge": sorted({a.surcharge for a in items if a.surcharge}),
            "surcharge_percent": {label: str(i.percents[label]) for i in infos for label in i.percents
                                  if any(a.surcharge == label for a in items)},
            "coverage": sorted({a.coverage for a in items}),
            "rounding": [dict(i.rounding) for i in infos if i.rounding],
            "corrections_netted": sorted({c for i in infos for c in i.corrections}),
        }
        if correction:
            explanation["correction"] = "difference to minutes billed on an earlier invoice, at its unit price"
        lines.append(Line(
            kind=kind, ticket=ticket, activity=activity, label=activity,
            quantity=minutes_to_hours(minutes), unit="HUR", unit_price=price,
            net=_ZERO_PRICE if kind == "no_charge" else time_net(minutes, price),
            vat_rate=contract.vat_rate, service_period=period,
            service_start=min(days), service_end=max(days),
            entries=refs, agents=tuple(sorted({i.prepared.agent for i in infos})), correction=correction,
            explanation=explanation,
        ))
    return tuple(lines)
