"""The push API (v1): any ticket system can hand tickets and time to ticketbill over HTTP.

For helpdesks without a connector ("our own ticket solution"), and for the Znuny invoker
that announces a closed ticket. All calls need `Authorization: Bearer <PUSH_API_TOKEN>` (or
HTTP basic auth with the token as password, which Znuny's invoker can send); the
API is off (404) while that setting is empty. Every write is idempotent by the sender's ids
and happens in one transaction: a malformed body changes nothing and gets a 422 naming the
field.

    PUT  /api/push/v1/tickets/<ticket id>    the ticket with ALL its time entries (upsert;
                                             entries missing from the list count as deleted)
    GET  /api/push/v1/tickets/<ticket id>    billing status, reason, invoices with links
    POST /api/push/v1/events/ticket-closed   a helpdesk announces a close (Znuny invoker);
                                             deduplicated; the next sync run starts at once

Billing happens in the regular sync run (`serve` schedule or `ticketbill sync --once`):
closed tickets are billed like those a connector polls; the sender reads the result back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from addon.db import transaction
from addon.models import Invoice, Ticket
from addon.sync.store import upsert_entries, upsert_ticket
from addon.web.events import record_close_event
from connectors.base import RemoteCustomer, RemoteTicket, RemoteTimeEntry

HELPDESK = "api"
bp = Blueprint("push", __name__, url_prefix="/api/push/v1")


class PushError(ValueError):
    """A malformed push body; `field` names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _error(status: int, message: str, field: str | None = None) -> ResponseReturnValue:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.before_request
def _authenticate() -> ResponseReturnValue | None:
    token = current_app.extensions["ticketbill"].settings.push_api_token
    if not token:
        return _error(404, "the push API is off; set PUSH_API_TOKEN to enable it")
    sent = request.headers.get("Authorization", "")
    if sent.startswith("Bearer "):
        offered = sent[7:]
    elif request.authorization is not None and request.authorization.type == "basic":
        offered = request.authorization.password or ""  # Znuny's invoker speaks basic auth
    else:
        offered = ""
    if not offered or not hmac.compare_digest(offered.encode(), token.encode()):
        return _error(401, "missing or wrong token (Bearer, or basic auth with the token as password)")
    return None


def _text(data: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PushError(f"{where}{key}", "missing")
        return None
    if not isinstance(value, str | int):
        raise PushError(f"{where}{key}", "must be a string")
    return str(value).strip()


def _instant(data: dict[str, Any], key: str, where: str, required: bool = True) -> datetime | None:
    raw = _text(data, key, where, required)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PushError(f"{where}{key}", f"{raw!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise PushError(f"{where}{key}", f"{raw!r} has no UTC offset")
    return moment.astimezone(UTC)


def _entry(item: Any, ticket_id: str, index: int) -> RemoteTimeEntry:
    where = f"time_entries[{index}]."
    if not isinstance(item, dict):
        raise PushError(f"time_entries[{index}]", "must be an object")
    unknown = set(item) - {"id", "agent", "minutes", "booked_at", "start", "activity"}
    if unknown:
        raise PushError(f"{where}{sorted(unknown)[0]}", "unknown key")
    try:
        minutes = Decimal(str(item.get("minutes")))
    except InvalidOperation:
        raise PushError(f"{where}minutes", f"{item.get('minutes')!r} is not a number") from None
    if not minutes.is_finite() or abs(minutes) > 100_000:
        raise PushError(f"{where}minutes", f"{item.get('minutes')!r} is not a plausible number of minutes")
    return RemoteTimeEntry(
        remote_id=str(_text(item, "id", where)),
        ticket_remote_id=ticket_id,
        agent=str(_text(item, "agent", where)),
        minutes=minutes,
        booked_at=_instant(item, "booked_at", where),  # type: ignore[arg-type]
        activity=_text(item, "activity", where, required=False),
        start=_instant(item, "start", where, required=False),
    )


def parse_ticket(ticket_id: str, body: Any) -> tuple[RemoteTicket, list[RemoteTimeEntry]]:
    """Validate a pushed ticket document into neutral records (or raise `PushError`)."""
    if not isinstance(body, dict):
        raise PushError("body", "must be a JSON object")
    unknown = set(body) - {"number", "title", "customer", "state", "closed_at", "updated_at", "url", "time_entries"}
    if unknown:
        raise PushError(sorted(unknown)[0], "unknown key")
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise PushError("customer", "must be an object with id and name")
    state = _text(body, "state", "")
    if state not in ("open", "closed"):
        raise PushError("state", f"{state!r} is not open or closed")
    closed_at = _instant(body, "closed_at", "", required=state == "closed")
    entries = body.get("time_entries", [])
    if not isinstance(entries, list):
        raise PushError("time_entries", "must be a list")
    parsed = [_entry(item, ticket_id, i) for i, item in enumerate(entries)]
    if len({e.remote_id for e in parsed}) != len(parsed):
        raise PushError("time_entries", "entry ids must be unique")
    ticket = RemoteTicket(
        remote_id=ticket_id,
        number=str(_text(body, "number", "")),
        title=str(_text(body, "title", "")),
        customer=RemoteCustomer(str(_text(customer, "id", "customer.")), str(_text(customer, "name", "customer."))),
        state=state,
        closed_at=closed_at if state == "closed" else None,
        updated_at=_instant(body, "updated_at", ""),  # type: ignore[arg-type]
        web_url=_text(body, "url", "", required=False),
    )
    return ticket, parsed


@bp.put("/tickets/<ticket_id>")
def put_ticket(ticket_id: str) -> ResponseReturnValue:
    """Upsert one ticket with all its time entries; answers its billing status."""
    try:
        remote, entries = parse_ticket(ticket_id, request.get_json(silent=True))
    except PushError as exc:
        return _error(422, str(exc), exc.field)
    now = datetime.now(UTC)
    with transaction(current_app.extensions["ticketbill"].sessions) as session:
        ticket = upsert_ticket(session, HELPDESK, remote, now)
        upsert_entries(session, HELPDESK, ticket, entries, now)
        answer = _status(session, ticket)
    return jsonify(answer)


@bp.get("/tickets/<ticket_id>")
def get_ticket(ticket_id: str) -> ResponseReturnValue:
    """The billing status of a pushed ticket.

    :raise 404: the ticket was never pushed.
    """
    with current_app.extensions["ticketbill"].sessions() as session:
        ticket = session.execute(
            select(Ticket).where(Ticket.helpdesk == HELPDESK, Ticket.remote_id == ticket_id)
        ).scalar_one_or_none()
        if ticket is None:
            return _error(404, f"ticket {ticket_id} was never pushed")
        return jsonify(_status(session, ticket))


def _status(session: Any, ticket: Ticket) -> dict[str, Any]:
    from addon.invoicing.issue import invoice_url

    settings = current_app.extensions["ticketbill"].settings
    invoices = session.execute(select(Invoice).where(Invoice.ticket_id == ticket.id).order_by(Invoice.id)).scalars()
    return {
        "ticket": ticket.remote_id,
        "billing_status": ticket.billing_status,
        "attention_reason": ticket.attention_reason,
        "invoices": [
            {"number": inv.number, "state": inv.state, "gross": str(inv.gross), "url": invoice_url(settings, inv)}
            for inv in invoices
        ],
    }


@bp.post("/events/ticket-closed")
def ticket_closed() -> ResponseReturnValue:
    """A helpdesk says a ticket was closed (e.g. Znuny's Ticket::Generic invoker).

    The body is stored once per (source, ticket, event time) — a retried delivery is
    acknowledged without effect — and the next sync run is started at once. Polling stays
    the safety net for events that never arrive.
    """
    raw = request.get_data()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return _error(422, "body is not JSON", "body")
    event = body.get("Event") if isinstance(body, dict) else None
    ticket_id = (event or {}).get("TicketID") if isinstance(event, dict) else None
    if ticket_id is None and isinstance(body, dict):
        ticket_id = body.get("TicketID") or body.get("ticket_id")
    if ticket_id is None:
        return _error(422, "no TicketID in the body (Event.TicketID or TicketID)", "TicketID")
    source = request.args.get("source", "otrs")
    key = hashlib.sha256(f"{source}\x1f{ticket_id}\x1f".encode() + raw).hexdigest()
    if not record_close_event(source, key, str(ticket_id)):
        return jsonify({"accepted": False, "duplicate": True}), 200
    return jsonify({"accepted": True, "duplicate": False}), 202
