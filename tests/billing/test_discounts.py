"""The discounts step: percentage or amount off the lines of some kinds, per VAT rate, with its
own explanation; through the whole pipeline, a cancellation negates it like any line."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from addon.billing import PIPELINE, Agent, Discount, RateRule, Rounding, TimeEntry, bill_ticket, cancel
from addon.billing.discounts import discount_lines
from addon.billing.model import Contract, Extra
from addon.billing.results import Line

BERLIN = ZoneInfo("Europe/Berlin")


def line(kind: str, net: str, rate: str = "19", day: int = 3) -> Line:
    return Line(kind, "T1", "Remote", kind, D("1"), "HUR", D(net), D(net), D(rate), "2026-11",  # type: ignore[arg-type]
                date(2026, 11, day), date(2026, 11, day))


def test_discounts_is_a_declared_step_between_lines_and_money() -> None:
    names = [name for name, _step in PIPELINE]
    assert names[names.index("lines") + 1:] == ["discounts", "money"]


def test_percentage_on_time_only_keeps_the_material_whole() -> None:
    lines = [line("time", "500.00", day=3), line("overage", "100.00", day=9), line("material", "104.88")]
    [discount] = discount_lines(lines, [Discount("Stammkundenrabatt", percent=D("10"), applies_to=frozenset({"time"}))])
    assert (discount.kind, discount.quantity, discount.unit_price, discount.net) == (
        "discount", D("-1"), D("60.00"), D("-60.00"))
    assert (discount.service_start, discount.service_end) == (date(2026, 11, 3), date(2026, 11, 9))
    assert discount.explanation == {
        "discount": "Stammkundenrabatt", "percent": "10", "amount": None, "base": "600.00", "applies_to": ["time"],
        "lines_discounted": 2, "presentation": "line"}


def test_an_amount_is_capped_at_its_base_and_split_over_vat_rates() -> None:
    lines = [line("time", "60.00", "19"), line("material", "30.00", "7")]
    split = discount_lines(lines, [Discount("Nachlass", amount=D("10.00"))])
    assert [(d.vat_rate, d.net) for d in split] == [(D("7"), D("-3.33")), (D("19"), D("-6.67"))]
    capped = discount_lines(lines, [Discount("Nachlass", amount=D("500.00"))])
    assert sum(d.net for d in capped) == D("-90.00")  # never more than what it discounts


@pytest.mark.parametrize("lines", [[], [line("material", "20.00")], [line("time", "-40.00")]],
                         ids=["no-lines", "other-kind", "credit-only"])
def test_nothing_to_discount_makes_no_line(lines: list[Line]) -> None:
    assert discount_lines(lines, [Discount("Rabatt", percent=D("10"), applies_to=frozenset({"time"}))]) == ()


def test_through_the_pipeline_and_back_by_cancellation() -> None:
    contract = Contract(rates=(RateRule(D("100.00")),), rounding=Rounding(increment=15),
                        discounts=(Discount("Stammkundenrabatt", percent=D("10"), applies_to=frozenset({"time"})),))
    entry = TimeEntry("e1", "T1", "anna", "Remote", start=datetime(2026, 11, 3, 9, tzinfo=BERLIN), minutes=120)
    extra = Extra("x1", "material", "T1", date(2026, 11, 3), "SSD", D("1"), D("50.00"))
    result = bill_ticket(contract, {"anna": Agent("anna")}, "T1", [entry], extras=[extra], document_id="INV-1")
    assert [(ln.kind, ln.net) for ln in result.lines] == [
        ("time", D("200.00")), ("material", D("50.00")), ("discount", D("-20.00"))]
    assert (result.totals.net, result.totals.vat, result.totals.gross) == (D("230.00"), D("43.70"), D("273.70"))
    time_line = result.lines[0]
    assert "discount" not in time_line.explanation  # the discounted line keeps its own explanation
    storno = cancel(result.state, "INV-1", "ST-1")
    assert [ln.net for ln in storno.lines] == [D("-200.00"), D("-50.00"), D("20.00")]
    assert storno.totals.gross == D("-273.70")
