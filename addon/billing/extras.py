"""Step 8 (extras): materials with markup, travel by distance, travel flat fee per visit.

Example: SSD cost 87.40, category hardware (+0.20) -> unit 104.88, 2 pieces = 209.76; patch cable
3.99 at +0.35 = 5.3865 -> 5.39 (rounded before multiplying), 3 pieces = 16.17. A visit is one
(ticket, local day) with billable time of a travel activity: flat 49.00, one line per visit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .model import Contract, Extra
from .money import marked_up_price, quantity_net, round_quantity
from .periods import period_of_day
from .results import Line

_ONE = Decimal(1)
_ONE_PIECE = Decimal("1.0000")


@dataclass(frozen=True)
class Visit:
    """An on-site visit: a ticket on a local day, with the entries that make it one."""

    ticket: str
    day: date
    entry_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.ticket}|{self.day.isoformat()}"


def markup_for(extra: Extra, markups: Mapping[str, Decimal]) -> Decimal:
    """The item's own markup, else its category's, else 0 (travel defaults to 0)."""
    if extra.markup is not None:
        return extra.markup
    if extra.kind == "material" and extra.category is not None:
        return markups.get(extra.category, Decimal(0))
    return Decimal(0)


def extra_line(extra: Extra, contract: Contract) -> Line:
    """One line per extra: unit price rounded to cents first, then × quantity."""
    markup = markup_for(extra, contract.material_markup)
    price = marked_up_price(extra.cost, markup)
    is_travel = extra.kind == "travel"
    return Line(
        kind="travel_km" if is_travel else "material",
        ticket=extra.ticket,
        activity=None,
        label=extra.description,
        quantity=round_quantity(extra.quantity),
        unit="KMT" if is_travel else "C62",
        unit_price=price,
        net=quantity_net(extra.quantity, price),
        vat_rate=contract.vat_rate,
        service_period=period_of_day(extra.date),
        service_start=extra.date,
        service_end=extra.date,
        explanation={"extra": extra.id, "cost": str(extra.cost), "markup": str(markup),
                     "category": extra.category, "unit_price": "round_half_up(cost × (1 + markup), 2)"},
    )


def find_visits(billed: Iterable[tuple[str, str, date, str]], contract: Contract) -> tuple[Visit, ...]:
    """Visits from billed entries given as (entry id, ticket, local day, activity)."""
    if contract.travel is None:
        return ()
    found: dict[tuple[str, date], list[str]] = {}
    for entry_id, ticket, day, activity in billed:
        if activity in contract.travel.activities:
            found.setdefault((ticket, day), []).append(entry_id)
    return tuple(Visit(t, d, tuple(sorted(ids))) for (t, d), ids in sorted(found.items()))


def visit_line(visit: Visit, contract: Contract) -> Line:
    """The flat travel fee of one visit (quantity 1, unit C62)."""
    assert contract.travel is not None
    fee = contract.travel.flat_per_visit
    return Line(
        kind="travel_visit", ticket=visit.ticket, activity=None, label="travel flat fee",
        quantity=_ONE_PIECE, unit="C62", unit_price=fee, net=quantity_net(_ONE, fee),
        vat_rate=contract.vat_rate, service_period=period_of_day(visit.day), service_start=visit.day,
        service_end=visit.day,
        explanation={"visit": visit.key, "entries": list(visit.entry_ids),
                     "rule": "one flat fee per (ticket, local day) with billable on-site time"},
    )
