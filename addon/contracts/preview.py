"""What a contract import would bill of the time ticketbill already holds, before it is applied.

A new contract reaches only the time that arrives after its import; applying it to known,
unbilled time (`contracts import --apply-from DATE`) is the admin's explicit decision, and the
preview lists exactly which entries would change terms, so that decision is taken on the facts.
The preview runs the real import inside a savepoint and rolls it back: it writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.contracts import import_document
from addon.contracts.state import hours
from addon.invoicing.rating import unbilled_routing
from addon.models import Customer, Ticket, TimeEntry
from addon.settings import Settings


@dataclass(frozen=True)
class PreviewEntry:
    """One unbilled entry whose contract the import would change."""

    customer: str
    ticket: str
    day: date
    agent: str
    activity: str | None
    minutes: Decimal
    old_contract: str | None  # None: held (no contract claims it)
    new_contract: str | None


@dataclass(frozen=True)
class ImportPreview:
    apply_from: date | None
    entries: tuple[PreviewEntry, ...]

    def lines(self) -> list[str]:
        """Per customer: how many entries and hours change terms, then one line per entry."""
        if not self.entries:
            return ["the import changes the terms of no unbilled time ticketbill holds"]
        out: list[str] = []
        for customer in sorted({e.customer for e in self.entries}):
            mine = [e for e in self.entries if e.customer == customer]
            minutes = int(sum((e.minutes for e in mine), Decimal(0)))
            out.append(f"{len(mine)} unbilled {'entry' if len(mine) == 1 else 'entries'} ({hours(minutes)} h) "
                       f"of {customer} would be billed under the new terms:")
            out += [f"  #{e.ticket} {e.day:%Y-%m-%d} {e.agent} {e.activity or '-'} {hours(int(e.minutes))} h: "
                    f"{e.old_contract or 'held'} → {e.new_contract or 'held'}" for e in mine]
        return out


def preview_import(session: Session, settings: Settings, helpdesk: str, document: dict[str, Any],
                   apply_from: date | None) -> ImportPreview:
    """The unbilled entries whose contract `import_document(document, apply_from)` changes."""
    remote_ids = {str(c.get("customer")) for c in document.get("contracts", []) if isinstance(c, dict)}
    customers = session.execute(select(Customer).where(Customer.helpdesk == helpdesk,
                                                       Customer.remote_id.in_(remote_ids))).scalars().all()
    before = {c.id: unbilled_routing(session, settings, c) for c in customers}
    savepoint = session.begin_nested()
    try:
        import_document(session, helpdesk, document, apply_from=apply_from)
        after = {c.id: unbilled_routing(session, settings, c) for c in customers}
    finally:
        savepoint.rollback()
    session.expire_all()
    changed: list[PreviewEntry] = []
    for customer in customers:
        zone = ZoneInfo(customer.timezone or settings.timezone)
        for entry_id, new in sorted(after[customer.id].items()):
            old = before[customer.id].get(entry_id)
            if old == new:
                continue
            entry = session.get(TimeEntry, entry_id)
            assert entry is not None
            ticket = session.get(Ticket, entry.ticket_id)
            start = entry.start or entry.booked_at - timedelta(minutes=float(max(entry.minutes, Decimal(0))))
            changed.append(PreviewEntry(customer.name, ticket.number if ticket else "?", start.astimezone(zone).date(),
                                        entry.agent, entry.activity, entry.minutes, old, new))
    return ImportPreview(apply_from, tuple(changed))
