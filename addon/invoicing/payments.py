"""Payments received for issued invoices (date and amount, part payments add up) and resending
an issued document by e-mail.

The invoice row is frozen once issued; payments are rows of their own (`payment`). When they
reach the gross amount the invoice becomes `paid` (lifecycle column) with the date of the last
payment. A resend queues one more e-mail of the stored, hash-checked files through the outbox,
with its own marker, so it is sent exactly once like the first delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from addon.billing.money import round_currency
from addon.invoicing.audit import record
from addon.invoicing.lifecycle import LifecycleError
from addon.models import Invoice, Outbox, Payment
from addon.settings import Settings
from addon.sync.writeback import EMAIL


@dataclass(frozen=True)
class PaymentState:
    """What is paid of an invoice: `status` open, partly_paid, paid (or not_payable)."""

    paid: Decimal
    open: Decimal
    status: str
    last_paid_on: date | None


def payment_state(session: Session, invoice: Invoice) -> PaymentState:
    paid, last = session.execute(
        select(func.coalesce(func.sum(Payment.amount), 0), func.max(Payment.paid_on))
        .where(Payment.invoice_id == invoice.id)).one()
    paid = Decimal(paid)
    if invoice.type_code != "380" or invoice.state in ("draft", "cancelled"):
        return PaymentState(paid, Decimal(0), "not_payable", last)
    remaining = invoice.gross - paid
    if invoice.state == "paid" or remaining <= 0:
        return PaymentState(paid, max(remaining, Decimal(0)), "paid", last)
    return PaymentState(paid, remaining, "partly_paid" if paid else "open", last)


def record_payment(session: Session, invoice_id: int, amount: Decimal, paid_on: date, reference: str | None,
                   now: datetime, actor: str, *, timezone: str) -> Payment:
    """Record a payment; the invoice turns `paid` when the payments cover its gross amount.

    `paid_on` may be today at the latest, today in the deployment's zone (TIMEZONE): at 00:30 in
    Berlin on 1 December UTC still says 30 November, and the accountant's "today" was refused."""
    invoice = session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None or invoice.number is None:
        raise LifecycleError(f"there is no issued invoice {invoice_id}")
    if invoice.type_code != "380" or invoice.state not in ("issued", "sent"):
        raise LifecycleError(f"invoice {invoice.number} is {invoice.state}; payments are recorded for open invoices")
    amount = round_currency(amount)
    if amount <= 0:
        raise LifecycleError("the amount must be above zero")
    if paid_on > now.astimezone(ZoneInfo(timezone)).date():
        raise LifecycleError("the payment date cannot be in the future")
    state = payment_state(session, invoice)
    if amount > state.open:
        raise LifecycleError(f"{amount} is more than the open amount {state.open} of {invoice.number}")
    payment = Payment(invoice_id=invoice.id, amount=amount, paid_on=paid_on,
                      reference=(reference or "").strip() or None, recorded_at=now, actor=actor)
    session.add(payment)
    details = {"number": invoice.number, "amount": str(amount), "paid_on": str(paid_on)}
    if amount == state.open:
        invoice.state = "paid"
        invoice.paid_at = datetime.combine(paid_on, time(12), tzinfo=UTC)
        record(session, "mark_paid", actor, now, invoice, details)
    else:
        record(session, "payment", actor, now, invoice, details)
    session.flush()
    return payment


def resend(session: Session, settings: Settings, invoice_id: int, recipient: str | None, now: datetime,
           actor: str) -> Outbox:
    """Queue one more e-mail of an issued document (to the customer, or to `recipient`)."""
    if not settings.smtp_host:
        raise LifecycleError("e-mail delivery is off (set SMTP_HOST)")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.number is None:
        raise LifecycleError(f"there is no issued invoice {invoice_id}")
    to = (recipient or "").strip() or invoice.customer.email
    if not to or "@" not in to:
        raise LifecycleError(f"customer '{invoice.customer.name}' has no e-mail address; enter one")
    sent_before = session.execute(select(func.count()).select_from(Outbox).where(
        Outbox.kind == EMAIL, Outbox.invoice_id == invoice.id)).scalar_one()
    row = Outbox(kind=EMAIL, ticket_id=invoice.ticket_id, invoice_id=invoice.id,
                 marker=f"email:{invoice.number}:resend:{sent_before + 1}",
                 payload={"to": to, "xrechnung": invoice.customer.xrechnung}, created_at=now)
    session.add(row)
    invoice.delivery_status = "pending"
    record(session, "resend", actor, now, invoice, {"number": invoice.number, "to": to})
    session.flush()
    return row
