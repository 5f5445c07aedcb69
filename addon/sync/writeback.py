"""Write-back through the outbox: each external effect is a row, performed after commit, once.

Issuing an invoice (or flagging a ticket) inserts an outbox row in the same transaction. The
worker below performs pending rows; the connector reads the ticket first and skips the write
when the row's marker is already there, so a crash between the helpdesk call and marking the
row done cannot produce a second note.
"""

from __future__ import annotations

import hashlib
import html
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.db import transaction
from addon.models import Outbox, Ticket
from connectors.base import ConnectorError, HelpdeskConnector, NotFound, WriteBack

log = logging.getLogger(__name__)

WRITE_BACK = "ticket_writeback"
MAX_ATTEMPTS = 8


def _note(title: str, body_html: str, marker: str) -> str:
    return f"<p><b>{html.escape(title)}</b></p>{body_html}<p><small>ticketbill ref {html.escape(marker)}</small></p>"


def queue_invoiced(
    session: Session, ticket: Ticket, invoice_id: int, number: str, url: str, gross_text: str, now: datetime
) -> None:
    """Queue status `invoiced`, the reference, the link and one internal note."""
    link = f'<a href="{html.escape(url)}">{html.escape(number)}</a>'
    body = f"<p>Rechnung / Invoice {link} — {html.escape(gross_text)}</p>"
    _queue(
        session,
        ticket,
        marker=number,
        invoice_id=invoice_id,
        payload={
            "billing_status": "invoiced",
            "invoice_reference": number,
            "invoice_url": url,
            "note_subject": f"Rechnung {number}",
            "note_html": _note(f"Rechnung {number} erstellt / invoice {number} issued", body, number),
        },
        now=now,
    )


def queue_status(session: Session, ticket: Ticket, status: str, reason: str | None, now: datetime) -> None:
    """Queue a status change (needs attention, not billable) with the reason as a note.

    Called only when the ticket's status or reason changed (`set_status`). The marker names
    the ticket's status version, so the sidecar's own write (which bumps the ticket and brings
    it back in the next poll) never produces a second note for the same change.
    """
    digest = hashlib.sha256(f"{status}\x1f{reason or ''}".encode()).hexdigest()[:10]
    marker = f"{status}:{ticket.status_version}:{digest}"
    payload: dict[str, Any] = {"billing_status": status}
    if reason:
        label = {"needs_attention": "Abrechnung: Bitte prüfen / billing needs attention"}.get(
            status, f"Abrechnung: {status}"
        )
        payload["note_subject"] = label
        payload["note_html"] = _note(label, f"<p>{html.escape(reason)}</p>", marker)
    _queue(session, ticket, marker=marker, invoice_id=None, payload=payload, now=now)


def set_status(session: Session, ticket: Ticket, status: str, reason: str | None, now: datetime) -> bool:
    """Record a billing status on the ticket; queue the write-back if anything changed."""
    if ticket.billing_status == status and ticket.attention_reason == reason:
        return False
    ticket.billing_status = status
    ticket.attention_reason = reason
    ticket.status_version += 1
    session.flush()
    queue_status(session, ticket, status, reason, now)
    return True


def _queue(
    session: Session, ticket: Ticket, marker: str, invoice_id: int | None, payload: dict[str, Any], now: datetime
) -> None:
    exists = session.execute(
        select(Outbox.id).where(Outbox.kind == WRITE_BACK, Outbox.ticket_id == ticket.id, Outbox.marker == marker)
    ).first()
    if exists is None:
        session.add(
            Outbox(
                kind=WRITE_BACK,
                ticket_id=ticket.id,
                invoice_id=invoice_id,
                marker=marker,
                payload=payload,
                created_at=now,
            )
        )


def perform_pending(factory: sessionmaker[Session], connector: HelpdeskConnector, now: datetime) -> dict[str, int]:
    """Perform pending write-backs in order; each row commits on its own.

    Returns counts: written, skipped (marker already present), failed (kept for retry).
    """
    counts = {"written": 0, "already_present": 0, "write_failed": 0}
    with factory() as session:
        pending = session.execute(
            select(Outbox.id).where(Outbox.kind == WRITE_BACK, Outbox.status == "pending").order_by(Outbox.id)
        ).scalars().all()
    for outbox_id in pending:
        with transaction(factory) as session:
            row = session.get(Outbox, outbox_id, with_for_update=True)
            if row is None or row.status != "pending":
                continue
            ticket = session.get(Ticket, row.ticket_id)
            assert ticket is not None
            change = WriteBack(marker=row.marker, **row.payload)
            row.attempts += 1
            try:
                wrote = connector.write_back(ticket.remote_id, change)
            except NotFound as exc:
                row.status = "failed"
                row.last_error = f"ticket {ticket.number} no longer exists in the helpdesk: {exc}"
                counts["write_failed"] += 1
                continue
            except ConnectorError as exc:
                row.last_error = str(exc)
                if row.attempts >= MAX_ATTEMPTS:
                    row.status = "failed"
                counts["write_failed"] += 1
                log.warning("write-back to ticket %s failed (attempt %d): %s", ticket.number, row.attempts, exc)
                continue
            row.status = "done"
            row.done_at = now
            row.last_error = None
            counts["written" if wrote else "already_present"] += 1
    return counts
