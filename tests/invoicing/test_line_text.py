"""Line wording: each line says what it is once — no ticket (it is the heading above), no
dates (printed below), surcharges named with their percentage, the fee's month in words."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from addon import billing
from addon.invoicing.rating import ExtraInfo, line_order, line_text
from addon.models import Ticket


def line(kind: str, **overrides: object) -> billing.Line:
    values: dict[str, object] = dict(
        kind=kind, ticket="31020", activity="Notfall", label="Notfall", quantity=D("1.5000"), unit="HUR",
        unit_price=D("118.75"), net=D("178.13"), vat_rate=D("19"), service_period="2026-11",
        service_start=date(2026, 11, 24), service_end=date(2026, 11, 24), agents=("jonas",),
        explanation={"surcharge": ["Nachtzuschlag"], "surcharge_percent": {"Nachtzuschlag": "25"}},
    )
    values.update(overrides)
    return billing.Line(**values)  # type: ignore[arg-type]


NAMES = {"jonas": "Jonas Schulz"}
TICKET = Ticket(number="31020", title="Monitor flackert", category="goodwill")


@pytest.mark.parametrize(
    "language, built, expected",
    [
        ("de", line("time"), "Notfall (Jonas Schulz), Nachtzuschlag 25\xa0%"),
        ("en", line("time"), "Notfall (Jonas Schulz), Nachtzuschlag 25%"),
        ("de", line("overage"), "Notfall (Jonas Schulz), über Kontingent, Nachtzuschlag 25\xa0%"),
        ("de", line("surcharge_share"),
         "Notfall (Jonas Schulz): Nachtzuschlag 25\xa0% (nur Zuschlag, Zeit im Kontingent)"),
        ("de", line("time", explanation={}), "Notfall (Jonas Schulz)"),
        ("de", line("no_charge", explanation={}), "Notfall (Jonas Schulz) – ohne Berechnung: Kulanz"),
        ("de", line("fee", ticket=None, label="IT-Service-Flat (5 h inklusive)"),
         "IT-Service-Flat (5 h inklusive) November 2026"),
        ("en", line("fee", ticket=None, label="Service flat"), "Service flat November 2026"),
        ("de", line("travel_visit", explanation={}), "Anfahrtspauschale Vor-Ort-Einsatz"),
        ("de", line("time", correction=True, explanation={}), "Korrektur: Notfall (Jonas Schulz)"),
        ("de", line("discount", ticket=None, label="Stammkundenrabatt",
                    explanation={"percent": "5", "base": "115.00"}), "Stammkundenrabatt 5\xa0% auf 115,00\xa0€"),
    ],
)
def test_line_says_what_it_is_once(language: str, built: billing.Line, expected: str) -> None:
    text = line_text(built, TICKET, language, names=NAMES)
    assert text == expected
    assert "31020" not in text and "24.11.2026" not in text and "Monitor" not in text


def test_material_line_names_quantity_and_price_but_no_date() -> None:
    material = line("material", label="SSD", quantity=D("2"), unit="C62", unit_price=D("104.88"),
                    explanation={"extra": "extra:7"})
    extras = {"extra:7": ExtraInfo("material", "SSD 1 TB")}
    assert line_text(material, TICKET, "de", extras) == "Material: SSD 1 TB (2 × 104,88\xa0€)"


def test_lines_are_ordered_fee_then_each_ticket_then_discounts() -> None:
    fee = line("fee", ticket=None, label="Flat")
    a_time, b_time = line("time", ticket="A"), line("time", ticket="B")
    a_visit = line("travel_visit", ticket="A")
    discount = line("discount", ticket=None, label="Rabatt")
    ordered = line_order([discount, b_time, a_visit, fee, a_time])
    assert [(x.kind, x.ticket) for x in ordered] == [
        ("fee", None), ("time", "B"), ("time", "A"), ("travel_visit", "A"), ("discount", None)]
