"""Upsert helpdesk records into the sidecar's database, keyed by (helpdesk, remote id).

Entries and booked extras (materials, travel, visits) carry a content hash: an unchanged one
is left alone; a changed one that is not yet billed is updated; a changed one that is already
billed is never rewritten in place (the invoice keeps what it billed) and its ticket is flagged
for review instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from addon.customers import apply_helpdesk_details
from addon.models import BilledEntry, BilledExtra, BookedExtra, Customer, Invoice, SyncCursor, Ticket, TimeEntry
from connectors.base import BookingProblem, RemoteCustomer, RemoteExtra, RemoteTicket, RemoteTimeEntry

T = TypeVar("T", Customer, Ticket)


def _minutes(value: Decimal) -> str:
    """30.00 → '30', 7.50 → '7.5' (no exponent notation)."""
    return format(value.normalize(), "f")


def entry_hash(entry: RemoteTimeEntry) -> str:
    """A stable fingerprint of what billing reads from an entry."""
    parts = (
        entry.ticket_remote_id,
        entry.agent,
        entry.activity or "",
        str(entry.minutes.normalize()),
        entry.booked_at.isoformat(),
        entry.start.isoformat() if entry.start else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def extra_hash(extra: RemoteExtra) -> str:
    """A stable fingerprint of what billing reads from a booked extra."""
    parts = (
        extra.ticket_remote_id,
        extra.kind,
        extra.description,
        str(extra.quantity.normalize()),
        "" if extra.unit_cost is None else str(extra.unit_cost.normalize()),
        extra.category or "",
        extra.booked_at.isoformat(),
        extra.agent,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def changes_text(entry: TimeEntry, remote: RemoteTimeEntry, ticket: Ticket) -> str:
    """What changed on a billed entry, field by field: "activity Remote → Vor-Ort"."""
    def when(moment: datetime | None) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "none"

    pairs = (
        ("minutes", f"{_minutes(entry.minutes)} min", f"{_minutes(remote.minutes)} min"),
        ("activity", entry.activity or "none", remote.activity or "none"),
        ("agent", entry.agent, remote.agent),
        ("booked", when(entry.booked_at), when(remote.booked_at)),
        ("start", when(entry.start), when(remote.start)),
        ("ticket", ticket.number if entry.ticket_id == ticket.id else f"id {entry.ticket_id}", ticket.number),
    )
    changed = [f"{name} {old} → {new}" for name, old, new in pairs if old != new]
    return "; ".join(changed) or "content changed"


def problems_text(problems: Sequence[BookingProblem]) -> str | None:
    """The ticket's unreadable booking lines as "line — reason", one per line; None if none."""
    return "\n".join(f"{p.line} — {p.reason}" for p in problems) or None


def _insert_once(session: Session, row: T, find: Callable[[], T | None]) -> T:
    """Insert a keyed row, or take the one a concurrent transaction inserted first.

    The insert runs in a savepoint: a duplicate key (another process stored the same helpdesk
    record a moment ago; issue 12 saw a run crash on `ticket_helpdesk_remote_id_key`) rolls
    back only the savepoint, and the committed row is read instead.
    """
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = find()
        if found is None:
            raise
        return found
    return row


def upsert_customer(session: Session, helpdesk: str, remote: RemoteCustomer) -> Customer:
    def find() -> Customer | None:
        return session.execute(
            select(Customer).where(Customer.helpdesk == helpdesk, Customer.remote_id == remote.remote_id)
        ).scalar_one_or_none()

    customer = find() or _insert_once(session, Customer(helpdesk=helpdesk, remote_id=remote.remote_id,
                                                         name=remote.name), find)
    if customer.name != remote.name:
        customer.name = remote.name
    if remote.details is not None:  # billing data kept in the helpdesk; the import wins
        apply_helpdesk_details(customer, remote.details)
    return customer


def upsert_ticket(session: Session, helpdesk: str, remote: RemoteTicket, now: datetime) -> Ticket:
    customer = upsert_customer(session, helpdesk, remote.customer) if remote.customer else None
    def find() -> Ticket | None:
        return session.execute(
            select(Ticket).where(Ticket.helpdesk == helpdesk, Ticket.remote_id == remote.remote_id)
        ).scalar_one_or_none()

    ticket = find() or _insert_once(session, Ticket(helpdesk=helpdesk, remote_id=remote.remote_id,
                                                     billing_status="unbilled", number=remote.number,
                                                     title=remote.title[:500], state=remote.state,
                                                     remote_updated_at=remote.updated_at, seen_at=now), find)
    ticket.number = remote.number
    ticket.title = remote.title[:500]
    ticket.customer_id = customer.id if customer else None
    ticket.customer = customer
    ticket.state = remote.state
    closed = remote.state_type == "closed" if remote.state_type else remote.closed_at is not None
    # a reopened Zammad ticket keeps its last close time: only a closed ticket has `closed_at`
    ticket.closed_at = (remote.closed_at or remote.updated_at) if closed else None
    ticket.merged_into = (remote.merged_into or "") if remote.state_type == "merged" else None
    ticket.remote_updated_at = remote.updated_at
    ticket.web_url = remote.web_url
    ticket.category = remote.category
    ticket.seen_at = now
    session.flush()
    return ticket


def upsert_entries(
    session: Session, helpdesk: str, ticket: Ticket, remote_entries: Sequence[RemoteTimeEntry], now: datetime
) -> None:
    """Store the ticket's entries. A billed entry that changed or vanished in the helpdesk is
    not touched; it gets a `drift` note instead, which keeps its ticket in review.

    Entries are keyed by remote id across tickets: after a merge, RT (and OTRS) report an
    entry under the surviving ticket. An unbilled entry moves along; a billed one stays with
    the invoice that billed it and is never billed again.
    """
    incoming = [r.remote_id for r in remote_entries]
    # each side of the OR has its own index (ticket_id; helpdesk + remote_id): written as
    # `helpdesk = ? AND (ticket_id = ? OR remote_id IN ...)`, SQLite read the helpdesk's every
    # entry for each stored ticket, a cost growing with all the time ever booked (a ticket's
    # entries are its helpdesk's; the check below only keeps that true for the map)
    existing = {
        e.remote_id: e
        for e in session.execute(
            select(TimeEntry).where(or_(
                TimeEntry.ticket_id == ticket.id,
                and_(TimeEntry.helpdesk == helpdesk, TimeEntry.remote_id.in_(incoming)),
            ))
        ).scalars()
        if e.helpdesk == helpdesk
    }
    billed_ids = set(
        session.execute(
            select(BilledEntry.entry_id).where(BilledEntry.entry_id.in_([e.id for e in existing.values()]))
        ).scalars()
    )
    seen: set[str] = set()
    for remote in remote_entries:
        seen.add(remote.remote_id)
        digest = entry_hash(remote)
        entry = existing.get(remote.remote_id)
        if entry is not None and remote.agent_name:
            entry.agent_name = remote.agent_name  # display only: also kept current on billed entries
        if entry is None:
            session.add(
                TimeEntry(
                    helpdesk=helpdesk,
                    remote_id=remote.remote_id,
                    ticket_id=ticket.id,
                    agent=remote.agent,
                    agent_name=remote.agent_name,
                    activity=remote.activity,
                    minutes=remote.minutes,
                    booked_at=remote.booked_at,
                    start=remote.start,
                    content_hash=digest,
                )
            )
            continue
        if entry.id in billed_ids:
            entry.drift = (
                None
                if entry.content_hash == digest
                else f"time entry {remote.remote_id} changed after it was invoiced "
                f"({changes_text(entry, remote, ticket)}); book a correction instead"
            )
            continue
        entry.ticket_id = ticket.id
        entry.agent, entry.activity, entry.minutes = remote.agent, remote.activity, remote.minutes
        entry.booked_at, entry.start, entry.content_hash = remote.booked_at, remote.start, digest
        entry.removed_at = None
    for remote_id, entry in existing.items():
        if remote_id in seen or entry.ticket_id != ticket.id or entry.removed_at is not None:
            continue
        if entry.id in billed_ids:
            entry.drift = f"time entry {remote_id} was deleted in the helpdesk after it was invoiced"
        else:
            entry.removed_at = now
    session.flush()


def upsert_extras(
    session: Session, helpdesk: str, ticket: Ticket, remote_extras: Sequence[RemoteExtra], now: datetime
) -> None:
    """Store the ticket's booked extras like its entries: new ones added, unbilled ones updated
    or marked removed, billed ones never rewritten (a change or deletion becomes `drift`)."""
    existing = {
        x.remote_id: x
        for x in session.execute(
            select(BookedExtra).where(BookedExtra.helpdesk == helpdesk, BookedExtra.ticket_id == ticket.id)
        ).scalars()
    }
    billed_ids = set(
        session.execute(
            select(BilledExtra.extra_id).join(Invoice, Invoice.id == BilledExtra.invoice_id).where(
                BilledExtra.extra_id.in_([x.id for x in existing.values()]), Invoice.state != "cancelled")
        ).scalars()
    )
    seen: set[str] = set()
    for remote in remote_extras:
        seen.add(remote.remote_id)
        digest = extra_hash(remote)
        extra = existing.get(remote.remote_id)
        if extra is None:
            session.add(BookedExtra(
                helpdesk=helpdesk, remote_id=remote.remote_id, ticket_id=ticket.id, kind=remote.kind,
                description=remote.description[:500], quantity=remote.quantity, unit_cost=remote.unit_cost,
                category=remote.category, booked_at=remote.booked_at, agent=remote.agent, content_hash=digest,
            ))
            continue
        if extra.id in billed_ids:
            extra.drift = (
                None if extra.content_hash == digest
                else f"booking '{extra.description}' ({remote.remote_id}) changed after it was invoiced; "
                "book a correction instead"
            )
            continue
        extra.kind, extra.description, extra.quantity = remote.kind, remote.description[:500], remote.quantity
        extra.unit_cost, extra.category, extra.booked_at = remote.unit_cost, remote.category, remote.booked_at
        extra.agent, extra.content_hash, extra.removed_at, extra.drift = remote.agent, digest, None, None
    for remote_id, extra in existing.items():
        if remote_id in seen or extra.removed_at is not None:
            continue
        if extra.id in billed_ids:
            extra.drift = (f"booking '{extra.description}' ({remote_id}) was deleted in the helpdesk "
                           "after it was invoiced")
        else:
            extra.removed_at = now
    session.flush()


def store_polled(
    session: Session,
    helpdesk: str,
    remote: RemoteTicket,
    entries: Sequence[RemoteTimeEntry],
    bookings: tuple[Sequence[RemoteExtra], Sequence[BookingProblem]] | None,
    now: datetime,
) -> Ticket:
    """One ticket read in full (polled, or re-read after an access problem) with its bookings.

    `bookings` is (extras, unreadable lines) from a connector that reads them, else None. A
    ticket that was unreadable before is readable now: its flag clears, and a status that only
    said so goes back to unbilled, so billing decides afresh.
    """
    ticket = upsert_ticket(session, helpdesk, remote, now)
    ticket.group, ticket.tags = remote.group, sorted(remote.tags)  # contract assignment
    upsert_entries(session, helpdesk, ticket, entries, now)
    if bookings is not None:
        extras, problems = bookings
        upsert_extras(session, helpdesk, ticket, extras, now)
        ticket.booking_problems = problems_text(problems)
    if ticket.access_problem is not None:
        if ticket.billing_status == "needs_attention" and ticket.attention_reason == ticket.access_problem:
            ticket.billing_status, ticket.attention_reason = "unbilled", None
            ticket.status_version += 1
        ticket.access_problem = None
    return ticket


def flag_unreadable(session: Session, helpdesk: str, remote: RemoteTicket, reason: str, now: datetime) -> Ticket:
    """The helpdesk lists the ticket but refuses its bookings to the API user (`NoAccess`).

    The ticket is stored with the reason and, unless billing already decided it (invoiced,
    draft, ...), needs attention. No write-back is queued: the same missing right keeps the
    API user from writing to the ticket.
    """
    ticket = upsert_ticket(session, helpdesk, remote, now)
    ticket.access_problem = reason
    if ticket.billing_status in ("unbilled", "needs_attention") and ticket.attention_reason != reason:
        ticket.billing_status, ticket.attention_reason = "needs_attention", reason
        ticket.status_version += 1
    return ticket


def read_cursor(session: Session, helpdesk: str, stream: str) -> datetime | None:
    row = session.get(SyncCursor, (helpdesk, stream))
    return row.value if row else None


def advance_cursor(session: Session, helpdesk: str, stream: str, value: datetime) -> None:
    """Move the cursor forward only; called in the same transaction as the upserts."""
    row = session.get(SyncCursor, (helpdesk, stream))
    if row is None:
        session.add(SyncCursor(helpdesk=helpdesk, stream=stream, value=value))
    elif value > row.value:
        row.value = value


def rewind_cursor(session: Session, helpdesk: str, stream: str, value: datetime) -> None:
    """Move the cursor back (only for one found in the future: see `jobs.rewind_future_cursor`)."""
    row = session.get(SyncCursor, (helpdesk, stream))
    if row is not None:
        row.value = value
