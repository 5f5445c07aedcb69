"""The push API (v1): any ticket system can hand tickets and time to ticketbill over HTTP.

For helpdesks without a connector ("our own ticket solution"), and for the Znuny invoker
that announces a closed ticket. All calls need `Authorization: Bearer <PUSH_API_TOKEN>` (or
HTTP basic auth with the token as password, which Znuny's invoker can send); the
API is off (404) while that setting is empty. Every write is idempotent by the sender's ids
and happens in one transaction: a malformed body changes nothing and gets a 422 naming the
field (see `addon.web.payload` for what is checked). The token is checked before the body is
read; bodies are `application/json` only (415: a cross-site form cannot send that type) and at
most MAX_REQUEST_BYTES long (413). openapi/ticketbill-push-v1.yaml describes the calls.

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
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from addon.db import transaction
from addon.models import Customer, Invoice, PushEvent, Ticket, TimeEntry
from addon.sync.store import upsert_entries, upsert_ticket
from addon.web.events import record_close_event
from addon.web.payload import PayloadError, identifier, instant, parse_json, storable
from connectors.base import RemoteCustomer, RemoteTicket, RemoteTimeEntry

HELPDESK = "api"
#: Entries per ticket document: far above a real ticket, far below PostgreSQL's 65,535
#: bind parameters per statement (storing the entries looks them all up in one IN list).
MAX_ENTRIES = 10_000
#: Minutes per entry: one day of work, either way (a negative entry corrects earlier time).
MAX_ENTRY_MINUTES = 24 * 60
_SCALE = TimeEntry.minutes.expression.type.scale  # type: ignore[attr-defined]
_MINUTES = re.compile(rf"-?[0-9]{{1,5}}(?:\.[0-9]{{1,{_SCALE}}})?", re.ASCII)
bp = Blueprint("push", __name__, url_prefix="/api/push/v1")


def _error(status: int, message: str, field: str | None = None) -> ResponseReturnValue:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.errorhandler(PayloadError)
def _refused(exc: PayloadError) -> ResponseReturnValue:
    return _error(422, str(exc), exc.field)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> ResponseReturnValue:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return _error(413, f"body larger than {limit} bytes (MAX_REQUEST_BYTES)")


@bp.before_request
def _authenticate() -> ResponseReturnValue | None:
    """The token first: an anonymous request is refused before a byte of its body is read."""
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


def json_body() -> tuple[bytes, Any]:
    """The raw body and its JSON; 415 unless sent as JSON, which no cross-site form can do
    (a form posts text/plain, urlencoded or multipart, and the browser would add the basic
    auth it remembers), 413 beyond MAX_REQUEST_BYTES, 422 for anything but sane JSON."""
    if not request.is_json:
        raise UnsupportedMediaType()
    raw = request.get_data(cache=False)
    return raw, parse_json(raw)


@bp.errorhandler(UnsupportedMediaType)
def _not_json(_exc: UnsupportedMediaType) -> ResponseReturnValue:
    return _error(415, "send the body as Content-Type: application/json")


def _text(data: dict[str, Any], key: str, where: str, column: Any, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PayloadError(f"{where}{key}", "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{where}{key}", "must be a string")
    return storable(f"{where}{key}", str(value).strip(), column)


def _instant(data: dict[str, Any], key: str, where: str, required: bool = True) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise PayloadError(f"{where}{key}", "missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key}", "must be an ISO 8601 timestamp string")
    return instant(f"{where}{key}", value)


def _minutes(value: Any, field: str) -> Decimal:
    """A whole number of minutes (a JSON integer or an ASCII digit string), or a decimal with
    at most two places (what the column keeps), within one day either way."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(field, "must be a number of minutes")
    text = str(value) if not isinstance(value, float) else repr(value).removesuffix(".0")
    if not _MINUTES.fullmatch(text):
        raise PayloadError(field, f"{str(value)[:40]!r} is not a number of minutes such as 50 or 7.5")
    minutes = Decimal(text)
    if abs(minutes) > MAX_ENTRY_MINUTES:
        raise PayloadError(field, f"{text} is more than {MAX_ENTRY_MINUTES} minutes (one day) in one entry")
    return minutes


def _entry(item: Any, ticket_id: str, index: int) -> RemoteTimeEntry:
    where = f"time_entries[{index}]."
    if not isinstance(item, dict):
        raise PayloadError(f"time_entries[{index}]", "must be an object")
    unknown = set(item) - {"id", "agent", "minutes", "booked_at", "start", "activity"}
    if unknown:
        raise PayloadError(f"{where}{sorted(unknown)[0]}", "unknown key")
    return RemoteTimeEntry(
        remote_id=identifier(f"{where}id", item.get("id"), TimeEntry.remote_id),
        ticket_remote_id=ticket_id,
        agent=str(_text(item, "agent", where, TimeEntry.agent)),
        minutes=_minutes(item.get("minutes"), f"{where}minutes"),
        booked_at=_instant(item, "booked_at", where),
        activity=_text(item, "activity", where, TimeEntry.activity, required=False),
        start=_instant(item, "start", where, required=False),
    )


def parse_ticket(ticket_id: str, body: Any) -> tuple[RemoteTicket, list[RemoteTimeEntry]]:
    """Validate a pushed ticket document into neutral records (or raise `PayloadError`)."""
    ticket_id = identifier("ticket_id", ticket_id, Ticket.remote_id)
    if not isinstance(body, dict):
        raise PayloadError("body", "must be a JSON object")
    unknown = set(body) - {"number", "title", "customer", "state", "closed_at", "updated_at", "url", "time_entries"}
    if unknown:
        raise PayloadError(str(sorted(unknown)[0])[:100], "unknown key")
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise PayloadError("customer", "must be an object with id and name")
    state = body.get("state")
    if state not in ("open", "closed"):
        raise PayloadError("state", f"{str(state)[:40]!r} is not open or closed")
    closed_at = _instant(body, "closed_at", "", required=state == "closed")
    entries = body.get("time_entries", [])
    if not isinstance(entries, list):
        raise PayloadError("time_entries", "must be a list")
    if len(entries) > MAX_ENTRIES:
        raise PayloadError("time_entries", f"more than {MAX_ENTRIES} entries in one ticket")
    parsed = [_entry(item, ticket_id, i) for i, item in enumerate(entries)]
    if len({e.remote_id for e in parsed}) != len(parsed):
        raise PayloadError("time_entries", "entry ids must be unique")
    ticket = RemoteTicket(
        remote_id=ticket_id,
        number=str(_text(body, "number", "", Ticket.number)),
        title=str(_text(body, "title", "", Ticket.title)),
        customer=RemoteCustomer(identifier("customer.id", customer.get("id"), Customer.remote_id),
                                str(_text(customer, "name", "customer.", Customer.name))),
        state=state,
        closed_at=closed_at if state == "closed" else None,
        updated_at=_instant(body, "updated_at", ""),
        web_url=_text(body, "url", "", Ticket.web_url, required=False),
    )
    return ticket, parsed


@bp.put("/tickets/<ticket_id>")
def put_ticket(ticket_id: str) -> ResponseReturnValue:
    """Upsert one ticket with all its time entries; answers its billing status."""
    _raw, body = json_body()
    remote, entries = parse_ticket(ticket_id, body)
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
    ticket_id = identifier("ticket_id", ticket_id, Ticket.remote_id)
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
    raw, body = json_body()
    ticket_id = _closed_ticket_id(body)
    source = identifier("source", request.args.get("source", "otrs"), PushEvent.source)
    key = hashlib.sha256(f"{source}\x1f{ticket_id}\x1f".encode() + raw).hexdigest()
    if not record_close_event(source, key, ticket_id):
        return jsonify({"accepted": False, "duplicate": True}), 200
    return jsonify({"accepted": True, "duplicate": False}), 202


def _closed_ticket_id(body: Any) -> str:
    """The ticket of a close event: Znuny's `Event.TicketID`, or `TicketID` / `ticket_id`."""
    if not isinstance(body, dict):
        raise PayloadError("body", "must be a JSON object")
    event = body.get("Event")
    for field, holder, key in (("Event.TicketID", event, "TicketID"), ("TicketID", body, "TicketID"),
                               ("ticket_id", body, "ticket_id")):
        if isinstance(holder, dict) and holder.get(key) is not None:
            return identifier(field, holder[key], PushEvent.ticket_remote_id)
    raise PayloadError("TicketID", "no TicketID in the body (Event.TicketID or TicketID)")
