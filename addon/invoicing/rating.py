"""The seam between the database and the pure billing core.

For one customer it reads the contracts (or the implicit time-and-material default), routes
every stored entry of the customer to one contract (`route_entries`), rebuilds each contract's
`BillingState` from the issued invoices, runs the engine for the contracts of one trigger —
one closed ticket (`per_ticket`) or one month (`monthly`) — and maps the results back: a `Draft`
with printable line texts in the customer's language, the engine documents to store with the
invoice, the contingent ledgers, and the review flags per ticket (holds block, warnings do not).

What agents book besides time (`booked_extra`) becomes engine extras here: materials at their
unit cost with the contract's markup for their category, travel km at the note's price or the
contract's km rate, an explicit on-site visit at the contract's flat fee. The ticket's billing
category decides the rest: internal and warranty tickets bill nothing, goodwill time is a
no-charge line, covered time too (unless a retainer covers it, which the engine does itself).

The engine sees *all* entries in scope (the customer's for a month, the ticket's for a closed
ticket, billed ones included) and the state, so late bookings, corrections of invoiced time and
entries released by a cancellation are billed as the difference to what valid invoices already
hold, never twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import format_currency, format_decimal
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from addon import billing, gc_tuning
from addon.billing.classify import resolve_interval
from addon.billing.contingents import OVERAGE, TIME_AND_MATERIAL
from addon.billing.lines import NO_CHARGE
from addon.billing.periods import first_day, last_day, period_of_instant
from addon.billing.totals import compute_totals
from addon.contracts.engine import (
    NO_ACTIVITY,
    ContractSetup,
    agents_for,
    core_entry,
    customer_contracts,
    default_setup,
    reach,
    route,
    ticket_info,
)
from addon.contracts.state import (
    DEFAULT_CONTRACT,
    customer_states,
    ledger_summary,
    legacy_billed_entries,
    settled_keys,
)
from addon.invoicing.formatting import Formats
from addon.invoicing.issue import Draft, DraftLine, EntryLink
from addon.invoicing.snapshot import Allowance, AnnexEntry, VatGroup
from addon.models import BilledEntry, BookedExtra, Customer, Invoice, Ticket, TimeEntry
from addon.settings import Settings

CUSTOMER = ""  # key of review flags that concern the customer, not one ticket
NOT_BILLABLE_CATEGORIES = ("internal", "warranty")
#: Categories whose time is shown as no-charge lines, with the reason the invoice prints (de, en).
NO_CHARGE_CATEGORIES = {"goodwill": ("Kulanz", "goodwill"),
                        "covered": ("durch Vertrag abgedeckt", "covered by contract")}
EXTRA_PREFIX = "extra:"  # engine id of a booked extra: "extra:<booked_extra.id>"


def extra_row_id(value: object) -> int | None:
    """The `booked_extra.id` behind an engine extra id (a line's explanation "extra"), else None."""
    if isinstance(value, str) and value.startswith(EXTRA_PREFIX):
        return int(value[len(EXTRA_PREFIX):])
    return None


@dataclass(frozen=True)
class ExtraInfo:
    """What the invoice text needs to know about an engine extra beyond the engine's line."""

    kind: str  # material, travel, visit
    description: str
    no_charge: str | None = None  # the category that makes it free (goodwill)


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


def _amount(value: Decimal, language: str) -> str:
    return format_decimal(value.normalize(), locale="de_DE" if language == "de" else "en_GB")


def _money_text(value: Decimal, language: str) -> str:
    return format_currency(value, "EUR", locale="de_DE" if language == "de" else "en_GB")


def _percent_text(value: Decimal | str, language: str) -> str:
    number = format_decimal(Decimal(str(value)).normalize(), locale="de_DE" if language == "de" else "en_GB")
    return f"{number}\u00a0%" if language == "de" else f"{number}%"


def extra_text(line: billing.Line, info: ExtraInfo, language: str) -> str:
    """'Material: SSD 1 TB (2 × 87,40 €)', 'Anfahrt 38 km', 'Anfahrtspauschale Vor-Ort-Einsatz'.
    No date: the PDF prints the line's service date beneath it, once."""
    de = language == "de"
    if info.kind == "visit":
        text = "Anfahrtspauschale Vor-Ort-Einsatz" if de else "Travel flat fee on-site visit"
    elif info.kind == "travel":
        text = f"{'Anfahrt' if de else 'Travel'} {_amount(line.quantity, language)} km"
    else:
        price = _money_text(line.unit_price, language)
        text = f"Material: {info.description} ({_amount(line.quantity, language)} × {price})"
    if info.no_charge:
        reason = NO_CHARGE_CATEGORIES[info.no_charge][0 if de else 1]
        text += f" ({'ohne Berechnung' if de else 'no charge'}: {reason})"
    return text


def surcharge_text(line: billing.Line, language: str) -> str:
    """The surcharge a line's unit price contains, named with its percentage:
    "Nachtzuschlag 25 %" ("Samstag + Nachtzuschlag 50 %" when windows add up)."""
    percents = line.explanation.get("surcharge_percent") or {}
    return ", ".join(f"{label.replace('+', ' + ')} {_percent_text(pct, language)}"
                     for label, pct in sorted(percents.items()))  # type: ignore[union-attr]


def line_text(line: billing.Line, ticket: Ticket | None, language: str,
              extras: Mapping[str, ExtraInfo] | None = None, names: Mapping[str, str] | None = None) -> str:
    """Printable description of one line, saying what it is and nothing the PDF prints
    elsewhere: the ticket is the heading above its lines (and in the XML line name), the
    service date is printed beneath. Activity and agents; a surcharge by name and percentage;
    overage, surcharge shares in the contingent and corrections say what they are; a no-charge
    line says why (the ticket's category); a fee names its month in words ("November 2026")."""
    de = language == "de"
    info = (extras or {}).get(str(line.explanation.get("extra")))
    if line.kind == "fee":
        return f"{line.label} {Formats(language, 'EUR').month(line.service_period)}"
    if line.kind == "discount":
        percent = line.explanation.get("percent")
        if percent is None:
            return line.label
        base = _money_text(Decimal(str(line.explanation["base"])), language)
        return f"{line.label} {_percent_text(percent, language)} {'auf' if de else 'of'} {base}"  # type: ignore[arg-type]
    agents = ", ".join((names or {}).get(agent, agent) for agent in line.agents)
    what = (line.activity or line.label) + (f" ({agents})" if agents else "")
    surcharge = surcharge_text(line, language)
    if line.kind == "no_charge":
        why = NO_CHARGE_CATEGORIES.get(ticket.category or "") if ticket else None
        reason = f": {why[0 if de else 1]}" if why else ""
        text = f"{what} – {'ohne Berechnung' if de else 'no charge'}{reason}"
    elif line.kind == "overage":
        text = f"{what}, {'über Kontingent' if de else 'beyond contingent'}"
        text += f", {surcharge}" if surcharge else ""
    elif line.kind == "surcharge_share":
        share = "nur Zuschlag, Zeit im Kontingent" if de else "surcharge only, time in contingent"
        text = f"{what}: {surcharge} ({share})"
    elif line.kind == "travel_visit":
        text = "Anfahrtspauschale Vor-Ort-Einsatz" if de else "Travel flat fee on-site visit"
    elif line.kind in ("material", "travel_km"):
        text = extra_text(line, info, language) if info else line.label
    else:
        text = what + (f", {surcharge}" if surcharge else "")
    if line.correction:
        text = ("Korrektur: " if de else "Correction: ") + text
    return text


def line_order(lines: list[billing.Line]) -> list[billing.Line]:
    """Fees first, then each ticket's lines together (time by date, then its extras), then
    lines of no ticket, discounts last: the PDF names each ticket once above its run of lines."""
    tickets = list(dict.fromkeys(line.ticket for line in lines if line.ticket and line.kind != "fee"))

    def key(line: billing.Line) -> tuple:
        if line.kind == "fee":
            return (0, 0, line.service_period, "")
        if line.kind == "discount":
            return (3, 0, line.service_period, line.label)
        if line.ticket is None:
            return (2, 0, str(line.service_start), line.label)
        extra = line.kind in ("material", "travel_km", "travel_visit")
        return (1, tickets.index(line.ticket), str(int(extra)), str(line.service_start))

    return sorted(lines, key=key)


def tickets_paid_by(customer_id: int) -> Select[tuple[int]]:
    """Ids of the tickets whose work the customer pays for: `billing_customer_id` (a
    cancellation may have moved the work away from the organization), else `customer_id`.
    Written as two terms with an index each, not as `coalesce(...) = ?`, which no index serves:
    the monthly pass read every ticket and every entry for each customer that way."""
    return select(Ticket.id).where(or_(
        Ticket.billing_customer_id == customer_id,
        and_(Ticket.billing_customer_id.is_(None), Ticket.customer_id == customer_id)))


def billing_customer(session: Session, ticket: Ticket) -> Customer | None:
    """The customer a ticket's unbilled work is billed to (see `tickets_paid_by`)."""
    return session.get(Customer, ticket.billing_customer_id) if ticket.billing_customer_id else ticket.customer


#: how far `merge_targets` follows a chain of merges (a cycle of merges must end somewhere)
MERGE_HOPS = 20


def merge_targets(session: Session, ticket: Ticket | None = None) -> dict[int, Ticket]:
    """Merged ticket id → the ticket that bills its time (the end of a chain of merges).

    Zammad leaves the time on the merged ticket; its invoice is the surviving ticket's. Only
    tickets whose helpdesk names a survivor (`merged_into` set, not "") are in the map. With
    `ticket`, only the part of the map that concerns it — its own survivor, if it was merged,
    and the tickets whose time it bills — read from the tickets merged into it, not from all
    merged tickets of the database (one statement when nothing was merged into it).
    """
    if ticket is None:
        merged = list(session.execute(select(Ticket).where(Ticket.merged_into.is_not(None), Ticket.merged_into != "")
                                      ).scalars())
    else:
        merged = [ticket] if ticket.merged_into else []
        merged += tickets_merged_into(session, ticket)
    if not merged:
        return {}
    wanted = {(t.helpdesk, t.merged_into) for t in merged}
    by_key = {(t.helpdesk, t.remote_id): t for t in session.execute(select(Ticket).where(
        Ticket.remote_id.in_({remote for _h, remote in wanted}))).scalars()}
    targets: dict[int, Ticket] = {}
    for source in merged:
        target, hops = by_key.get((source.helpdesk, source.merged_into or "")), 0
        while target is not None and target.merged_into and hops < MERGE_HOPS:  # merged on: follow the chain
            target, hops = by_key.get((target.helpdesk, target.merged_into)) or session.execute(
                select(Ticket).where(Ticket.helpdesk == target.helpdesk, Ticket.remote_id == target.merged_into)
            ).scalar_one_or_none(), hops + 1
        if target is not None and target.id != source.id and (ticket is None or ticket.id in (source.id, target.id)):
            targets[source.id] = target
    return targets


def tickets_merged_into(session: Session, ticket: Ticket) -> list[Ticket]:
    """The tickets merged into `ticket`, directly or along a chain of merges as long as
    `merge_targets` follows (one statement per link of the chain, one when there is none)."""
    found: dict[int, Ticket] = {}
    frontier = [ticket]
    for _hop in range(MERGE_HOPS + 1):
        names = {(t.helpdesk, t.remote_id) for t in frontier}
        frontier = [t for t in session.execute(select(Ticket).where(
            Ticket.merged_into.in_({remote for _h, remote in names}))).scalars()
            if (t.helpdesk, t.merged_into) in names and t.id not in found and t.id != ticket.id]
        if not frontier:
            break
        found.update((t.id, t) for t in frontier)
    return list(found.values())


def is_open(ticket: Ticket) -> bool:
    """Open work is shown, not billed: a ticket is billed once it is closed (issue 11)."""
    return ticket.closed_at is None


def _customer_entries(session: Session, customer: Customer, ticket: Ticket | None, include_open: bool = False,
                      settled: frozenset[str] = frozenset(), deferred: frozenset[int] = frozenset(),
                      ) -> tuple[list[TimeEntry], dict[int, Ticket]]:
    """The entries the engine needs, and the ticket that bills each entry's ticket.

    All of the customer's for a month; for one ticket only its own (and those of tickets merged
    into it), since every per-ticket step (netting, rounding, overlaps, visits) stays in the
    ticket. The customer's are the entries of the tickets it pays for, except those a valid
    invoice of another customer holds, plus those its own valid invoices hold wherever their
    ticket went: time stays with the customer that was billed for it. A merged ticket's time is
    billed with the ticket it was merged into. Entries of open tickets are left out unless
    `include_open` (status and contingent figures of open work): billing happens on close. What
    valid documents already settled (`settled`, entry ids) always counts, reopened or not, or
    the engine would take it back. `deferred` entries (moved to a later invoice by a team lead,
    addon.invoicing.drafts) are left out.
    """
    legacy = legacy_billed_entries(session, customer.id) | deferred
    targets = merge_targets(session, ticket)
    on_own_invoices = (select(BilledEntry.entry_id).join(Invoice, Invoice.id == BilledEntry.invoice_id)
                       .where(Invoice.customer_id == customer.id, Invoice.state != "cancelled"))
    merged_in = [source for source, target in targets.items() if _payer_id(target) == customer.id]
    query = (select(TimeEntry, Ticket).join(Ticket, Ticket.id == TimeEntry.ticket_id)
             .where(or_(TimeEntry.ticket_id.in_(tickets_paid_by(customer.id)), TimeEntry.id.in_(on_own_invoices),
                        TimeEntry.ticket_id.in_(merged_in)),
                    TimeEntry.removed_at.is_(None))
             .order_by(TimeEntry.booked_at, TimeEntry.id))
    if ticket is not None:
        query = query.where(TimeEntry.ticket_id.in_([ticket.id, *(s for s, t in targets.items() if t.id == ticket.id)]))
    rows = session.execute(query).all()
    payer = dict(session.execute(
        select(BilledEntry.entry_id, Invoice.customer_id).join(Invoice, Invoice.id == BilledEntry.invoice_id)
        .where(BilledEntry.entry_id.in_([e.id for e, _t in rows]), Invoice.state != "cancelled")).all())
    billing_ticket = {t.id: targets.get(t.id, t) for _e, t in rows}
    entries = [e for e, _t in rows if e.id not in legacy and payer.get(
        e.id, _payer_id(billing_ticket[e.ticket_id])) == customer.id
        and (include_open or str(e.id) in settled or not is_open(billing_ticket[e.ticket_id]))]
    return entries, billing_ticket


def _payer_id(ticket: Ticket) -> int | None:
    return ticket.billing_customer_id or ticket.customer_id


def _customer_extras(session: Session, customer: Customer, ticket: Ticket | None,
                     include_open: bool = False) -> list[tuple[BookedExtra, Ticket]]:
    """The customer's current booked extras (one ticket's for per_ticket), billed ones included:
    the engine skips what valid invoices already hold, and bills again what a cancellation released."""
    query = (select(BookedExtra, Ticket).join(Ticket, Ticket.id == BookedExtra.ticket_id)
             .where(BookedExtra.ticket_id.in_(tickets_paid_by(customer.id)), BookedExtra.removed_at.is_(None),
                    BookedExtra.written_off.is_(None))
             .order_by(BookedExtra.booked_at, BookedExtra.id))
    if ticket is not None:
        query = query.where(BookedExtra.ticket_id == ticket.id)
    return [(x, t) for x, t in session.execute(query).all() if include_open or not is_open(t)]


def _blocked(entry: TimeEntry, ticket: Ticket) -> str | None:
    """Why an entry stays out of the engine altogether: its ticket's category bills nothing,
    it was written off, or its ticket waits for a decision after a cancellation."""
    if entry.written_off:
        return entry.written_off
    if ticket.category in NOT_BILLABLE_CATEGORIES:
        return f"category {ticket.category}"
    if ticket.billing_hold:
        return f"on hold after {ticket.billing_hold}"
    return None


def with_category(routed: Iterable[billing.TimeEntry], by_number: Mapping[str, Ticket],
                  setup: ContractSetup) -> tuple[billing.TimeEntry, ...]:
    """Goodwill time is no-charge; covered time too, unless a retainer covers it (the engine
    then consumes the contingent as for any other ticket)."""
    def free(entry: billing.TimeEntry) -> bool:
        category = by_number[entry.ticket].category
        return category == "goodwill" or (category == "covered" and setup.engine.retainer is None)

    return tuple(replace(e, no_charge=True) if free(e) else e for e in routed)


def _markup(category: str | None, markups: Mapping[str, Decimal]) -> Decimal:
    """The contract's markup for a material category, matched case-insensitively ("[Hardware]"
    in a note, "hardware" in the contract); 0 without one."""
    if category is None:
        return Decimal(0)
    return next((v for k, v in markups.items() if k.casefold() == category.casefold()), Decimal(0))


def engine_extras(booked: list[tuple[BookedExtra, Ticket]], infos: Mapping[str, billing.TicketInfo],
                  setups: list[ContractSetup], routing: billing.Routing, timezone: str,
                  claiming: list[ContractSetup] | None = None, pinned: Mapping[str, str] | None = None,
                  ) -> tuple[dict[str, list[billing.Extra]], dict[str, ExtraInfo], list[billing.Problem]]:
    """Booked extras as engine extras per contract key, with their texts and the holds.

    An extra a valid invoice billed stays with that contract (`pinned`, engine extra id → key).
    Any other extra goes with its ticket's time: to the contract that bills most of the ticket's
    routed entries; on a ticket without routed time, to the contract that would bill time booked
    there at its booking time (a one-minute probe through the claims of `claiming`, the
    customer's own contracts). A visit is an extra of one piece at the contract's
    flat fee, unless the contract already bills visits from on-site time of that ticket (then
    the engine's own travel flat covers it; two fees for one trip would be wrong). Missing
    prices (km rate, flat fee) hold the ticket with the reason; nothing is guessed.
    """
    by_key = {s.key: s for s in setups}
    onsite = {(key, e.ticket) for key, routed in routing.by_contract.items() for e in routed
              if by_key[key].engine.travel is not None and e.activity in by_key[key].engine.travel.activities}
    found: dict[str, list[billing.Extra]] = {}
    texts: dict[str, ExtraInfo] = {}
    problems: list[billing.Problem] = []
    ticket_keys: dict[str, list[str]] = {}
    for routed_key, routed_entries in routing.by_contract.items():
        for e in routed_entries:
            ticket_keys.setdefault(e.ticket, []).append(routed_key)
    for row, ticket in booked:
        if ticket.category in NOT_BILLABLE_CATEGORIES or ticket.booking_problems or ticket.billing_hold:
            continue
        key = (pinned or {}).get(f"{EXTRA_PREFIX}{row.id}")
        keys = ticket_keys.get(ticket.number)
        if key is None and keys:
            key = max(sorted(set(keys)), key=keys.count)
        if key is None:
            probe = billing.TimeEntry(id=f"probe:{row.id}", ticket=ticket.number, agent=row.agent,
                                      activity=NO_ACTIVITY, start=row.booked_at, minutes=1, booked_at=row.booked_at)
            routed = route([probe], {ticket.number: infos[ticket.number]}, claiming or setups, timezone)
            key = next(iter(routed.by_contract), None)
            if key is None:
                problems += [replace(p, entry_ids=()) for p in routed.problems]
                continue
        if key not in by_key:
            problems.append(billing.Problem("contract gone", f"contract {key} billed {row.description} and no "
                                            "longer exists", ticket=ticket.number))
            continue
        setup = by_key[key]
        terms = f" in contract {key}" if setup.row is not None else ""
        if row.kind == "material":
            if row.unit_cost is None:  # the parser never lets one through; a connector might
                problems.append(billing.Problem("no price", f"Material: {row.description} — no unit price",
                                                ticket=ticket.number))
                continue
            kind, cost, markup = "material", row.unit_cost, _markup(row.category, setup.engine.material_markup)
        elif row.kind == "travel":
            rate = row.unit_cost if row.unit_cost is not None else (setup.row.travel_km_rate if setup.row else None)
            if rate is None:
                problems.append(billing.Problem(
                    "no km rate", f"travel km booked but no km rate configured{terms} ({row.description})",
                    ticket=ticket.number))
                continue
            kind, cost, markup = "travel", rate, Decimal(0)
        else:
            if (key, ticket.number) in onsite:
                continue
            flat = setup.row.travel_flat if setup.row is not None else None
            if flat is None:
                problems.append(billing.Problem(
                    "no travel flat", f"on-site visit booked but no travel flat fee configured{terms}",
                    ticket=ticket.number))
                continue
            kind, cost, markup = "material", flat, Decimal(0)
        goodwill = ticket.category == "goodwill"
        extra_id = f"{EXTRA_PREFIX}{row.id}"
        found.setdefault(key, []).append(billing.Extra(
            id=extra_id, kind=kind, ticket=ticket.number,  # type: ignore[arg-type]
            date=row.booked_at.astimezone(ZoneInfo(setup.engine.timezone)).date(),
            description=row.description, quantity=row.quantity, cost=Decimal(0) if goodwill else cost,
            category=row.category, markup=markup,
        ))
        texts[extra_id] = ExtraInfo(row.kind, row.description, "goodwill" if goodwill else None)
    return found, texts, problems


def _draft(session: Session, results: list[billing.BillingResult], by_number: dict[str, Ticket],
           entries: dict[str, TimeEntry], language: str, timezone: str,
           extras: Mapping[str, ExtraInfo], settled_before: frozenset[str] = frozenset(),
           ticket_of: Mapping[str, str] | None = None) -> Draft | None:
    lines = line_order([line for r in results for line in r.lines])
    if not lines:
        return None
    names = {e.agent: e.agent_name for e in entries.values() if e.agent_name}  # printed instead of logins
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
    allowance_lines = {index for index, line in enumerate(lines)
                       if line.kind == "discount" and line.explanation.get("presentation") == "allowance"}
    draft_lines = tuple(
        DraftLine(
            description=line_text(line, by_number.get(line.ticket or ""), language, extras, names),
            quantity=line.quantity, unit=line.unit, unit_price=line.unit_price, net=line.net,
            vat_rate=line.vat_rate, service_start=line.service_start, service_end=line.service_end,
            entries=tuple(sorted(links.get(index, []), key=lambda link: link.entry_id)),
            explanation={**dict(line.explanation), "kind": line.kind, "service_period": line.service_period},
            ticket_number=line.ticket,
        )
        for index, line in enumerate(lines) if index not in allowance_lines
    )
    allowances = tuple(
        Allowance(reason=line.label, amount=-line.net, vat_rate=line.vat_rate,
                  percent=Decimal(str(line.explanation["percent"])) if line.explanation.get("percent") else None,
                  base=Decimal(str(line.explanation["base"])) if line.explanation.get("percent") else None)
        for index, line in enumerate(lines) if index in allowance_lines
    )
    totals = compute_totals(tuple(lines))
    return Draft(
        lines=draft_lines,
        vat_groups=tuple(VatGroup("S", b.rate, b.base, b.vat) for b in totals.by_rate),
        net=totals.net, vat=totals.vat, gross=totals.gross,
        annex=annex_entries(results, entries, ZoneInfo(timezone), settled_before, ticket_of or {}),
        allowances=allowances,
    )


def annex_entries(results: list[billing.BillingResult], entries: Mapping[str, TimeEntry], zone: ZoneInfo,
                  settled_before: frozenset[str] = frozenset(),
                  ticket_of: Mapping[str, str] | None = None) -> tuple[AnnexEntry, ...]:
    """One activity report row per booking this document settles or changes, from what the
    engine allocated: raw minutes as booked, billed minutes, and how many of those a contingent
    covered (they cost nothing on their own, so no line shows them; the report must).

    Booked minutes are the entry's own, once per entry however many lines a surcharge window
    splits it into, and only on the invoice that settles the entry first (`settled_before`: the
    entries earlier valid documents hold); a later correction of that time shows booked 0 and the
    billed difference. Corrections netted into billed time are listed with their own minutes.
    """
    rows: dict[str, dict[str, object]] = {}
    for result in results:
        document = result.state.documents[-1] if result.state.documents else None
        if document is None or document.document_id != result.document_id:
            continue
        for allocation in document.allocations:
            entry = entries.get(allocation.entry_id)
            if entry is None:
                continue
            row = rows.setdefault(allocation.entry_id, {
                "ticket": allocation.ticket, "activity": allocation.activity, "billed": 0, "covered": 0,
                "no_charge": False})
            row["billed"] = int(row["billed"]) + allocation.minutes  # type: ignore[call-overload]
            if allocation.coverage == NO_CHARGE:
                row["no_charge"] = True
            elif allocation.coverage not in (TIME_AND_MATERIAL, OVERAGE):
                row["covered"] = int(row["covered"]) + allocation.minutes  # type: ignore[call-overload]
    for entry_id in _settled_without_line(results) - set(rows):
        entry = entries.get(entry_id)
        if entry is not None:
            rows[entry_id] = {"ticket": (ticket_of or {}).get(entry_id, ""), "activity": entry.activity or NO_ACTIVITY,
                              "billed": 0, "covered": 0, "no_charge": False}
    annex = []
    for entry_id, row in rows.items():
        entry = entries[entry_id]
        raw = Decimal(0) if entry_id in settled_before else entry.minutes
        if not row["billed"] and not raw:
            continue
        annex.append(AnnexEntry(
            ticket_number=str(row["ticket"]), date=entry.booked_at.astimezone(zone).date(),
            agent=entry.agent_name or entry.agent, activity=str(row["activity"]),
            raw_minutes=raw, billed_minutes=Decimal(int(row["billed"])),  # type: ignore[call-overload]
            covered_minutes=Decimal(int(row["covered"])), no_charge=bool(row["no_charge"]),  # type: ignore[call-overload]
        ))
    return tuple(sorted(annex, key=lambda a: (a.date, a.agent, a.ticket_number)))


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


def date_corrections(core: list[billing.TimeEntry], own_start: set[str]) -> list[billing.TimeEntry]:
    """A correction booked without a start (Zammad, OTRS) corrects earlier work: it is dated to
    the start of the latest positive booking of the same ticket, agent and activity booked
    before it, so it nets in that work's period. Typed in a month later, it still becomes a
    correction line on the next invoice (README "Corrections") instead of a "negative net" of
    its own month. Without such a booking it keeps its booking time."""
    dated = []
    for entry in core:
        if entry.minutes >= 0 or entry.id in own_start:
            dated.append(entry)
            continue
        earlier = [e for e in core if e.minutes > 0 and (e.ticket, e.agent, e.activity) == (
            entry.ticket, entry.agent, entry.activity) and e.booked_at is not None and entry.booked_at is not None
            and e.booked_at <= entry.booked_at]
        target = max(earlier, key=lambda e: (e.booked_at, e.id), default=None)
        resolved = resolve_interval(target) if target is not None else None
        dated.append(entry if resolved is None or isinstance(resolved, billing.Problem)
                     else replace(entry, start=resolved[0]))
    return dated


def route_customer(session: Session, settings: Settings, customer: Customer, setups: list[ContractSetup],
                   core: list[billing.TimeEntry], infos: dict[str, billing.TicketInfo],
                   states: dict[str, billing.BillingState],
                   by_number: Mapping[str, Ticket]) -> tuple[list[ContractSetup], billing.Routing]:
    """Which contract bills each entry: billed time stays with the contract that billed it, the
    rest goes to the contracts that reach it (new time; known time only where applied).
    `by_number` holds the tickets that bill the entries (read with them)."""
    timezone = customer.timezone or settings.timezone
    pinned = pinned_entries(core, states, timezone)
    for entry in core:  # a cancellation moved the ticket's unbilled work to another contract
        ticket = by_number.get(entry.ticket)
        if ticket is not None and ticket.billing_contract and ticket.helpdesk == customer.helpdesk:
            pinned.setdefault(entry.id, ticket.billing_contract)
    reachable = None
    rows = [s for s in setups if s.row is not None]
    if rows:
        reachable = {e.id: reach(e, rows, timezone) for e in core if e.id not in pinned}
        if DEFAULT_CONTRACT in pinned.values() or any(DEFAULT_CONTRACT in r for r in reachable.values()):
            setups = [*setups, default_setup(session, settings, customer)]
    return setups, route(core, infos, setups, timezone, pinned=pinned, reachable=reachable)


def unbilled_routing(session: Session, settings: Settings, customer: Customer) -> dict[int, str | None]:
    """Entry id → the contract that would bill it now (None: held), for the customer's stored
    entries no valid invoice or draft holds yet (what `contracts preview` compares)."""
    stored, tickets_by_id = _customer_entries(session, customer, None, include_open=True)
    billed = set(session.execute(select(BilledEntry.entry_id)).scalars())
    core = date_corrections([core_entry(e, tickets_by_id[e.ticket_id]) for e in stored
                             if tickets_by_id[e.ticket_id].category not in NOT_BILLABLE_CATEGORIES],
                            {str(e.id) for e in stored if e.start is not None})
    infos = {t.number: ticket_info(t) for t in tickets_by_id.values()}
    _setups, routing = route_customer(session, settings, customer, customer_contracts(session, settings, customer),
                                      core, infos, customer_states(session, customer.id),
                                      {t.number: t for t in tickets_by_id.values()})
    found: dict[int, str | None] = {int(x.entry_id): None for x in routing.held}
    found.update({int(e.id): key for key, routed in routing.by_contract.items() for e in routed})
    return {entry_id: key for entry_id, key in found.items() if entry_id not in billed}


def pinned_entries(core: list[billing.TimeEntry], states: dict[str, billing.BillingState],
                   timezone: str) -> dict[str, str]:
    """Entry id → contract key for everything a valid invoice billed or settled, plus the
    unsettled corrections of such time.

    A correction is netted against the latest positive entry of its (ticket, agent, activity,
    period): when that entry was billed under contract K, the correction must be rated under K
    too, or it would either vanish in another contract ("negative net") or be ignored while K
    keeps billing the uncorrected time.
    """
    settled = settled_keys(states)
    pinned = {e.id: settled[e.id] for e in core if e.id in settled}
    groups: dict[tuple[str, str, str, str], list[tuple[datetime, billing.TimeEntry]]] = {}
    for entry in core:
        resolved = resolve_interval(entry)
        if isinstance(resolved, billing.Problem):
            continue
        group = (entry.ticket, entry.agent, entry.activity, period_of_instant(resolved[0], timezone))
        groups.setdefault(group, []).append((resolved[0], entry))
    for members in groups.values():
        positives = sorted((start, e.id, e) for start, e in members if e.minutes > 0)
        if not positives or positives[-1][2].id not in pinned:
            continue
        key = pinned[positives[-1][2].id]
        for _start, entry in members:
            if entry.minutes < 0:
                pinned.setdefault(entry.id, key)
    return pinned


def _flags(problems: Iterable[billing.Problem], severity: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in problems:
        if p.severity == severity:
            reasons = found.setdefault(p.ticket or CUSTOMER, [])
            if p.reason not in reasons:
                reasons.append(p.reason)
    return found


def rate_customer(session: Session, settings: Settings, customer: Customer, *, trigger: str,
                  ticket: Ticket | None = None, period: str | None = None, include_open: bool = False,
                  deferred: frozenset[int] = frozenset()) -> Rating:
    """Rate what is due for one customer: one ticket's contracts with trigger per_ticket, or
    the month `period` (and earlier, not yet billed) of the contracts with trigger monthly.
    `include_open` rates the work of open tickets too (their status and contingent figures;
    never issued)."""
    setups = customer_contracts(session, settings, customer)
    if setups[0].key == "default" and not setups[0].engine.rates:
        return Rating(None, [f"no hourly rate for customer '{customer.name}' and no default_rate configured"])
    timezone = customer.timezone or settings.timezone
    states = customer_states(session, customer.id)
    settled = frozenset(settled_keys(states))
    stored, tickets_by_id = _customer_entries(session, customer, ticket, include_open, settled, deferred)
    booked = _customer_extras(session, customer, ticket, include_open)
    tickets_by_id.update({t.id: t for _x, t in booked if t.id not in tickets_by_id})
    by_number = {t.number: t for t in tickets_by_id.values()}
    entries = {str(e.id): e for e in stored}
    blocked = {e.id: reason for e in stored if (reason := _blocked(e, tickets_by_id[e.ticket_id]))}
    core = date_corrections([core_entry(e, tickets_by_id[e.ticket_id]) for e in stored if e.id not in blocked],
                            {str(e.id) for e in stored if e.start is not None})
    infos = {t.number: ticket_info(t) for t in tickets_by_id.values()}
    own_setups = setups
    setups, routing = route_customer(session, settings, customer, setups, core, infos, states, by_number)
    agents = agents_for(session, stored)
    scope = frozenset({ticket.number}) if ticket is not None else None

    def relevant(number: str | None) -> bool:
        return scope is None or number is None or number in scope

    results: list[billing.BillingResult] = []
    documents: dict[str, billing.Document] = {}
    ledgers: list[Ledger] = []
    problems = [p for p in routing.problems if relevant(p.ticket)]
    problems += [billing.Problem("booking problem", t.booking_problems.replace("\n", "; "), ticket=t.number)
                 for t in tickets_by_id.values() if t.booking_problems and relevant(t.number)]
    billed_extras = {x: key for key, st in states.items() for d in st.valid_invoices() for x in d.extra_ids}
    extras, extra_infos, extra_problems = engine_extras(booked, infos, setups, routing, timezone,
                                                        claiming=own_setups, pinned=billed_extras)
    problems += [p for p in extra_problems if relevant(p.ticket)]
    # reasons a valid invoice already gave (internal, netted to zero) stay the entry's reasons:
    # the engine reports an exclusion once, but the entry remains excluded on every later run
    excluded = {int(x.entry_id): x.reason for st in states.values() for d in st.valid_invoices()
                for x in d.excluded if x.entry_id.isdigit()}
    excluded |= {int(x.entry_id): x.reason for x in routing.held} | blocked
    waiting: list[str] = []
    for setup in setups:
        routed = with_category(routing.by_contract.get(setup.key, ()), by_number, setup)
        own_extras = tuple(extras.get(setup.key, ()))
        if setup.trigger != trigger:
            if scope is not None and any(x.ticket in scope for x in (*routed, *own_extras)):
                waiting.append(setup.key)
            continue
        if not routed and not own_extras and (setup.engine.retainer is None or period is None):
            continue
        with gc_tuning.paused():  # the core makes no reference cycles: nothing for a collection to free
            result = billing.bill(billing.BillingRequest(
                contract=setup.engine, agents=agents, entries=routed, extras=own_extras, period=period,
                tickets=scope, state=states.get(setup.key, billing.BillingState()),
                document_id=f"{setup.key}:draft",
            ))
        results.append(result)
        problems += result.problems
        excluded.update({int(x.entry_id): x.reason for x in result.excluded})
        documents[setup.key] = result.state.documents[-1]
        if setup.engine.retainer is not None and result.contingents:
            ledgers.append(Ledger(setup, result.contingents))
    holds, warnings = _flags(problems, "hold"), _flags(problems, "warning")
    language = customer.language or settings.invoice_language
    with_open = open_snapshots(session, settings, customer, period) if ledgers and not include_open else {}
    notes = tuple(ledger_summary(s, ledger.setup.engine.retainer, language,  # type: ignore[arg-type]
                                 with_open.get((ledger.setup.key, s.period)))
                  for ledger in ledgers for s in ledger.snapshots if s.period == period)
    reasons = [r for key, rs in holds.items() if key in (CUSTOMER, *(scope or ())) for r in rs]
    if trigger == "per_ticket" and reasons:
        return Rating(None, reasons, excluded, holds, warnings, waiting=tuple(waiting))
    draft = _draft(session, results, by_number, entries, language, timezone, extra_infos, settled,
                   {e.id: e.ticket for e in core})
    if draft is not None:  # the ledger text and the month belong to the document (snapshot)
        bounds = (first_day(period), last_day(period)) if period else None
        draft = replace(draft, notes=notes, service_period=bounds)
    touched = {line.ticket for r in results for line in r.lines if line.ticket} | {
        a.ticket for d in documents.values() for a in d.allocations}
    billed_ids = {a.entry_id for d in documents.values() for a in d.allocations} | {
        ref.entry_id for r in results for line in r.lines for ref in line.entries}
    merged_sources = {e.ticket_id for e in stored  # their time is billed under the survivor's number
                      if tickets_by_id[e.ticket_id].id != e.ticket_id and str(e.id) in billed_ids}
    invoice_tickets = sorted([*(by_number[n] for n in touched if n in by_number),
                              *(s for i in merged_sources if (s := session.get(Ticket, i)) is not None)],
                             key=lambda t: t.number)
    return Rating(draft, reasons if trigger == "per_ticket" else [], excluded, holds, warnings, documents,
                  invoice_tickets, ledgers, notes, tuple(waiting))


def open_snapshots(session: Session, settings: Settings, customer: Customer,
                   period: str | None) -> dict[tuple[str, str], billing.ContingentSnapshot]:
    """(contract key, period) → the contingent snapshot with the work of open tickets counted:
    the figures a team lead (and the customer) must see, although open work is billed later."""
    rating = rate_customer(session, settings, customer, trigger="monthly", period=period, include_open=True)
    return {(ledger.setup.key, snap.period): snap for ledger in rating.ledgers for snap in ledger.snapshots}


def rate_ticket(session: Session, settings: Settings, customer: Customer, ticket: Ticket,
                deferred: frozenset[int] = frozenset()) -> Rating:
    """Trigger per_ticket: bill what is due on one closed ticket (without `deferred` entries)."""
    return rate_customer(session, settings, customer, trigger="per_ticket", ticket=ticket, deferred=deferred)

