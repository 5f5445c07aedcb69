"""Invoices: search and filter, one document with lines, payments and audit log, PDF/XML
downloads, cancellation, payments (date and amount) and resending."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from addon.invoicing.cancel import Decision, cancel_invoice, release_held
from addon.invoicing.lifecycle import LifecycleError
from addon.invoicing.payments import payment_state, record_payment, resend
from addon.models import AuditLog, Contract, Customer, Invoice, Payment, Ticket
from addon.web.ui.access import actor, requires
from addon.web.ui.common import deliver, now, reading, renderer, settings, writing
from addon.web.ui.drafts import _amount

bp = Blueprint("invoices", __name__, url_prefix="/invoices")
OUTCOMES = {
    "rebill": _l("The time is billed again by the next run."),
    "hold": _l("The time is on hold until someone decides."),
    "move": _l("The time is billed to the new customer or contract by the next run."),
    "write-off": _l("The time is written off."),
}
PAGE = 50
STATES = ("issued", "sent", "paid", "cancelled")


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def search(args: dict[str, str]):  # type: ignore[no-untyped-def]
    """The invoice query for the list's filters (customer, period, state, number, type)."""
    query = select(Invoice).where(Invoice.number.is_not(None))
    if args.get("customer", "").isdigit():
        query = query.where(Invoice.customer_id == int(args["customer"]))
    if args.get("state") in STATES:
        query = query.where(Invoice.state == args["state"])
    if args.get("type") in ("380", "381"):
        query = query.where(Invoice.type_code == args["type"])
    if args.get("number", "").strip():
        query = query.where(Invoice.number.like(f"%{args['number'].strip()}%"))
    start, end = _date(args.get("from")), _date(args.get("to"))
    if start:
        query = query.where(Invoice.issued_at >= _utc_start(start))
    if end:
        query = query.where(Invoice.issued_at < _utc_start(date.fromordinal(end.toordinal() + 1)))
    return query


def _utc_start(day: date):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(settings().timezone)).astimezone(UTC)


@bp.get("")
@requires("view")
def index() -> ResponseReturnValue:
    """Issued documents, newest first, filtered; totals of the whole selection."""
    args = request.args.to_dict()
    page = max(1, request.args.get("page", 1, type=int))
    query = search(args)
    with reading() as db:
        selection = query.subquery()
        count, net, gross = db.execute(select(func.count(), func.coalesce(func.sum(selection.c.net), 0),
                                              func.coalesce(func.sum(selection.c.gross), 0))).one()
        rows = db.execute(query.order_by(Invoice.issued_at.desc(), Invoice.id.desc())
                          .offset((page - 1) * PAGE).limit(PAGE)).scalars().all()
        paid = dict(db.execute(select(Payment.invoice_id, func.sum(Payment.amount))
                               .where(Payment.invoice_id.in_([r.id for r in rows])).group_by(Payment.invoice_id))
                    .all()) if rows else {}
        customers = db.execute(select(Customer.id, Customer.name).order_by(Customer.name)).all()
        template = "web/_invoice_rows.html" if request.headers.get("HX-Request") else "web/invoices.html"
        return render_template(template, rows=rows, count=count, net=net, gross=gross, paid=paid, args=args,
                               page=page, pages=(count + PAGE - 1) // PAGE, customers=customers, states=STATES)


@bp.get("/<int:invoice_id>")
@requires("view")
def show(invoice_id: int) -> ResponseReturnValue:
    """One issued document: lines, totals, payments, delivery, audit log and the actions."""
    with reading() as db:
        invoice = db.get(Invoice, invoice_id)
        if invoice is None or invoice.number is None:
            abort(404)
        payments = db.execute(select(Payment).where(Payment.invoice_id == invoice.id)
                              .order_by(Payment.id)).scalars().all()
        log = db.execute(select(AuditLog).where(or_(AuditLog.invoice_id == invoice.id))
                         .order_by(AuditLog.id)).scalars().all()
        related = [db.get(Invoice, i) for i in (invoice.cancelled_by_id, invoice.cancels_id) if i]
        held = invoice.state == "cancelled" and db.execute(select(func.count()).select_from(Ticket).where(
            Ticket.billing_hold.like(f"{invoice.number}%"))).scalar_one() > 0
        customers = db.execute(select(Customer.remote_id, Customer.name).where(
            Customer.helpdesk == settings().helpdesk_kind).order_by(Customer.name)).all()
        contracts = db.execute(select(Contract.code).order_by(Contract.code)).scalars().all()
        return render_template("web/invoice.html", invoice=invoice, payments=payments, log=log, related=related,
                               state=payment_state(db, invoice), today=now().date(), held=held,
                               customers=customers, contracts=contracts, mail_on=bool(settings().smtp_host))


def _file(invoice_id: int, kind: str) -> ResponseReturnValue:
    with reading() as db:
        invoice = db.get(Invoice, invoice_id)
    path = None if invoice is None else (invoice.pdf_path if kind == "pdf" else invoice.xml_path)
    if invoice is None or path is None or not Path(path).is_file():
        abort(404)
    mimetype = "application/pdf" if kind == "pdf" else "application/xml"
    return send_file(path, mimetype=mimetype, as_attachment=request.args.get("inline") != "1",
                     download_name=f"{invoice.number}.{kind}")


@bp.get("/<int:invoice_id>/download/pdf")
@requires("view")
def pdf(invoice_id: int) -> ResponseReturnValue:
    """The stored hybrid PDF (ZUGFeRD/Factur-X), byte for byte as issued."""
    return _file(invoice_id, "pdf")


@bp.get("/<int:invoice_id>/download/xml")
@requires("files.xml")
def xml(invoice_id: int) -> ResponseReturnValue:
    """The stored EN 16931 CII XML."""
    return _file(invoice_id, "xml")


def _back(invoice_id: int, message: str | None = None, exc: Exception | None = None) -> ResponseReturnValue:
    flash(str(exc) if exc else message or "", "error" if exc else "ok")
    return redirect(url_for("invoices.show", invoice_id=invoice_id))


def _decision() -> Decision:
    """The form's decision on the work (rebill, hold, move to a customer/contract, write off)."""
    form = request.form
    return Decision(form.get("decision", ""), (form.get("customer") or "").strip() or None,
                    (form.get("contract") or "").strip() or None, (form.get("reason") or "").strip() or None)


@bp.post("/<int:invoice_id>/cancel")
@requires("invoices.manage")
def cancel(invoice_id: int) -> ResponseReturnValue:
    """Cancel with a cancellation invoice (381); the decision says what happens to the work."""
    reason = request.form.get("reason", "").strip() or None
    try:
        decision = _decision()
        with writing() as db:
            invoice = db.get(Invoice, invoice_id)
            if invoice is None or invoice.number is None:
                abort(404)
            cancellation = cancel_invoice(db, settings(), invoice.number, reason, renderer(), now(), actor(),
                                          decision=decision)
            number, cancellation_id = cancellation.number, cancellation.id
    except (LifecycleError, ValueError) as exc:
        return _back(invoice_id, exc=exc)
    deliver(actor())
    flash(_("Cancelled by %(number)s.", number=number) + " " + str(OUTCOMES[decision.then]), "ok")
    return redirect(url_for("invoices.show", invoice_id=cancellation_id))


@bp.post("/<int:invoice_id>/release")
@requires("invoices.manage")
def release(invoice_id: int) -> ResponseReturnValue:
    """Decide about the work of a cancelled invoice that was put on hold."""
    try:
        decision = _decision()
        with writing() as db:
            invoice = db.get(Invoice, invoice_id)
            if invoice is None or invoice.number is None:
                abort(404)
            release_held(db, settings(), invoice.number, decision, now(), actor())
    except (LifecycleError, ValueError) as exc:
        return _back(invoice_id, exc=exc)
    return _back(invoice_id, str(OUTCOMES[decision.then]))


@bp.post("/<int:invoice_id>/payments")
@requires("invoices.manage")
def pay(invoice_id: int) -> ResponseReturnValue:
    """Record a payment (date and amount); the invoice is paid once the payments cover it."""
    amount, paid_on = _amount(request.form.get("amount", "")), _date(request.form.get("paid_on"))
    if amount is None or paid_on is None:
        return _back(invoice_id, exc=LifecycleError(_("Enter the amount and the payment date.")))
    try:
        with writing() as db:
            record_payment(db, invoice_id, amount, paid_on, request.form.get("reference"), now(), actor(),
                           timezone=settings().timezone)
    except LifecycleError as exc:
        return _back(invoice_id, exc=exc)
    return _back(invoice_id, _("Payment recorded."))


@bp.post("/<int:invoice_id>/resend")
@requires("invoices.manage")
def resend_mail(invoice_id: int) -> ResponseReturnValue:
    """E-mail the stored document again (to the customer or another address)."""
    try:
        with writing() as db:
            resend(db, settings(), invoice_id, request.form.get("to"), now(), actor())
    except LifecycleError as exc:
        return _back(invoice_id, exc=exc)
    counts = deliver(actor())
    if counts.get("mail_failed"):
        return _back(invoice_id, exc=LifecycleError(_("The e-mail could not be sent; see the delivery status.")))
    return _back(invoice_id, _("E-mail sent."))
