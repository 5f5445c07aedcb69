"""Write-back through the outbox: each external effect is a row, performed after commit, once.

Issuing an invoice (or flagging a ticket) inserts an outbox row in the same transaction. The
worker below performs due pending rows, one write per ticket, a few tickets at a time. Each
attempt is committed as `in_doubt` before its helpdesk call; an attempt whose outcome is unknown
(a crash between the helpdesk call and marking the row done, a timeout, a reset, a 5xx) reads
the ticket back before it writes again, so it cannot produce a second note; the normal path
writes without reading. Rows never give up: a failure is retried with capped exponential
backoff, and `ticketbill outbox` shows the backlog.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from addon.db import transaction
from addon.delivery.mail import DeliveryResult, SmtpSettings, send_invoice
from addon.invoicing.audit import record
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice, Outbox, ReviewItem, Ticket
from addon.settings import Settings
from connectors.base import (
    AuthError,
    ConnectorError,
    HelpdeskConnector,
    NotFound,
    RateLimited,
    ReadBack,
    RemoteError,
    WriteBack,
    WrittenVersions,
)

log = logging.getLogger(__name__)

WRITE_BACK = "ticket_writeback"
EMAIL = "email"
#: the first pause after a failed attempt, doubling per attempt up to the cap; never giving up
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
#: after an uncertain failure the helpdesk may still be completing the write (it finished
#: after the client's 30 s timeout): the read-back waits this long so that it sees the write
SETTLE = timedelta(minutes=5)
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


def backoff(attempts: int, uncertain: bool = False) -> timedelta:
    """How long a row waits after its `attempts`-th failure: doubling from `BACKOFF_BASE`,
    capped at `BACKOFF_CAP`; never less than `SETTLE` when the write may still be landing."""
    wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, min(attempts - 1, 16)))
    return max(wait, SETTLE) if uncertain else wait


def uncertain(exc: ConnectorError) -> bool:
    """Whether a failed write may have landed: no answer (timeout, reset after sending), a 5xx,
    or an answer that accepted part of it. A 4xx or 429 says the helpdesk did not process it."""
    if isinstance(exc, (AuthError, NotFound, RateLimited)):
        return False
    return not isinstance(exc, RemoteError) or exc.status == 0 or exc.status >= 500 or exc.status < 400


def perform_pending(factory: sessionmaker[Session], connector: HelpdeskConnector, now: datetime) -> dict[str, int]:
    """Perform this connector's due write-backs: one write per ticket, a few tickets in flight;
    a row never gives up for good.

    Only rows of tickets from `connector.kind` are touched: tickets that came through the
    push API (or from another helpdesk) are never written to this one. A ticket's pending
    rows (its status in the morning, its invoice at night) become one write with the newest
    status and all their notes (each note carries its row's marker). A ticket waits as a
    whole while one of its rows waits for its backoff, so an older status never lands after a
    newer one.

    Each attempt is committed as `in_doubt` (attempts + 1, the next attempt after `SETTLE`)
    *before* the helpdesk call, and its outcome after. A ticket with a row in doubt (a process
    killed in between, a timeout, a reset, a 5xx) is written row by row, and each row in doubt
    reads back first (`ReadBack.remainder`): a note that landed is never written twice. A
    failed row is retried with exponential backoff (`backoff`) forever; a ticket deleted in the
    helpdesk ends its rows as `gone`. The helpdesk calls run on `connector.concurrency` threads
    (HELPDESK_CONCURRENCY; 1 if the connector has none), a ticket's writes in order on one of
    them; every database write stays in this thread.
    Returns counts: written, already_present, write_failed, write_gone.
    """
    counts = {"written": 0, "already_present": 0, "write_failed": 0, "write_gone": 0}
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
        tickets: list[TicketWrites] = []
        for ticket_id, group in groups.items():
            if any(row.next_attempt_at is not None and row.next_attempt_at > now for row, _, _ in group):
                continue  # waits for its backoff, with the rows queued since
            doubt = any(row.in_doubt for row, _, _ in group)
            parts = [[row] for row, _, _ in group] if doubt else [[row for row, _, _ in group]]
            tickets.append(TicketWrites(ticket_id, group[0][1], group[0][2], tuple(
                ([row.id for row in part], _change(part), any(row.in_doubt for row in part)) for part in parts)))
            for row, _, _ in group:
                row.attempts += 1
                row.in_doubt = True  # until the outcome is committed
                row.next_attempt_at = now + backoff(row.attempts, uncertain=True)

    workers = max(1, getattr(connector, "concurrency", 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="writeback") as pool:
        for writes, outcomes in zip(tickets, pool.map(lambda w: _perform(connector, w), tickets), strict=True):
            for (ids, _, doubt), outcome in zip(writes.parts, outcomes, strict=True):
                with transaction(factory) as session:
                    _record(session, connector, writes, ids, doubt, outcome, now, counts)
    return counts


@dataclass(frozen=True)
class TicketWrites:
    """One ticket's writes of this run, in order: (outbox ids, the change, whether in doubt)."""

    ticket_id: int
    remote_id: str
    number: str
    parts: tuple[tuple[list[int], WriteBack, bool], ...]


Outcome = str | ConnectorError  # "written", "already_present", "gone", or the failure


def _perform(connector: HelpdeskConnector, writes: TicketWrites) -> list[Outcome]:
    """A ticket's writes in order, on a worker thread (no database). After a failure the rest
    of the ticket's writes wait too: a newer status must not land before an older one."""
    outcomes: list[Outcome] = []
    for _ids, change, doubt in writes.parts:
        if outcomes and isinstance(outcomes[-1], ConnectorError):
            outcomes.append(outcomes[-1])
            continue
        try:
            rest: WriteBack | None = change
            if doubt and isinstance(connector, ReadBack):
                rest = connector.remainder(writes.remote_id, change)
            outcomes.append("already_present" if rest is None or not connector.write_back(writes.remote_id, rest)
                            else "written")
        except NotFound as exc:
            try:
                connector.ticket(writes.remote_id)
                outcomes.append(exc)  # the ticket is there: a passing 404, retried
            except NotFound:
                outcomes.append("gone")
            except ConnectorError as again:
                outcomes.append(again)
        except ConnectorError as exc:
            outcomes.append(exc)
    return outcomes


def _change(rows: list[Outbox]) -> WriteBack:
    """One write for a ticket's pending rows (in id order): the newest status, the newest
    reference and link, every note in order (each with its own marker) under the newest row's
    marker."""
    last = rows[-1].payload
    newest = {key: row.payload[key] for row in rows for key in ("invoice_reference", "invoice_url", "note_subject")
              if row.payload.get(key) is not None}
    notes = "".join(row.payload["note_html"] for row in rows if row.payload.get("note_html"))
    return WriteBack(billing_status=last["billing_status"], marker=rows[-1].marker,
                     invoice_reference=newest.get("invoice_reference"), invoice_url=newest.get("invoice_url"),
                     note_subject=newest.get("note_subject"), note_html=notes or None)


def _record(
    session: Session, connector: HelpdeskConnector, writes: TicketWrites, ids: list[int], doubt: bool,
    outcome: Outcome, now: datetime, counts: dict[str, int],
) -> None:
    """Mark the rows of one write done, gone or kept for retry; remember the version written."""
    rows = session.execute(select(Outbox).where(Outbox.id.in_(ids)).with_for_update()).scalars().all()
    if isinstance(outcome, ConnectorError):
        for row in rows:
            row.in_doubt = doubt or uncertain(outcome)
            row.next_attempt_at = now + backoff(row.attempts, row.in_doubt)
            row.last_error = str(outcome)
        counts["write_failed"] += 1
        log.warning("write-back to ticket %s failed (attempt %d, next at %s): %s",
                    writes.number, rows[0].attempts, rows[0].next_attempt_at, outcome)
        return
    for row in rows:
        row.in_doubt, row.next_attempt_at = False, None
        if outcome == "gone":
            row.status = "gone"
            row.last_error = f"ticket {writes.number} no longer exists in the helpdesk; nothing to write to"
        else:
            row.status, row.done_at, row.last_error = "done", now, None
    if outcome == "gone":
        counts["write_gone"] += 1
        return
    counts[outcome] += 1
    if outcome == "written" and isinstance(connector, WrittenVersions):
        ticket = session.get(Ticket, writes.ticket_id)
        assert ticket is not None
        ticket.written_updated_at = connector.written_version(writes.remote_id)


@dataclass(frozen=True)
class Backlog:
    """What the outbox still owes: counts by state, the oldest open row and the last error."""

    by_status: dict[str, int]
    in_doubt: int
    oldest_pending: datetime | None
    next_attempt: datetime | None
    last_error: str | None

    @property
    def pending(self) -> int:
        return self.by_status.get("pending", 0)

    def lines(self, now: datetime) -> list[str]:
        """What `ticketbill outbox` prints."""
        states = ", ".join(f"{n} {status}" for status, n in sorted(self.by_status.items())) or "empty"
        out = [f"outbox: {states}"]
        if self.oldest_pending is not None:
            age = int((now - self.oldest_pending).total_seconds() // 60)
            out.append(f"oldest pending: {self.oldest_pending:%Y-%m-%d %H:%M} UTC ({age} min ago)")
        if self.in_doubt:
            out.append(f"in doubt (read back before the next attempt): {self.in_doubt}")
        if self.next_attempt is not None:
            out.append(f"next attempt: {self.next_attempt:%Y-%m-%d %H:%M:%S} UTC")
        if self.last_error:
            out.append(f"last error: {self.last_error}")
        return out


def backlog(session: Session) -> Backlog:
    """The outbox's state, for `ticketbill outbox`, `/readyz` and `ticketbill verify`."""
    by_status = {status: n for status, n in session.execute(
        select(Outbox.status, func.count()).group_by(Outbox.status)).all()}
    pending = Outbox.status == "pending"
    oldest, upcoming, doubtful = session.execute(
        select(func.min(Outbox.created_at), func.min(Outbox.next_attempt_at),
               func.count().filter(Outbox.in_doubt.is_(True))).where(pending)).one()
    last_error = session.execute(
        select(Outbox.last_error).where(pending, Outbox.last_error.is_not(None))
        .order_by(Outbox.next_attempt_at.desc(), Outbox.id.desc()).limit(1)).scalar_one_or_none()
    return Backlog(by_status, doubtful or 0, oldest, upcoming, last_error)


def retry_now(session: Session) -> int:
    """Make every pending row due now (the helpdesk is back). Rows in doubt still read back
    first. Returns how many rows were waiting."""
    return session.execute(update(Outbox).where(Outbox.status == "pending", Outbox.next_attempt_at.is_not(None))
                           .values(next_attempt_at=None)).rowcount


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
            if permanent:  # a transient error is tried again next run, never given up
                row.status = "failed"
                invoice.delivery_status = "failed"
            record(session, "send_failed", actor, now, invoice,
                   {"to": row.payload["to"], "error": result.error, "final": row.status == "failed"})
            counts["mail_failed"] += 1
            log.warning("e-mail of %s failed: %s", invoice.number, result.error)
    return counts
