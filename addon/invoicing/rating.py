"""The seam between the database and the pure billing core for one ticket.

It reads the customer's rates and the internal activity types, maps stored entries onto the
core's `TimeEntry` values, runs `addon.billing.bill_ticket`, and maps the result back: a
`Draft` with printable line texts in the customer's language, the problems as reasons, and
an explicit reason for every entry that is on no line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon import billing
from addon.invoicing.issue import Draft, DraftLine, EntryLink
from addon.invoicing.snapshot import AnnexEntry, VatGroup
from addon.models import ActivityType, Customer, GlobalRate, Ticket, TimeEntry
from addon.settings import Settings

ROUNDING_INCREMENT = 15
NO_ACTIVITY = "Arbeitszeit"


@dataclass(frozen=True)
class Rating:
    """The outcome for one ticket: a draft to issue, or reasons why not."""

    draft: Draft | None
    problems: list[str] = field(default_factory=list)
    excluded: dict[int, str] = field(default_factory=dict)


def whole_minutes(minutes: Decimal) -> int:
    """The core rates whole minutes; fractions from hour/second units round half up."""
    return int(minutes.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _core_entry(entry: TimeEntry, ticket: Ticket) -> billing.TimeEntry:
    minutes = whole_minutes(entry.minutes)
    # A correction (negative booking) has no interval; its booking time decides its period.
    start = entry.start if entry.start is not None or minutes >= 0 else entry.booked_at
    return billing.TimeEntry(
        id=str(entry.id),
        ticket=ticket.number,
        agent=entry.agent,
        activity=entry.activity or NO_ACTIVITY,
        start=start,
        minutes=minutes,
        booked_at=entry.booked_at,
    )


def line_text(line: billing.Line, ticket: Ticket, language: str) -> str:
    """Printable description: ticket, title, activity and the agents who worked."""
    head = f"Ticket #{ticket.number} {ticket.title}"
    agents = ", ".join(line.agents)
    if line.kind == "no_charge":
        suffix = "ohne Berechnung" if language == "de" else "no charge"
        return f"{head} — {line.activity} ({suffix})"
    return f"{head} — {line.activity or line.label}" + (f" ({agents})" if agents else "")


def _settled_without_line(result: billing.BillingResult, by_id: dict[str, TimeEntry]) -> tuple[EntryLink, ...]:
    """Entries this invoice settles although no line bills them: corrections netted into a
    billed entry, and entries a correction reduced to zero. They are linked (billed 0 min) so
    a later run never rates them again on their own — which would bill time the correction
    took back.
    """
    ids = {str(c) for line in result.lines for c in line.explanation.get("corrections_netted", ())}  # type: ignore[union-attr]
    ids |= {x.entry_id for x in result.excluded if x.reason == "netted to zero"}
    return tuple(EntryLink(int(i), by_id[i].minutes, Decimal(0)) for i in sorted(ids) if i in by_id)


def rate_ticket(
    session: Session, settings: Settings, customer: Customer, ticket: Ticket, entries: list[TimeEntry]
) -> Rating:
    """Rate the ticket's unbilled entries as a time-and-material invoice of their own."""
    default = session.get(GlobalRate, "")
    if customer.hourly_rate is None and default is None:
        return Rating(None, [f"no hourly rate for customer '{customer.name}' and no default_rate configured"])
    internal = frozenset(session.execute(select(ActivityType.name).where(ActivityType.internal)).scalars())
    timezone = customer.timezone or settings.timezone
    contract = billing.time_and_material(
        global_rate=default.hourly_rate if default else customer.hourly_rate,  # type: ignore[arg-type]
        customer_rate=customer.hourly_rate,
        increment=ROUNDING_INCREMENT,
        internal_activities=internal,
        timezone=timezone,
        vat_rate=settings.vat_rate,
    )
    by_id = {str(e.id): e for e in entries}
    agents = {e.agent: billing.Agent(e.agent) for e in entries}
    result = billing.bill_ticket(contract, agents, ticket.number, [_core_entry(e, ticket) for e in entries])
    excluded = {int(x.entry_id): x.reason for x in result.excluded}
    holds = [p for p in result.problems if p.severity == "hold"]
    if holds:
        return Rating(None, [p.reason for p in holds], excluded)
    if not result.lines:
        return Rating(None, [], excluded)
    language = customer.language or settings.invoice_language
    zone = ZoneInfo(timezone)
    settled = _settled_without_line(result, by_id)
    lines = tuple(
        DraftLine(
            description=line_text(line, ticket, language),
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            net=line.net,
            vat_rate=line.vat_rate,
            service_start=line.service_start,
            service_end=line.service_end,
            entries=tuple(
                EntryLink(int(ref.entry_id), Decimal(ref.raw_minutes), Decimal(ref.billed_minutes))
                for ref in line.entries
            )
            + (settled if position == 0 else ()),
            explanation=dict(line.explanation),
            ticket_number=ticket.number,
        )
        for position, line in enumerate(result.lines)
    )
    annex = tuple(
        AnnexEntry(
            ticket_number=ticket.number,
            date=by_id[ref.entry_id].booked_at.astimezone(zone).date(),
            agent=by_id[ref.entry_id].agent,
            activity=line.activity or NO_ACTIVITY,
            raw_minutes=Decimal(ref.raw_minutes),
            billed_minutes=Decimal(ref.billed_minutes),
        )
        for line in result.lines
        for ref in line.entries
    )
    totals = result.totals
    draft = Draft(
        lines=lines,
        vat_groups=tuple(VatGroup("S", b.rate, b.base, b.vat) for b in totals.by_rate),
        net=totals.net,
        vat=totals.vat,
        gross=totals.gross,
        annex=tuple(sorted(annex, key=lambda a: (a.date, a.agent))),
    )
    return Rating(draft, [], excluded)
