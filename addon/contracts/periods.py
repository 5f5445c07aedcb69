"""Monthly collective invoices, and what every issued document remembers for the engine.

Contracts with trigger `monthly` are billed per customer and month: one invoice with everything
of that month and earlier that no valid invoice holds yet (late bookings listed with their own
service date, corrections, entries released by a cancellation, unbilled retainer fees). The
scheduled run bills the previous month on every run from the 1st on; that is idempotent because
the engine bills only the difference to the stored documents — a second run finds nothing,
unless entries arrived late, and then it issues exactly those.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon import change_log
from addon.billing.periods import period_of_instant, shift_period
from addon.contracts.state import encode_documents, record_ledger
from addon.db import transaction
from addon.errors import describe_error
from addon.invoicing.issue import (
    ACTIVITY_REPORT_SERIES,
    SERIES,
    Renderer,
    build_snapshot,
    issue_invoice,
    store_draft,
    with_vat_treatment,
)
from addon.invoicing.numbering import peek_number
from addon.invoicing.prerender import rendering_ahead
from addon.invoicing.rating import CUSTOMER, Rating, rate_customer
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import BilledEntry, Contract, Customer, Invoice, Ticket, TimeEntry
from addon.settings import Settings
from addon.sync.writeback import queue_status, set_status

log = logging.getLogger(__name__)

#: the change-log mark of the scheduled monthly pass
PASS = "monthly"


@dataclass(frozen=True)
class PeriodOutcome:
    """What a monthly run did for one customer."""

    customer: str
    outcome: str  # invoiced | drafted | nothing_due | needs_attention | failed
    invoice: str | None = None
    detail: str = ""


def record_billing(session: Session, invoice: Invoice, rating: Rating, period: str | None, now: datetime) -> None:
    """In the issuing transaction: the engine documents, the period, the ledger, the warnings."""
    documents = {key: replace(doc, document_id=str(invoice.id)) for key, doc in rating.documents.items()}
    invoice.billing_documents = encode_documents(documents)
    invoice.billing_period = period
    session.flush()
    for ledger in rating.ledgers:
        assert ledger.setup.row is not None and ledger.setup.engine.retainer is not None
        record_ledger(session, ledger.setup.row, ledger.setup.engine.retainer, ledger.snapshots, now)
    for ticket in rating.tickets:
        warnings = rating.warnings.get(ticket.number)
        if warnings:
            queue_status(session, ticket, ticket.billing_status,
                         "Hinweis / please check (billed anyway): " + "; ".join(warnings), now)


def monthly_customers(session: Session, remote_id: str | None = None) -> list[Customer]:
    """Customers with at least one contract billed monthly (optionally one customer)."""
    query = select(Customer).join(Contract, Contract.customer_id == Customer.id).where(
        Contract.trigger == "monthly").distinct().order_by(Customer.id)
    if remote_id is not None:
        query = query.where(Customer.remote_id == remote_id)
    return list(session.execute(query).scalars())


def record_reasons(session: Session, rating: Rating) -> None:
    """Why each of the customer's entries that no invoice or draft holds is not billed
    (internal, held, netted to zero): the reason the team lead and `ticketbill verify` read."""
    billed = set(session.execute(select(BilledEntry.entry_id).where(
        BilledEntry.entry_id.in_(list(rating.excluded)))).scalars())
    for entry_id, reason in rating.excluded.items():
        entry = session.get(TimeEntry, entry_id)
        if entry is not None and entry_id not in billed:
            entry.not_billed_reason = reason


def _flag_held(session: Session, customer: Customer, rating: Rating, now: datetime) -> None:
    """Tickets with held entries need attention, with the engine's reason."""
    tickets = {t.number: t for t in session.execute(
        select(Ticket).where(Ticket.customer_id == customer.id)).scalars()}
    for number, reasons in rating.holds.items():
        if number != CUSTOMER and number in tickets:
            set_status(session, tickets[number], "needs_attention", "; ".join(reasons), now)


def invoice_customer_period(session: Session, settings: Settings, render: Renderer, customer: Customer,
                            period: str, now: datetime) -> PeriodOutcome:
    """One customer's collective invoice for `period`: held tickets are flagged, the rest billed."""
    if not customer.configured:
        return PeriodOutcome(customer.name, "needs_attention", detail="no billing address; "
                             "add it with `ticketbill customers import`")
    rating = rate_customer(session, settings, customer, trigger="monthly", period=period)
    record_reasons(session, rating)
    customer_holds = rating.holds.get(CUSTOMER, []) + rating.problems
    for ledger in rating.ledgers:  # the ledger shows the month so far even when nothing is issued
        assert ledger.setup.row is not None and ledger.setup.engine.retainer is not None
        record_ledger(session, ledger.setup.row, ledger.setup.engine.retainer, ledger.snapshots, now)
    if rating.draft is None:
        _flag_held(session, customer, rating, now)
        if customer_holds:
            return PeriodOutcome(customer.name, "needs_attention", detail="; ".join(customer_holds))
        return PeriodOutcome(customer.name, "nothing_due")
    if customer.approval_required:
        draft = store_draft(session, settings, customer, rating.tickets, rating.draft, now)
        record_billing(session, draft, rating, period, now)
        for ticket in rating.tickets:
            set_status(session, ticket, "draft",
                       f"draft {draft.id} waits for approval (`ticketbill invoices approve {draft.id}`)", now)
        _flag_held(session, customer, rating, now)
        return PeriodOutcome(customer.name, "drafted", detail=f"draft {draft.id}")
    invoice = issue_invoice(session, settings, customer, rating.tickets, rating.draft, render, now)
    record_billing(session, invoice, rating, period, now)
    _flag_held(session, customer, rating, now)  # after issuing, which marks its tickets invoiced
    return PeriodOutcome(customer.name, "invoiced", invoice.number, "; ".join(customer_holds))


def invoice_period(factory: sessionmaker[Session], settings: Settings, render: Renderer, period: str,
                   now: datetime, remote_id: str | None = None) -> list[PeriodOutcome]:
    """Collective invoices of `period` for every monthly customer, each in its own transaction;
    their documents are rendered ahead on the other cores (`addon.invoicing.prerender`)."""
    with factory() as session:
        customer_ids = [c.id for c in monthly_customers(session, remote_id)]
        # predicted (rated twice) are only the customers still without the period's invoice: on
        # any other day than the first of a month the pass mostly finds nothing due
        invoiced = set(session.execute(select(Invoice.customer_id).where(
            Invoice.billing_period == period, Invoice.number.is_not(None), Invoice.state != "cancelled")).scalars())
    outcomes = []
    due = [i for i in customer_ids if i not in invoiced]
    with rendering_ahead(render, predicted_snapshots(factory, settings, due, period, now),
                         settings.render_workers):
        for customer_id in customer_ids:
            try:
                with transaction(factory) as session:
                    customer = session.get(Customer, customer_id)
                    assert customer is not None
                    outcomes.append(invoice_customer_period(session, settings, render, customer, period, now))
            except Exception as exc:  # the shell boundary: one customer's failure never stops the others
                log.exception("monthly invoice of customer id %s failed", customer_id)
                outcomes.append(PeriodOutcome(str(customer_id), "failed", detail=describe_error(exc)))
    return outcomes


def predicted_snapshots(factory: sessionmaker[Session], settings: Settings, customer_ids: list[int], period: str,
                        now: datetime) -> Iterator[tuple[InvoiceSnapshot, bool]]:
    """The invoices `invoice_customer_period` will issue, as it will: the same rating and draft,
    the series' next numbers in customer order. Read only, one short session per customer;
    a customer that cannot be predicted (it fails, needs approval) is left out."""
    taken: Counter[tuple[str, int]] = Counter()
    for customer_id in customer_ids:
        with factory() as session:
            customer = session.get(Customer, customer_id)
            if customer is None or not customer.configured or customer.approval_required:
                continue
            try:
                rating = rate_customer(session, settings, customer, trigger="monthly", period=period)
            except Exception:  # the real pass reports it
                continue
            if rating.draft is None or not rating.draft.lines:
                continue
            draft = with_vat_treatment(settings, customer, rating.draft)
            issue_date = now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date()
            series, pattern = ((ACTIVITY_REPORT_SERIES, settings.activity_report_number_pattern)
                               if draft.no_charge_only else (SERIES, settings.invoice_number_pattern))
            year = issue_date.year if "{YY" in pattern else 0
            number = peek_number(session, series, pattern, issue_date, taken[series, year])
            taken[series, year] += 1
            yield build_snapshot(settings, customer, rating.tickets, draft, number, issue_date), customer.xrechnung


def previous_period(now: datetime, timezone: str) -> str:
    """The month before the one `now` falls in (local time): what the scheduled run bills."""
    return shift_period(period_of_instant(now, timezone), -1)


def bill_due_periods(factory: sessionmaker[Session], settings: Settings, render: Renderer, now: datetime,
                     counts: Counter[str], errors: list[str],
                     after: Callable[[], None] = lambda: None) -> None:
    """The scheduled part of a sync run: bill the previous month for monthly contracts.

    Skipped when nothing billing reads changed since the last complete pass (`addon.change_log`):
    then every customer would come out the same again. `after` runs as part of the pass (its
    writes are the pass's own).
    """
    period = previous_period(now, settings.timezone)
    with transaction(factory) as session:
        context = change_log.context_digest(session, settings, period, now, settings.timezone)
        if change_log.marked(session, PASS) == f"{change_log.log_state(session)}|{context}":
            counts["period_unchanged"] += 1
            return
        change_log.prune(session)
    with factory() as session:
        before = change_log.log_state(session)
    writer = f"pass:{uuid.uuid4().hex}"
    complete = True
    with change_log.writing_as(writer):
        for outcome in invoice_period(factory, settings, render, period, now):
            counts[f"period_{outcome.outcome}"] += 1
            if outcome.outcome == "failed":
                complete = False
                errors.append(f"monthly invoice for {outcome.customer} failed: {outcome.detail}")
        after()
        with transaction(factory) as session:
            # someone else's change during the pass may have come too late for a customer
            unchanged = complete and change_log.log_state(session, excluding=writer) == before
            change_log.mark(session, PASS, f"{change_log.log_state(session)}|{context}" if unchanged else None)
