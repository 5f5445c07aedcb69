"""What a team lead does to a draft before approving it, besides editing texts (lifecycle.py):
preview it as the customer will see it, add a credit or discount line (or take it out again),
and move a time entry off the draft onto a later invoice.

Amounts of rated lines never change by hand. A credit/discount line is a line of its own,
marked `manual` in its explanation, with a negative quantity and a positive unit price (EN 16931
BR-27: no negative prices); the VAT breakdown is recomputed per category and rate with the
billing core's `vat_amount`, exactly as the core computes it. Moving an entry discards the draft
and rates the ticket again without the entry (`DeferredEntry` keeps it off until the chosen
day); the next run after that day bills it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.billing.money import round_currency, vat_amount
from addon.invoicing.audit import record
from addon.invoicing.issue import Draft, DraftLine, Renderer, build_snapshot, draft_from_json, draft_to_json
from addon.invoicing.lifecycle import LifecycleError, _draft, discard_draft
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import VatGroup
from addon.models import BilledEntry, DeferredEntry, Invoice, InvoiceLine, Ticket, TimeEntry
from addon.settings import Settings

MANUAL_KINDS = ("credit", "discount")
PREVIEW_NUMBER = "ENTWURF"


def preview_pdf(session: Session, settings: Settings, draft_id: int, render: Renderer, today: date) -> RenderedFile:
    """The draft rendered as its invoice would look if approved today, numbered ENTWURF."""
    invoice = _draft_row(session, draft_id)
    assert invoice.draft_data is not None
    draft, ticket_ids = draft_from_json(invoice.draft_data)
    tickets = [t for i in ticket_ids if (t := session.get(Ticket, i)) is not None]
    snapshot = build_snapshot(settings, invoice.customer, tickets, draft, f"{PREVIEW_NUMBER}-{invoice.id}", today)
    return render(snapshot)


def _draft_row(session: Session, draft_id: int) -> Invoice:
    invoice = session.get(Invoice, draft_id)
    if invoice is None or invoice.state != "draft":
        raise LifecycleError(f"there is no draft {draft_id}")
    return invoice


def with_totals(draft: Draft) -> Draft:
    """The draft's VAT groups and totals recomputed from its lines (per category and rate)."""
    bases: dict[tuple[str, Decimal], Decimal] = {}
    for line in draft.lines:
        key = (line.vat_category, line.vat_rate)
        bases[key] = bases.get(key, Decimal("0.00")) + line.net
    reasons = {(g.category, g.rate): g.exemption_reason for g in draft.vat_groups}
    groups = tuple(VatGroup(category, rate, base, vat_amount(base, rate), reasons.get((category, rate)))
                   for (category, rate), base in sorted(bases.items()))
    net = sum((g.base for g in groups), Decimal("0.00"))
    vat = sum((g.amount for g in groups), Decimal("0.00"))
    return replace(draft, vat_groups=groups, net=net, vat=vat, gross=net + vat)


def _store(session: Session, invoice: Invoice, draft: Draft, ticket_ids: list[int]) -> None:
    invoice.draft_data = draft_to_json(draft, ticket_ids)
    invoice.net, invoice.vat, invoice.gross = draft.net, draft.vat, draft.gross


def add_manual_line(session: Session, draft_id: int, kind: str, description: str, now: datetime, actor: str, *,
                    amount: Decimal | None = None, percent: Decimal | None = None) -> Invoice:
    """Add a credit (fixed net amount) or a discount (percent of the rated lines' net) to a draft.

    Refused when the draft mixes VAT rates (the reduction would need splitting per rate) or
    when the total would drop below zero (that is a credit note, not an invoice).
    """
    if kind not in MANUAL_KINDS:
        raise LifecycleError(f"{kind!r} is neither credit nor discount")
    if not description.strip():
        raise LifecycleError("the line needs a text")
    invoice = _draft(session, draft_id)
    assert invoice.draft_data is not None
    draft, ticket_ids = draft_from_json(invoice.draft_data)
    rated = [line for line in draft.lines if not line.explanation.get("manual")]
    rates = {(line.vat_category, line.vat_rate) for line in rated}
    if len(rates) != 1:
        raise LifecycleError("this draft has lines with different VAT rates; a credit line cannot be split here")
    if kind == "discount":
        if percent is None or not Decimal(0) < percent <= Decimal(100):
            raise LifecycleError("a discount needs a percentage above 0 and at most 100")
        amount = round_currency(sum((line.net for line in rated), Decimal(0)) * percent / Decimal(100))
    if amount is None or amount <= 0:
        raise LifecycleError("the amount must be above zero")
    amount = round_currency(amount)
    category, rate = rates.pop()
    line = DraftLine(
        description=description.strip(), quantity=Decimal(-1), unit="C62", unit_price=amount, net=-amount,
        vat_rate=rate, service_start=min(x.service_start for x in draft.lines),
        service_end=max(x.service_end for x in draft.lines), entries=(),
        explanation={"kind": kind, "manual": actor, **({"percent": str(percent)} if kind == "discount" else {})},
        vat_category=category,
    )
    edited = with_totals(replace(draft, lines=(*draft.lines, line)))
    if edited.gross < 0:
        raise LifecycleError("the invoice total would be negative; cancel the invoice or issue a credit note instead")
    _store(session, invoice, edited, ticket_ids)
    session.add(InvoiceLine(invoice_id=invoice.id, position=len(edited.lines), description=line.description,
                            quantity=line.quantity, unit=line.unit, unit_price=line.unit_price, net=line.net,
                            explanation=line.explanation))
    record(session, "edit", actor, now, invoice, {"draft_id": draft_id, "added": kind, "net": str(-amount)})
    session.flush()
    return invoice


def remove_manual_line(session: Session, draft_id: int, position: int, now: datetime, actor: str) -> Invoice:
    """Take a credit or discount line off a draft again (rated lines cannot be removed)."""
    invoice = _draft(session, draft_id)
    assert invoice.draft_data is not None
    draft, ticket_ids = draft_from_json(invoice.draft_data)
    if not 1 <= position <= len(draft.lines) or not draft.lines[position - 1].explanation.get("manual"):
        raise LifecycleError(f"line {position} is not a credit or discount line of draft {draft_id}")
    lines = draft.lines[:position - 1] + draft.lines[position:]
    edited = with_totals(replace(draft, lines=lines))
    _store(session, invoice, edited, ticket_ids)
    rows = sorted(invoice.lines, key=lambda r: r.position)
    session.delete(rows[position - 1])
    session.flush()
    for row in rows[position:]:
        row.position -= 1
    record(session, "edit", actor, now, invoice, {"draft_id": draft_id, "removed_line": position})
    session.flush()
    return invoice


def defer_entry(session: Session, settings: Settings, draft_id: int, entry_id: int, until: date, reason: str | None,
                render: Renderer, now: datetime, actor: str) -> list[Invoice]:
    """Move one time entry off a per-ticket draft onto a later invoice.

    The entry is kept off billing until `until` (a local day after today); the draft is
    discarded and its tickets are rated again at once without the entry, which gives the new
    draft(s) returned. Monthly drafts are refused: their period invoice is rebuilt by the run.
    """
    from addon.sync.jobs import bill_ticket  # the sync's own decision, as the CLI and runs use it

    invoice = _draft(session, draft_id)
    if invoice.billing_period is not None:
        raise LifecycleError("entries of a monthly draft are moved by discarding it; the next run rebuilds it")
    today = now.astimezone(ZoneInfo(invoice.customer.timezone or settings.timezone)).date()
    if until <= today:
        raise LifecycleError("the later invoice must be after today")
    link = session.get(BilledEntry, entry_id)
    if link is None or link.invoice_id != invoice.id:
        raise LifecycleError(f"entry {entry_id} is not on draft {draft_id}")
    entry = session.get(TimeEntry, entry_id)
    assert entry is not None
    existing = session.get(DeferredEntry, entry_id)
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(DeferredEntry(entry_id=entry_id, until=until, reason=(reason or "").strip() or None, actor=actor,
                              at=now))
    assert invoice.draft_data is not None
    _content, ticket_ids = draft_from_json(invoice.draft_data)
    record(session, "defer", actor, now, None, {"draft_id": draft_id, "entry": entry_id, "until": str(until),
                                                "ticket": entry.ticket.number})
    discard_draft(session, draft_id, now, actor)
    session.flush()
    drafts = []
    for ticket_id in ticket_ids:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:
            bill_ticket(session, settings, render, ticket, now)
    session.flush()
    for ticket_id in ticket_ids:
        drafts += session.execute(select(Invoice).join(BilledEntry, BilledEntry.invoice_id == Invoice.id)
                                  .join(TimeEntry, TimeEntry.id == BilledEntry.entry_id)
                                  .where(TimeEntry.ticket_id == ticket_id, Invoice.state == "draft")
                                  .distinct()).scalars().all()
    return list({d.id: d for d in drafts}.values())


def deferred_entry_ids(session: Session, today: date) -> set[int]:
    """Entries moved to a later invoice that may not be billed yet on `today`."""
    return set(session.execute(select(DeferredEntry.entry_id).where(DeferredEntry.until > today)).scalars())
