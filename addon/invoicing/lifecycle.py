"""The invoice lifecycle after billing: draft → issued → sent → paid, and cancelled.

Customers with `approval_required` get drafts: rated lines and totals, no number, no files, the
entries reserved. `approve` issues a draft (the number is taken then, so numbers stay gapless
and in issue order); `discard` deletes it and frees its entries for the next run. Every action
is written to the audit log in the same transaction. `edit` changes a draft's texts (line
descriptions, notes) before approval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from addon.invoicing.audit import record
from addon.invoicing.issue import Renderer, draft_from_json, draft_to_json, issue_stored_draft
from addon.models import BilledEntry, Invoice, InvoiceLine, Ticket
from addon.settings import Settings
from addon.sync.writeback import set_status


class LifecycleError(ValueError):
    """The requested step is not possible for this document; the message says why."""


def _draft(session: Session, draft_id: int) -> Invoice:
    invoice = session.get(Invoice, draft_id, with_for_update=True)
    if invoice is None:
        raise LifecycleError(f"there is no draft {draft_id}")
    if invoice.state != "draft":
        raise LifecycleError(f"{draft_id} is not a draft but invoice {invoice.number} ({invoice.state})")
    return invoice


def approve_draft(
    session: Session, settings: Settings, draft_id: int, render: Renderer, now: datetime, actor: str
) -> Invoice:
    """Issue a draft: number, snapshot, hybrid PDF + XML, write-back and e-mail queued."""
    invoice = _draft(session, draft_id)
    assert invoice.draft_data is not None
    draft, ticket_ids = draft_from_json(invoice.draft_data)
    tickets = [ticket for ticket_id in ticket_ids if (ticket := session.get(Ticket, ticket_id)) is not None]
    record(session, "approve", actor, now, invoice, {"draft_id": draft_id})
    return issue_stored_draft(session, settings, invoice, invoice.customer, tickets, draft, render, now, actor)


def edit_draft(
    session: Session,
    draft_id: int,
    now: datetime,
    actor: str,
    descriptions: Mapping[int, str] | None = None,
    notes: Sequence[str] | None = None,
) -> Invoice:
    """Change a draft's texts before approval: line descriptions (by position) and the notes.

    Amounts are not edited by hand: every line explains itself from its entries, rate and
    rounding. To change an amount, fix the booking or the contract, discard the draft, and
    the next run rates it again.
    """
    invoice = _draft(session, draft_id)
    assert invoice.draft_data is not None
    draft, ticket_ids = draft_from_json(invoice.draft_data)
    lines = list(draft.lines)
    rows = {row.position: row for row in invoice.lines}
    for position, text in (descriptions or {}).items():
        if not 1 <= position <= len(lines):
            raise LifecycleError(f"draft {draft_id} has lines 1 to {len(lines)}, not {position}")
        if not text.strip():
            raise LifecycleError(f"line {position}: the description must not be empty")
        lines[position - 1] = replace(lines[position - 1], description=text.strip())
        rows[position].description = text.strip()
    edited = replace(draft, lines=tuple(lines), notes=tuple(n.strip() for n in notes if n.strip()) if notes is not None
                     else draft.notes)
    invoice.draft_data = draft_to_json(edited, ticket_ids)
    details = {"draft_id": draft_id, "lines": sorted(descriptions or {}), "notes": notes is not None}
    record(session, "edit", actor, now, invoice, details)
    session.flush()
    return invoice


def discard_draft(session: Session, draft_id: int, now: datetime, actor: str) -> list[int]:
    """Delete a draft and free its entries; returns the freed entry ids."""
    invoice = _draft(session, draft_id)
    freed = list(
        session.execute(select(BilledEntry.entry_id).where(BilledEntry.invoice_id == invoice.id)).scalars()
    )
    ticket_ids = []
    if invoice.draft_data:
        _draft_content, ticket_ids = draft_from_json(invoice.draft_data)
    details = {"draft_id": draft_id, "net": str(invoice.net), "gross": str(invoice.gross), "entries": freed}
    record(session, "discard", actor, now, None, details)
    session.execute(delete(BilledEntry).where(BilledEntry.invoice_id == invoice.id))
    session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    session.delete(invoice)
    session.flush()
    for ticket_id in ticket_ids:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None and ticket.billing_status == "draft":
            set_status(session, ticket, "unbilled", f"draft {draft_id} discarded; billed again next run", now)
    return freed


def _issued(session: Session, number: str) -> Invoice:
    invoice = session.execute(
        select(Invoice).where(Invoice.number == number).with_for_update()
    ).scalar_one_or_none()
    if invoice is None:
        raise LifecycleError(f"there is no invoice {number}")
    return invoice


def mark_paid(session: Session, number: str, now: datetime, actor: str) -> Invoice:
    """Record the payment of an issued or sent invoice."""
    invoice = _issued(session, number)
    if invoice.state not in ("issued", "sent"):
        raise LifecycleError(f"invoice {number} is {invoice.state}; only issued or sent invoices can be paid")
    invoice.state = "paid"
    invoice.paid_at = now
    record(session, "mark_paid", actor, now, invoice, {"number": number})
    return invoice
