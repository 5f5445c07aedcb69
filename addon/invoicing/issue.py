"""Issue an invoice: number, snapshot, PDF, entry links and write-back, in one transaction.

The caller passes a `Draft` (rated lines and totals from the pure billing core). Issuing
copies seller and buyer data into the snapshot (never re-read later), takes the next number,
renders and stores the PDF with its SHA-256, links every billed entry to its line (the
`billed_entry` primary key refuses a second invoice for the same entry) and queues the
ticket write-back in the outbox. If anything fails, nothing of it is committed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import format_currency
from sqlalchemy.orm import Session

from addon.invoicing.numbering import next_number
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import INVOICE, AnnexEntry, InvoiceSnapshot, Line, Party, TicketRef, VatGroup
from addon.models import BilledEntry, Customer, Invoice, InvoiceLine, Ticket
from addon.settings import Settings
from addon.sync.writeback import queue_invoiced

SERIES = "invoice"


@dataclass(frozen=True)
class EntryLink:
    """One helpdesk entry billed on a line, with its raw and billed minutes."""

    entry_id: int
    raw_minutes: Decimal
    billed_minutes: Decimal


@dataclass(frozen=True)
class DraftLine:
    """A rated line as the billing core produced it, plus the entries it bills."""

    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal
    vat_rate: Decimal
    service_start: date
    service_end: date
    entries: tuple[EntryLink, ...]
    explanation: dict[str, Any]
    ticket_number: str | None = None
    vat_category: str = "S"


@dataclass(frozen=True)
class Draft:
    """Everything needed to issue one invoice for one customer."""

    lines: tuple[DraftLine, ...]
    vat_groups: tuple[VatGroup, ...]
    net: Decimal
    vat: Decimal
    gross: Decimal
    annex: tuple[AnnexEntry, ...]


Renderer = Callable[[InvoiceSnapshot], RenderedFile]


def seller_party(settings: Settings) -> Party:
    s = settings.seller
    return Party(
        name=s.name, street=s.street, postcode=s.postcode, city=s.city, country=s.country,
        vat_id=s.vat_id, tax_number=s.tax_number, email=s.email, phone=s.phone,
        iban=s.iban, bic=s.bic, bank=s.bank,
    )


def buyer_party(customer: Customer) -> Party:
    return Party(
        name=customer.legal_name or customer.name,
        street=customer.street or "",
        postcode=customer.postcode or "",
        city=customer.city or "",
        country=customer.country or "DE",
        vat_id=customer.vat_id,
        email=customer.email,
        customer_number=customer.customer_number,
    )


def payment_terms(language: str, days: int, due: date) -> str:
    if language == "de":
        return f"Zahlbar ohne Abzug innerhalb von {days} Tagen bis zum {due:%d.%m.%Y}."
    return f"Payable without deduction within {days} days, by {due:%d %B %Y}."


def build_snapshot(
    settings: Settings, customer: Customer, tickets: list[Ticket], draft: Draft, number: str, issue_date: date
) -> InvoiceSnapshot:
    """Freeze the invoice content: the only input the renderers ever see."""
    language = customer.language or settings.invoice_language
    due = issue_date + timedelta(days=settings.payment_terms_days)
    lines = tuple(
        Line(
            position=i,
            description=line.description,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net=line.net,
            vat_rate=line.vat_rate,
            vat_category=line.vat_category,
            ticket_number=line.ticket_number,
            service_start=line.service_start,
            service_end=line.service_end,
            explanation=line.explanation,
        )
        for i, line in enumerate(draft.lines, start=1)
    )
    return InvoiceSnapshot(
        type_code=INVOICE,
        number=number,
        issue_date=issue_date,
        due_date=due,
        service_start=min(line.service_start for line in draft.lines),
        service_end=max(line.service_end for line in draft.lines),
        currency="EUR",
        language=language,
        seller=seller_party(settings),
        buyer=buyer_party(customer),
        lines=lines,
        vat_groups=draft.vat_groups,
        net=draft.net,
        vat=draft.vat,
        gross=draft.gross,
        tickets=tuple(TicketRef(number=t.number, title=t.title, url=t.web_url) for t in tickets),
        annex=draft.annex,
        payment_terms=payment_terms(language, settings.payment_terms_days, due),
    )


def store_file(directory: Path, rendered: RenderedFile) -> tuple[Path, str]:
    """Write atomically (temp file + rename) and return the path and SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / rendered.filename
    temp = target.with_suffix(target.suffix + ".tmp")
    temp.write_bytes(rendered.content)
    os.replace(temp, target)
    return target, hashlib.sha256(rendered.content).hexdigest()


def invoice_url(settings: Settings, invoice: Invoice) -> str:
    return f"{settings.public_url}/invoices/{invoice.access_key}/{invoice.number}.pdf"


def issue_invoice(
    session: Session,
    settings: Settings,
    customer: Customer,
    tickets: list[Ticket],
    draft: Draft,
    render: Renderer,
    now: datetime,
) -> Invoice:
    """Number, snapshot, render, link and queue; the caller's transaction commits it all."""
    if not draft.lines:
        raise ValueError("an invoice needs at least one line")
    issue_date = now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date()
    number = next_number(session, SERIES, settings.invoice_number_pattern, issue_date)
    snapshot = build_snapshot(settings, customer, tickets, draft, number, issue_date)
    rendered = render(snapshot)
    path, digest = store_file(settings.invoice_dir, rendered)
    invoice = Invoice(
        series=SERIES,
        number=number,
        type_code=INVOICE,
        state="issued",
        customer_id=customer.id,
        ticket_id=tickets[0].id if len(tickets) == 1 else None,
        issued_at=now,
        net=draft.net,
        vat=draft.vat,
        gross=draft.gross,
        snapshot=snapshot.to_json(),
        pdf_path=str(path),
        pdf_sha256=digest,
        access_key=secrets.token_urlsafe(16),
    )
    session.add(invoice)
    session.flush()
    for position, line in enumerate(draft.lines, start=1):
        row = InvoiceLine(
            invoice_id=invoice.id,
            position=position,
            description=line.description,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net=line.net,
            explanation=line.explanation,
        )
        session.add(row)
        session.flush()
        for link in line.entries:
            session.add(
                BilledEntry(
                    entry_id=link.entry_id,
                    invoice_id=invoice.id,
                    line_id=row.id,
                    raw_minutes=link.raw_minutes,
                    billed_minutes=link.billed_minutes,
                )
            )
    session.flush()
    gross_text = format_currency(draft.gross, "EUR", locale="de_DE" if snapshot.language == "de" else "en_GB")
    url = invoice_url(settings, invoice)
    for ticket in tickets:
        ticket.billing_status = "invoiced"
        ticket.attention_reason = None
        queue_invoiced(session, ticket, invoice.id, number, url, gross_text, now)
    return invoice
