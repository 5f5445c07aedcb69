"""The seam between the database and the pure billing core.

For one customer it reads the contracts (or the implicit time-and-material default), routes
every stored entry of the customer to one contract (`route_entries`), rebuilds each contract's
`BillingState` from the issued invoices, runs the engine for the contracts of one trigger —
one closed ticket (`per_ticket`) or one month (`monthly`) — and maps the results back: a `Draft`
with printable line texts in the customer's language, the engine documents to store with the
invoice, the contingent ledgers, and the review flags per ticket (holds block, warnings do not).

The engine sees *all* entries in scope (the customer's for a month, the ticket's for a closed
ticket, billed ones included) and the state, so late bookings, corrections of invoiced time and
entries released by a cancellation are billed as the difference to what valid invoices already
hold, never twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon import billing
from addon.billing.periods import first_day, last_day
from addon.billing.totals import compute_totals
from addon.contracts_engine import (
    NO_ACTIVITY,
    ContractSetup,
    agents_for,
    core_entry,
    customer_contracts,
    route,
    ticket_info,
)
from addon.contracts_state import customer_states, ledger_summary, legacy_billed_entries
from addon.invoicing.issue import Draft, DraftLine, EntryLink
from addon.invoicing.snapshot import AnnexEntry, VatGroup
from addon.models import BilledEntry, Customer, Ticket, TimeEntry
from addon.settings import Settings

CUSTOMER = ""  # key of review flags that concern the customer, not one ticket


@dataclass(frozen=True)
class Ledger:
    """A retainer's ledger snapshots from this run, to persist (and print on the invoice)."""

    setup: ContractSetup
    snapshots: tuple[billing.ContingentSnapshot, ...]


@dataclass(frozen=True)
class Rating:
    """The outcome for one customer and trigger: a draft to issue (or None), and why not."""

    draft: Draft | None
    problems: list[str] = field(default_factory=list)  # holds of the ticket in question (per_ticket)
    excluded: dict[int, str] = field(default_factory=dict)
    holds: dict[str, list[str]] = field(default_factory=dict)  # ticket number → blocking reasons
    warnings: dict[str, list[str]] = field(default_factory=dict)  # ticket number → non-blocking flags
    documents: dict[str, billing.Document] = field(default_factory=dict)
    tickets: list[Ticket] = field(default_factory=list)
    ledgers: list[Ledger] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()  # monthly contracts that bill entries of the ticket in question


def _german_date(day: object, language: str) -> str:
    return f"{day:%d.%m.%Y}" if language == "de" else f"{day:%Y-%m-%d}"


def line_text(line: billing.Line, ticket: Ticket | None, language: str, period: str | None = None,
              invoiced: frozenset[str] = frozenset()) -> str:
    """Printable description: ticket, title, activity and the agents who worked; fees, overage,
    surcharge shares and corrections say what they are. On a monthly invoice, a late line (of
    an earlier month, or of a month already `invoiced`) names its own service date."""
    de = language == "de"
    if line.kind == "fee":
        return f"{line.label} {line.service_period}"
    head = f"Ticket #{ticket.number} {ticket.title}" if ticket else (f"Ticket #{line.ticket}" if line.ticket else "")
    agents = ", ".join(line.agents)
    what = line.activity or line.label
    if line.kind == "no_charge":
        text = f"{head} — {line.activity} ({'ohne Berechnung' if de else 'no charge'})"
    elif line.kind == "overage":
        text = f"{head} — {what} ({'über Kontingent' if de else 'beyond contingent'})"
    elif line.kind == "surcharge_share":
        names = ", ".join(str(s) for s in line.explanation.get("surcharge", []))  # type: ignore[union-attr]
        text = f"{head} — {what} ({'Zuschlag im Kontingent' if de else 'surcharge, in contingent'}: {names})"
    elif line.kind == "travel_visit":
        flat = "Anfahrtspauschale" if de else "travel flat fee"
        text = f"{head} — {flat} {_german_date(line.service_start, language)}"
    elif line.kind in ("material", "travel_km"):
        text = f"{head} — {line.label}" if head else line.label
    else:
        text = f"{head} — {what}" + (f" ({agents})" if agents else "")
    if line.correction:
        text = ("Korrektur: " if de else "Correction: ") + text
    late = line.service_period < period or line.service_period in invoiced if period else False
    if late and line.kind != "fee":
        start, end = _german_date(line.service_start, language), _german_date(line.service_end, language)
        when = start if start == end else f"{start}–{end}"
        text += f" ({'Leistung vom' if de else 'service date'} {when})"
    return text


def _customer_entries(session: Session, customer: Customer,
                      ticket: Ticket | None) -> tuple[list[TimeEntry], dict[int, Ticket]]:
    """The entries the engine needs: all of the customer's for a month; for one ticket only its
    own, since every per-ticket step (netting, rounding, overlaps, visits) stays in the ticket."""
    legacy = legacy_billed_entries(session, customer.id)
    query = (select(TimeEntry, Ticket).join(Ticket, Ticket.id == TimeEntry.ticket_id)
             .where(Ticket.customer_id == customer.id, TimeEntry.removed_at.is_(None))
             .order_by(TimeEntry.booked_at, TimeEntry.id))
    if ticket is not None:
        query = query.where(Ticket.id == ticket.id)
    rows = session.execute(query).all()
    entries = [e for e, _t in rows if e.id not in legacy]
    return entries, {t.id: t for _e, t in rows}


def _draft(session: Session, results: list[billing.BillingResult], by_number: dict[str, Ticket],
           entries: dict[str, TimeEntry], language: str, timezone: str, period: str | None,
           invoiced: frozenset[str]) -> Draft | None:
    lines = [line for r in results for line in r.lines]
    if not lines:
        return None
    billed = set(session.execute(select(BilledEntry.entry_id).where(
        BilledEntry.entry_id.in_([int(i) for i in entries]))).scalars()) if entries else set()
    # billed_entry links each entry once, to the line holding most of it; corrections of already
    # linked entries live in the stored engine documents.
    best: dict[str, tuple[int, int, int]] = {}  # entry → (line index, raw, total billed)
    for index, line in enumerate(lines):
        for ref in line.entries:
            if int(ref.entry_id) in billed or ref.billed_minutes < 0:
                continue
            current = best.get(ref.entry_id)
            total = ref.billed_minutes + (current[2] if current else 0)
            holder = index
            if current is not None and ref.billed_minutes <= _minutes_on(lines[current[0]], ref.entry_id):
                holder = current[0]
            best[ref.entry_id] = (holder, ref.raw_minutes, total)
    links: dict[int, list[EntryLink]] = {}
    for entry_id, (index, raw, total) in best.items():
        links.setdefault(index, []).append(EntryLink(int(entry_id), Decimal(raw), Decimal(total)))
    for entry_id in sorted(_settled_without_line(results) - set(best), key=int):
        if entry_id in entries and int(entry_id) not in billed:
            links.setdefault(0, []).append(EntryLink(int(entry_id), entries[entry_id].minutes, Decimal(0)))
    draft_lines = tuple(
        DraftLine(
            description=line_text(line, by_number.get(line.ticket or ""), language, period, invoiced),
            quantity=line.quantity, unit=line.unit, unit_price=line.unit_price, net=line.net,
            vat_rate=line.vat_rate, service_start=line.service_start, service_end=line.service_end,
            entries=tuple(sorted(links.get(index, []), key=lambda link: link.entry_id)),
            explanation={**dict(line.explanation), "kind": line.kind, "service_period": line.service_period},
            ticket_number=line.ticket,
        )
        for index, line in enumerate(lines)
    )
    zone = ZoneInfo(timezone)
    annex = tuple(
        AnnexEntry(
            ticket_number=line.ticket or "",
            date=entries[ref.entry_id].booked_at.astimezone(zone).date(),
            agent=entries[ref.entry_id].agent,
            activity=line.activity or NO_ACTIVITY,
            raw_minutes=Decimal(ref.raw_minutes),
            billed_minutes=Decimal(ref.billed_minutes),
        )
        for line in lines if line.kind in ("time", "overage", "surcharge_share", "no_charge")
        for ref in line.entries if ref.entry_id in entries
    )
    totals = compute_totals(tuple(lines))
    return Draft(
        lines=draft_lines,
        vat_groups=tuple(VatGroup("S", b.rate, b.base, b.vat) for b in totals.by_rate),
        net=totals.net, vat=totals.vat, gross=totals.gross,
        annex=tuple(sorted(annex, key=lambda a: (a.date, a.agent, a.ticket_number))),
    )


def _settled_without_line(results: list[billing.BillingResult]) -> set[str]:
    """Entries this invoice settles although no line bills them: corrections netted into a
    billed entry, and entries a correction reduced to zero. They are linked (billed 0 min) so
    a later run never rates them again on their own — which would bill time the correction
    took back.
    """
    ids = {str(c) for r in results for line in r.lines
           for c in line.explanation.get("corrections_netted", ())}  # type: ignore[attr-defined]
    return ids | {x.entry_id for r in results for x in r.excluded if x.reason == "netted to zero"}


def _minutes_on(line: billing.Line, entry_id: str) -> int:
    return sum(r.billed_minutes for r in line.entries if r.entry_id == entry_id)


def _flags(problems: Iterable[billing.Problem], severity: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in problems:
        if p.severity == severity:
            reasons = found.setdefault(p.ticket or CUSTOMER, [])
            if p.reason not in reasons:
                reasons.append(p.reason)
    return found


def rate_customer(session: Session, settings: Settings, customer: Customer, *, trigger: str,
                  ticket: Ticket | None = None, period: str | None = None) -> Rating:
    """Rate what is due for one customer: one ticket's contracts with trigger per_ticket, or
    the month `period` (and earlier, not yet billed) of the contracts with trigger monthly."""
    setups = customer_contracts(session, settings, customer)
    if setups[0].key == "default" and not setups[0].engine.rates:
        return Rating(None, [f"no hourly rate for customer '{customer.name}' and no default_rate configured"])
    timezone = customer.timezone or settings.timezone
    stored, tickets_by_id = _customer_entries(session, customer, ticket)
    by_number = {t.number: t for t in tickets_by_id.values()}
    entries = {str(e.id): e for e in stored}
    core = [core_entry(e, tickets_by_id[e.ticket_id]) for e in stored]
    routing = route(core, {t.number: ticket_info(t) for t in tickets_by_id.values()}, setups, timezone)
    states = customer_states(session, customer.id)
    agents = agents_for(session, stored)
    scope = frozenset({ticket.number}) if ticket is not None else None

    def relevant(number: str | None) -> bool:
        return scope is None or number is None or number in scope

    results: list[billing.BillingResult] = []
    documents: dict[str, billing.Document] = {}
    ledgers: list[Ledger] = []
    problems = [p for p in routing.problems if relevant(p.ticket)]
    excluded = {int(x.entry_id): x.reason for x in routing.held}
    waiting: list[str] = []
    for setup in setups:
        routed = routing.by_contract.get(setup.key, ())
        if setup.trigger != trigger:
            if scope is not None and any(e.ticket in scope for e in routed):
                waiting.append(setup.key)
            continue
        if not routed and (setup.engine.retainer is None or period is None):
            continue
        result = billing.bill(billing.BillingRequest(
            contract=setup.engine, agents=agents, entries=routed, period=period, tickets=scope,
            state=states.get(setup.key, billing.BillingState()), document_id=f"{setup.key}:draft",
        ))
        results.append(result)
        problems += result.problems
        excluded.update({int(x.entry_id): x.reason for x in result.excluded})
        documents[setup.key] = result.state.documents[-1]
        if setup.engine.retainer is not None and result.contingents:
            ledgers.append(Ledger(setup, result.contingents))
    holds, warnings = _flags(problems, "hold"), _flags(problems, "warning")
    language = customer.language or settings.invoice_language
    notes = tuple(ledger_summary(s, ledger.setup.engine.retainer, language)  # type: ignore[arg-type]
                  for ledger in ledgers for s in ledger.snapshots if s.period == period)
    reasons = [r for key, rs in holds.items() if key in (CUSTOMER, *(scope or ())) for r in rs]
    if trigger == "per_ticket" and reasons:
        return Rating(None, reasons, excluded, holds, warnings, waiting=tuple(waiting))
    invoiced = frozenset(d.period for st in states.values() for d in st.valid_invoices() if d.period)
    draft = _draft(session, results, by_number, entries, language, timezone, period, invoiced)
    if draft is not None:  # the ledger text and the month belong to the document (snapshot)
        bounds = (first_day(period), last_day(period)) if period else None
        draft = replace(draft, notes=notes, service_period=bounds)
    touched = {line.ticket for r in results for line in r.lines if line.ticket} | {
        a.ticket for d in documents.values() for a in d.allocations}
    invoice_tickets = sorted((by_number[n] for n in touched if n in by_number), key=lambda t: t.number)
    return Rating(draft, reasons if trigger == "per_ticket" else [], excluded, holds, warnings, documents,
                  invoice_tickets, ledgers, notes, tuple(waiting))


def rate_ticket(session: Session, settings: Settings, customer: Customer, ticket: Ticket) -> Rating:
    """Trigger per_ticket: bill what is due on one closed ticket."""
    return rate_customer(session, settings, customer, trigger="per_ticket", ticket=ticket)
