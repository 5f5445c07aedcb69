"""The public API as the shell uses it: per-ticket T&M invoices, state round trips, review flags."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from addon.billing import (
    Agent,
    BillingRequest,
    BillingState,
    Contract,
    RateRule,
    Retainer,
    Rounding,
    TimeEntry,
    bill,
    bill_ticket,
    cancel,
    time_and_material,
)

BERLIN = ZoneInfo("Europe/Berlin")
D = Decimal
AGENTS = {"anna": Agent("anna"), "ben": Agent("ben", "senior")}


def local(day: int, hour: int, minute: int = 0, month: int = 5) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def te(id_: str, ticket: str, start: datetime, minutes: int, activity: str = "remote", agent: str = "anna",
       **kw) -> TimeEntry:  # type: ignore[no-untyped-def]
    return TimeEntry(id_, ticket, agent, activity, start=start, minutes=minutes, **kw)


SIMPLE = time_and_material(global_rate=D("90.00"), customer_rate=D("100.00"), internal_activities={"internal"})


def test_per_ticket_invoice_with_the_simple_contract() -> None:
    entries = [te("e1", "T1", local(4, 9), 20), te("e2", "T1", local(4, 10), 50, agent="ben"),
               te("e3", "T1", local(4, 11), 30, activity="internal"), te("e4", "T2", local(4, 12), 60)]
    first = bill_ticket(SIMPLE, AGENTS, "T1", entries, document_id="INV-1")
    assert [(ln.quantity, ln.unit_price, ln.net, ln.agents) for ln in first.lines] == [
        (D("1.5000"), D("100.00"), D("150.00"), ("anna", "ben"))]
    assert (first.totals.net, first.totals.vat, first.totals.gross) == (D("150.00"), D("28.50"), D("178.50"))
    assert [(x.entry_id, x.reason) for x in first.excluded] == [("e3", "internal")]
    line = first.lines[0]
    assert line.unit == "HUR" and line.kind == "time" and line.service_start.isoformat() == "2026-05-04"
    assert [(r.entry_id, r.raw_minutes, r.billed_minutes) for r in line.entries] == [("e1", 20, 30), ("e2", 50, 60)]
    assert line.explanation["rate_rule"] == ["customer: default"]
    assert line.explanation["raw_minutes"] == 70 and line.explanation["billed_minutes"] == 90
    # Closing the ticket again (or a re-run) bills nothing twice; the other ticket is untouched.
    again = bill_ticket(SIMPLE, AGENTS, "T1", entries, state=first.state, document_id="INV-2")
    assert again.lines == () and again.excluded == ()
    other = bill_ticket(SIMPLE, AGENTS, "T2", entries, state=first.state, document_id="INV-3")
    assert [ln.net for ln in other.lines] == [D("100.00")]


def test_state_is_plain_data() -> None:
    result = bill_ticket(SIMPLE, AGENTS, "T1", [te("e1", "T1", local(4, 9), 20)], document_id="INV-1")
    plain = dataclasses.asdict(result.state)
    assert plain["documents"][0]["allocations"][0]["minutes"] == 30
    assert result.state.documents[0].valid


def test_no_rate_is_held_not_billed_at_zero() -> None:
    contract = Contract(rates=(RateRule(D("120"), activity="onsite"),))
    entries = [te("e1", "T1", local(4, 9), 30, activity="remote"), te("e2", "T1", local(4, 10), 60, activity="onsite")]
    result = bill(BillingRequest(contract, AGENTS, tuple(entries), period="2026-05", document_id="A"))
    assert [ln.net for ln in result.lines] == [D("120.00")]
    assert [(p.code, p.severity, p.entry_ids) for p in result.problems] == [("no rate", "hold", ("e1",))]
    assert [(x.entry_id, x.reason) for x in result.excluded] == [("e1", "no rate")]
    # Once a rate exists, the held entry is billed on the next invoice, under its own period.
    fixed = dataclasses.replace(contract, rates=(*contract.rates, RateRule(D("80"), "global")))
    later = bill(BillingRequest(fixed, AGENTS, tuple(entries), period="2026-06", state=result.state, document_id="B"))
    assert [(ln.net, ln.service_period) for ln in later.lines] == [(D("40.00"), "2026-05")]


def test_bad_entries_become_flags_and_the_run_goes_on() -> None:
    entries = [te("ok", "T1", local(4, 9), 60),
               TimeEntry("back", "T1", "anna", "remote", start=local(4, 12), end=local(4, 11)),
               te("long", "T1", local(5, 9), 25 * 60), te("ghost", "T1", local(6, 9), 30, agent="nobody"),
               te("zero", "T1", local(7, 9), 0), te("dup", "T1", local(4, 9, 30), 30)]
    result = bill(BillingRequest(SIMPLE, AGENTS, tuple(entries), period="2026-05", document_id="A"))
    assert sorted(p.code for p in result.problems) == [
        "absurd duration", "end before start", "overlap", "unknown agent", "zero duration"]
    assert sorted(x.entry_id for x in result.excluded) == ["back", "ghost", "long", "zero"]
    assert result.totals.net == D("150.00")  # ok (60) + dup (30): an overlap is billed but flagged


def test_late_booking_goes_on_the_next_invoice_with_its_own_line() -> None:
    entries = [te("e1", "T1", local(4, 9), 60)]
    may = bill(BillingRequest(SIMPLE, AGENTS, tuple(entries), period="2026-05", document_id="A"))
    late = [*entries, te("e2", "T1", local(28, 9), 30), te("e3", "T1", local(2, 9, month=6), 30)]
    june = bill(BillingRequest(SIMPLE, AGENTS, tuple(late), period="2026-06", state=may.state, document_id="B"))
    assert sorted((ln.service_period, ln.net) for ln in june.lines) == [
        ("2026-05", D("50.00")), ("2026-06", D("50.00"))]


def test_cancel_releases_and_rebills_exactly_once() -> None:
    entries = (te("e1", "T1", local(4, 9), 60),)
    first = bill(BillingRequest(SIMPLE, AGENTS, entries, period="2026-05", document_id="A"))
    storno = cancel(first.state, "A", "S")
    assert [(ln.quantity, ln.unit_price, ln.net) for ln in storno.lines] == [(D("-1.0000"), D("100.00"), D("-100.00"))]
    assert (storno.totals.net, storno.totals.gross) == (D("-100.00"), D("-119.00"))
    again = cancel(storno.state, "A", "S2")
    assert again.lines == () and [p.code for p in again.problems] == ["cannot cancel"]
    rebilled = bill(BillingRequest(SIMPLE, AGENTS, entries, period="2026-05", state=storno.state, document_id="B"))
    assert rebilled.totals.net == D("100.00")
    nothing = bill(BillingRequest(SIMPLE, AGENTS, entries, period="2026-05", state=rebilled.state, document_id="C"))
    assert nothing.lines == ()


def test_retainer_fees_are_billed_once_per_period() -> None:
    contract = Contract(retainer=Retainer("2026-04", D("300.00"), "Flat", 60), rates=(RateRule(D("100")),),
                        rounding=Rounding(increment=15))
    entries = (te("e1", "T1", local(4, 9), 90),)
    may = bill(BillingRequest(contract, AGENTS, entries, period="2026-05", document_id="A"))
    assert sorted((ln.kind, ln.service_period, ln.net) for ln in may.lines) == [
        ("fee", "2026-04", D("300.00")), ("fee", "2026-05", D("300.00")), ("overage", "2026-05", D("50.00"))]
    fee = next(ln for ln in may.lines if ln.service_period == "2026-05" and ln.kind == "fee")
    assert fee.explanation["covered_entries"] == ["e1"]
    june = bill(BillingRequest(contract, AGENTS, entries, period="2026-06", state=may.state, document_id="B"))
    assert [(ln.kind, ln.service_period) for ln in june.lines] == [("fee", "2026-06")]
    assert [s.period for s in june.state.contingents] == ["2026-04", "2026-05", "2026-06"]


def test_change_of_invoiced_activity_without_storno_is_a_difference() -> None:
    contract = Contract(rates=(RateRule(D("100"), activity="remote"), RateRule(D("150"), activity="onsite")))
    entries = (te("e1", "T1", local(4, 9), 60),)
    may = bill(BillingRequest(contract, AGENTS, entries, period="2026-05", document_id="A"))
    changed = (dataclasses.replace(entries[0], activity="onsite"),)
    june = bill(BillingRequest(contract, AGENTS, changed, period="2026-06", state=may.state, document_id="B"))
    assert sorted((ln.net, ln.correction) for ln in june.lines) == [(D("-100.00"), True), (D("150.00"), True)]
    assert june.totals.net == D("50.00")


def test_empty_state_default() -> None:
    assert BillingState().valid_invoices() == ()


def test_unknown_time_zone_is_a_flag_not_a_crash() -> None:
    contract = dataclasses.replace(SIMPLE, timezone="Mars/Base")
    result = bill(BillingRequest(contract, AGENTS, (te("e1", "T1", local(4, 9), 20),), period="2026-05"))
    assert result.lines == () and [p.code for p in result.problems] == ["bad contract"]
    assert [x.entry_id for x in result.excluded] == ["e1"]
