"""ticketbill's pure billing rules engine (functional core; no I/O, no clock, no framework).

Public API::

    bill(BillingRequest) -> BillingResult          # an invoice (draft + state once issued)
    cancel(BillingState, invoice_id, document_id) -> BillingResult   # a Storno
    time_and_material(...) -> Contract            # the simple per-ticket T&M contract
    bill_ticket(...) -> BillingResult              # trigger per_ticket: one invoice per closed ticket
    route_entries(entries, tickets, claims) -> Routing   # several contracts per customer

Money is `Decimal`; datetimes are aware instants; periods are "YYYY-MM" strings in the contract's
time zone. Review flags come back as `Problem` records, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from .model import (
    Agent,
    Contract,
    Discount,
    Extra,
    Period,
    PrepaidBlock,
    RateRule,
    Retainer,
    Rollover,
    Rounding,
    Surcharge,
    TimeEntry,
    TravelFlat,
)
from .pipeline import PIPELINE, BillingRequest, bill, cancel, run_pipeline
from .results import (
    Allocation,
    BillingResult,
    BillingState,
    ContingentSnapshot,
    Document,
    EntryRef,
    Exclusion,
    Line,
    Problem,
    Totals,
    VatBreakdown,
)
from .selection import ContractClaim, Routing, TicketInfo, route_entries

__all__ = [
    "PIPELINE",
    "Agent",
    "Allocation",
    "BillingRequest",
    "BillingResult",
    "BillingState",
    "ContingentSnapshot",
    "Contract",
    "ContractClaim",
    "Discount",
    "Document",
    "EntryRef",
    "Exclusion",
    "Extra",
    "Line",
    "Period",
    "PrepaidBlock",
    "Problem",
    "RateRule",
    "Retainer",
    "Rollover",
    "Rounding",
    "Routing",
    "Surcharge",
    "TicketInfo",
    "TimeEntry",
    "Totals",
    "TravelFlat",
    "VatBreakdown",
    "bill",
    "bill_ticket",
    "cancel",
    "route_entries",
    "run_pipeline",
    "time_and_material",
]


def time_and_material(
    *,
    global_rate: Decimal,
    customer_rate: Decimal | None = None,
    increment: int = 15,
    internal_activities: Iterable[str] = (),
    timezone: str = "Europe/Berlin",
    vat_rate: Decimal = Decimal("19"),
    holiday_region: str | None = None,
    contract_id: str = "default",
) -> Contract:
    """The shell's first contract: hourly rate per customer with a global default, rounding up
    per entry to `increment` minutes, some activity types always internal.

    >>> c = time_and_material(global_rate=Decimal("90.00"), customer_rate=Decimal("105.00"),
    ...                       internal_activities={"internal"})
    >>> [r.rate for r in c.rates], c.rounding.increment
    ([Decimal('105.00'), Decimal('90.00')], 15)
    """
    rates = [RateRule(customer_rate, "customer")] if customer_rate is not None else []
    rates.append(RateRule(global_rate, "global"))
    return Contract(
        id=contract_id, timezone=timezone, holiday_region=holiday_region, vat_rate=vat_rate,
        rounding=Rounding(scope="entry", mode="up", increment=increment),
        rates=tuple(rates), internal_activities=frozenset(internal_activities),
    )


def bill_ticket(
    contract: Contract,
    agents: Mapping[str, Agent],
    ticket: str,
    entries: Iterable[TimeEntry],
    *,
    state: BillingState | None = None,
    extras: Iterable[Extra] = (),
    document_id: str = "draft",
) -> BillingResult:
    """Trigger per_ticket: bill everything of one (closed) ticket not yet billed, whatever period."""
    return bill(BillingRequest(
        contract=contract, agents=agents, entries=tuple(entries), extras=tuple(extras), period=None,
        tickets=frozenset({ticket}), state=state or BillingState(), document_id=document_id,
    ))
