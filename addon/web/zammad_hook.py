"""Zammad's webhook: the fast path for closed tickets (`register` creates webhook and trigger).

    POST /api/zammad/v1/webhook      Zammad's trigger "ticketbill: ticket closed" delivers here

Zammad signs the raw body: `X-Hub-Signature: sha1=<HMAC-SHA1 hex of the body, keyed with the
webhook's signature token>` (ZAMMAD_WEBHOOK_SECRET). The signature is checked over the exact
bytes received, in constant time, before the body is even parsed; an unsigned or wrongly
signed request changes nothing (401). A delivery is stored once by its `X-Zammad-Delivery`
id, which Zammad keeps on every retry, so a retry is acknowledged without effect. The answer
comes at once (Zammad waits at most 30 s, then retries): the work is the next sync run,
started now, which bills the ticket like a polled one. Polling stays the safety net for a
delivery that never arrives. The receiver is off (404) while the secret is empty.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from addon.models import PushEvent
from addon.web.events import record_close_event
from addon.web.payload import PayloadError, identifier, parse_json

bp = Blueprint("zammad_hook", __name__, url_prefix="/api/zammad/v1")
PATH = "/api/zammad/v1/webhook"
#: Zammad's default payload of a small ticket is a few KB; far more is not Zammad's.
MAX_BODY = 1_000_000


def _error(status: int, message: str, field: str | None = None) -> ResponseReturnValue:
    return jsonify({"error": message, **({"field": field} if field else {})}), status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> ResponseReturnValue:
    """MAX_REQUEST_BYTES set below this receiver's own limit."""
    return _error(413, f"body larger than {current_app.config.get('MAX_CONTENT_LENGTH')} bytes (MAX_REQUEST_BYTES)")


def _ticket_id(raw: bytes) -> str:
    """Zammad's `ticket.id`, checked like any pushed value: a signature says who sent the body,
    not that it fits the database."""
    body: Any = parse_json(raw)
    ticket = body.get("ticket") if isinstance(body, dict) else None
    if not isinstance(ticket, dict) or ticket.get("id") is None:
        raise PayloadError("ticket.id", "not Zammad's webhook payload (no ticket.id)")
    return identifier("ticket.id", ticket["id"], PushEvent.ticket_remote_id)


@bp.post("/webhook")
def webhook() -> ResponseReturnValue:
    """Verify the signature, store the delivery once, start the next sync run."""
    secret = current_app.extensions["ticketbill"].settings.zammad_signature_token
    if not secret:
        return _error(404, "the Zammad webhook is off; set ZAMMAD_WEBHOOK_SECRET to enable it")
    if (request.content_length or 0) > MAX_BODY:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    expected = "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    sent = request.headers.get("X-Hub-Signature", "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        return _error(401, "missing or wrong X-Hub-Signature (HMAC-SHA1 of the body with "
                           "ZAMMAD_WEBHOOK_SECRET)")
    try:
        ticket_id = _ticket_id(raw)
    except PayloadError as exc:
        return _error(422, str(exc), exc.field)
    delivery = request.headers.get("X-Zammad-Delivery") or hashlib.sha256(raw).hexdigest()
    key = hashlib.sha256(f"delivery\x1f{delivery}".encode()).hexdigest()
    if not record_close_event("zammad", key, ticket_id):
        return jsonify({"accepted": False, "duplicate": True}), 200
    return jsonify({"accepted": True, "duplicate": False}), 202
