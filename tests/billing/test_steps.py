"""Table tests per pipeline step, each row a small worked example."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from addon.billing import Agent, Contract, PrepaidBlock, RateRule, Retainer, Rollover, Rounding, Surcharge, TimeEntry
from addon.billing.classify import classify, overlap_problems, resolve_interval
from addon.billing.contingents import allocate_contingents
from addon.billing.extras import extra_line, find_visits
from addon.billing.model import Extra, TravelFlat
from addon.billing.money import (
    marked_up_price,
    minutes_to_hours,
    round_currency,
    round_minutes,
    surcharge_share,
    surcharged_rate,
    time_net,
    unit_price,
    vat_amount,
)
from addon.billing.netting import net_corrections
from addon.billing.periods import period_of_instant, periods_between, shift_period
from addon.billing.rates import find_rate, rate_entries
from addon.billing.results import Line
from addon.billing.rounding import round_entries
from addon.billing.surcharges import apply_delta, is_holiday, split_at_surcharges, split_interval
from addon.billing.totals import compute_totals

BERLIN = ZoneInfo("Europe/Berlin")
D = Decimal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)


# --- money -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "inc", "mode", "billed"), [
    (82, 15, "up", 90), (90, 15, "up", 90), (1, 15, "up", 15), (130, 15, "down", 120), (14, 15, "down", 0),
    (25, 10, "nearest", 30), (24, 10, "nearest", 20), (44, 10, "nearest", 40), (7, 1, "up", 7), (7, 0, "up", 7),
])
def test_round_minutes(raw: int, inc: int, mode: str, billed: int) -> None:
    assert round_minutes(raw, inc, mode) == billed


@pytest.mark.parametrize(("fn", "args", "result"), [
    (round_currency, (D("213.275"),), D("213.28")),
    (round_currency, (D("-107.345"),), D("-107.35")),
    (minutes_to_hours, (10,), D("0.1667")),
    (minutes_to_hours, (-15,), D("-0.2500")),
    (time_net, (50, D("125.00")), D("104.17")),
    (time_net, (20, D("110.00")), D("36.67")),
    (surcharged_rate, (D("120.00"), D("50")), D("180.00")),
    (surcharged_rate, (D("90.00"), D("25")), D("112.50")),
    (surcharged_rate, (D("99.99"), D("33")), D("132.9867")),
    (surcharge_share, (D("100.00"), D("25")), D("25.00")),
    (marked_up_price, (D("3.99"), D("0.35")), D("5.39")),
    (marked_up_price, (D("2.01"), D("0.50")), D("3.02")),
    (marked_up_price, (D("12.35"), D("0.10")), D("13.59")),
    (vat_amount, (D("1122.50"), D("19")), D("213.28")),
    (unit_price, (D("104.16666")), D("104.1667")),
])
def test_money(fn, args, result) -> None:  # type: ignore[no-untyped-def]
    if not isinstance(args, tuple):
        args = (args,)
    value = fn(*args)
    assert value == result and str(value) == str(result)


# --- classify ----------------------------------------------------------------------------------

AGENTS = {"anna": Agent("anna", "junior"), "ben": Agent("ben", "senior")}


def entry(id_: str = "e1", ticket: str = "t1", agent: str = "anna", activity: str = "remote", **kw) -> TimeEntry:  # type: ignore[no-untyped-def]
    return TimeEntry(id_, ticket, agent, activity, **kw)


def test_derived_start_is_computed_on_instants() -> None:
    e = entry(booked_at=at("2026-10-25T03:30:00+01:00"), minutes=540)
    start, end, minutes, derived = resolve_interval(e)  # type: ignore[misc]
    assert start.astimezone(BERLIN).isoformat() == "2026-10-24T19:30:00+02:00"
    assert (minutes, derived, end) == (540, True, at("2026-10-25T02:30:00+00:00"))


@pytest.mark.parametrize(("e", "code"), [
    (entry(start=local(2026, 5, 4, 10), end=local(2026, 5, 4, 9)), "end before start"),
    (entry(start=local(2026, 5, 4, 10), end=local(2026, 5, 4, 10)), "zero duration"),
    (entry(start=local(2026, 5, 4, 10), minutes=25 * 60), "absurd duration"),
    (entry(agent="nobody", start=local(2026, 5, 4, 10), minutes=30), "unknown agent"),
    (entry(activity="mystery", start=local(2026, 5, 4, 10), minutes=30), "unknown activity"),
    (entry(minutes=30), "no interval"),
    (entry(booked_at=local(2026, 5, 4, 10), minutes=-30), "correction without start"),
    (entry(start=datetime(2026, 5, 4, 10), minutes=30), "naive timestamp"),
    (entry(start=local(2026, 5, 4, 10), end=local(2026, 5, 4, 11), minutes=30), "inconsistent duration"),
])
def test_bad_input_is_held_with_a_reason(e: TimeEntry, code: str) -> None:
    contract = Contract(known_activities=frozenset({"remote"}))
    result = classify([e], contract, AGENTS)
    assert result.billable == () and [p.code for p in result.problems] == [code]
    assert [(x.entry_id, x.reason) for x in result.held] == [(e.id, code)]
    assert result.problems[0].reason


def test_duplicate_ids_are_held() -> None:
    twice = [entry("x", start=local(2026, 5, 4, 9), minutes=30), entry("x", start=local(2026, 5, 4, 10), minutes=30)]
    result = classify(twice, Contract(), AGENTS)
    assert result.billable == () and [p.code for p in result.problems] == ["duplicate entry id"] * 2


def test_classes_and_internal_activity_types() -> None:
    contract = Contract(internal_activities=frozenset({"meeting"}))
    entries = [entry("a", start=local(2026, 5, 4, 9), minutes=30),
               entry("b", start=local(2026, 5, 4, 10), minutes=30, internal=True),
               entry("c", start=local(2026, 5, 4, 11), minutes=30, no_charge=True),
               entry("d", activity="meeting", start=local(2026, 5, 4, 12), minutes=30)]
    result = classify(entries, contract, AGENTS)
    assert [p.id for p in result.billable] == ["a"]
    assert [p.id for p in result.internal] == ["b", "d"]
    assert [p.id for p in result.no_charge] == ["c"]


def test_overlap_of_one_agent_is_a_warning() -> None:
    entries = [entry("a", start=local(2026, 5, 4, 9), minutes=60),
               entry("b", start=local(2026, 5, 4, 9, 30), minutes=60),
               entry("c", agent="ben", start=local(2026, 5, 4, 9, 30), minutes=60)]
    prepared = classify(entries, Contract(), AGENTS).billable
    problems = overlap_problems(prepared)
    assert [(p.code, p.severity, p.entry_ids) for p in problems] == [("overlap", "warning", ("a", "b"))]


# --- period ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("instant", "period"), [
    ("2026-03-31T22:30:00+00:00", "2026-04"),  # 00:30 local on 1 April (CEST)
    ("2026-03-31T21:59:00+00:00", "2026-03"),
    ("2026-12-31T23:30:00+00:00", "2027-01"),
])
def test_period_by_local_start(instant: str, period: str) -> None:
    assert period_of_instant(at(instant), "Europe/Berlin") == period


def test_period_arithmetic() -> None:
    assert shift_period("2026-12", 1) == "2027-01" and shift_period("2026-01", -1) == "2025-12"
    assert periods_between("2026-11", "2027-02") == ("2026-11", "2026-12", "2027-01", "2027-02")


# --- net corrections ---------------------------------------------------------------------------

def _prepared(*entries: TimeEntry, contract: Contract | None = None):  # type: ignore[no-untyped-def]
    return classify(entries, contract or Contract(), AGENTS).billable


def test_netting_table() -> None:
    prepared = _prepared(
        entry("e1", "5001", start=local(2026, 5, 4, 10), minutes=50),
        entry("e2", "5001", start=local(2026, 5, 4, 10, 30), minutes=-20),
        entry("e3", "5002", start=local(2026, 5, 4, 11), minutes=10),
        entry("e4", "5002", start=local(2026, 5, 4, 11, 15), minutes=-10),
        entry("e5", "5003", agent="ben", start=local(2026, 5, 4, 13), minutes=30),
        entry("e6", "5003", agent="ben", start=local(2026, 5, 4, 14), minutes=-45),
        entry("e7", "5004", start=local(2026, 5, 4, 8), minutes=30),
        entry("e8", "5004", start=local(2026, 5, 4, 9), minutes=40),
        entry("e9", "5004", start=local(2026, 5, 4, 7), minutes=-50),  # before both; latest start first
    )
    result = net_corrections(prepared)
    assert {n.prepared.id: n.net_minutes for n in result.entries} == {"e1": 30, "e7": 20}
    assert sorted((x.entry_id, x.reason) for x in result.excluded) == [
        ("e3", "netted to zero"), ("e4", "netted to zero"), ("e5", "netted to zero"), ("e6", "negative net"),
        ("e8", "netted to zero")]
    assert [(p.code, p.ticket, p.minutes) for p in result.problems] == [("negative net", "5003", -15)]


# --- round -------------------------------------------------------------------------------------

def _four_sevens():  # type: ignore[no-untyped-def]
    return net_corrections(_prepared(*(entry(f"e{i}", start=local(2026, 5, 5, 9 + i), minutes=7) for i in range(4))))


@pytest.mark.parametrize(("rounding", "billed"), [
    (Rounding("entry", "up", 15, 15), [15, 15, 15, 15]),
    (Rounding("ticket", "up", 15, 15), [7, 7, 7, 9]),
    (Rounding("ticket", "down", 15, 0), [7, 7, 1]),  # 28 -> 15: 13 min come off the latest entries first
    (Rounding("entry", "down", 15, 0), []),  # every 7 rounds to 0 -> excluded, never a charge
    (Rounding("ticket", "nearest", 10, 0, {"remote": 60}), [7, 7, 7, 39]),
])
def test_rounding_table(rounding: Rounding, billed: list[int]) -> None:
    result = round_entries(_four_sevens().entries, rounding)
    assert [r.billed_minutes for r in result.entries] == billed


# --- surcharges --------------------------------------------------------------------------------

NIGHT = Surcharge("Nacht", "night", D("25"), time(20), time(6))
SAT = Surcharge("Samstag", "saturday", D("50"))
SUN = Surcharge("Sonntag", "sunday", D("100"))
HOL = Surcharge("Feiertag", "holiday", D("100"))


@pytest.mark.parametrize(("start", "end", "policy", "region", "expected"), [
    # DST fall back: the Sunday part has 270 real minutes
    (at("2026-10-24T19:30:00+02:00"), at("2026-10-25T03:30:00+01:00"), "highest", "DE-HE",
     [(270, D("50")), (270, D("100"))]),
    # DST spring forward (Sun 29 Mar 2026): 01:00-04:00 local is 2 real hours
    (local(2026, 3, 29, 1), local(2026, 3, 29, 4), "highest", "DE-HE", [(120, D("100"))]),
    # weekday evening: normal until 20:00, then night
    (local(2026, 5, 5, 19), local(2026, 5, 5, 21), "highest", "DE-HE", [(60, D(0)), (60, D("25"))]),
    # Epiphany is a holiday in Bavaria, not in Hesse; additive sums night + holiday
    (local(2026, 1, 6, 19), local(2026, 1, 6, 21), "additive", "DE-BY", [(60, D("100")), (60, D("125"))]),
    (local(2026, 1, 6, 19), local(2026, 1, 6, 21), "additive", "DE-HE", [(60, D(0)), (60, D("25"))]),
])
def test_split_interval(start, end, policy, region, expected) -> None:  # type: ignore[no-untyped-def]
    contract = Contract(holiday_region=region, surcharges=(NIGHT, SAT, SUN, HOL), surcharge_policy=policy)
    assert [(s.minutes, s.percent) for s in split_interval(start, end, contract)] == expected


def test_holiday_calendar() -> None:
    assert is_holiday(date(2026, 6, 4), "DE-HE") and not is_holiday(date(2026, 1, 6), "DE-HE")
    assert is_holiday(date(2026, 11, 1), "DE-BY") and not is_holiday(date(2026, 11, 1), None)
    assert not is_holiday(date(2026, 12, 25), "XX-YY")  # unknown region: flagged by contract_checks


def test_delta_goes_to_the_end_segment() -> None:
    contract = Contract(holiday_region="DE-BY", surcharges=(NIGHT, HOL), surcharge_policy="additive")
    segments = split_interval(local(2026, 1, 6, 19, 15), local(2026, 1, 6, 21, 40), contract)
    assert [s.minutes for s in apply_delta(segments, -10)] == [45, 90]
    assert [s.minutes for s in apply_delta(segments, 5)] == [45, 105]
    assert [s.minutes for s in apply_delta(segments, -110)] == [35]


# --- rate --------------------------------------------------------------------------------------

S14_RATES = (
    RateRule(D("125"), "contract", activity="onsite"), RateRule(D("100"), "contract", activity="onsite", role="junior"),
    RateRule(D("120"), "customer", activity="remote", role="senior"),
    RateRule(D("145"), "customer", activity="onsite", agent="ben"),
    RateRule(D("135"), "customer", activity="consulting"),
    RateRule(D("105"), "customer", agent="ben"), RateRule(D("110"), "customer", role="senior"),
    RateRule(D("90"), "global"), RateRule(D("75"), "global", role="junior"),
    RateRule(D("165"), "global", activity="consulting", role="senior"),
)


@pytest.mark.parametrize(("activity", "agent", "role", "override", "rate", "rule"), [
    ("remote", "anna", "junior", None, "75", "global: role"),
    ("remote", "ben", "senior", None, "120", "customer: activity+role"),
    ("phone", "ben", "senior", None, "105", "customer: agent"),
    ("consulting", "carl", "senior", None, "135", "customer: activity"),
    ("phone", "carl", "senior", None, "110", "customer: role"),
    ("onsite", "ben", "senior", None, "125", "contract: activity"),
    ("onsite", "anna", "junior", None, "100", "contract: activity+role"),
    ("remote", "ben", "senior", "60", "60", "entry override"),
    ("remote", "dora", None, None, "90", "global: default"),
])
def test_rate_precedence(activity, agent, role, override, rate, rule) -> None:  # type: ignore[no-untyped-def]
    choice = find_rate(S14_RATES, activity, agent, role, D(override) if override else None)
    assert choice is not None and (choice.rate, choice.rule) == (D(rate), rule)


def test_no_rate_and_invalid_rule() -> None:
    assert find_rate([RateRule(D("99"), "contract", activity="onsite")], "remote", "a", None) is None
    assert find_rate([RateRule(D("99"), "contract", agent="a", role="x")], "remote", "a", "x") is None


# --- contingents -------------------------------------------------------------------------------

def _rated(entries, contract):  # type: ignore[no-untyped-def]
    netted = net_corrections(classify(entries, contract, AGENTS).billable).entries
    return rate_entries(split_at_surcharges(round_entries(netted, contract.rounding).entries, contract), contract)


def test_rollover_and_blocks_drain_earliest_expiry_first() -> None:
    retainer = Retainer("2026-01", D("500"), "Flat", 120, overage_rate=D("100"), rollover=Rollover(60, 1),
                        prepaid_blocks=(PrepaidBlock("B1", 100, date(2026, 2, 15)),
                                        PrepaidBlock("B2", 600, date(2026, 12, 31))))
    contract = Contract(retainer=retainer, rates=(RateRule(D("90")),))
    entries = [
        entry("j1", start=local(2026, 1, 10, 9), minutes=30),   # January: 30 of 120 -> 90 unused, 60 roll over
        entry("f1", start=local(2026, 2, 2, 9), minutes=70),    # Feb: B1 expires first (15 Feb)
        entry("f2", start=local(2026, 2, 20, 9), minutes=200),  # B1 expired: rollover, allowance, then B2
    ]
    result = allocate_contingents(_rated(entries, contract), retainer, "2026-03")
    jan, feb, mar = result.snapshots
    assert (dict(jan.consumed), jan.rollover_out) == ({"block:B1": 0, "block:B2": 0, "allowance": 30}, 60)
    assert dict(feb.consumed) == {"block:B1": 70, "rollover:2026-01": 60, "allowance": 120, "block:B2": 20}
    assert dict(feb.remaining) == {"block:B1": 30, "rollover:2026-01": 0, "allowance": 0, "block:B2": 580}
    assert (feb.overage, feb.rollover_out) == (0, 0)
    assert dict(mar.remaining) == {"allowance": 120, "block:B2": 580}
    assert [(p.coverage, p.minutes) for p in result.pieces["f1"]] == [("block:B1", 70)]
    assert [(p.coverage, p.minutes) for p in result.pieces["f2"]] == [
        ("rollover:2026-01", 60), ("allowance", 120), ("block:B2", 20)]


def test_rollover_lapses_and_is_capped() -> None:
    retainer = Retainer("2026-01", D("500"), "Flat", 120, rollover=Rollover(100, 2))
    result = allocate_contingents((), retainer, "2026-04")
    assert [s.rollover_out for s in result.snapshots] == [100, 100, 100, 100]
    assert [sorted(s.remaining) for s in result.snapshots][3] == ["allowance", "rollover:2026-02", "rollover:2026-03"]


# --- extras and money --------------------------------------------------------------------------

def test_extras_table() -> None:
    contract = Contract(material_markup={"hardware": D("0.20")})
    ssd = Extra("x1", "material", "t", date(2026, 6, 9), "SSD", D("2"), D("87.40"), "hardware")
    km = Extra("x2", "travel", "t", date(2026, 6, 9), "trip", D("73.5"), D("0.65"))
    own = Extra("x3", "material", "t", date(2026, 6, 9), "ties", D("4"), D("2.01"), "hardware", D("0.50"))
    assert [(ln.unit, ln.unit_price, ln.net) for ln in map(lambda x: extra_line(x, contract), (ssd, km, own))] == [
        ("C62", D("104.88"), D("209.76")), ("KMT", D("0.65"), D("47.78")), ("C62", D("3.02"), D("12.08"))]


def test_visits_are_ticket_and_local_day() -> None:
    contract = Contract(travel=TravelFlat(D("49"), frozenset({"onsite"})))
    d1, d2 = date(2026, 6, 9), date(2026, 6, 10)
    visits = find_visits([("a", "t1", d1, "onsite"), ("b", "t1", d1, "onsite"), ("c", "t1", d2, "onsite"),
                          ("d", "t2", d1, "remote")], contract)
    assert [(v.key, v.entry_ids) for v in visits] == [("t1|2026-06-09", ("a", "b")), ("t1|2026-06-10", ("c",))]


def test_totals_vat_per_rate() -> None:
    def line(net: str, vat: str) -> Line:
        return Line("material", "t", None, "x", D(1), "C62", D(net), D(net), D(vat), "2026-01", date(2026, 1, 1),
                    date(2026, 1, 1))
    totals = compute_totals([line("950.00", "19"), line("86.25", "19"), line("86.25", "19"), line("10.05", "7")])
    assert [(b.rate, b.base, b.vat) for b in totals.by_rate] == [
        (D("7"), D("10.05"), D("0.70")), (D("19"), D("1122.50"), D("213.28"))]
    assert (totals.net, totals.vat, totals.gross) == (D("1132.55"), D("213.98"), D("1346.53"))


def test_timedelta_sanity() -> None:
    assert local(2026, 10, 25, 3, 30) - local(2026, 10, 25, 0) == timedelta(hours=3, minutes=30)  # wall clock!


# --- contract selection ------------------------------------------------------------------------

def test_contract_selection_table() -> None:
    from addon.billing import ContractClaim, TicketInfo, route_entries
    claims = [ContractClaim("flat", groups=frozenset({"Support"}), valid_until=date(2026, 6, 30)),
              ContractClaim("tm", groups=frozenset({"Support"}), valid_from=date(2026, 7, 1)),
              ContractClaim("vip", tags=frozenset({"vip"})),
              ContractClaim("project", tickets=frozenset({"P1"})),
              ContractClaim("other", tickets=frozenset({"P1"}))]
    tickets = {"S1": TicketInfo("S1", "Support", frozenset({"vip"})),
               "V1": TicketInfo("V1", "Sales", frozenset({"vip"})),
               "P1": TicketInfo("P1", "Support"), "X1": TicketInfo("X1", "Sales")}
    entries = [entry("june", "S1", start=local(2026, 6, 30, 23), minutes=30),  # local 30 June -> flat
               entry("july", "S1", start=local(2026, 7, 1, 0, 30), minutes=30),
               entry("vip", "V1", start=local(2026, 7, 1, 9), minutes=30),
               entry("both", "P1", start=local(2026, 7, 1, 9), minutes=30),
               entry("none", "X1", start=local(2026, 7, 1, 9), minutes=30)]
    routing = route_entries(entries, tickets, claims)
    assert {k: [e.id for e in v] for k, v in routing.by_contract.items()} == {
        "flat": ["june"], "tm": ["july"], "vip": ["vip"]}
    assert sorted((x.entry_id, x.reason) for x in routing.held) == [
        ("both", "two contracts claim one ticket"), ("none", "no contract")]
    assert all(p.reason for p in routing.problems)


def test_contract_checks() -> None:
    from addon.billing.contract_checks import contract_problems
    bad = Contract(timezone="Mars/Base", holiday_region="DE-ZZ", rates=(RateRule(D("90"), agent="a", role="b"),),
                   surcharges=(Surcharge("n", "night", D("25")), HOL), rounding=Rounding(increment=0))
    texts = [p.reason for p in contract_problems(bad)]
    assert len(texts) == 5 and all(p.code == "bad contract" for p in contract_problems(bad))
    assert contract_problems(Contract(holiday_region="DE-HE", surcharges=(NIGHT, HOL))) == ()
