"""The JSON API (v1) for the same data the pages show; described by openapi/ticketbill-v1.yaml.

Every call needs `Authorization: Bearer <API token>` (tokens are made on the Users page and act
with their user's role); the permission table is the pages' one. Money is a decimal string
("1234.50"), minutes are decimal strings too, instants are ISO 8601 in UTC. Errors are
`{"error": "..."}` with 400/401/403/404/409.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from addon.invoicing.lifecycle import LifecycleError, approve_draft
from addon.invoicing.payments import payment_state, record_payment
from addon.models import Contract, Customer, Invoice, SyncRun, Ticket, TimeEntry
from addon.web.ui.access import acting_user, actor, requires
from addon.web.ui.common import deliver, now, reading, renderer, settings, writing
from addon.web.ui.invoices import search
from addon.web.ui.overview import chart_data, overview_data

bp = Blueprint("api", __name__, url_prefix="/api/v1")
LIMIT = 200


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _invoice(inv: Invoice) -> dict[str, Any]:
    return {"id": inv.id, "number": inv.number, "type_code": inv.type_code, "state": inv.state,
            "customer_id": inv.customer_id, "ticket_id": inv.ticket_id, "issued_at": _when(inv.issued_at),
            "created_at": _when(inv.created_at), "net": _money(inv.net), "vat": _money(inv.vat),
            "gross": _money(inv.gross), "delivery_status": inv.delivery_status,
            "cancelled_by_id": inv.cancelled_by_id, "cancels_id": inv.cancels_id}


def _ticket(t: Ticket) -> dict[str, Any]:
    return {"id": t.id, "helpdesk": t.helpdesk, "remote_id": t.remote_id, "number": t.number, "title": t.title,
            "customer_id": t.customer_id, "state": t.state, "closed_at": _when(t.closed_at),
            "billing_status": t.billing_status, "attention_reason": t.attention_reason, "url": t.web_url}


@bp.get("/me")
@requires("view")
def me() -> ResponseReturnValue:
    """Who the token acts as."""
    user = acting_user()
    assert user is not None
    return jsonify({"login": user.login, "name": user.name, "role": user.role})


@bp.get("/overview")
@requires("view")
def overview() -> ResponseReturnValue:
    """The overview's figures and chart series."""
    with reading() as db:
        data = overview_data(db)
        charts = chart_data(db)
    drafts = data["drafts"]
    return jsonify({
        "unbilled": [{"customer_id": w.customer_id, "customer": w.name, "tickets": w.tickets,
                      "open_minutes": str(w.open_minutes), "minutes_by_age": [str(m) for m in w.by_age],
                      "total_minutes": str(w.total)} for w in data["work"]],  # type: ignore[attr-defined]
        "needs_attention": data["attention_count"],
        "drafts": {"count": drafts.count, "gross": _money(drafts.gross)},  # type: ignore[attr-defined]
        "revenue_this_month": _money(data["revenue"]),  # type: ignore[arg-type]
        "contingents": [{"contract": c.code, "customer": c.customer, "granted_minutes": c.granted,
                         "consumed_minutes": c.consumed, "level": c.level}
                        for c in data["contingents"]],  # type: ignore[attr-defined]
        "closed_without_time": data["without_count"],
        "charts": charts,
    })


@bp.get("/tickets")
@requires("view")
def tickets() -> ResponseReturnValue:
    """Tickets, newest first; filters billing_status, customer_id; `limit` up to 200."""
    query = select(Ticket)
    if request.args.get("billing_status"):
        query = query.where(Ticket.billing_status == request.args["billing_status"])
    if request.args.get("customer_id", "").isdigit():
        query = query.where(Ticket.customer_id == int(request.args["customer_id"]))
    limit = min(LIMIT, max(1, request.args.get("limit", 50, type=int)))
    with reading() as db:
        rows = db.execute(query.order_by(Ticket.id.desc()).limit(limit)).scalars().all()
        return jsonify([_ticket(t) for t in rows])


@bp.get("/tickets/<int:ticket_id>")
@requires("view")
def ticket(ticket_id: int) -> ResponseReturnValue:
    """One ticket with its time entries and invoices."""
    with reading() as db:
        row = db.get(Ticket, ticket_id)
        if row is None:
            return _error(404, f"there is no ticket {ticket_id}")
        entries = db.execute(select(TimeEntry).where(TimeEntry.ticket_id == row.id)
                             .order_by(TimeEntry.booked_at)).scalars().all()
        invoices = db.execute(select(Invoice).where(Invoice.ticket_id == row.id).order_by(Invoice.id)).scalars().all()
        return jsonify({**_ticket(row), "entries": [
            {"id": e.id, "agent": e.agent, "activity": e.activity, "minutes": str(e.minutes),
             "booked_at": _when(e.booked_at), "removed": e.removed_at is not None,
             "not_billed_reason": e.not_billed_reason} for e in entries],
            "invoices": [_invoice(i) for i in invoices]})


@bp.get("/drafts")
@requires("view")
def drafts() -> ResponseReturnValue:
    """Drafts waiting for approval, oldest first."""
    with reading() as db:
        rows = db.execute(select(Invoice).where(Invoice.state == "draft", Invoice.type_code == "380")
                          .order_by(Invoice.created_at, Invoice.id)).scalars().all()
        return jsonify([_invoice(i) for i in rows])


@bp.post("/drafts/<int:draft_id>/approve")
@requires("drafts")
def approve(draft_id: int) -> ResponseReturnValue:
    """Approve a draft: it is issued now (number, PDF, XML) and e-mailed when configured."""
    try:
        with writing() as db:
            invoice = approve_draft(db, settings(), draft_id, renderer(), now(), actor())
            body = _invoice(invoice)
    except LifecycleError as exc:
        return _error(409, str(exc))
    deliver(actor())
    return jsonify(body)


@bp.get("/invoices")
@requires("view")
def invoices() -> ResponseReturnValue:
    """Issued documents, newest first; filters customer, state, type, number, from, to."""
    limit = min(LIMIT, max(1, request.args.get("limit", 50, type=int)))
    with reading() as db:
        rows = db.execute(search(request.args.to_dict()).order_by(Invoice.issued_at.desc(), Invoice.id.desc())
                          .limit(limit)).scalars().all()
        return jsonify([_invoice(i) for i in rows])


@bp.get("/invoices/<int:invoice_id>")
@requires("view")
def invoice(invoice_id: int) -> ResponseReturnValue:
    """One document with its lines and payment state."""
    with reading() as db:
        row = db.get(Invoice, invoice_id)
        if row is None or row.number is None:
            return _error(404, f"there is no issued invoice {invoice_id}")
        state = payment_state(db, row)
        return jsonify({**_invoice(row), "lines": [
            {"position": x.position, "description": x.description, "quantity": str(x.quantity), "unit": x.unit,
             "unit_price": str(x.unit_price), "net": _money(x.net)} for x in row.lines],
            "payment": {"status": state.status, "paid": _money(state.paid), "open": _money(state.open)}})


@bp.post("/invoices/<int:invoice_id>/payments")
@requires("invoices.manage")
def payment(invoice_id: int) -> ResponseReturnValue:
    """Record a payment: {"amount": "119.00", "paid_on": "2026-11-30", "reference": "…"}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "expected a JSON object with amount and paid_on")
    try:
        amount = Decimal(str(body.get("amount")))
        paid_on = date.fromisoformat(str(body.get("paid_on")))
    except (InvalidOperation, ValueError):
        return _error(400, "amount must be a decimal string and paid_on a date (YYYY-MM-DD)")
    try:
        with writing() as db:
            record_payment(db, invoice_id, amount, paid_on, body.get("reference"), now(), actor(),
                           timezone=settings().timezone)
    except LifecycleError as exc:
        return _error(409, str(exc))
    return invoice(invoice_id)


@bp.get("/customers")
@requires("view")
def customers() -> ResponseReturnValue:
    """Customers with whether their billing data is complete."""
    with reading() as db:
        rows = db.execute(select(Customer).order_by(Customer.name)).scalars().all()
        return jsonify([{"id": c.id, "helpdesk": c.helpdesk, "remote_id": c.remote_id, "name": c.name,
                         "configured": c.configured, "hourly_rate": _money(c.hourly_rate),
                         "approval_required": c.approval_required} for c in rows])


@bp.get("/contracts")
@requires("view")
def contracts() -> ResponseReturnValue:
    """Contracts in the import format (`ticketbill contracts export`)."""
    from addon.contracts import contract_json

    with reading() as db:
        rows = db.execute(select(Contract).order_by(Contract.code)).scalars().all()
        return jsonify([contract_json(db, c) for c in rows])


@bp.get("/runs")
@requires("view")
def runs() -> ResponseReturnValue:
    """The last runs, newest first."""
    with reading() as db:
        rows = db.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(50)).scalars().all()
        return jsonify([{"id": r.id, "helpdesk": r.helpdesk, "status": r.status, "started_at": _when(r.started_at),
                         "finished_at": _when(r.finished_at), "counts": r.counts, "error": r.error} for r in rows])


@bp.post("/runs")
@requires("runs.start")
def start_run() -> ResponseReturnValue:
    """Start a run now (as the Runs page's button); poll GET /runs for its result."""
    from addon.web.ui.runs import start

    start()
    with reading() as db:
        newest = db.execute(select(func.max(SyncRun.id))).scalar_one()
    return jsonify({"started": True, "previous_run_id": newest}), 202
