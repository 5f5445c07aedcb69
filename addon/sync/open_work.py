"""The billing status of tickets that are not billed yet: open work, and merged tickets.

Billing happens on close. Until then an open ticket with booked time shows what will happen
to it — `billable` (it will cost money when it is closed, per ticket or on the monthly
invoice), `covered` (a retainer's contingent or the contract covers it), `not_billable` (only
internal time, a warranty ticket) — with the reason, or `needs_attention` when something must
be fixed before it can be billed (an unknown customer, an unreadable booking note, an unknown
agent). The reason names the rule, never the hours, so a new booking changes no note.

A merged ticket bills nothing itself: its time (which Zammad leaves on it) goes onto the
invoice of the ticket it was merged into; OTRS and RT move the time to the survivor
themselves. Either way the merged ticket says where its time went.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon import billing
from addon.billing.classify import resolve_interval
from addon.billing.periods import period_of_instant
from addon.contracts.engine import core_entry
from addon.invoicing.issue import earlier_invoices
from addon.invoicing.rating import (
    NO_CHARGE_CATEGORIES,
    NOT_BILLABLE_CATEGORIES,
    Rating,
    billing_customer,
    merge_targets,
    rate_customer,
)
from addon.models import BilledEntry, Ticket, TimeEntry
from addon.settings import Settings
from addon.sync.writeback import queue_review, set_status

#: how every open-work reason begins: a ticket closed since (pushed, say) is billed next run
OPEN_WORK = "open: "
#: line kinds that cost money (time at a rate, overage, a surcharge share, extras)
PRICED = ("time", "overage", "surcharge_share", "material", "travel_km", "travel_visit")


def billed_with(session: Session, ticket: Ticket) -> list[int]:
    """The ticket's id and those of the tickets merged into it: their time is billed together."""
    return [ticket.id, *sorted(s for s, target in merge_targets(session, ticket).items() if target.id == ticket.id)]


def unbilled_entries(session: Session, ticket: Ticket) -> list[TimeEntry]:
    """Current entries of the ticket (and of tickets merged into it) on no invoice or draft."""
    return list(session.execute(
        select(TimeEntry).where(
            TimeEntry.ticket_id.in_(billed_with(session, ticket)), TimeEntry.removed_at.is_(None),
            TimeEntry.id.not_in(select(BilledEntry.entry_id)), TimeEntry.written_off.is_(None),
        ).order_by(TimeEntry.booked_at, TimeEntry.id)
    ).scalars())


def merged_status(session: Session, ticket: Ticket, now: datetime) -> str:
    """A merged ticket: its time is billed with the surviving ticket; say so, or say why not."""
    unbilled = unbilled_entries(session, ticket)
    if not ticket.merged_into:  # OTRS, RT: the helpdesk moved the time to the survivor
        if unbilled:
            set_status(session, ticket, "needs_attention",
                       "merged, but the helpdesk names no surviving ticket and the time stayed here; "
                       "bill it by hand or merge the tickets again", now)
            return "needs_attention"
        set_status(session, ticket, "not_billable", "merged into another ticket; its time moved there", now)
        return "merged"
    target = merge_targets(session, ticket).get(ticket.id)
    if target is None:
        set_status(session, ticket, "unbilled",
                   f"merged into ticket {ticket.merged_into}; its time is billed with that ticket "
                   "once ticketbill has read it", now)
        return "merged"
    if unbilled:
        set_status(session, ticket, "unbilled", f"merged into #{target.number}; its time is billed with "
                   f"#{target.number}", now)
    return "merged"


def _latest_period(entries: list[TimeEntry], ticket: Ticket, timezone: str) -> str | None:
    periods = []
    for entry in entries:
        resolved = resolve_interval(core_entry(entry, ticket))
        if not isinstance(resolved, billing.Problem):
            periods.append(period_of_instant(resolved[0], timezone))
    return max(periods, default=None)


def _covered_by(rating: Rating, number: str) -> list[str]:
    """Contracts whose buckets this rating allocates minutes of the ticket to."""
    return sorted({key for key, document in rating.documents.items() for a in document.allocations
                   if a.ticket == number and a.coverage not in ("tm", "overage", "no_charge") and a.minutes > 0})


def _priced(rating: Rating, number: str) -> bool:
    return rating.draft is not None and any(
        line.ticket_number == number and line.explanation.get("kind") in PRICED and line.net != 0
        for line in rating.draft.lines)


def open_work_status(session: Session, settings: Settings, ticket: Ticket, now: datetime) -> str:
    """Keep `billing_status` current on an open ticket with time; billing waits for the close."""
    numbers = earlier_invoices(session, [ticket])
    if numbers:  # a billed ticket reopened: the invoice stays; new time goes onto a new one
        queue_review(session, ticket, "reopened_after_invoice",
                     f"reopened after {', '.join(numbers)} was issued; the invoice stays as it is, time booked "
                     "from now on is billed on a supplementary invoice when the ticket is closed again", now)
    unbilled = unbilled_entries(session, ticket)
    if not unbilled:
        return "still_open"
    if ticket.category in NOT_BILLABLE_CATEGORIES:
        set_status(session, ticket, "not_billable", f"category {ticket.category}", now)
        return "open_not_billable"
    customer = billing_customer(session, ticket)
    if customer is None or not customer.configured:
        who = "no organization/customer to bill" if customer is None else (
            f"customer '{customer.name}' (helpdesk id {customer.remote_id}) has no billing address; "
            "add it with `ticketbill customers import`")
        set_status(session, ticket, "needs_attention", f"open ticket with time, but {who}", now)
        return "needs_attention"
    if ticket.booking_problems:
        set_status(session, ticket, "needs_attention", ticket.booking_problems.replace("\n", "; "), now)
        return "needs_attention"
    rating = rate_customer(session, settings, customer, trigger="per_ticket", ticket=ticket, include_open=True)
    if rating.problems:
        set_status(session, ticket, "needs_attention", "; ".join(rating.problems), now)
        return "needs_attention"
    for entry in unbilled:
        entry.not_billed_reason = rating.excluded.get(entry.id)
    if _priced(rating, ticket.number):
        set_status(session, ticket, "billable", f"{OPEN_WORK}billed when the ticket is closed", now)
        return "open_billable"
    if rating.waiting:
        timezone = customer.timezone or settings.timezone
        monthly = rate_customer(session, settings, customer, trigger="monthly", include_open=True,
                                period=_latest_period(unbilled, ticket, timezone))
        terms = ", ".join(rating.waiting)
        if _priced(monthly, ticket.number):
            set_status(session, ticket, "billable",
                       f"{OPEN_WORK}billed with the monthly invoice (contract {terms})", now)
            return "open_billable"
        covering = _covered_by(monthly, ticket.number)
        if covering:
            set_status(session, ticket, "covered",
                       f"{OPEN_WORK}covered by the contingent of {', '.join(covering)}", now)
            return "open_covered"
    if rating.draft is not None and ticket.category in NO_CHARGE_CATEGORIES:
        label = "covered" if ticket.category == "covered" else "not_billable"
        set_status(session, ticket, label, f"{OPEN_WORK}category {ticket.category}, no charge", now)
        return f"open_{label}"
    reasons = sorted({rating.excluded[e.id] for e in unbilled if e.id in rating.excluded}) or ["nothing to bill"]
    set_status(session, ticket, "not_billable", f"{OPEN_WORK}{'; '.join(reasons)}", now)
    return "open_not_billable"
