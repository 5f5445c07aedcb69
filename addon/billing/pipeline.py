"""The declared pipeline: classify → period → net corrections → round → split at surcharge windows
→ rate → contingents → extras → lines → discounts → money.

Each step is a pure function `Run -> Run` that adds its results, review flags (`Problem`) and
exclusions to an immutable run record; `PIPELINE` lists them in order so the order is data, not
buried in control flow. `bill` runs them; `cancel` makes a Storno of an issued invoice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from .classify import Classified, PreparedEntry, classify, overlap_problems
from .contingents import ContingentResult, allocate_contingents
from .contract_checks import contract_problems, valid_timezone
from .discounts import discount_lines
from .extras import extra_line, find_visits, visit_line
from .lines import PricedEntry, build_time_lines, diff_allocations, no_charge_entries, price_entries
from .model import Agent, Contract, Extra, Period, TimeEntry
from .money import round_quantity
from .netting import NettedEntry, net_corrections
from .periods import first_day, is_period, last_day, periods_between
from .rates import RatedEntry, rate_entries
from .results import (
    Allocation,
    BillingResult,
    BillingState,
    ContingentSnapshot,
    Document,
    Exclusion,
    Line,
    Problem,
    Totals,
)
from .rounding import RoundedEntry, round_entries
from .surcharges import SplitEntry, split_at_surcharges
from .totals import compute_totals


@dataclass(frozen=True)
class BillingRequest:
    """Everything one invoice run needs. Pure data; nothing is looked up elsewhere.

    `entries` are all entries the shell knows for this contract (billed ones included: the engine
    bills only the difference to `state`). `period` bills everything of that period and earlier;
    None bills everything given. `tickets` restricts the document to some tickets (trigger
    per_ticket). `document_id` is the shell's id for the draft/issued document.
    """

    contract: Contract
    agents: Mapping[str, Agent]
    entries: tuple[TimeEntry, ...]
    extras: tuple[Extra, ...] = ()
    period: Period | None = None
    tickets: frozenset[str] | None = None
    state: BillingState = field(default_factory=BillingState)
    document_id: str = "draft"


@dataclass(frozen=True)
class Run:
    """The immutable record a run grows step by step."""

    request: BillingRequest
    classified: Classified | None = None
    billable: tuple[PreparedEntry, ...] = ()
    no_charge: tuple[PreparedEntry, ...] = ()
    netted: tuple[NettedEntry, ...] = ()
    rounded: tuple[RoundedEntry, ...] = ()
    split: tuple[SplitEntry, ...] = ()
    rated: tuple[RatedEntry, ...] = ()
    contingent: ContingentResult | None = None
    extra_lines: tuple[Line, ...] = ()
    extra_ids: tuple[str, ...] = ()
    visits: tuple[str, ...] = ()
    priced: tuple[PricedEntry, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    fee_periods: tuple[Period, ...] = ()
    lines: tuple[Line, ...] = ()
    totals: Totals | None = None
    problems: tuple[Problem, ...] = ()
    excluded: tuple[Exclusion, ...] = ()

    def in_tickets(self, ticket: str | None) -> bool:
        tickets = self.request.tickets
        return tickets is None or ticket is None or ticket in tickets

    def in_period(self, period: Period) -> bool:
        return self.request.period is None or period <= self.request.period

    def settled(self) -> frozenset[tuple[str, str]]:
        """(entry, reason) exclusions already reported on a valid invoice: not repeated."""
        return frozenset((x.entry_id, x.reason) for d in self.request.state.valid_invoices() for x in d.excluded)

    def held_ids(self) -> frozenset[str]:
        return frozenset(i for p in self.problems if p.severity == "hold" for i in p.entry_ids)


def _exclude(run: Run, items: tuple[Exclusion, ...]) -> tuple[Exclusion, ...]:
    settled = run.settled()
    return run.excluded + tuple(x for x in items if (x.entry_id, x.reason) not in settled)


def step_classify(run: Run) -> Run:
    """1. Classify entries; hold invalid ones.

    Example: an entry flagged internal -> excluded "internal"; one ending before it starts ->
    held with flag `end before start`; the rest -> billable or no-charge.
    """
    request = run.request
    problems: list[Problem] = []
    if request.period is not None and not is_period(request.period):
        problems.append(Problem("bad period", f"period {request.period!r} is not YYYY-MM", entry_ids=()))
    problems += contract_problems(request.contract)
    classified = classify(request.entries, request.contract, request.agents)
    problems += [p for p in classified.problems if run.in_tickets(p.ticket)]
    entry_ticket = {e.id: e.ticket for e in request.entries}
    held = tuple(x for x in classified.held if run.in_tickets(entry_ticket.get(x.entry_id)))
    run = replace(run, classified=classified, problems=run.problems + tuple(problems))
    return replace(run, excluded=_exclude(run, held))


def step_period(run: Run) -> Run:
    """2. Keep entries whose local start falls in the invoiced period or earlier (late ones too).

    Example: invoicing "2026-05" takes an entry started 2026-04-30 23:30 local that was booked in
    May (a late booking) and leaves one started 2026-06-01 00:15 local for June.
    """
    assert run.classified is not None
    def scoped(items: tuple[PreparedEntry, ...]) -> tuple[PreparedEntry, ...]:
        return tuple(p for p in items if run.in_period(p.period) and run.in_tickets(p.ticket))
    billable, no_charge, internal = (scoped(run.classified.billable), scoped(run.classified.no_charge),
                                     scoped(run.classified.internal))
    overlaps = overlap_problems(billable + no_charge)
    run = replace(run, billable=billable, no_charge=no_charge, problems=run.problems + overlaps)
    return replace(run, excluded=_exclude(run, tuple(Exclusion(p.id, "internal") for p in internal)))


def step_net(run: Run) -> Run:
    """3. Net negative corrections against positive entries of their group, before rounding.

    Example: +50 and −20 on (5001, anna, remote, 2026-05) -> one entry of 30 min.
    """
    result = net_corrections(run.billable)
    settled = run.settled()
    fresh = tuple(p for p in result.problems
                  if not all((i, "negative net") in settled for i in p.entry_ids))
    run = replace(run, netted=result.entries, problems=run.problems + fresh)
    return replace(run, excluded=_exclude(run, result.excluded))


def step_round(run: Run) -> Run:
    """4. Round per the contract (entry or ticket scope, mode, increment, minimum).

    Example: up to 15 with minimum 15, entries 50 and 3 min -> 60 and 15 (scope entry).
    """
    result = round_entries(run.netted, run.request.contract.rounding)
    run = replace(run, rounded=result.entries)
    return replace(run, excluded=_exclude(run, result.excluded))


def step_split(run: Run) -> Run:
    """5. Split entries at surcharge windows (local time, DST-correct).

    Example: Tue 19:15-21:40 with night from 20:00 -> 45 min plain, 100 min night.
    """
    return replace(run, split=split_at_surcharges(run.rounded, run.request.contract))


def step_rate(run: Run) -> Run:
    """6. Find each entry's rate by precedence.

    Example: contract has "onsite 120" and "role senior 105": a senior on onsite gets 120.
    """
    return replace(run, rated=rate_entries(run.split, run.request.contract))


def step_contingents(run: Run) -> Run:
    """7. Consume retainer buckets; the rest is overage.

    Example: 600 included, 555 used, next entry 90 min -> 45 covered, 45 overage.
    """
    retainer = run.request.contract.retainer
    problems: tuple[Problem, ...] = ()
    if retainer is not None and run.request.period is None:
        problems = (Problem("period required", "a retainer is billed per period; no period was given",
                            severity="warning"),)
    result = allocate_contingents(run.rated, retainer, run.request.period)
    return replace(run, contingent=result, problems=run.problems + problems)


def step_extras(run: Run) -> Run:
    """8. Materials, travel by km, and flat travel fees per visit not yet billed.

    Example: two on-site entries on ticket 3101 on 9 June -> one visit, one flat fee line.
    """
    request, state = run.request, run.request.state
    billed_extras = {i for d in state.valid_invoices() for i in d.extra_ids}
    billed_visits = {v for d in state.valid_invoices() for v in d.visits}
    extras = tuple(x for x in request.extras
                   if x.id not in billed_extras and run.in_tickets(x.ticket)
                   and run.in_period(f"{x.date.year:04d}-{x.date.month:02d}"))
    lines = [extra_line(x, request.contract) for x in extras]
    billed = ((p.entry.id, p.entry.ticket, p.day, p.entry.activity) for p in (r.netted.prepared for r in run.rounded))
    visits = [(v.key, v) for v in find_visits(billed, request.contract)]
    visits = [(key, v) for key, v in visits if key not in billed_visits]
    lines += [visit_line(v, request.contract) for _key, v in visits]
    return replace(run, extra_lines=tuple(lines), extra_ids=tuple(x.id for x in extras),
                   visits=tuple(key for key, _v in visits))


def _fee_lines(run: Run) -> tuple[tuple[Line, ...], tuple[Period, ...]]:
    contract, request = run.request.contract, run.request
    retainer = contract.retainer
    if retainer is None or request.period is None or (request.tickets is not None):
        return (), ()
    billed = {p for d in request.state.valid_invoices() for p in d.fee_periods}
    snapshots = {s.period: s for s in (run.contingent.snapshots if run.contingent else ())}
    covered: dict[Period, list[str]] = {}
    for item in run.priced:
        for a in item.allocations:
            if a.coverage not in ("tm", "overage"):
                covered.setdefault(a.period, []).append(a.entry_id)
    lines: list[Line] = []
    periods: list[Period] = []
    for period in periods_between(retainer.start_period, request.period):
        if period in billed:
            continue
        snap = snapshots.get(period)
        lines.append(Line(
            kind="fee", ticket=None, activity=None, label=retainer.fee_label, quantity=round_quantity(Decimal(1)),
            unit="C62", unit_price=retainer.fee, net=retainer.fee, vat_rate=contract.vat_rate,
            service_period=period, service_start=first_day(period), service_end=last_day(period),
            explanation={"included_minutes": retainer.included_minutes,
                         "covered_entries": sorted(set(covered.get(period, []))),
                         "contingent": None if snap is None else {
                             "consumed": dict(snap.consumed), "remaining": dict(snap.remaining),
                             "overage": snap.overage, "rollover_out": snap.rollover_out}},
        ))
        periods.append(period)
    return tuple(lines), tuple(periods)


def step_lines(run: Run) -> Run:
    """9. Price pieces, bill the difference to earlier documents, group into lines; add fees.

    Example: e1 billed 30 min before, now 15 -> a correction line −0.2500 h at the old price.
    """
    contract = run.request.contract
    pieces = run.contingent.pieces if run.contingent else {}
    priced, problems = price_entries(run.rated, pieces, contract)
    priced += no_charge_entries(run.no_charge)
    run = replace(run, priced=priced, problems=run.problems + problems)
    held = run.held_ids()
    new = tuple(a for p in priced for a in p.allocations)
    old = tuple(a for d in run.request.state.valid_invoices() for a in d.allocations
                if run.in_period(a.period) and run.in_tickets(a.ticket) and a.entry_id not in held)
    billed_before = frozenset(a.entry_id for d in run.request.state.valid_invoices() for a in d.allocations)
    todo = diff_allocations(new, old)
    time_lines = build_time_lines(todo, {p.prepared.id: p for p in priced}, billed_before, contract)
    fee_lines, fee_periods = _fee_lines(run)
    excluded = [Exclusion(i, "no rate") for p in problems for i in p.entry_ids]
    run = replace(run, allocations=todo, fee_periods=fee_periods,
                  lines=fee_lines + time_lines + run.extra_lines)
    return replace(run, excluded=_exclude(run, tuple(excluded)))


def step_discounts(run: Run) -> Run:
    """10. The contract's discounts as negative lines over the lines they apply to.

    Example: 10 % "Stammkundenrabatt" on time lines of 500.00 -> a line −1 × 50.00 = −50.00.
    """
    return replace(run, lines=run.lines + discount_lines(run.lines, run.request.contract.discounts))


def step_money(run: Run) -> Run:
    """11. Totals per EN 16931: VAT per rate on the sum of line nets.

    Example: nets 950.00 + 86.25 + 86.25 at 19 % -> VAT 213.28 (not 3 × rounded line VATs).
    """
    return replace(run, totals=compute_totals(run.lines))


Step = Callable[[Run], Run]
PIPELINE: tuple[tuple[str, Step], ...] = (
    ("classify", step_classify),
    ("period", step_period),
    ("net corrections", step_net),
    ("round", step_round),
    ("split at surcharge windows", step_split),
    ("rate", step_rate),
    ("contingents", step_contingents),
    ("extras", step_extras),
    ("lines", step_lines),
    ("discounts", step_discounts),
    ("money", step_money),
)


def run_pipeline(request: BillingRequest) -> Run:
    """Run every declared step in order and return the full run record (for debugging/tests)."""
    run = Run(request)
    for _name, step in PIPELINE:
        run = step(run)
    return run


def _merge_snapshots(old: tuple[ContingentSnapshot, ...],
                     new: tuple[ContingentSnapshot, ...]) -> tuple[ContingentSnapshot, ...]:
    merged = {s.period: s for s in old}
    merged.update({s.period: s for s in new})
    return tuple(merged[p] for p in sorted(merged))


def bill(request: BillingRequest) -> BillingResult:
    """Rate and price everything due; return the draft and the state as it is once issued.

    Pure: same request, same result. Problems never raise; they come back in `problems`.
    """
    if not valid_timezone(request.contract.timezone):
        problem = Problem("bad contract", f"unknown time zone {request.contract.timezone!r}: nothing can be rated",
                          entry_ids=tuple(e.id for e in request.entries))
        return BillingResult(request.document_id, "invoice", (), compute_totals(()), (problem,),
                             tuple(Exclusion(e.id, "bad contract") for e in request.entries), (), request.state)
    run = run_pipeline(request)
    assert run.totals is not None
    snapshots = run.contingent.snapshots if run.contingent else ()
    document = Document(
        document_id=request.document_id, kind="invoice", period=request.period, lines=run.lines,
        totals=run.totals, allocations=run.allocations, fee_periods=run.fee_periods, extra_ids=run.extra_ids,
        visits=run.visits, excluded=run.excluded,
    )
    state = BillingState((*request.state.documents, document),
                         _merge_snapshots(request.state.contingents, snapshots))
    return BillingResult(request.document_id, "invoice", run.lines, run.totals, run.problems, run.excluded,
                         snapshots, state)


def cancel(state: BillingState, invoice_id: str, document_id: str) -> BillingResult:
    """A cancellation (Storno) of an issued invoice: every line negated (unit price unchanged),
    totals negated, and the invoice's entries, extras, visits and fees released.

    An unknown or already cancelled invoice yields no lines and a `cannot cancel` problem.
    """
    original = state.document(invoice_id)
    if original is None or not original.valid:
        why = "no such invoice" if original is None else "it is not a valid invoice (cancelled or a cancellation)"
        empty = compute_totals(())
        return BillingResult(document_id, "cancellation", (), empty,
                             (Problem("cannot cancel", f"invoice {invoice_id!r}: {why}", severity="warning"),),
                             (), state.contingents, state)
    lines = tuple(line.negated() for line in original.lines)
    storno = Document(document_id=document_id, kind="cancellation", period=original.period, lines=lines,
                      totals=original.totals.negated(), cancels=invoice_id)
    documents = tuple(replace(d, cancelled_by=document_id) if d.document_id == invoice_id else d
                      for d in state.documents)
    documents = (*documents, storno)
    new_state = BillingState(documents, state.contingents)
    return BillingResult(document_id, "cancellation", lines, storno.totals, (), (), state.contingents, new_state)
