"""Property tests: invariants that must hold for any input, not only the worked cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from addon.billing import (
    Agent,
    BillingRequest,
    BillingResult,
    Contract,
    RateRule,
    Rounding,
    Surcharge,
    TimeEntry,
    bill,
)

BERLIN = ZoneInfo("Europe/Berlin")
AGENTS = {"anna": Agent("anna", "junior"), "ben": Agent("ben", "senior"), "carl": Agent("carl")}
BASE = datetime(2026, 10, 1, tzinfo=BERLIN)


@st.composite
def entries(draw: st.DrawFn, corrections: bool = True) -> list[TimeEntry]:
    count = draw(st.integers(min_value=0, max_value=12))
    out: list[TimeEntry] = []
    for index in range(count):
        start = BASE + timedelta(minutes=draw(st.integers(min_value=0, max_value=30 * 24 * 60)))
        negative = corrections and draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
        minutes = -draw(st.integers(1, 90)) if negative else draw(st.integers(1, 600))
        out.append(TimeEntry(
            id=f"e{index:02d}", ticket=draw(st.sampled_from(["T1", "T2", "T3"])),
            agent=draw(st.sampled_from(sorted(AGENTS))), activity=draw(st.sampled_from(["remote", "onsite"])),
            start=start, minutes=minutes,
            internal=not negative and draw(st.integers(0, 5)) == 0,
            no_charge=not negative and draw(st.integers(0, 5)) == 0,
            rate_override=Decimal("77.70") if draw(st.integers(0, 7)) == 0 else None,
        ))
    return out


@st.composite
def contracts(draw: st.DrawFn, mode: str | None = None) -> Contract:
    rounding = Rounding(draw(st.sampled_from(["entry", "ticket"])), mode or draw(st.sampled_from(["up", "down",
                                                                                                  "nearest"])),
                        draw(st.sampled_from([1, 6, 10, 15])), draw(st.sampled_from([0, 15, 30])))
    surcharges = (Surcharge("night", "night", Decimal("25"), *_night()), Surcharge("sat", "saturday", Decimal("50")),
                  Surcharge("hol", "holiday", Decimal("100"))) if draw(st.booleans()) else ()
    return Contract(
        holiday_region="DE-HE", rounding=rounding, surcharges=surcharges,
        surcharge_policy=draw(st.sampled_from(["highest", "additive"])),
        vat_rate=draw(st.sampled_from([Decimal("19"), Decimal("7")])),
        rates=(RateRule(Decimal("95.00")), RateRule(Decimal("112.50"), activity="onsite"),
               RateRule(Decimal("80.00"), "global", role="junior")),
    )


def _night():  # type: ignore[no-untyped-def]
    from datetime import time
    return time(20), time(6)


def run(contract: Contract, items: list[TimeEntry]) -> BillingResult:
    return bill(BillingRequest(contract, AGENTS, tuple(items), period="2026-10", document_id="P"))


@settings(max_examples=60, deadline=None)
@given(contracts(), entries())
def test_line_nets_sum_to_net_and_vat_per_rate(contract: Contract, items: list[TimeEntry]) -> None:
    result = run(contract, items)
    assert sum((ln.net for ln in result.lines), Decimal("0.00")) == result.totals.net
    for part in result.totals.by_rate:
        base = sum((ln.net for ln in result.lines if ln.vat_rate == part.rate), Decimal("0.00"))
        assert part.base == base
        assert part.vat == (base * part.rate / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert result.totals.gross == result.totals.net + result.totals.vat


@settings(max_examples=60, deadline=None)
@given(contracts(), entries())
def test_every_entry_is_on_a_line_or_excluded(contract: Contract, items: list[TimeEntry]) -> None:
    result = run(contract, items)
    on_lines = {r.entry_id for ln in result.lines for r in ln.entries}
    netted_in = {c for ln in result.lines for c in ln.explanation.get("corrections_netted", [])}
    excluded = {x.entry_id for x in result.excluded}
    assert {e.id for e in items} == on_lines | netted_in | excluded
    assert not on_lines & excluded


@settings(max_examples=60, deadline=None)
@given(contracts(), entries(corrections=False))
def test_every_billed_minute_is_on_exactly_one_line(contract: Contract, items: list[TimeEntry]) -> None:
    result = run(contract, items)
    per_entry: dict[str, int] = {}
    for ln in result.lines:
        if ln.kind in ("time", "overage"):
            for ref in ln.entries:
                per_entry[ref.entry_id] = per_entry.get(ref.entry_id, 0) + ref.billed_minutes
    total_line_minutes = sum(int(ln.explanation["billed_minutes"]) for ln in result.lines if ln.kind == "time")
    assert total_line_minutes == sum(per_entry.values())
    if contract.rounding.scope == "entry":
        from addon.billing.rounding import billed_minutes
        for e in items:
            if not (e.internal or e.no_charge):
                assert per_entry.get(e.id, 0) == billed_minutes(e.minutes or 0, contract.rounding, e.activity)


@settings(max_examples=60, deadline=None)
@given(contracts(), entries(), st.data())
def test_internal_and_no_charge_never_change_the_total(contract: Contract, items: list[TimeEntry],
                                                       data: st.DataObject) -> None:
    base = run(contract, [e for e in items if not (e.internal or e.no_charge)])
    full = run(contract, items)
    assert (full.totals.net, full.totals.vat, full.totals.gross) == (base.totals.net, base.totals.vat,
                                                                      base.totals.gross)
    assert all(ln.net == 0 for ln in full.lines if ln.kind == "no_charge")


@settings(max_examples=60, deadline=None)
@given(contracts(), entries(), st.randoms(use_true_random=False))
def test_input_order_changes_nothing(contract: Contract, items: list[TimeEntry], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    a, b = run(contract, items), run(contract, shuffled)
    assert a.totals == b.totals and a.lines == b.lines
    assert sorted(a.excluded, key=repr) == sorted(b.excluded, key=repr)
    assert sorted(a.problems, key=repr) == sorted(b.problems, key=repr)


@settings(max_examples=60, deadline=None)
@given(contracts(mode="up"), entries(corrections=False))
def test_billed_is_at_least_raw_when_rounding_up(contract: Contract, items: list[TimeEntry]) -> None:
    result = run(contract, items)
    billed: dict[str, int] = {}
    for ln in result.lines:
        if ln.kind == "time":
            for ref in ln.entries:
                billed[ref.entry_id] = billed.get(ref.entry_id, 0) + ref.billed_minutes
    for ln in result.lines:
        if ln.kind == "time":
            assert ln.explanation["billed_minutes"] >= 0
    for e in items:
        if not (e.internal or e.no_charge) and e.id in billed and contract.rounding.scope == "entry":
            assert billed[e.id] >= (e.minutes or 0)
    raw_total = sum(e.minutes or 0 for e in items if not (e.internal or e.no_charge))
    assert sum(billed.values()) >= raw_total


@settings(max_examples=40, deadline=None)
@given(contracts(), entries())
def test_a_second_run_bills_nothing_new(contract: Contract, items: list[TimeEntry]) -> None:
    first = run(contract, items)
    second = bill(BillingRequest(contract, AGENTS, tuple(items), period="2026-10", state=first.state,
                                 document_id="Q"))
    assert second.lines == ()
