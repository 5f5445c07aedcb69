"""Cancel an issued invoice with a cancellation invoice (Stornorechnung, type 381).

An issued invoice is never changed or deleted (GoBD); a correction is a second document with
its own number (CANCELLATION_NUMBER_PATTERN series) that repeats every original line with
quantity and net negated, names the original's number and date (§31 Abs. 5 UStDV, EN 16931
BG-3) and is itself a validated Factur-X hybrid. Cancelling releases the original's entries:
their `billed_entry` links go, a `released` row per entry keeps the history, and the next sync
run bills them again on a new invoice. The ticket learns of it through the outbox.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.invoicing.audit import record
from addon.invoicing.issue import (
    CANCELLATION_SERIES,
    SERIES,
    Renderer,
    document_files,
    invoice_url,
    queue_delivery,
    seller_party,
    store_documents,
)
from addon.invoicing.lifecycle import LifecycleError
from addon.invoicing.numbering import next_number
from addon.invoicing.snapshot import ACTIVITY_REPORT, CANCELLATION, INVOICE, InvoiceSnapshot
from addon.models import BilledEntry, BilledExtra, BillingHistory, Invoice, InvoiceLine, Ticket, TimeEntry
from addon.settings import Settings
from addon.sync.writeback import queue_cancelled


def cancellation_snapshot(
    original: InvoiceSnapshot, settings: Settings, number: str, issue_date: date, reason: str | None
) -> InvoiceSnapshot:
    """The cancellation's content: the original mirrored, negative, referencing it."""
    notes = list(original.notes)
    if reason:  # the reference to the original is printed and sent as BG-3 anyway
        notes.append(f"{'Grund' if original.language == 'de' else 'Reason'}: {reason}")
    return replace(
        original,
        type_code=CANCELLATION,
        number=number,
        issue_date=issue_date,
        due_date=None,
        seller=seller_party(settings),
        lines=tuple(replace(line, quantity=-line.quantity, net=-line.net) for line in original.lines),
        vat_groups=tuple(replace(g, base=-g.base, amount=-g.amount) for g in original.vat_groups),
        allowances=tuple(replace(a, amount=-a.amount, base=None if a.base is None else -a.base)
                         for a in original.allowances),
        net=-original.net,
        vat=-original.vat,
        gross=-original.gross,
        annex=(),
        notes=tuple(notes),
        payment_terms=None,
        preceding_number=original.number,
        preceding_date=original.issue_date,
    )


def cancel_invoice(
    session: Session,
    settings: Settings,
    number: str,
    reason: str | None,
    render: Renderer,
    now: datetime,
    actor: str,
) -> Invoice:
    """Issue the cancellation of invoice `number`, release its entries, queue the write-back."""
    original = session.execute(
        select(Invoice).where(Invoice.series == SERIES, Invoice.number == number).with_for_update()
    ).scalar_one_or_none()
    if original is None:
        other = session.execute(select(Invoice.type_code).where(Invoice.number == number)).first()
        if other is not None and other[0] == ACTIVITY_REPORT:
            raise LifecycleError(f"{number} is an activity report of no-charge work, not an invoice; "
                                 "there is nothing to cancel")
        if other is not None:
            raise LifecycleError(f"{number} is a cancellation invoice; it cannot be cancelled itself")
        raise LifecycleError(f"there is no invoice {number}")
    if original.type_code != INVOICE or original.state not in ("issued", "sent", "paid"):
        raise LifecycleError(f"invoice {number} is {original.state}; only issued invoices can be cancelled")
    assert original.snapshot is not None
    customer = original.customer
    issue_date = now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date()
    st_number = next_number(session, CANCELLATION_SERIES, settings.cancellation_number_pattern, issue_date)
    snapshot = cancellation_snapshot(InvoiceSnapshot.from_json(original.snapshot), settings, st_number,
                                     issue_date, reason)
    # An e-invoice is corrected in the same form: an XRechnung customer's cancellation is an
    # XRechnung too (BMF 15.10.2024 Rz. 40).
    files = document_files(snapshot, render, xrechnung=customer.xrechnung)
    cancellation = Invoice(
        series=CANCELLATION_SERIES,
        number=st_number,
        type_code=CANCELLATION,
        state="draft",  # issued below, once its lines are in (lines of issued documents are frozen)
        customer_id=original.customer_id,
        ticket_id=original.ticket_id,
        issued_at=now,
        net=snapshot.net,
        vat=snapshot.vat,
        gross=snapshot.gross,
        snapshot=snapshot.to_json(),
        access_key=secrets.token_urlsafe(16),
        created_at=now,
        cancels_id=original.id,
    )
    stored = store_documents(settings, cancellation, files)
    session.add(cancellation)
    session.flush()
    line_ids: dict[int, int] = {}
    for line in original.lines:
        row = InvoiceLine(
            invoice_id=cancellation.id,
            position=line.position,
            description=line.description,
            quantity=-line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net=-line.net,
            explanation={"cancels": f"{number} pos. {line.position}"},
        )
        session.add(row)
        session.flush()
        line_ids[line.id] = row.id
    cancellation.state = "issued"
    original.state = "cancelled"
    original.cancelled_by_id = cancellation.id
    links = session.execute(select(BilledEntry).where(BilledEntry.invoice_id == original.id)).scalars().all()
    ticket_ids = {original.ticket_id} if original.ticket_id else set()
    for link in links:
        session.add(
            BillingHistory(
                entry_id=link.entry_id, invoice_id=cancellation.id, line_id=line_ids.get(link.line_id),
                event="released", raw_minutes=-link.raw_minutes, billed_minutes=-link.billed_minutes, at=now,
            )
        )
        entry = session.get(TimeEntry, link.entry_id)
        if entry is not None:
            ticket_ids.add(entry.ticket_id)
        session.delete(link)
    extras = session.execute(select(BilledExtra).where(BilledExtra.invoice_id == original.id)).scalars().all()
    for extra_link in extras:  # materials and travel are released like time
        session.delete(extra_link)
    session.flush()
    details = {
        "number": st_number, "cancels": number, "reason": reason,
        "released_entries": len(links), "released_extras": len(extras),
    }
    record(session, "cancel", actor, now, original, details)
    record(session, "issue", actor, now, cancellation, {"number": st_number, "cancels": number, "files": stored})
    url = invoice_url(settings, cancellation)
    for ticket_id in sorted(i for i in ticket_ids if i is not None):
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.billing_status = "cancelled"
        ticket.attention_reason = f"{number} cancelled by {st_number}"
        ticket.status_version += 1
        queue_cancelled(session, ticket, cancellation.id, number, st_number, url, reason, now)
    queue_delivery(session, settings, cancellation, customer, now)
    return cancellation
