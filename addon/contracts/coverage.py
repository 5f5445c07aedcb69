"""Which tickets a contract bills, and what a changed contract would bill — before it applies.

Both answers come from the engine itself (`route` and `rate_customer`), never from a second
copy of the rules: `covered_tickets` routes the customer's recent entries exactly as a billing
run would; `preview_contract` imports the changed document inside a savepoint, rates the
customer's open work with it, compares that with the rating under the stored contracts, and
rolls the savepoint back, so nothing of the preview is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.billing.periods import period_of_instant
from addon.contracts import import_document
from addon.contracts.engine import core_entry, customer_contracts, route, ticket_info
from addon.invoicing.rating import rate_customer
from addon.models import Contract, Customer, Ticket, TimeEntry
from addon.settings import Settings

OPEN_WORK = ("unbilled", "needs_attention", "cancelled")


def covered_tickets(session: Session, settings: Settings, contract: Contract, since: datetime,
                    limit: int = 200) -> list[Ticket]:
    """The customer's tickets with entries since `since` that this contract bills, newest first."""
    customer = contract.customer
    rows = session.execute(
        select(TimeEntry, Ticket).join(Ticket, Ticket.id == TimeEntry.ticket_id)
        .where(Ticket.customer_id == customer.id, TimeEntry.removed_at.is_(None), TimeEntry.booked_at >= since)
        .order_by(TimeEntry.booked_at.desc()).limit(20_000)).all()
    if not rows:
        return []
    tickets = {t.id: t for _e, t in rows}
    routing = route([core_entry(e, tickets[e.ticket_id]) for e, _t in rows],
                    {t.number: ticket_info(t) for t in tickets.values()},
                    customer_contracts(session, settings, customer), customer.timezone or settings.timezone)
    numbers = {entry.ticket for entry in routing.by_contract.get(contract.code, ())}
    chosen = [t for t in tickets.values() if t.number in numbers]
    return sorted(chosen, key=lambda t: (t.closed_at is None, t.closed_at or t.seen_at), reverse=True)[:limit]


@dataclass(frozen=True)
class PreviewRow:
    """One ticket (or the month) rated with the stored and with the changed contracts."""

    label: str
    before: Decimal | None
    after: Decimal | None
    problems: tuple[str, ...]

    @property
    def difference(self) -> Decimal:
        return (self.after or Decimal(0)) - (self.before or Decimal(0))


def _ratings(session: Session, settings: Settings, customer: Customer, now: datetime) -> dict[str, tuple[
        Decimal | None, tuple[str, ...]]]:
    """Net per open ticket (per-ticket contracts) and for this month (monthly contracts)."""
    result: dict[str, tuple[Decimal | None, tuple[str, ...]]] = {}
    tickets = session.execute(select(Ticket).where(Ticket.customer_id == customer.id,
                                                   Ticket.billing_status.in_(OPEN_WORK),
                                                   Ticket.closed_at.is_not(None))
                              .order_by(Ticket.closed_at.desc()).limit(50)).scalars().all()
    for ticket in tickets:
        rating = rate_customer(session, settings, customer, trigger="per_ticket", ticket=ticket)
        result[f"#{ticket.number}"] = (rating.draft.net if rating.draft else None, tuple(rating.problems))
    period = period_of_instant(now, customer.timezone or settings.timezone)
    monthly = rate_customer(session, settings, customer, trigger="monthly", period=period)
    if monthly.draft is not None or monthly.problems:
        result[period] = (monthly.draft.net if monthly.draft else None, tuple(monthly.problems))
    return result


def preview_contract(session: Session, settings: Settings, helpdesk: str, document: dict[str, Any],
                     customer: Customer, now: datetime, apply_from: date | None = None) -> list[PreviewRow]:
    """What the customer's open work would cost under `document` compared with today.

    Raises ContractImportError (field path in the message) when the document is invalid.
    The import and every rating happen inside a savepoint that is always rolled back.
    """
    before = _ratings(session, settings, customer, now)
    savepoint = session.begin_nested()
    try:
        import_document(session, helpdesk, document, apply_from=apply_from)
        session.flush()
        session.expire_all()
        after = _ratings(session, settings, customer, now)
    finally:
        savepoint.rollback()
        session.expire_all()
    return [PreviewRow(label, before.get(label, (None, ()))[0], after.get(label, (None, ()))[0],
                       after.get(label, (None, ()))[1])
            for label in sorted(set(before) | set(after))]


def recent(now: datetime, days: int = 90) -> datetime:
    return now - timedelta(days=days)
