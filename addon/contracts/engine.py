"""Database rows → the billing engine's inputs: contracts, rate rules, agents, claims, entries.

Pure mapping plus the queries that feed it; no billing decisions are made here. A customer with
no contract rows gets the implicit time-and-material contract of the first release (customer
rate, else the default rate; 15-minute round-up per entry), so nothing changes for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon import billing
from addon.contracts.state import DEFAULT_CONTRACT
from addon.discounts import engine_discounts
from addon.models import (
    ActivityType,
    AgentRole,
    Contract,
    Customer,
    GlobalRate,
    RateRuleRow,
    Ticket,
    TimeEntry,
)
from addon.settings import Settings

ROUNDING_INCREMENT = 15
NO_ACTIVITY = "Arbeitszeit"
CLAIM_ALL = "\x00all"  # pseudo tag: a contract without assignments claims every ticket of its customer


@dataclass(frozen=True)
class ContractSetup:
    """One engine contract with the shell's facts about it."""

    key: str  # contract code, or "default"
    engine: billing.Contract
    trigger: str
    row: Contract | None = None


def whole_minutes(minutes: Decimal) -> int:
    """The core rates whole minutes; fractions from hour/second units round half up."""
    return int(minutes.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def core_entry(entry: TimeEntry, ticket: Ticket) -> billing.TimeEntry:
    """A stored entry as the engine sees it. Zammad/OTRS entries have no start: the engine
    derives it from booked_at − minutes. A correction (negative booking) has no interval; its
    booking time decides its period."""
    minutes = whole_minutes(entry.minutes)
    start = entry.start if entry.start is not None or minutes >= 0 else entry.booked_at
    return billing.TimeEntry(
        id=str(entry.id), ticket=ticket.number, agent=entry.agent, activity=entry.activity or NO_ACTIVITY,
        start=start, minutes=minutes, booked_at=entry.booked_at,
    )


def _rule(row: RateRuleRow) -> billing.RateRule:
    return billing.RateRule(row.rate, row.scope, row.activity, row.agent, row.role)  # type: ignore[arg-type]


def shared_rates(session: Session, customer: Customer) -> tuple[billing.RateRule, ...]:
    """Customer and global rate rules: rate table rows plus the customer's and default hourly rate
    from the customer import (as each table's default, unless the table has its own)."""
    rows = session.execute(select(RateRuleRow).where(
        ((RateRuleRow.scope == "customer") & (RateRuleRow.customer_id == customer.id))
        | (RateRuleRow.scope == "global")).order_by(RateRuleRow.id)).scalars().all()
    rules = [_rule(r) for r in rows]

    def has_default(scope: str) -> bool:
        return any(r.scope == scope and not (r.activity or r.agent or r.role) for r in rules)

    if customer.hourly_rate is not None and not has_default("customer"):
        rules.append(billing.RateRule(customer.hourly_rate, "customer"))
    for row in session.execute(select(GlobalRate).order_by(GlobalRate.activity)).scalars():
        if row.activity:
            rules.append(billing.RateRule(row.hourly_rate, "global", activity=row.activity))
        elif not has_default("global"):
            rules.append(billing.RateRule(row.hourly_rate, "global"))
    return tuple(rules)


def activity_sets(session: Session) -> tuple[frozenset[str], frozenset[str] | None]:
    """(internal activities, known activities or None when the admin registered none)."""
    rows = session.execute(select(ActivityType)).scalars().all()
    internal = frozenset(r.name for r in rows if r.internal)
    known = frozenset(r.name for r in rows) | {NO_ACTIVITY} if any(not r.internal for r in rows) else None
    return internal, known


def agents_for(session: Session, entries: list[TimeEntry]) -> dict[str, billing.Agent]:
    """Registered agents with their roles; with none registered, every booking agent is known."""
    rows = session.execute(select(AgentRole)).scalars().all()
    if not rows:
        return {e.agent: billing.Agent(e.agent) for e in entries}
    return {r.id: billing.Agent(r.id, r.role) for r in rows}


def _time(text: str | None) -> time | None:
    return time.fromisoformat(text) if text else None


def engine_contract(row: Contract, rates: tuple[billing.RateRule, ...], internal: frozenset[str],
                    known: frozenset[str] | None, timezone: str, vat_rate: Decimal,
                    discounts: tuple[billing.Discount, ...] = ()) -> billing.Contract:
    """One contract row with its windows, blocks and rate rules as the engine's `Contract`;
    `discounts` (the customer's) follow the contract's own."""
    retainer = None
    if row.kind == "retainer":
        retainer = billing.Retainer(
            start_period=row.retainer_start or "", fee=row.fee or Decimal("0.00"), fee_label=row.fee_label or "",
            included_minutes=row.included_minutes or 0,
            covered_activities=None if row.covered_activities is None else frozenset(row.covered_activities),
            overage_rate=row.overage_rate,
            rollover=(billing.Rollover(row.rollover_max_minutes, row.rollover_periods or 1)
                      if row.rollover_max_minutes is not None else None),
            prepaid_blocks=tuple(billing.PrepaidBlock(b.code, b.minutes, b.valid_until, b.price)
                                 for b in row.prepaid_blocks),
        )
    return billing.Contract(
        id=row.code, timezone=row.timezone or timezone, holiday_region=row.holiday_region, vat_rate=vat_rate,
        rounding=billing.Rounding(scope=row.rounding_scope, mode=row.rounding_mode,  # type: ignore[arg-type]
                                  increment=row.rounding_increment, minimum=row.rounding_minimum,
                                  minimum_by_activity=dict(row.minimum_by_activity or {})),
        rates=rates,
        surcharges=tuple(billing.Surcharge(s.name, s.kind, s.percent, _time(s.start), _time(s.end))  # type: ignore[arg-type]
                         for s in row.surcharges),
        surcharge_policy=row.surcharge_policy,  # type: ignore[arg-type]
        retainer=retainer,
        travel=(billing.TravelFlat(row.travel_flat, frozenset(row.travel_activities))
                if row.travel_flat is not None else None),
        material_markup={k: Decimal(v) for k, v in (row.material_markup or {}).items()},
        internal_activities=internal, known_activities=known,
        discounts=engine_discounts(row.discounts) + discounts,
    )


def customer_contracts(session: Session, settings: Settings, customer: Customer) -> list[ContractSetup]:
    """The customer's contracts as engine contracts; the implicit default when there are none."""
    internal, known = activity_sets(session)
    timezone = customer.timezone or settings.timezone
    shared = shared_rates(session, customer)
    rows = session.execute(select(Contract).where(Contract.customer_id == customer.id)
                           .order_by(Contract.code)).scalars().all()
    if not rows:
        contract = billing.Contract(
            id=DEFAULT_CONTRACT, timezone=timezone, vat_rate=settings.vat_rate,
            rounding=billing.Rounding(scope="entry", mode="up", increment=ROUNDING_INCREMENT),
            rates=shared, internal_activities=internal, known_activities=known,
            discounts=engine_discounts(customer.discounts),
        )
        return [ContractSetup(DEFAULT_CONTRACT, contract, "per_ticket")]
    setups = []
    for row in rows:
        own = tuple(_rule(r) for r in session.execute(
            select(RateRuleRow).where(RateRuleRow.contract_id == row.id).order_by(RateRuleRow.id)).scalars())
        setups.append(ContractSetup(row.code, engine_contract(row, own + shared, internal, known, timezone,
                                                              settings.vat_rate, engine_discounts(customer.discounts)),
                                    row.trigger, row))
    return setups


def claims(setups: list[ContractSetup]) -> tuple[list[billing.ContractClaim], list[billing.ContractClaim]]:
    """Selection claims: (specific, fallback). Specific claims name tickets, groups or tags; a
    contract without assignments claims every ticket of its customer, but only as a fallback for
    entries no specific claim takes (so "flat rate for all, except group Projects" needs no list)."""
    specific, fallback = [], []
    for setup in setups:
        row = setup.row
        if row is None:
            fallback.append(billing.ContractClaim(setup.key, tags=frozenset({CLAIM_ALL})))
            continue
        if not row.assignments:
            fallback.append(billing.ContractClaim(row.code, tags=frozenset({CLAIM_ALL}), valid_from=row.valid_from,
                                                  valid_until=row.valid_until))
            continue
        by_kind = {kind: frozenset(a.value for a in row.assignments if a.kind == kind)
                   for kind in ("ticket", "group", "tag")}
        specific.append(billing.ContractClaim(row.code, tickets=by_kind["ticket"], groups=by_kind["group"],
                                              tags=by_kind["tag"], valid_from=row.valid_from,
                                              valid_until=row.valid_until))
    return specific, fallback


def route(entries: list[billing.TimeEntry], tickets: dict[str, billing.TicketInfo],
          setups: list[ContractSetup], timezone: str) -> billing.Routing:
    """Specific claims first; entries none of them claims go to the fallback contracts."""
    specific, fallback = claims(setups)
    first = billing.route_entries(entries, tickets, specific, timezone)
    unclaimed = {x.entry_id for x in first.held if x.reason == "no contract"}
    if not unclaimed or not fallback:
        return first
    second = billing.route_entries([e for e in entries if e.id in unclaimed], tickets, fallback, timezone)
    by_contract = {k: list(v) for k, v in first.by_contract.items()}
    for key, routed in second.by_contract.items():
        by_contract.setdefault(key, []).extend(routed)
    return billing.Routing(
        {k: tuple(v) for k, v in sorted(by_contract.items())},
        tuple(x for x in first.held if x.entry_id not in unclaimed) + second.held,
        tuple(p for p in first.problems if not (p.code == "no contract" and set(p.entry_ids) <= unclaimed))
        + second.problems,
    )


def ticket_info(ticket: Ticket) -> billing.TicketInfo:
    return billing.TicketInfo(ticket.number, ticket.group, frozenset(ticket.tags or ()) | {CLAIM_ALL})
