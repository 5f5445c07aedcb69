"""Tickets: the list (by billing status, customer, search) and one ticket with its entries,
the billed minutes, rate, rule and rounding of each line, its invoices and the helpdesk link."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from addon.models import BilledEntry, Customer, DeferredEntry, Invoice, InvoiceLine, Ticket, TimeEntry
from addon.reports import OPEN_WORK_STATUSES, fix_for
from addon.web.ui.access import requires
from addon.web.ui.common import now, reading, renderer, settings, writing
from addon.web.ui.terms import term

bp = Blueprint("tickets", __name__, url_prefix="/tickets")
PAGE = 50
STATUSES = ("unbilled", "needs_attention", "draft", "invoiced", "not_billable", "cancelled")


@bp.get("")
@requires("view")
def index() -> ResponseReturnValue:
    """Tickets filtered by billing status, customer and number/title, newest first."""
    status, customer, q = request.args.get("status", ""), request.args.get("customer", ""), request.args.get("q", "")
    page = max(1, request.args.get("page", 1, type=int))
    query = select(Ticket)
    if status == "open_work":
        query = query.where(Ticket.billing_status.in_(OPEN_WORK_STATUSES))
    elif status:
        query = query.where(Ticket.billing_status == status)
    if customer.isdigit():
        query = query.where(Ticket.customer_id == int(customer))
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(or_(Ticket.number.like(like), Ticket.title.ilike(like)))
    with reading() as db:
        total = db.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = db.execute(query.order_by(Ticket.closed_at.desc().nulls_last(), Ticket.id.desc())
                          .offset((page - 1) * PAGE).limit(PAGE)).scalars().all()
        minutes = dict(db.execute(select(TimeEntry.ticket_id, func.sum(TimeEntry.minutes))
                                  .where(TimeEntry.ticket_id.in_([t.id for t in rows]), TimeEntry.removed_at.is_(None))
                                  .group_by(TimeEntry.ticket_id)).all()) if rows else {}
        customers = db.execute(select(Customer.id, Customer.name).order_by(Customer.name)).all()
        names = dict(customers)
        return render_template("web/tickets.html", rows=rows, total=total, page=page, pages=(total + PAGE - 1) // PAGE,
                               minutes=minutes, customers=customers, names=names, statuses=STATUSES,
                               status=status, customer=customer, q=q)


@bp.get("/<int:ticket_id>")
@requires("view")
def show(ticket_id: int) -> ResponseReturnValue:
    """One ticket: entries with booked/billed minutes and the line that explains each."""
    with reading() as db:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None:
            abort(404)
        links = {b.entry_id: b for b in db.execute(
            select(BilledEntry).join(TimeEntry, TimeEntry.id == BilledEntry.entry_id)
            .where(TimeEntry.ticket_id == ticket.id)).scalars()}
        lines = {line.id: line for line in db.execute(
            select(InvoiceLine).where(InvoiceLine.id.in_([b.line_id for b in links.values()]))).scalars()}
        invoice_ids = {b.invoice_id for b in links.values()}
        invoices = db.execute(select(Invoice).where(or_(Invoice.ticket_id == ticket.id, Invoice.id.in_(invoice_ids)))
                              .order_by(Invoice.id)).scalars().all()
        deferred = {d.entry_id: d for d in db.execute(select(DeferredEntry).where(
            DeferredEntry.entry_id.in_([e.id for e in ticket.entries]))).scalars()}
        return render_template("web/ticket.html", ticket=ticket, links=links, lines=lines, invoices=invoices,
                               by_id={i.id: i for i in invoices}, fix=fix_for(ticket), deferred=deferred)


@bp.post("/<int:ticket_id>/bill")
@requires("tickets.bill")
def bill(ticket_id: int) -> ResponseReturnValue:
    """Check the ticket again now (after its customer or booking was fixed): the same decision
    the sync run makes; the write-back to the helpdesk follows with the next run."""
    from addon.sync.jobs import bill_ticket

    with writing() as db:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None:
            abort(404)
        outcome = bill_ticket(db, settings(), renderer(), ticket, now())
        status, reason = ticket.billing_status, ticket.attention_reason
    flash(_("Checked again: %(outcome)s — status %(status)s", outcome=term(outcome), status=term(status))
          + (f" ({reason})" if reason else ""),
          "error" if status == "needs_attention" else "ok")
    return redirect(url_for("tickets.show", ticket_id=ticket_id))
