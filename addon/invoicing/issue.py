"""Issue an invoice: number, snapshot, hybrid PDF + XML, entry links and write-back, in one
transaction.

The caller passes a `Draft` (rated lines and totals from the pure billing core). Storing it
first makes a draft invoice row with its lines and reserves the entries (the `billed_entry`
primary key refuses a second invoice for the same entry). Issuing then copies seller and buyer
data into the snapshot (never re-read later), takes the next number, renders the PDF, builds
the EN 16931 CII XML from the same snapshot, validates it (XSD + Schematron; an invalid XML
aborts the issue), embeds it as a ZUGFeRD/Factur-X hybrid, stores both files with their
SHA-256, records the billing history and the audit log, and queues the ticket write-back and
the e-mail in the outbox. If anything fails, nothing of it is committed. Customers that want
to approve invoices stop after the first step (`addon.invoicing.lifecycle`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import format_currency
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from addon.invoicing import (
    immutability,  # noqa: F401  (registers the GoBD flush guard)
    prerender,
)
from addon.invoicing.audit import record
from addon.invoicing.documents import Renderer, valid_files
from addon.invoicing.numbering import next_number
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import (
    ACTIVITY_REPORT,
    INVOICE,
    Allowance,
    AnnexEntry,
    InvoiceSnapshot,
    Line,
    Party,
    TicketRef,
    VatGroup,
)
from addon.invoicing.vat import vat_category
from addon.models import BilledEntry, BillingHistory, Customer, Invoice, InvoiceLine, Ticket, TimeEntry
from addon.plain import plain
from addon.settings import Settings
from addon.sync.writeback import queue_email, queue_invoiced

SERIES = "invoice"
CANCELLATION_SERIES = "cancellation"
ACTIVITY_REPORT_SERIES = "activity_report"
SYNC_ACTOR = "sync"


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
    #: printed texts that belong to the document, e.g. the contingent ledger of a retainer
    notes: tuple[str, ...] = ()
    #: the billed period (a monthly invoice: the month); None: from the first to the last line
    service_period: tuple[date, date] | None = None
    #: document-level allowances (discounts shown below the line total, EN 16931 BG-20)
    allowances: tuple[Allowance, ...] = ()

    @property
    def no_charge_only(self) -> bool:
        """Nothing on it costs anything: it becomes an activity report, never a 0,00 € bill."""
        return self.gross == 0 and not self.allowances and all(line.net == 0 for line in self.lines)




def pdf_renderer(settings: Settings) -> Renderer:
    """The PDF renderer of this deployment: the seller's letterhead logo unless the customer's
    layout names its own (in the snapshot), templates also from INVOICE_TEMPLATE_DIR."""
    from addon.invoicing.render_pdf import render_pdf

    return partial(render_pdf, logo_path=settings.invoice_logo, template_dir=settings.invoice_template_dir)


def draft_to_json(draft: Draft, ticket_ids: list[int]) -> str:
    """A draft as stored on a draft invoice row until it is approved."""
    return json.dumps({"draft": plain(draft), "tickets": ticket_ids}, default=str, sort_keys=True)


def draft_from_json(text: str) -> tuple[Draft, list[int]]:
    """Inverse of `draft_to_json`."""
    data = json.loads(text)
    raw = data["draft"]
    lines = tuple(
        DraftLine(
            description=line["description"],
            quantity=Decimal(line["quantity"]),
            unit=line["unit"],
            unit_price=Decimal(line["unit_price"]),
            net=Decimal(line["net"]),
            vat_rate=Decimal(line["vat_rate"]),
            service_start=date.fromisoformat(line["service_start"]),
            service_end=date.fromisoformat(line["service_end"]),
            entries=tuple(
                EntryLink(e["entry_id"], Decimal(e["raw_minutes"]), Decimal(e["billed_minutes"]))
                for e in line["entries"]
            ),
            explanation=line["explanation"],
            ticket_number=line["ticket_number"],
            vat_category=line["vat_category"],
        )
        for line in raw["lines"]
    )
    groups = tuple(
        VatGroup(g["category"], Decimal(g["rate"]), Decimal(g["base"]), Decimal(g["amount"]), g["exemption_reason"])
        for g in raw["vat_groups"]
    )
    annex = tuple(
        AnnexEntry(
            a["ticket_number"], date.fromisoformat(a["date"]), a["agent"], a["activity"],
            Decimal(a["raw_minutes"]), Decimal(a["billed_minutes"]),
            Decimal(a.get("covered_minutes") or 0), bool(a.get("no_charge")),
        )
        for a in raw["annex"]
    )
    period = raw.get("service_period")
    allowances = tuple(
        Allowance(a["reason"], Decimal(a["amount"]), Decimal(a["vat_rate"]), a["vat_category"],
                  None if a["percent"] is None else Decimal(a["percent"]),
                  None if a["base"] is None else Decimal(a["base"]), a["reason_code"])
        for a in raw.get("allowances") or ()
    )
    draft = Draft(
        lines, groups, Decimal(raw["net"]), Decimal(raw["vat"]), Decimal(raw["gross"]), annex,
        notes=tuple(raw.get("notes") or ()),
        service_period=(date.fromisoformat(period[0]), date.fromisoformat(period[1])) if period else None,
        allowances=allowances,
    )
    return draft, list(data["tickets"])


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
    """Freeze the invoice content: the only input the renderers ever see.

    The header service period (BT-73/74) spans every line's period, so late lines of earlier
    months lie inside it (PEPPOL-EN16931-R110/R111); a monthly invoice also names its month.
    Tickets link to the customer-facing URL only (CUSTOMER_TICKET_URL), never to the helpdesk's
    agent view. A draft of no-charge lines only becomes an activity report: no due date, no
    payment terms, no payment request.
    """
    language = customer.language or settings.invoice_language
    report = draft.no_charge_only
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
    starts = [x.service_start for x in draft.lines] + ([draft.service_period[0]] if draft.service_period else [])
    ends = [x.service_end for x in draft.lines] + ([draft.service_period[1]] if draft.service_period else [])
    url = settings.customer_ticket_url
    letterhead = customer.letterhead or (str(settings.invoice_logo) if settings.invoice_logo else None)
    return InvoiceSnapshot(
        type_code=ACTIVITY_REPORT if report else INVOICE,
        number=number,
        issue_date=issue_date,
        due_date=None if report else due,
        service_start=min(starts),
        service_end=max(ends),
        currency="EUR",
        language=language,
        seller=seller_party(settings),
        buyer=buyer_party(customer),
        lines=lines,
        vat_groups=draft.vat_groups,
        net=draft.net,
        vat=draft.vat,
        gross=draft.gross,
        tickets=tuple(TicketRef(t.number, t.title, url.format(number=t.number) if url else None) for t in tickets),
        annex=draft.annex,
        notes=draft.notes,
        payment_terms=None if report else payment_terms(language, settings.payment_terms_days, due),
        buyer_reference=customer.buyer_reference,
        allowances=draft.allowances,
        billing_month=f"{draft.service_period[0]:%Y-%m}" if draft.service_period else None,
        template=customer.invoice_template or "standard",
        letterhead=letterhead,
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


def document_files(snapshot: InvoiceSnapshot, render: Renderer, *, xrechnung: bool = False) -> list[RenderedFile]:
    """The files of one issued document, every XML validated (`addon.invoicing.documents.
    valid_files`): an invalid one raises `InvalidEInvoice` and nothing is stored. Files a worker
    built and validated ahead for an equal snapshot (`addon.invoicing.prerender`) come with the
    worker's verdict, and an invalid verdict raises the same `InvalidEInvoice` here. So an
    invoice rendered ahead costs the issuing process no Schematron CPU, and a pass that renders
    all its invoices ahead never loads Saxon there."""
    return prerender.take(snapshot, xrechnung) or valid_files(snapshot, render, xrechnung=xrechnung)


def store_documents(settings: Settings, invoice: Invoice, files: list[RenderedFile]) -> dict[str, str]:
    """Write the files under the invoice directory and put paths and hashes on the row.
    Returns file name → SHA-256 of every stored file, for the audit log."""
    stored: dict[str, str] = {}
    for index, rendered in enumerate(files):
        path, digest = store_file(settings.invoice_dir, rendered)
        stored[rendered.filename] = digest
        if index == 0:
            invoice.pdf_path, invoice.pdf_sha256 = str(path), digest
        elif index == 1:
            invoice.xml_path, invoice.xml_sha256 = str(path), digest
    return stored


def with_vat_category(draft: Draft, category: str) -> Draft:
    """The draft with every line in `category`; exempt categories (AE, E) carry rate 0 and no
    VAT, so gross = net. Nets never change: the billing core priced them already."""
    if category == "S":
        return draft
    zero = Decimal(0)
    lines = tuple(replace(line, vat_rate=zero, vat_category=category) for line in draft.lines)
    allowances = tuple(replace(a, vat_rate=zero, vat_category=category) for a in draft.allowances)
    group = VatGroup(category, zero, draft.net, Decimal("0.00"))
    return replace(draft, lines=lines, allowances=allowances, vat_groups=(group,), vat=Decimal("0.00"),
                   gross=draft.net)


def with_vat_treatment(settings: Settings, customer: Customer, draft: Draft) -> Draft:
    """The draft in the VAT category this seller and buyer call for (idempotent)."""
    category = vat_category(
        settings.seller.country, customer.country or "DE", customer.vat_id, small_business=settings.small_business
    )
    return with_vat_category(draft, category)


def store_draft(
    session: Session, settings: Settings, customer: Customer, tickets: list[Ticket], draft: Draft, now: datetime
) -> Invoice:
    """Store the rated draft as an invoice row in state `draft` (no number, no files) with its
    lines, and reserve its entries so no other run bills them meanwhile. The VAT treatment
    (standard, EU reverse charge, § 19) is decided here, once, for every path to an invoice."""
    if not draft.lines:
        raise ValueError("an invoice needs at least one line")
    draft = with_vat_treatment(settings, customer, draft)
    invoice = Invoice(
        series=ACTIVITY_REPORT_SERIES if draft.no_charge_only else SERIES,
        number=None,
        type_code=ACTIVITY_REPORT if draft.no_charge_only else INVOICE,
        state="draft",
        customer_id=customer.id,
        ticket_id=tickets[0].id if len(tickets) == 1 else None,
        issued_at=None,
        net=draft.net,
        vat=draft.vat,
        gross=draft.gross,
        snapshot=None,
        access_key=secrets.token_urlsafe(16),
        draft_data=draft_to_json(draft, [t.id for t in tickets]),
        created_at=now,
    )
    session.add(invoice)
    session.flush()
    rows = [InvoiceLine(invoice_id=invoice.id, position=position, description=line.description,
                        quantity=line.quantity, unit=line.unit, unit_price=line.unit_price, net=line.net,
                        explanation=line.explanation)
            for position, line in enumerate(draft.lines, start=1)]
    session.add_all(rows)
    session.flush()  # one batch of INSERTs for all lines (a flush per line cost ~3 ms each)
    reserved = [{"entry_id": link.entry_id, "invoice_id": invoice.id, "line_id": row.id,
                 "raw_minutes": link.raw_minutes, "billed_minutes": link.billed_minutes}
                for row, line in zip(rows, draft.lines, strict=True) for link in line.entries]
    if reserved:  # one executemany: nothing reads these rows as objects (100 per monthly invoice)
        session.execute(insert(BilledEntry), reserved)
    return invoice


def issue_invoice(
    session: Session,
    settings: Settings,
    customer: Customer,
    tickets: list[Ticket],
    draft: Draft,
    render: Renderer,
    now: datetime,
    actor: str = SYNC_ACTOR,
) -> Invoice:
    """Store, number, snapshot, render, validate, link and queue; the caller's transaction
    commits it all."""
    draft = with_vat_treatment(settings, customer, draft)
    invoice = store_draft(session, settings, customer, tickets, draft, now)
    return issue_stored_draft(session, settings, invoice, customer, tickets, draft, render, now, actor)


def issue_stored_draft(
    session: Session,
    settings: Settings,
    invoice: Invoice,
    customer: Customer,
    tickets: list[Ticket],
    draft: Draft,
    render: Renderer,
    now: datetime,
    actor: str,
) -> Invoice:
    """Turn a stored draft into an issued invoice (number assigned now)."""
    issue_date = now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date()
    if draft.no_charge_only:
        number = next_number(session, ACTIVITY_REPORT_SERIES, settings.activity_report_number_pattern, issue_date)
    else:
        number = next_number(session, SERIES, settings.invoice_number_pattern, issue_date)
    snapshot = build_snapshot(settings, customer, tickets, draft, number, issue_date)
    files = document_files(snapshot, render, xrechnung=customer.xrechnung)
    stored = store_documents(settings, invoice, files)
    invoice.number = number
    invoice.state = "issued"
    invoice.issued_at = now
    invoice.snapshot = snapshot.to_json()
    invoice.draft_data = None
    session.flush()
    links = session.execute(select(BilledEntry.entry_id, BilledEntry.line_id, BilledEntry.raw_minutes,
                                   BilledEntry.billed_minutes).where(BilledEntry.invoice_id == invoice.id)).all()
    if links:  # the append-only trail, one executemany (an ORM object per row cost ~0.1 ms each)
        session.execute(insert(BillingHistory), [
            {"entry_id": link.entry_id, "invoice_id": invoice.id, "line_id": link.line_id, "event": "billed",
             "raw_minutes": link.raw_minutes, "billed_minutes": link.billed_minutes, "at": now}
            for link in links])
    record(session, "issue", actor, now, invoice, {"number": number, "gross": str(invoice.gross), "files": stored})
    gross_text = format_currency(draft.gross, "EUR", locale="de_DE" if snapshot.language == "de" else "en_GB")
    url = invoice_url(settings, invoice)
    history = rebilling_chain(session, invoice, [link.entry_id for link in links]) or supplement_of(
        session, invoice, tickets)
    for ticket in tickets:
        ticket.billing_status = "invoiced"
        ticket.attention_reason = None
        queue_invoiced(session, ticket, invoice.id, number, url, gross_text, now, history=history)
    queue_delivery(session, settings, invoice, customer, now)
    return invoice


def earlier_invoices(session: Session, tickets: list[Ticket], invoice: Invoice | None = None) -> list[str]:
    """Numbers of the valid invoices (other than `invoice`) that already bill these tickets."""
    query = (select(Invoice.number).join(BilledEntry, BilledEntry.invoice_id == Invoice.id)
             .join(TimeEntry, TimeEntry.id == BilledEntry.entry_id)
             .where(TimeEntry.ticket_id.in_([t.id for t in tickets]), Invoice.number.is_not(None),
                    Invoice.state.not_in(("draft", "cancelled"))))
    if invoice is not None:
        query = query.where(Invoice.id != invoice.id)
    return sorted({str(n) for n in session.execute(query).scalars()})


def supplement_of(session: Session, invoice: Invoice, tickets: list[Ticket]) -> str | None:
    """"Nachberechnung zu RE-1 …" when this invoice bills time booked on a ticket after an earlier
    invoice of it was issued (the rule for more time on an invoiced ticket: a supplementary
    invoice that says so, on the invoice and in the ticket's note)."""
    numbers = earlier_invoices(session, tickets, invoice)
    if not numbers:
        return None
    return (f"Nachberechnung zu {', '.join(numbers)}: später gebuchte Zeit / supplementary invoice to "
            f"{', '.join(numbers)}: time booked later")


def rebilling_chain(session: Session, invoice: Invoice, entry_ids: list[int]) -> str | None:
    """"RE-1 cancelled by ST-1 → RE-2" when this invoice re-bills entries a cancellation released."""
    if not entry_ids:
        return None
    # The most recent cancellation that released any of these entries is the one re-billed now.
    cancellation_id = session.execute(
        select(func.max(BillingHistory.invoice_id)).where(
            BillingHistory.entry_id.in_(entry_ids), BillingHistory.event == "released"
        )
    ).scalar_one()
    cancellation = session.get(Invoice, cancellation_id) if cancellation_id is not None else None
    if cancellation is None or cancellation.cancels_id is None:
        return None
    original = session.get(Invoice, cancellation.cancels_id)
    assert original is not None
    return f"{original.number} cancelled by {cancellation.number} → {invoice.number}"


def queue_delivery(session: Session, settings: Settings, invoice: Invoice, customer: Customer, now: datetime) -> None:
    """Queue the e-mail of an issued document when delivery is configured (SMTP_HOST)."""
    if not settings.smtp_host:
        return
    if not customer.email:
        invoice.delivery_status = "failed"
        invoice.delivery_error = (
            f"customer '{customer.name}' has no e-mail address; add `email` with `ticketbill customers import`"
        )
        return
    invoice.delivery_status = "pending"
    queue_email(session, invoice.id, invoice.ticket_id, str(invoice.number), customer.email, customer.xrechnung, now)
