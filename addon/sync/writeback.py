"""Write-back through the outbox: each external effect is a row, performed after commit, once.

Issuing an invoice (or flagging a ticket) inserts an outbox row in the same transaction. The
worker below performs pending rows, one write per ticket. A row is claimed (attempts + 1,
committed) before its helpdesk call; a row tried before may have landed, and for it the
connector reads the ticket first and skips the write when the row's marker is already there,
so a crash between the helpdesk call and marking the row done cannot produce a second note.

Rows of kind `email` deliver an issued document to the customer (`perform_deliveries`): the
stored hybrid PDF (its SHA-256 checked against the invoice row first) and, for public buyers,
the XRechnung XML. Transient SMTP errors are retried within the run and in later runs; the
invoice shows `delivery_status` pending/sent/failed with the last error.
"""

from __future__ import annotations

import hashlib
import html
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.db import transaction
from addon.delivery.mail import DeliveryResult, SmtpSettings, send_invoice
from addon.invoicing.audit import record
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice, Outbox, ReviewItem, Ticket
from addon.settings import Settings
from connectors.base import ConnectorError, HelpdeskConnector, NotFound, WriteBack, WrittenVersions

log = logging.getLogger(__name__)

WRITE_BACK = "ticket_writeback"
EMAIL = "email"
MAX_ATTEMPTS = 8
#: Extra SMTP attempts within one run, and the first pause between them (seconds, doubling).
MAIL_RETRIES = 2
MAIL_BACKOFF = 1.0


def _note(title: str, body_html: str, marker: str) -> str:
    return f"<p><b>{html.escape(title)}</b></p>{body_html}<p><small>ticketbill ref {html.escape(marker)}</small></p>"


def queue_invoiced(
    session: Session,
    ticket: Ticket,
    invoice_id: int,
    number: str,
    url: str,
    gross_text: str,
    now: datetime,
    history: str | None = None,
) -> None:
    """Queue status `invoiced`, the reference, the link and one internal note. `history` names
    the cancelled invoice this one replaces ("RE-1 cancelled by ST-1 → RE-2")."""
    link = f'<a href="{html.escape(url)}">{html.escape(number)}</a>'
    body = f"<p>Rechnung / Invoice {link} — {html.escape(gross_text)}</p>"
    if history:
        body += f"<p>{html.escape(history)}</p>"
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


def queue_cancelled(
    session: Session,
    ticket: Ticket,
    cancellation_id: int,
    original: str,
    cancellation: str,
    url: str,
    reason: str | None,
    now: datetime,
    outcome: str = "Die Zeiten werden neu abgerechnet / the time will be billed again.",
    status: str = "cancelled",
) -> None:
    """Queue the cancellation's status, reference, link and one note; `outcome` says what
    happens to the work (billed again, on hold, billed elsewhere, written off)."""
    link = f'<a href="{html.escape(url)}">{html.escape(cancellation)}</a>'
    body = f"<p>{html.escape(original)} storniert durch {link} / cancelled by {html.escape(cancellation)}</p>"
    if reason:
        body += f"<p>Grund / reason: {html.escape(reason)}</p>"
    body += f"<p>{html.escape(outcome)}</p>"
    _queue(
        session,
        ticket,
        marker=cancellation,
        invoice_id=cancellation_id,
        payload={
            "billing_status": status,
            "invoice_reference": cancellation,
            "invoice_url": url,
            "note_subject": f"Rechnung {original} storniert",
            "note_html": _note(f"{original} storniert durch {cancellation}", body, cancellation),
        },
        now=now,
    )


def queue_email(
    session: Session,
    invoice_id: int,
    ticket_id: int | None,
    number: str,
    recipient: str,
    xrechnung: bool,
    now: datetime,
) -> None:
    """Queue the e-mail of an issued document; performed after commit by `perform_deliveries`."""
    marker = f"email:{number}"
    exists = session.execute(select(Outbox.id).where(Outbox.kind == EMAIL, Outbox.marker == marker)).first()
    if exists is None:
        session.add(
            Outbox(
                kind=EMAIL,
                ticket_id=ticket_id,
                invoice_id=invoice_id,
                marker=marker,
                payload={"to": recipient, "xrechnung": xrechnung},
                created_at=now,
            )
        )


def _noted_before(session: Session, ticket: Ticket, status: str, digest: str) -> bool:
    """Whether the ticket already got the note of this exact state (status and reason)."""
    rows = session.execute(select(Outbox.marker, Outbox.payload).where(
        Outbox.kind == WRITE_BACK, Outbox.ticket_id == ticket.id, Outbox.invoice_id.is_(None))).all()
    return any(marker.startswith(f"{status}:") and marker.endswith(f":{digest}") and payload.get("note_html")
               for marker, payload in rows)


def queue_status(session: Session, ticket: Ticket, status: str, reason: str | None, now: datetime) -> None:
    """Queue a status change (needs attention, not billable) with the reason as a note.

    Called only when the ticket's status or reason changed (`set_status`). The marker names
    the ticket's status version, so the sidecar's own write (which bumps the ticket and brings
    it back in the next poll) never produces a second note for the same change. A state the
    ticket had before (same status, same reason) gets its status written again, but no second
    note: a note says what changed, and that was said already.
    """
    digest = hashlib.sha256(f"{status}\x1f{reason or ''}".encode()).hexdigest()[:10]
    marker = f"{status}:{ticket.status_version}:{digest}"
    payload: dict[str, Any] = {"billing_status": status}
    if reason and not _noted_before(session, ticket, status, digest):
        label = {"needs_attention": "Abrechnung: Bitte prüfen / billing needs attention"}.get(
            status, f"Abrechnung: {status}"
        )
        payload["note_subject"] = label
        payload["note_html"] = _note(label, f"<p>{html.escape(reason)}</p>", marker)
    _queue(session, ticket, marker=marker, invoice_id=None, payload=payload, now=now)


def queue_review(session: Session, ticket: Ticket, kind: str, message: str, now: datetime) -> ReviewItem | None:
    """Record a review item on an already billed ticket, with one internal note; once per
    (ticket, kind, message), however often a sync sees the condition. Returns the new item."""
    key = f"{kind}:{hashlib.sha256(message.encode()).hexdigest()[:40]}"
    exists = session.execute(select(ReviewItem.id).where(ReviewItem.ticket_id == ticket.id,
                                                         ReviewItem.key == key)).first()
    if exists is not None:
        return None
    item = ReviewItem(ticket_id=ticket.id, kind=kind, key=key, message=message, created_at=now)
    session.add(item)
    session.flush()
    marker = f"review:{item.id}"
    label = "Abrechnung: Bitte prüfen / billing review"
    body = f"<p>{html.escape(message)}</p><p>Die Rechnung bleibt unverändert / the invoice stays as issued.</p>"
    _queue(session, ticket, marker=marker, invoice_id=None, now=now, payload={
        "billing_status": ticket.billing_status, "note_subject": label, "note_html": _note(label, body, marker)})
    return item


#: statuses an invoiced ticket may move to: a new invoice, a draft of one, a cancellation
AFTER_INVOICED = ("invoiced", "draft", "cancelled")


def set_status(session: Session, ticket: Ticket, status: str, reason: str | None, now: datetime) -> bool:
    """Record a billing status on the ticket; queue the write-back if anything changed.

    An invoiced ticket's status never regresses: what would make it "needs attention" (time
    held, a booking problem) becomes a review item instead, and informational states (waiting
    for the monthly invoice, nothing to bill) leave it invoiced without a word.
    """
    if ticket.billing_status == status and ticket.attention_reason == reason:
        return False
    if ticket.billing_status == "invoiced" and status not in AFTER_INVOICED:
        if status == "needs_attention" and reason:
            queue_review(session, ticket, "after_invoice", reason, now)
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
    """Perform this connector's pending write-backs: one write per ticket, a few in flight.

    Only rows of tickets from `connector.kind` are touched: tickets that came through the
    push API (or from another helpdesk) are never written to this one. A ticket's pending
    rows (its status in the morning, its invoice at night) become one write with the newest
    status and all their notes; the rows are claimed (attempts + 1, committed) before the
    helpdesk call, so a row found tried before may have landed and is performed on its own
    with `check_first`, the connector looking for its marker. The calls run on
    `connector.concurrency` threads (HELPDESK_CONCURRENCY; 1 if the connector has none);
    every database write stays in this thread.
    Returns counts: written, skipped (marker already present), failed (kept for retry).
    """
    counts = {"written": 0, "already_present": 0, "write_failed": 0}
    with transaction(factory) as session:
        rows = session.execute(
            select(Outbox, Ticket.remote_id, Ticket.number)
            .join(Ticket, Outbox.ticket_id == Ticket.id)
            .where(Outbox.kind == WRITE_BACK, Outbox.status == "pending", Ticket.helpdesk == connector.kind)
            .order_by(Outbox.id).with_for_update()
        ).all()
        groups: dict[int, list[tuple[Outbox, str, str]]] = {}
        for row, remote_id, number in rows:
            groups.setdefault(row.ticket_id, []).append((row, remote_id, number))
        writes: list[tuple[int, str, str, list[int], WriteBack]] = []
        for ticket_id, group in groups.items():
            tried = any(row.attempts for row, _, _ in group)
            for row, _, _ in group:
                row.attempts += 1
            parts = [[item] for item in group] if tried else [group]
            for part in parts:
                writes.append((ticket_id, part[0][1], part[0][2], [row.id for row, _, _ in part],
                               _change([row for row, _, _ in part], check_first=tried)))

    def perform(change: tuple[str, WriteBack]) -> bool | ConnectorError:
        try:
            return connector.write_back(*change)
        except ConnectorError as exc:
            return exc

    workers = max(1, getattr(connector, "concurrency", 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="writeback") as pool:
        outcomes = pool.map(perform, [(remote_id, change) for _, remote_id, _, _, change in writes])
        for (ticket_id, remote_id, number, ids, _), outcome in zip(writes, outcomes, strict=True):
            with transaction(factory) as session:
                _record(session, connector, ticket_id, remote_id, number, ids, outcome, now, counts)
    return counts


def _change(rows: list[Outbox], *, check_first: bool) -> WriteBack:
    """One write for a ticket's pending rows (in id order): the newest status, the newest
    reference and link, every note in order under the newest row's marker."""
    last = rows[-1].payload
    newest = {key: row.payload[key] for row in rows for key in ("invoice_reference", "invoice_url", "note_subject")
              if row.payload.get(key) is not None}
    notes = "".join(row.payload["note_html"] for row in rows if row.payload.get("note_html"))
    return WriteBack(billing_status=last["billing_status"], marker=rows[-1].marker,
                     invoice_reference=newest.get("invoice_reference"), invoice_url=newest.get("invoice_url"),
                     note_subject=newest.get("note_subject"), note_html=notes or None, check_first=check_first)


def _record(
    session: Session, connector: HelpdeskConnector, ticket_id: int, remote_id: str, number: str, ids: list[int],
    outcome: bool | ConnectorError, now: datetime, counts: dict[str, int],
) -> None:
    """Mark the rows of one write done, failed or kept for retry; remember the version written."""
    rows = session.execute(select(Outbox).where(Outbox.id.in_(ids))).scalars().all()
    if isinstance(outcome, NotFound):
        for row in rows:
            row.status = "failed"
            row.last_error = f"ticket {number} no longer exists in the helpdesk: {outcome}"
        counts["write_failed"] += 1
        return
    if isinstance(outcome, ConnectorError):
        for row in rows:
            row.last_error = str(outcome)
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
        counts["write_failed"] += 1
        log.warning("write-back to ticket %s failed (attempt %d): %s", number, rows[0].attempts, outcome)
        return
    for row in rows:
        row.status, row.done_at, row.last_error = "done", now, None
    counts["written" if outcome else "already_present"] += 1
    if outcome and isinstance(connector, WrittenVersions):
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.written_updated_at = connector.written_version(remote_id)


def smtp_settings(settings: Settings) -> SmtpSettings | None:
    """The SMTP connection from the settings, or None while delivery is off (no SMTP_HOST)."""
    if not settings.smtp_host:
        return None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,  # type: ignore[arg-type]
        user=settings.smtp_user,
        password=settings.smtp_password,
        sender=settings.smtp_sender or "",
    )


def _attachments(invoice: Invoice, xrechnung: bool) -> list[RenderedFile]:
    """The stored files exactly as issued: the hybrid PDF (refused if its bytes no longer match
    the stored SHA-256) and, for public buyers, the XRechnung XML stored next to it."""
    pdf_path = Path(invoice.pdf_path or "")
    content = pdf_path.read_bytes()
    if hashlib.sha256(content).hexdigest() != invoice.pdf_sha256:
        raise OSError(f"{pdf_path} does not match the SHA-256 stored for {invoice.number}")
    files = [RenderedFile(pdf_path.name, "application/pdf", content)]
    if xrechnung:
        xml_path = pdf_path.with_name(f"{invoice.number}-xrechnung.xml")
        files.append(RenderedFile(xml_path.name, "application/xml", xml_path.read_bytes()))
    return files


def perform_deliveries(
    factory: sessionmaker[Session],
    settings: Settings,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
    actor: str = "sync",
) -> dict[str, int]:
    """Send pending invoice e-mails; each row commits on its own. Returns mailed/mail_failed."""
    counts = {"mailed": 0, "mail_failed": 0}
    smtp = smtp_settings(settings)
    if smtp is None:
        return counts
    with factory() as session:
        pending = session.execute(
            select(Outbox.id).where(Outbox.kind == EMAIL, Outbox.status == "pending").order_by(Outbox.id)
        ).scalars().all()
    for outbox_id in pending:
        with transaction(factory) as session:
            row = session.get(Outbox, outbox_id, with_for_update=True)
            if row is None or row.status != "pending":
                continue
            invoice = session.get(Invoice, row.invoice_id)
            assert invoice is not None and invoice.snapshot is not None
            row.attempts += 1
            try:
                files = _attachments(invoice, bool(row.payload.get("xrechnung")))
            except OSError as exc:
                result = DeliveryResult("failed", 0, f"attachment: {exc}")
            else:
                result = send_invoice(
                    InvoiceSnapshot.from_json(invoice.snapshot), files, smtp, row.payload["to"],
                    retries=MAIL_RETRIES, sleep=sleep, backoff=MAIL_BACKOFF,
                )
            if result.status == "sent":
                row.status, row.done_at, row.last_error = "done", now, None
                invoice.delivery_status, invoice.delivery_error, invoice.sent_at = "sent", None, now
                if invoice.state == "issued":
                    invoice.state = "sent"
                record(session, "send", actor, now, invoice,
                       {"to": row.payload["to"], "attachments": [f.filename for f in files],
                        "message_id": result.message_id})
                counts["mailed"] += 1
                continue
            # a permanent error stops before the retries are used up; so does a missing file
            permanent = result.attempts < MAIL_RETRIES + 1
            row.last_error = result.error
            invoice.delivery_error = result.error
            if permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                invoice.delivery_status = "failed"
            record(session, "send_failed", actor, now, invoice,
                   {"to": row.payload["to"], "error": result.error, "final": row.status == "failed"})
            counts["mail_failed"] += 1
            log.warning("e-mail of %s failed: %s", invoice.number, result.error)
    return counts
