"""The sync job: poll changed tickets, store them, bill the closed ones, write back. Idempotent.

One run = collect (cursor-based poll of tickets of every state, upserts, cursor moved in the
same transaction as the data) → bill (one transaction per ticket: an invoice for a closed
ticket, the status of open work, or a status with its reason) → write back (outbox). A ticket
that cannot be billed is flagged `needs_attention` with the reason and the run goes on; a
helpdesk that fails mid-way fails the run with its message, keeps everything committed so
far, and leaves the cursor before the first ticket it could not read. The cursor never
passes the helpdesk's own clock at the start of the poll: a ticket dated in the future must
not hide the ones closed after it. A ticket is passed over only when it is really gone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from addon.contracts.periods import bill_due_periods, record_billing
from addon.customers import missing_billing_data
from addon.db import transaction
from addon.errors import describe_error
from addon.invoicing.drafts import deferred_entry_ids
from addon.invoicing.issue import Draft, Renderer, earlier_invoices, issue_invoice, store_draft
from addon.invoicing.rating import (
    NOT_BILLABLE_CATEGORIES,
    billing_customer,
    extra_row_id,
    is_open,
    merge_targets,
    rate_ticket,
)
from addon.models import (
    BilledEntry,
    BilledExtra,
    BookedExtra,
    Customer,
    DeferredEntry,
    Invoice,
    InvoiceLine,
    Ticket,
    TimeEntry,
)
from addon.settings import Settings
from addon.sync import runs
from addon.sync.open_work import OPEN_WORK, merged_status, open_work_status, unbilled_entries
from addon.sync.store import (
    advance_cursor,
    flag_unreadable,
    read_cursor,
    rewind_cursor,
    store_polled,
    upsert_customer,
)
from addon.sync.writeback import perform_deliveries, perform_pending, queue_review, set_status
from connectors.base import (
    BookingProblem,
    BookingReader,
    ConnectorError,
    CustomerReader,
    HelpdeskClock,
    HelpdeskConnector,
    NoAccess,
    NotFound,
    RemoteExtra,
    RemoteTicket,
    RemoteTimeEntry,
)

log = logging.getLogger(__name__)

STREAM = "changed_tickets"  # tickets of every state (issue 11); the former stream polled closed ones
LOCK = "sync"
#: an `updated_at` this far beyond the helpdesk's own time is worth a warning (its `Date`
#: header has whole seconds, so a ticket updated in the poll's own second is always beyond it)
CLOCK_TOLERANCE = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunResult:
    """What a run did; `error` is None when it succeeded."""

    run_id: int | None
    counts: dict[str, int]
    error: str | None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


def run_sync(
    factory: sessionmaker[Session],
    connector: HelpdeskConnector,
    settings: Settings,
    render: Renderer,
    now: Callable[[], datetime] = utcnow,
) -> RunResult:
    """One complete run under the deployment-wide lock; never raises for helpdesk trouble.

    The lock dies with this process (see `addon.sync.runs`); a run a dead process left
    `running` is marked `aborted` before this one starts.
    """
    lock = runs.acquire_lock(factory, LOCK)
    if lock is None:
        return RunResult(None, {}, "another sync run is in progress", skipped=True)
    run_id: int | None = None
    try:
        for orphan in runs.mark_orphans(factory, now()):
            log.warning("sync run %s was left running by a process that died; marked aborted", orphan)
        run_id = runs.start_run(factory, connector.kind, now())
        runs.enter(run_id, factory, lock)
        counts: Counter[str] = Counter()
        errors: list[str] = []
        try:
            seen = collect(factory, connector, now, counts, errors)
        except ConnectorError as exc:
            errors.append(f"polling {connector.kind} failed: {exc}")
            seen = set()
        bill_pending(factory, settings, render, seen, now, counts, errors)
        newest = latest_invoice_id(factory)
        bill_due_periods(factory, settings, render, now(), counts, errors,
                         after=lambda: link_period_extras(factory, newest))
        counts.update(perform_pending(factory, connector, now()))
        if counts["written"]:
            skip_own_writes(factory, connector)
        counts.update(perform_deliveries(factory, settings, now()))
        if counts["write_failed"]:
            errors.append(f"{counts['write_failed']} write-back(s) failed; they are retried later")
        error = "; ".join(errors) or None
        runs.finish_run(factory, run_id, now(), dict(counts), error)
        return RunResult(run_id, dict(counts), error)
    finally:
        if run_id is not None:
            runs.leave(run_id)
        lock.release()


#: Tickets whose bookings are fetched together (concurrently) before they are stored in order.
FETCH_BATCH = 50


@dataclass(frozen=True)
class Fetched:
    """A polled ticket's bookings as read from the helpdesk, or the error reading them."""

    entries: Sequence[RemoteTimeEntry] = ()
    extras: Sequence[RemoteExtra] = ()
    problems: Sequence[BookingProblem] = ()
    error: ConnectorError | None = None
    what: str = "time entries"


def fetch_bookings(connector: HelpdeskConnector, remote_id: str) -> Fetched:
    """One ticket's time entries and (with a `BookingReader`) its other bookings; runs on a
    worker thread, so it touches no database and returns the error instead of raising it."""
    what = "time entries"
    try:
        entries = connector.time_entries(remote_id)
        if isinstance(connector, BookingReader):
            what = "bookings (material, travel, on-site)"
            extras, problems = connector.extras(remote_id)
            return Fetched(entries, extras, problems)
        return Fetched(entries)
    except ConnectorError as exc:
        return Fetched(error=exc, what=what)


def batches(items: Iterable[RemoteTicket], size: int) -> Iterator[list[RemoteTicket]]:
    """The polled tickets in lists of `size`, as the search pages them in."""
    batch: list[RemoteTicket] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_ahead(source: Iterable[list[RemoteTicket]], submit: Callable[[list[RemoteTicket]], dict[str, Future[Fetched]]]
               ) -> Iterator[tuple[list[RemoteTicket], dict[str, Future[Fetched]]]]:
    """Each batch with its bookings' fetches, the next batch's already submitted while the
    caller stores this one: storing a batch (~25 ms of CPU a ticket) and fetching the next
    (one round trip a ticket on the fetch threads) overlap instead of taking turns, which
    took 0.3 s of waiting per 50 tickets. A search page that fails still lets the batches
    before it be stored first, as without the read-ahead."""
    previous: tuple[list[RemoteTicket], dict[str, Future[Fetched]]] | None = None
    try:
        for batch in source:
            current = (batch, submit(batch))
            if previous is not None:
                yield previous
            previous = current
    except Exception:
        if previous is not None:
            yield previous
        raise
    if previous is not None:
        yield previous


def collect(
    factory: sessionmaker[Session],
    connector: HelpdeskConnector,
    now: Callable[[], datetime],
    counts: Counter[str],
    errors: list[str],
) -> set[int]:
    """Poll closed tickets since the cursor and store them; return the ids of stored tickets.

    With a connector that reads bookings (`BookingReader`), each ticket's materials, travel and
    visits and its unreadable booking lines are stored in the same transaction as its entries.
    The bookings of a batch of polled tickets are fetched on `connector.concurrency` threads
    (HELPDESK_CONCURRENCY); storing and the cursor stay in this thread, in poll order.
    """
    with transaction(factory) as session:
        cursor = rewind_future_cursor(session, connector.kind, now())
    seen: set[int] = set()
    polled: set[str] = set()
    cursor_blocked = False
    reads_bookings = isinstance(connector, BookingReader)
    bound: datetime | None = None
    workers = max(1, getattr(connector, "concurrency", 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        def submit(batch: list[RemoteTicket]) -> dict[str, Future[Fetched]]:
            nonlocal bound
            if bound is None:  # the helpdesk's time when this poll began; the local clock if unknown
                bound = helpdesk_now(connector) or now()
            wanted = needs_reading(factory, connector.kind, batch)
            return {r.remote_id: pool.submit(fetch_bookings, connector, r.remote_id)
                    for r in batch if r.remote_id in wanted}

        for batch, futures in read_ahead(batches(connector.changed_tickets_since(cursor), FETCH_BATCH), submit):
            assert bound is not None
            fetched = {remote_id: future.result() for remote_id, future in futures.items()}
            for remote in batch:
                if remote.updated_at > bound + CLOCK_TOLERANCE:
                    log.warning("ticket %s was updated at %s, after the helpdesk's own time %s (clock ahead?); "
                                "the cursor stops at %s", remote.number, remote.updated_at, bound, bound)
                stamp = min(remote.updated_at, bound)
                counts["tickets_seen"] += 1
                if remote.remote_id not in fetched:
                    counts["tickets_unchanged"] += 1
                    with transaction(factory) as session:
                        if remote.customer is not None:  # its organization's billing data may have changed
                            upsert_customer(session, connector.kind, remote.customer)
                        if not cursor_blocked:
                            advance_cursor(session, connector.kind, STREAM, stamp)
                    continue
                got = fetched[remote.remote_id]
                if isinstance(got.error, NotFound):
                    try:
                        gone = not still_there(connector, remote)
                    except ConnectorError as again:
                        errors.append(f"ticket {remote.number}: {got.what} could not be read: {again}")
                        cursor_blocked = True
                        continue
                    if gone:
                        counts["tickets_vanished"] += 1
                        log.info("ticket %s vanished between search and fetch (deleted or merged)", remote.number)
                        continue
                    # the ticket exists, only its bookings answered 404: remembered, read again next run
                    reason = (f"the helpdesk did not find the {got.what} of ticket {remote.number} although "
                              "the ticket exists; read again on the next run")
                    log.warning("ticket %s: %s (%s)", remote.number, reason, got.error)
                    with transaction(factory) as session:
                        flag_unreadable(session, connector.kind, remote, reason, now())
                        if not cursor_blocked:
                            advance_cursor(session, connector.kind, STREAM, stamp)
                    polled.add(remote.remote_id)
                    counts["tickets_retried_later"] += 1
                    continue
                if isinstance(got.error, NoAccess):  # a right is missing on this ticket only: flag it, go on
                    with transaction(factory) as session:
                        flag_unreadable(session, connector.kind, remote, str(got.error), now())
                        if not cursor_blocked:
                            advance_cursor(session, connector.kind, STREAM, stamp)
                    polled.add(remote.remote_id)
                    counts["tickets_unreadable"] += 1
                    log.warning("ticket %s: %s", remote.number, got.error)
                    continue
                if got.error is not None:
                    errors.append(f"ticket {remote.number}: {got.what} could not be read: {got.error}")
                    cursor_blocked = True
                    continue
                with transaction(factory) as session:
                    bookings = (got.extras, got.problems) if reads_bookings else None
                    ticket = store_polled(session, connector.kind, remote, got.entries, bookings, now())
                    if not cursor_blocked:
                        advance_cursor(session, connector.kind, STREAM, stamp)
                    seen.add(ticket.id)
                polled.add(remote.remote_id)
                counts["entries_seen"] += len(got.entries)
                if got.extras:
                    counts["extras_seen"] += len(got.extras)
    if bound is not None:  # a cursor beyond the helpdesk's own time (its clock is behind ours)
        with transaction(factory) as session:
            rewind_future_cursor(session, connector.kind, bound)
    seen |= reread_unreadable(factory, connector, now, counts, errors, polled)
    if isinstance(connector, CustomerReader):
        refresh_waiting_customers(factory, connector, errors)
    return seen


def rewind_future_cursor(session: Session, helpdesk: str, now: datetime) -> datetime | None:
    """The stored cursor, moved back to `now` if it lies beyond it.

    Asked with the local clock before the poll and with the helpdesk's own time after it: a
    cursor stored before the bound existed (or under a wrong clock) would hide every ticket
    updated until then; polling from `now` costs a few repeated, unchanged tickets.
    """
    cursor = read_cursor(session, helpdesk, STREAM)
    if cursor is not None and cursor > now:
        log.warning("the %s cursor %s lies in the future; moved back to %s", helpdesk, cursor, now)
        rewind_cursor(session, helpdesk, STREAM, now)
        return now
    return cursor


def helpdesk_now(connector: HelpdeskConnector) -> datetime | None:
    """The helpdesk's own time when its last poll began (`HelpdeskClock`), None if unknown."""
    return connector.poll_started_at() if isinstance(connector, HelpdeskClock) else None


def still_there(connector: HelpdeskConnector, remote: RemoteTicket) -> bool:
    """Whether a ticket whose bookings answered 404 still exists.

    One 404 on a sub-resource proves nothing (a proxy, a node still starting): only the
    ticket itself answering 404 lets the sync pass it over.
    """
    try:
        connector.ticket(remote.remote_id)
    except NotFound:
        return False
    return True


def refresh_waiting_customers(factory: sessionmaker[Session], connector: CustomerReader, errors: list[str]) -> None:
    """Read again the helpdesk billing data of customers whose tickets wait for it.

    A ticket held for its customer's missing or invalid data is not polled again when the
    admin fixes the organization (the organization changed, not the ticket): without this it
    would wait for its next change. Customers with no held ticket are refreshed when one of
    their tickets is polled; an idle run reads nothing here.
    """
    with factory() as session:
        waiting = session.execute(
            select(Customer).join(Ticket, Ticket.customer_id == Customer.id)
            .where(Customer.helpdesk == connector.kind, Ticket.billing_status == "needs_attention")
            .distinct()
        ).scalars().all()
        stale = [c.remote_id for c in waiting if c.helpdesk_problems or not c.configured]
    for remote_id in stale:
        try:
            remote = connector.customer(remote_id)
        except ConnectorError as exc:
            errors.append(f"customer {remote_id}: billing data could not be read again: {exc}")
            continue
        if remote is not None:
            with transaction(factory) as session:
                upsert_customer(session, connector.kind, remote)


def skip_own_writes(factory: sessionmaker[Session], connector: HelpdeskConnector) -> None:
    """Move the cursor over this run's own write-backs, up to the first ticket that changed.

    Every write-back bumps the ticket's `updated_at` past the cursor; left there, the next poll
    would page through them all (recognised, but 25 search pages at 5,000 tickets). One more
    poll right after the writes stops at the first ticket someone else changed, which the next
    run reads as usual; nothing is read here, and a failure only costs the next poll pages.
    """
    with factory() as session:
        cursor = read_cursor(session, connector.kind, STREAM)
    try:
        for batch in batches(connector.changed_tickets_since(cursor), FETCH_BATCH):
            wanted = needs_reading(factory, connector.kind, batch)
            changed = next((i for i, remote in enumerate(batch) if remote.remote_id in wanted), len(batch))
            if changed:  # never beyond the helpdesk's own time (see `collect`)
                newest = max(r.updated_at for r in batch[:changed])
                with transaction(factory) as session:
                    advance_cursor(session, connector.kind, STREAM, min(newest, helpdesk_now(connector) or newest))
            if changed < len(batch):
                return
    except ConnectorError as exc:
        log.warning("polling %s after the write-backs failed: %s", connector.kind, exc)


def needs_reading(factory: sessionmaker[Session], helpdesk: str, remotes: Sequence[RemoteTicket]) -> set[str]:
    """The remote ids among polled tickets whose bookings must be read (one query a batch).

    Not when ticketbill stored this very version already (same `updated_at`: the poll's overlap
    window returns the newest tickets again and again) or wrote it itself (the `updated_at`
    its last write-back got: our own write is no change), nor for an open or merged ticket
    without any time that ticketbill does not hold (nothing to show, nothing stored).
    Everything else is read: a closed ticket is billed now, open work gets its status.
    """
    with factory() as session:
        known = {remote_id: (stored, written) for remote_id, stored, written in session.execute(
            select(Ticket.remote_id, Ticket.remote_updated_at, Ticket.written_updated_at).where(
                Ticket.helpdesk == helpdesk, Ticket.remote_id.in_([r.remote_id for r in remotes])))}
    wanted: set[str] = set()
    for remote in remotes:
        if remote.remote_id in known:
            if remote.updated_at not in known[remote.remote_id]:
                wanted.add(remote.remote_id)
        elif remote.state_type not in ("open", "merged") or remote.has_time is not False:
            wanted.add(remote.remote_id)
    return wanted


def reread_unreadable(
    factory: sessionmaker[Session],
    connector: HelpdeskConnector,
    now: Callable[[], datetime],
    counts: Counter[str],
    errors: list[str],
    polled: set[str],
) -> set[int]:
    """Read again the tickets whose bookings were refused before (not polled this run).

    The poll's cursor has passed them; without this a ticket would wait for its next change
    after the admin granted the right. The cursor is not touched here.
    """
    with factory() as session:
        flagged = session.execute(
            select(Ticket.remote_id).where(Ticket.helpdesk == connector.kind, Ticket.access_problem.is_not(None))
        ).scalars().all()
    readable: set[int] = set()
    reads_bookings = isinstance(connector, BookingReader)
    for remote_id in flagged:
        if remote_id in polled:
            continue
        try:
            remote = connector.ticket(remote_id)
            try:
                entries = connector.time_entries(remote_id)
                bookings = connector.extras(remote_id) if reads_bookings else None  # type: ignore[attr-defined]
            except NoAccess as exc:
                with transaction(factory) as session:
                    flag_unreadable(session, connector.kind, remote, str(exc), now())
                counts["tickets_unreadable"] += 1
                continue
            except NotFound as exc:  # the ticket answered a moment ago: retried next run
                if still_there(connector, remote):
                    log.warning("ticket %s: bookings not found although the ticket exists: %s", remote.number, exc)
                    counts["tickets_retried_later"] += 1
                    continue
                raise
        except NotFound:
            with transaction(factory) as session:  # deleted or merged meanwhile: nothing to write to
                gone = session.execute(select(Ticket).where(
                    Ticket.helpdesk == connector.kind, Ticket.remote_id == remote_id)).scalar_one()
                gone.access_problem = None
                gone.billing_status, gone.attention_reason = "not_billable", "the ticket no longer exists"
            counts["tickets_vanished"] += 1
            continue
        except ConnectorError as exc:
            errors.append(f"ticket {remote_id}: could not be read again: {exc}")
            continue
        with transaction(factory) as session:
            readable.add(store_polled(session, connector.kind, remote, entries, bookings, now()).id)
        counts["tickets_readable_again"] += 1
    return readable


def bill_pending(
    factory: sessionmaker[Session],
    settings: Settings,
    render: Renderer,
    seen: set[int],
    now: Callable[[], datetime],
    counts: Counter[str],
    errors: list[str],
) -> None:
    """Bill each candidate ticket in its own transaction; a failure touches only that ticket.

    An unexpected error (a bug, a full disk while storing the PDF) rolls back that ticket's
    transaction, flags the ticket with the error and lets the run go on.
    """
    # entries a team lead moved to a later invoice come due again on their day (UTC here; the
    # ticket's own decision uses the customer's local day)
    due_later = (select(TimeEntry.ticket_id).join(DeferredEntry, DeferredEntry.entry_id == TimeEntry.id)
                 .where(DeferredEntry.until <= now().date(), TimeEntry.id.not_in(select(BilledEntry.entry_id))))
    with factory() as session:
        candidates = session.execute(
            select(Ticket.id)
            .where(or_(Ticket.id.in_(seen), Ticket.billing_status.in_(("unbilled", "needs_attention", "cancelled")),
                       Ticket.closed_at.is_not(None) & Ticket.attention_reason.like(f"{OPEN_WORK}%"),
                       Ticket.id.in_(due_later)))
            .order_by(Ticket.closed_at, Ticket.id)
        ).scalars().all()
        targets = merge_targets(session)  # a merge seen now may bring time to its surviving ticket
        candidates += sorted({t.id for s, t in targets.items() if s in seen} - set(candidates))
    for ticket_id in candidates:
        try:
            with transaction(factory) as session:
                outcome = bill_ticket(session, settings, render, session.get(Ticket, ticket_id), now())
        except Exception as exc:  # the shell boundary: record, flag, go on
            log.exception("billing ticket id %s failed", ticket_id)
            with transaction(factory) as session:
                ticket = session.get(Ticket, ticket_id)
                assert ticket is not None
                cause = describe_error(exc)  # the note and /runs: the cause, never the SQL
                set_status(session, ticket, "needs_attention", f"billing failed: {cause}", now())
                errors.append(f"ticket {ticket.number}: billing failed: {cause}")
            outcome = "billing_failed"
        counts[outcome] += 1


def bill_ticket(session: Session, settings: Settings, render: Renderer, ticket: Ticket | None, now: datetime) -> str:
    """Decide one ticket: invoice its unbilled entries, or record why not. Returns the outcome.

    The ticket's row is read afresh and locked first: a decision on a stale copy (another
    process invoiced it a moment ago) would turn an invoiced ticket "closed without booked
    time" (issue 12, forced overlap).
    """
    assert ticket is not None
    session.refresh(ticket, with_for_update=True)
    if ticket.access_problem:  # flagged by collect; its bookings are unknown (and unwritable)
        return "unreadable"
    if ticket.merged_into is not None:  # its time is billed with the ticket it was merged into
        return merged_status(session, ticket, now)
    if is_open(ticket):  # billed on close; until then the status says what will happen
        return open_work_status(session, settings, ticket, now)
    if ticket.category in NOT_BILLABLE_CATEGORIES:  # set by the agent: nothing to bill, whoever pays
        reason = f"category {ticket.category}"
        billed_ids = billed_entry_ids(session, ticket)
        for entry in ticket.entries:
            if entry.removed_at is None and entry.id not in billed_ids:
                entry.not_billed_reason = reason
        if ticket.billing_status in ("invoiced", "draft"):
            numbers = earlier_invoices(session, [ticket])
            if numbers:  # the team lead decides; an issued invoice is never changed by a category
                queue_review(session, ticket, "category_after_invoice",
                             f"category changed to {ticket.category} after {', '.join(numbers)} was issued; "
                             f"cancel it (`ticketbill invoices cancel {numbers[-1]} --then write-off --reason …`) "
                             "if the customer is not to pay", now)
            return f"already_{ticket.billing_status}"
        set_status(session, ticket, "not_billable", reason, now)
        return "not_billable"
    if ticket.billing_hold:  # a cancellation put its work on hold; `invoices release` decides
        return "on_hold"
    customer = billing_customer(session, ticket)
    if customer is None:
        set_status(session, ticket, "needs_attention", "ticket has no organization/customer to bill", now)
        return "needs_attention"
    if not customer.configured:
        set_status(session, ticket, "needs_attention", missing_billing_data(customer), now)
        return "needs_attention"
    if ticket.booking_problems:  # the agent fixes the note; until then nothing of the ticket is billed
        set_status(session, ticket, "needs_attention", ticket.booking_problems.replace("\n", "; "), now)
        return "needs_attention"
    drift = session.execute(
        select(TimeEntry.drift).where(TimeEntry.ticket_id == ticket.id, TimeEntry.drift.is_not(None))
    ).scalars().all()
    drift += session.execute(
        select(BookedExtra.drift).where(BookedExtra.ticket_id == ticket.id, BookedExtra.drift.is_not(None))
    ).scalars().all()
    for change in drift:  # the invoice keeps what it billed; a person decides what follows
        queue_review(session, ticket, "changed_after_invoice", change, now)
    unbilled = unbilled_entries(session, ticket)
    later = deferred_entry_ids(session, now.astimezone(ZoneInfo(customer.timezone or settings.timezone)).date())
    waiting_later = [e for e in unbilled if e.id in later]  # moved to a later invoice by a team lead
    unbilled = [e for e in unbilled if e.id not in later]
    extras_open = unbilled_extras(session, ticket)
    if not unbilled and not extras_open:
        if ticket.billing_status in ("invoiced", "draft"):
            return f"already_{ticket.billing_status}"
        if waiting_later:
            set_status(session, ticket, "unbilled", f"{len(waiting_later)} entries moved to a later invoice", now)
            return "deferred"
        written_off = sorted({e.written_off for e in ticket.entries if e.written_off and e.removed_at is None})
        set_status(session, ticket, "not_billable", "; ".join(written_off) or "closed without booked time", now)
        return "not_billable"
    rating = rate_ticket(session, settings, customer, ticket, frozenset(later))
    for entry in unbilled:
        entry.not_billed_reason = rating.excluded.get(entry.id)
    if rating.problems:
        set_status(session, ticket, "needs_attention", "; ".join(rating.problems), now)
        return "needs_attention"
    if rating.draft is None:
        if ticket.billing_status in ("invoiced", "draft"):
            return f"already_{ticket.billing_status}"
        if rating.waiting:  # its time goes onto the customer's monthly invoice
            reason = f"billed with the monthly invoice (contract {', '.join(rating.waiting)})"
            set_status(session, ticket, "unbilled", reason, now)
            return "awaiting_period"
        set_status(session, ticket, "not_billable", "; ".join(sorted(set(rating.excluded.values()))), now)
        return "not_billable"
    sources = sorted({e.ticket_id for e in unbilled} - {ticket.id})  # merged tickets billed with this one
    tickets = [ticket, *(t for i in sources if (t := session.get(Ticket, i)) is not None)]
    draft = supplementary(rating.draft, earlier_invoices(session, tickets), customer.language or
                          settings.invoice_language)
    if customer.approval_required:
        stored = store_draft(session, settings, customer, tickets, draft, now)
        record_billing(session, stored, rating, None, now)
        link_extras(session, stored)
        reason = f"draft {stored.id} waits for approval (`ticketbill invoices approve {stored.id}`)"
        for each in tickets:
            set_status(session, each, "draft", reason, now)
        return "drafted"
    invoice = issue_invoice(session, settings, customer, tickets, draft, render, now)
    record_billing(session, invoice, rating, None, now)
    link_extras(session, invoice)
    return "invoiced"


def supplementary(draft: Draft, earlier: list[str], language: str) -> Draft:
    """More time on a ticket that was invoiced already is billed on a new invoice that says it
    supplements the earlier one (printed note); the issued invoice never changes."""
    if not earlier:
        return draft
    numbers = ", ".join(earlier)
    text = (f"Nachberechnung zu Rechnung {numbers}: Zeit, die nach deren Ausstellung gebucht wurde."
            if language == "de" else f"Supplementary to invoice {numbers}: time booked after it was issued.")
    return replace(draft, notes=(*draft.notes, text))


def latest_invoice_id(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.execute(select(func.coalesce(func.max(Invoice.id), 0))).scalar_one()


def link_period_extras(factory: sessionmaker[Session], after: int) -> None:
    """Link the extras of the monthly invoices this run issued (ids above `after`).

    The engine's own memory already keeps them from being billed twice; the links make the
    `billed_extra` table complete, so it says for every extra where it is billed.
    """
    with transaction(factory) as session:
        for invoice in session.execute(select(Invoice).where(Invoice.id > after, Invoice.type_code == "380")
                                       .order_by(Invoice.id)).scalars():
            link_extras(session, invoice)


def billed_entry_ids(session: Session, ticket: Ticket) -> set[int]:
    """Entries of the ticket on an invoice or draft: their reason is the invoice's, not ours."""
    return set(session.execute(select(BilledEntry.entry_id).join(TimeEntry, TimeEntry.id == BilledEntry.entry_id)
                               .where(TimeEntry.ticket_id == ticket.id)).scalars())


def unbilled_extras(session: Session, ticket: Ticket) -> list[BookedExtra]:
    """The ticket's current extras not linked to a valid (not cancelled) invoice."""
    billed = (select(BilledExtra.extra_id).join(Invoice, Invoice.id == BilledExtra.invoice_id)
              .where(Invoice.state != "cancelled"))
    return list(session.execute(
        select(BookedExtra).where(BookedExtra.ticket_id == ticket.id, BookedExtra.removed_at.is_(None),
                                  BookedExtra.written_off.is_(None), BookedExtra.id.not_in(billed))
        .order_by(BookedExtra.id)
    ).scalars())


def link_extras(session: Session, invoice: Invoice) -> None:
    """Link each extra to the invoice line that bills it (`billed_extra`, unique per extra).

    A link to a cancelled invoice is the extra's released past: it is replaced, as the
    cancellation released the extra for billing again.
    """
    session.flush()
    lines = session.execute(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)).scalars()
    for line in lines:
        extra_id = extra_row_id(line.explanation.get("extra"))
        if extra_id is None:
            continue
        old = session.get(BilledExtra, extra_id)
        if old is not None and old.invoice_id == invoice.id:
            continue
        if old is not None:
            previous = session.get(Invoice, old.invoice_id)
            if previous is not None and previous.state != "cancelled":
                raise RuntimeError(f"extra {extra_id} is already billed on invoice {previous.id}")
            session.delete(old)
            session.flush()
        session.add(BilledExtra(extra_id=extra_id, invoice_id=invoice.id, line_id=line.id))
    session.flush()
