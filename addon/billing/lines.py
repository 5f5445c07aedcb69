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
from decimal import Decimal
from typing import NamedTuple

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


class PricedEntry(NamedTuple):
    """All allocations of one entry plus the facts the explanation needs."""

    prepared: PreparedEntry
    allocations: tuple[Allocation, ...]
    rate_rule: str | None
    base_rate: Decimal | None
    rounding: Mapping[str, object]
    corrections: tuple[str, ...]
    #: surcharge label ("Nachtzuschlag") → its percentage, so a line can name "25 %"
    percents: Mapping[str, Decimal]


class _Prices:
    """Unit prices of pieces, the Decimal arithmetic done once per (rate, percentage) of a run.

    T&M minutes cost `rate × (1 + pct/100)`, overage minutes the same on the overage rate (else
    the rate), covered minutes in a window `rate × pct/100` and outside windows 0.00. None when a
    rate is needed and none was found. Both prices are quantized, so equal rates and percentages
    give equal prices; a zero rate is computed every time (its sign would survive into the price).
    """

    def __init__(self, contract: Contract) -> None:
        retainer = contract.retainer
        self.overage = retainer.overage_rate if retainer and retainer.overage_rate is not None else None
        self.full: dict[tuple[Decimal, Decimal], Decimal] = {}
        self.share: dict[tuple[Decimal, Decimal], Decimal] = {}

    def price(self, coverage: str, pct: Decimal, rate: Decimal | None) -> Decimal | None:
        if coverage in (TIME_AND_MATERIAL, OVERAGE):
            base = self.overage if coverage == OVERAGE and self.overage is not None else rate
            if base is None:
                return None
            if not base:
                return surcharged_rate(base, pct)
            found = self.full.get((base, pct))
            if found is None:
                found = self.full[(base, pct)] = surcharged_rate(base, pct)
            return found
        if pct == 0:
            return _ZERO_PRICE
        if rate is None:
            return None
        if not rate:
            return surcharge_share(rate, pct)
        found = self.share.get((rate, pct))
        if found is None:
            found = self.share[(rate, pct)] = surcharge_share(rate, pct)
        return found


def price_entries(rated: Iterable[RatedEntry], pieces: Mapping[str, tuple[Piece, ...]],
                  contract: Contract) -> tuple[tuple[PricedEntry, ...], tuple[Problem, ...]]:
    """Turn pieces into allocations; an entry that needs a missing rate is held with `no rate`."""
    priced: list[PricedEntry] = []
    problems: list[Problem] = []
    prices = _Prices(contract)
    for item in rated:
        rounded = item.split.rounded
        p = rounded.netted.prepared
        entry = p.entry
        choice = item.rate
        rate = choice.rate if choice else None
        own = pieces.get(entry.id, ())
        if len(own) == 1:  # one piece (the usual case): the loop below without its dict
            piece = own[0]
            segment = piece.segment
            price = prices.price(piece.coverage, segment.percent, rate)
            if price is not None:
                label = segment.label
                priced.append(PricedEntry(
                    p, (Allocation(entry.id, entry.ticket, entry.activity, p.period, price, piece.coverage, label,
                                   piece.minutes),) if piece.minutes else (),
                    choice.rule if choice else None, rate, rounded.rounding, rounded.netted.corrections,
                    {label: segment.percent} if label else {}))
                continue
        merged: dict[tuple[Decimal, str, str], int] = {}
        percents: dict[str, Decimal] = {}
        missing = False
        for piece in own:
            segment = piece.segment
            price = prices.price(piece.coverage, segment.percent, rate)
            if price is None:
                missing = True
                break
            label = segment.label
            key = (price, piece.coverage, label)
            merged[key] = merged.get(key, 0) + piece.minutes
            if label:
                percents[label] = segment.percent
        if missing:
            problems.append(Problem("no rate", f"no rate found for activity {p.activity!r} of agent {p.agent!r}",
                                    entry_ids=(p.id,), ticket=p.ticket))
            continue
        allocations = tuple(Allocation(entry.id, entry.ticket, entry.activity, p.period, price, coverage, label,
                                       minutes)
                            for (price, coverage, label), minutes in merged.items() if minutes)
        priced.append(PricedEntry(p, allocations, choice.rule if choice else None, rate, rounded.rounding,
                                  rounded.netted.corrections, percents))
    return tuple(priced), tuple(problems)


def no_charge_entries(entries: Iterable[PreparedEntry]) -> tuple[PricedEntry, ...]:
    """No-charge entries: their raw minutes at 0.00, no rounding, no minimum, no consumption."""
    return tuple(
        PricedEntry(p, (Allocation(p.id, p.ticket, p.activity, p.period, _ZERO_PRICE, NO_CHARGE, "", p.minutes),),
                    "no charge", _ZERO_PRICE, {}, (), {})
        for p in entries if p.minutes > 0)


def diff_allocations(new: Iterable[Allocation], old: Iterable[Allocation]) -> tuple[Allocation, ...]:
    """What is still to bill: new minus already billed, per allocation key (may be negative).

    An outstanding balance equal to the minutes of the first allocation seen with its key is that
    allocation itself (same fields), so it is passed on instead of being built again.
    """
    balance: dict[AllocationKey, int] = {}
    template: dict[AllocationKey, Allocation] = {}
    for a in new:
        key = (a.entry_id, a.ticket, a.activity, a.period, a.unit_price, a.coverage, a.surcharge)  # allocation_key
        if key in balance:
            balance[key] += a.minutes
        else:
            balance[key] = a.minutes
            template[key] = a
    for a in old:
        key = (a.entry_id, a.ticket, a.activity, a.period, a.unit_price, a.coverage, a.surcharge)
        if key in balance:
            balance[key] -= a.minutes
        else:
            balance[key] = -a.minutes
            template[key] = a
    out: list[Allocation] = []
    for key in sorted(balance):
        minutes = balance[key]
        if minutes:
            first = template[key]
            out.append(first if first.minutes == minutes else Allocation(*key, minutes))
    return tuple(out)


def _group_order(key: tuple) -> tuple[str, ...]:
    """Lines are ordered by the text of their group key."""
    return (str(key[0]), str(key[1]), str(key[2]), str(key[3]), str(key[4]), str(key[5]), str(key[6]))


def build_time_lines(todo: Iterable[Allocation], priced: Mapping[str, PricedEntry],
                     billed_before: frozenset[str], contract: Contract) -> tuple[Line, ...]:
    """Group outstanding allocations into lines with their explanation."""
    groups: dict[tuple, list[Allocation]] = {}
    for a in todo:
        # the line kind of a coverage, and the coverage class ("covered" for any bucket)
        coverage = a.coverage
        if coverage == NO_CHARGE:
            kind: LineKind = "no_charge"
        elif coverage == TIME_AND_MATERIAL:
            kind = "time"
        elif coverage == OVERAGE:
            kind = "overage"
        elif a.unit_price != 0:
            kind, coverage = "surcharge_share", "covered"
        else:
            continue  # covered minutes outside windows: billed (by the fee), on no line
        key = (kind, a.ticket, a.activity, a.unit_price, coverage, a.period, a.entry_id in billed_before)
        group = groups.get(key)
        if group is None:
            groups[key] = [a]
        else:
            group.append(a)
    lines: list[Line] = []
    vat_rate = contract.vat_rate
    hours: dict[int, Decimal] = {}
    nets: dict[tuple[int, Decimal], Decimal] = {}
    for key in sorted(groups, key=_group_order):
        kind, ticket, activity, price, _covered_as, period, correction = key
        items = groups[key]
        only = items[0] if len(items) == 1 else None
        info = None if only is None else priced.get(only.entry_id)
        if only is not None and info is not None:
            # one allocation of one priced entry (almost every line): the general branch below
            # with its one-element sets and sorts written out
            minutes = only.minutes
            if minutes == 0:
                continue
            prepared = info.prepared
            raw = prepared.minutes
            label = only.surcharge
            refs: tuple[EntryRef, ...] = (EntryRef(only.entry_id, raw, minutes),)
            explanation: dict[str, object] = {
                "entries": [{"id": only.entry_id, "raw_minutes": raw, "billed_minutes": minutes,
                             "derived_start": prepared.derived}],
                "raw_minutes": raw,
                "billed_minutes": minutes,
                "rate_rule": [info.rate_rule] if info.rate_rule else [],
                "base_rate": [] if info.base_rate is None else [str(info.base_rate)],
                "unit_price": str(price),
                "surcharge": [label] if label else [],
                "surcharge_percent": {label: str(info.percents[label])} if label in info.percents else {},
                "coverage": [only.coverage],
                "rounding": [dict(info.rounding)] if info.rounding else [],
                "corrections_netted": sorted(set(info.corrections)) if info.corrections else [],
            }
            first = last = prepared.day
            agents: tuple[str, ...] = (prepared.agent,)
        else:
            minutes = sum(a.minutes for a in items)
            if minutes == 0:
                continue
            per_entry: dict[str, int] = {}
            for a in items:
                per_entry[a.entry_id] = per_entry.get(a.entry_id, 0) + a.minutes
            labels = {a.surcharge for a in items}
            infos: list[PricedEntry] = []
            references: list[EntryRef] = []
            described: list[dict[str, object]] = []
            raw_total = 0
            for entry_id in sorted(per_entry):
                found = priced.get(entry_id)
                raw = 0 if found is None else found.prepared.minutes
                billed = per_entry[entry_id]
                raw_total += raw
                references.append(EntryRef(entry_id, raw, billed))
                described.append({"id": entry_id, "raw_minutes": raw, "billed_minutes": billed,
                                  "derived_start": False if found is None else found.prepared.derived})
                if found is not None:
                    infos.append(found)
            refs = tuple(references)
            days = [i.prepared.day for i in infos] or [first_day(period), last_day(period)]
            first, last = min(days), max(days)
            agents = tuple(sorted({i.prepared.agent for i in infos}))
            explanation = {
                "entries": described,
                "raw_minutes": raw_total,
                "billed_minutes": minutes,
                "rate_rule": sorted({i.rate_rule for i in infos if i.rate_rule}),
                "base_rate": sorted({str(i.base_rate) for i in infos if i.base_rate is not None}),
                "unit_price": str(price),
                "surcharge": sorted(label for label in labels if label),
                "surcharge_percent": {label: str(i.percents[label]) for i in infos for label in i.percents
                                      if label in labels},
                "coverage": sorted({a.coverage for a in items}),
                "rounding": [dict(i.rounding) for i in infos if i.rounding],
                "corrections_netted": sorted({c for i in infos for c in i.corrections}),
            }
        if correction:
            explanation["correction"] = "difference to minutes billed on an earlier invoice, at its unit price"
        quantity = hours.get(minutes)
        if quantity is None:
            quantity = hours[minutes] = minutes_to_hours(minutes)
        if kind == "no_charge":
            net = _ZERO_PRICE
        elif not price:  # a zero price keeps its sign in the net (-0.00): not memoised by value
            net = time_net(minutes, price)
        else:
            net = nets.get((minutes, price))
            if net is None:
                net = nets[(minutes, price)] = time_net(minutes, price)
        lines.append(Line(
            kind=kind, ticket=ticket, activity=activity, label=activity,
            quantity=quantity, unit="HUR", unit_price=price, net=net,
            vat_rate=vat_rate, service_period=period,
            service_start=first, service_end=last,
            entries=refs, agents=agents, correction=correction,
            explanation=explanation,
        ))
    return tuple(lines)
