"""Cancel an issued invoice with a cancellation invoice (Stornorechnung, type 381).

An issued invoice is never changed or deleted (GoBD); a correction is a second document with
its own number (CANCELLATION_NUMBER_PATTERN series) that repeats every original line with
quantity and net negated, names the original's number and date (§31 Abs. 5 UStDV, EN 16931
BG-3) and is itself a validated Factur-X hybrid. Cancelling releases the original's entries:
their `billed_entry` links go and a `released` row per entry keeps the history. What happens to
that work is the admin's `Decision`, taken with the cancel and kept in the audit log: billed
again on the next run, held until decided, billed to another customer or contract, or written
off with a reason. The ticket learns of it through the outbox.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
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
from addon.invoicing.snapshot import CANCELLATION, INVOICE, InvoiceSnapshot
from addon.models import (
    BilledEntry,
    BilledExtra,
    BillingHistory,
    BookedExtra,
    Contract,
    Customer,
    Invoice,
    InvoiceLine,
    Ticket,
    TimeEntry,
)
from addon.settings import Settings
from addon.sync.writeback import queue_cancelled, set_status


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
        net=-original.net,
        vat=-original.vat,
        gross=-original.gross,
        annex=(),
        notes=tuple(notes),
        payment_terms=None,
        preceding_number=original.number,
        preceding_date=original.issue_date,
    )


@dataclass(frozen=True)
class Decision:
    """What happens to the work a cancelled invoice billed; the admin says it with the cancel.

    `rebill`: billed again to the same customer on the next run (what a wrong rate calls for).
    `hold`: the tickets wait, visibly, until `release_held` decides. `move`: billed to another
    `customer` (helpdesk id) and/or under another `contract` (code) from now on. `write-off`:
    never billed, with the `reason` on every entry. The decision goes into the audit log.
    """

    then: str
    customer: str | None = None
    contract: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.then not in DECISIONS:
            raise LifecycleError(f"--then {self.then!r}: choose one of {', '.join(DECISIONS)}")
        if (self.customer or self.contract) and self.then != "move":
            raise LifecycleError("--customer and --contract go with --then move")
        if self.then == "move" and not (self.customer or self.contract):
            raise LifecycleError("--then move needs --customer ID or --contract CODE")
        if self.then == "write-off" and not (self.reason or "").strip():
            raise LifecycleError("--then write-off needs a reason (--reason)")

    def audit(self) -> dict[str, str | None]:
        return {"then": self.then, "customer": self.customer, "contract": self.contract, "reason": self.reason}


DECISIONS = ("rebill", "hold", "move", "write-off")
REBILL = Decision("rebill")


@dataclass(frozen=True)
class _Target:
    """Who pays after a `move`: the customer row and the contract code (None: its claims)."""

    customer: Customer
    contract: str | None


def _target(session: Session, original: Invoice, decision: Decision) -> _Target | None:
    """Resolve a move's customer and contract before anything is issued (a typo issues nothing)."""
    if decision.then != "move":
        return None
    helpdesk = original.customer.helpdesk
    customer: Customer | None = None
    if decision.customer is not None:
        customer = session.execute(select(Customer).where(Customer.helpdesk == helpdesk,
                                                          Customer.remote_id == decision.customer)).scalar_one_or_none()
        if customer is None:
            raise LifecycleError(f"there is no customer with helpdesk id {decision.customer} "
                                 "(see `ticketbill customers list`)")
    if decision.contract is not None:
        contract = session.execute(select(Contract).where(Contract.code == decision.contract)).scalar_one_or_none()
        if contract is None:
            raise LifecycleError(f"there is no contract {decision.contract} (see `ticketbill contracts list`)")
        if customer is not None and contract.customer_id != customer.id:
            raise LifecycleError(f"contract {contract.code} belongs to {contract.customer.name}, not {customer.name}")
        customer = contract.customer
    assert customer is not None
    if not customer.configured:
        raise LifecycleError(f"customer '{customer.name}' has no billing address yet; import it first")
    return _Target(customer, decision.contract)


def _decision_text(decision: Decision, target: _Target | None) -> str:
    """The sentence the ticket note and the status reason carry (German / English)."""
    if decision.then == "rebill":
        return "Die Zeiten werden neu abgerechnet / the time will be billed again."
    if decision.then == "hold":
        return f"Die Zeiten warten auf eine Entscheidung / the time is on hold: {decision.reason or '-'}."
    if decision.then == "write-off":
        return f"Die Zeiten werden nicht berechnet / the time is written off: {decision.reason}."
    assert target is not None
    terms = f" (Vertrag / contract {target.contract})" if target.contract else ""
    return (f"Die Zeiten werden an {target.customer.name}{terms} abgerechnet / "
            f"the time will be billed to {target.customer.name}{terms}.")


def apply_decision(session: Session, tickets: list[Ticket], entry_ids: list[int], extra_ids: list[int],
                   decision: Decision, target: _Target | None, origin: str) -> str:
    """Carry out a decision on released work; returns the status reason for the tickets."""
    text = _decision_text(decision, target)
    for ticket in tickets:
        ticket.billing_hold = f"{origin}: {decision.reason or 'no reason given'}" if decision.then == "hold" else None
        if target is not None:
            ticket.billing_customer_id = target.customer.id if target.customer.id != ticket.customer_id else None
            ticket.billing_contract = target.contract
    if decision.then != "write-off":
        session.flush()
        return f"{origin}; {text}"
    why = f"written off ({origin}): {decision.reason}"[:200]  # also what later syncs say
    for entry_id in entry_ids:
        entry = session.get(TimeEntry, entry_id)
        if entry is not None:
            entry.written_off = entry.not_billed_reason = why
    for extra_id in extra_ids:
        extra = session.get(BookedExtra, extra_id)
        if extra is not None:
            extra.written_off = why
    session.flush()
    return why


def cancel_invoice(
    session: Session,
    settings: Settings,
    number: str,
    reason: str | None,
    render: Renderer,
    now: datetime,
    actor: str,
    *,
    decision: Decision,
) -> Invoice:
    """Issue the cancellation of invoice `number`, release its entries, carry out `decision` on
    them, queue the write-back."""
    original = session.execute(
        select(Invoice).where(Invoice.series == SERIES, Invoice.number == number).with_for_update()
    ).scalar_one_or_none()
    if original is None:
        other = session.execute(select(Invoice.id).where(Invoice.number == number)).first()
        if other is not None:
            raise LifecycleError(f"{number} is a cancellation invoice; it cannot be cancelled itself")
        raise LifecycleError(f"there is no invoice {number}")
    if original.type_code != INVOICE or original.state not in ("issued", "sent", "paid"):
        raise LifecycleError(f"invoice {number} is {original.state}; only issued invoices can be cancelled")
    assert original.snapshot is not None
    target = _target(session, original, decision)
    customer = original.customer
    issue_date = now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date()
    st_number = next_number(session, CANCELLATION_SERIES, settings.cancellation_number_pattern, issue_date)
    snapshot = cancellation_snapshot(InvoiceSnapshot.from_json(original.snapshot), settings, st_number,
                                     issue_date, reason)
    files = document_files(snapshot, render)
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
    extra_ids = [x.extra_id for x in extras]
    for extra_link in extras:  # materials and travel are released like time
        session.delete(extra_link)
    session.flush()
    details = {
        "number": st_number, "cancels": number, "reason": reason,
        "released_entries": len(links), "released_extras": len(extras), "decision": decision.audit(),
    }
    record(session, "cancel", actor, now, original, details)
    record(session, "issue", actor, now, cancellation, {"number": st_number, "cancels": number, "files": stored})
    url = invoice_url(settings, cancellation)
    tickets = [t for i in sorted(i for i in ticket_ids if i is not None) if (t := session.get(Ticket, i))]
    status_reason = apply_decision(session, tickets, [link.entry_id for link in links], extra_ids, decision,
                                   target, f"{number} cancelled by {st_number}")
    status = "not_billable" if decision.then == "write-off" else "cancelled"
    for ticket in tickets:
        ticket.billing_status = status
        ticket.attention_reason = status_reason
        ticket.status_version += 1
        queue_cancelled(session, ticket, cancellation.id, number, st_number, url, reason, now,
                        outcome=_decision_text(decision, target), status=status)
    queue_delivery(session, settings, cancellation, customer, now)
    return cancellation


def release_held(session: Session, settings: Settings, number: str, decision: Decision, now: datetime,
                 actor: str) -> list[Ticket]:
    """Decide about the work of cancelled invoice `number` that was put on hold.

    The entries its cancellation released (and that nothing bills since) get `decision`: bill
    again, bill elsewhere, or write off. Recorded in the audit log under the original invoice.
    """
    if decision.then == "hold":
        raise LifecycleError("the work is on hold already; release it with rebill, move or write-off")
    original = session.execute(select(Invoice).where(Invoice.series == SERIES, Invoice.number == number)
                               ).scalar_one_or_none()
    if original is None or original.state != "cancelled" or original.cancelled_by_id is None:
        raise LifecycleError(f"{number} is not a cancelled invoice")
    cancellation = session.get(Invoice, original.cancelled_by_id)
    assert cancellation is not None
    origin = f"{number} cancelled by {cancellation.number}"
    tickets = [t for t in session.execute(select(Ticket).where(Ticket.billing_hold.like(f"{origin}:%"))
                                          .order_by(Ticket.id)).scalars()]
    if not tickets:
        raise LifecycleError(f"no ticket waits for a decision about {number}")
    target = _target(session, original, decision)
    linked = select(BilledEntry.entry_id)
    released = session.execute(select(BillingHistory.entry_id).where(
        BillingHistory.invoice_id == cancellation.id, BillingHistory.event == "released",
        BillingHistory.entry_id.not_in(linked))).scalars().all()
    billed_extras = select(BilledExtra.extra_id)
    extra_ids = session.execute(select(BookedExtra.id).where(
        BookedExtra.ticket_id.in_([t.id for t in tickets]), BookedExtra.id.not_in(billed_extras))).scalars().all()
    status_reason = apply_decision(session, tickets, sorted(set(released)), list(extra_ids), decision, target, origin)
    record(session, "release", actor, now, original, {"number": number, "decision": decision.audit(),
                                                      "entries": sorted(set(released))})
    for ticket in tickets:
        set_status(session, ticket, "not_billable" if decision.then == "write-off" else "cancelled",
                   status_reason, now)
    return tickets
