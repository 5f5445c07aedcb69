"""The booking note syntax: real-world spellings are read exactly, doubtful lines are refused.

Each refused line must say why (the text reaches the agent as "needs attention") and must
never produce a record: a guessed amount on an invoice is worse than a question.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.base import BookingProblem, RemoteExtra
from connectors.bookings import (
    VISIT_DESCRIPTION,
    BookingSyntaxError,
    ParsedLine,
    note_text,
    parse_amount,
    parse_line,
    parse_note,
)

AT = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
D = Decimal

MATERIAL_LINES = [
    ("Material: 2 × SSD 1 TB à 87,40", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 2x SSD 1 TB à 87,40", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 2 x SSD 1 TB a 87.40", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 2 X SSD 1 TB @ 87,40 €", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 2×SSD 1 TB @87,40€", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 2 * SSD 1 TB à EUR 87,40", "SSD 1 TB", D(2), D("87.40"), None),
    ("material: 2 Stk. SSD 1 TB je 87,40 EUR", "SSD 1 TB", D(2), D("87.40"), None),
    ("MATERIAL: 2 pcs SSD 1 TB each 87.40 eur", "SSD 1 TB", D(2), D("87.40"), None),
    ("Material: 3 × Patchkabel Cat6 2 m à 3,99 € [Hardware]", "Patchkabel Cat6 2 m", D(3),
     D("3.99"), "Hardware"),
    ("Material: 1 × Switch 24 Port à 1.234,56 € [Netzwerk]", "Switch 24 Port", D(1),
     D("1234.56"), "Netzwerk"),
    ("Material: 1 × Server à 12.345,00", "Server", D(1), D("12345.00"), None),
    ("Material: 1 × Server à 1,234.50 EUR", "Server", D(1), D("1234.50"), None),
    ("Material: Netzteil 650 W à 79,90 netto", "Netzteil 650 W", D(1), D("79.90"), None),
    ("Material: 1 × Maus à 19,-", "Maus", D(1), D(19), None),
    ("Material: 1,5 × Kabelkanal (m) à 4,20", "Kabelkanal (m)", D("1.5"), D("4.20"), None),
    ("Material: 2 × Kabel à 2 m à 4,90", "Kabel à 2 m", D(2), D("4.90"), None),
    ("Material: 1 × Lizenz à 0", "Lizenz", D(1), D(0), None),
    ("Material: 100 × Schrauben à 0,125 €/Stk", "Schrauben", D(100), D("0.125"), None),
    ("  - Material: 1 × Toner à 59,00", "Toner", D(1), D("59.00"), None),
    ("• Materialien: 4 × RAM 16 GB à 45", "RAM 16 GB", D(4), D(45), None),
    ("Material : 1 × Akku à 30", "Akku", D(1), D(30), None),
]


@pytest.mark.parametrize(("line", "description", "quantity", "cost", "category"), MATERIAL_LINES)
def test_material_spellings(line: str, description: str, quantity: Decimal, cost: Decimal,
                            category: str | None) -> None:
    assert parse_line(line) == ParsedLine("material", description, quantity, cost, category)


TRAVEL_LINES = [
    ("Fahrt: 38 km", "Fahrt 38 km", D(38), None),
    ("Travel: 38 km", "Travel 38 km", D(38), None),
    ("Anfahrt: 38km", "Anfahrt 38 km", D(38), None),
    ("Fahrt: 12,5 km", "Fahrt 12,5 km", D("12.5"), None),
    ("Fahrt: 2 × 38 km", "Fahrt 2 × 38 km", D(76), None),
    ("Fahrt: 2x 38 km (hin und zurück)", "Fahrt 2 × 38 km (hin und zurück)", D(76), None),
    ("Fahrt: 38 km – Kunde Hamburg", "Fahrt 38 km (Kunde Hamburg)", D(38), None),
    ("Fahrt: 38 Kilometer", "Fahrt 38 km", D(38), None),
    ("Fahrt: 38 km à 0,30 €/km", "Fahrt 38 km", D(38), D("0.30")),
]


@pytest.mark.parametrize(("line", "description", "km", "cost"), TRAVEL_LINES)
def test_travel_spellings(line: str, description: str, km: Decimal, cost: Decimal | None) -> None:
    assert parse_line(line) == ParsedLine("travel", description, km, cost)


@pytest.mark.parametrize("line", ["Vor-Ort: ja", "Vor Ort: Ja", "vor-ort: x", "On-site: yes",
                                  "Onsite: true", "Vor-Ort: ja."])
def test_onsite_yes_is_a_visit(line: str) -> None:
    assert parse_line(line) == ParsedLine("visit", VISIT_DESCRIPTION, D(1))


@pytest.mark.parametrize("line", ["Vor-Ort: nein", "On-site: no", "Vor Ort: 0"])
def test_onsite_no_books_nothing(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize("line", [
    "Material wurde bestellt, kommt morgen.",
    "Materialbestellung: läuft",
    "Notiz: Fahrt morgen um 9",
    "Die Fahrt: 38 km hin",
    "Kunde sagt: Material: 2 × SSD à 87,40",
    "https://example.com/material: foo",
    "",
    "Vor-Ort-Termin vereinbart",
])
def test_ordinary_note_text_is_ignored(line: str) -> None:
    assert parse_line(line) is None


BAD_LINES = [
    ("Material:", "material line is empty"),
    ("Material: 2 × SSD 1 TB", "no unit price"),
    ("Material: 3 Patchkabel à 4,90", "quantity unclear in '3 Patchkabel'"),
    ("Material: 1 TB SSD à 87,40", "quantity unclear in '1 TB SSD'"),
    ("Material: 2 × SSD à 1.234", "price '1.234' is ambiguous"),
    ("Material: 2 × SSD à 87,400", "price '87,400' is ambiguous"),
    ("Material: 1.000 × Schrauben à 0,05", "quantity '1.000' is ambiguous"),
    ("Material: 2 × Lizenz à 49 $", "not in EUR"),
    ("Material: 2 × Lizenz à USD 49", "not in EUR"),
    ("Material: 2 × SSD à 87,40 € brutto", "is gross"),
    ("Material: 2 × SSD à -87,40", "negative"),
    ("Material: 0 × SSD à 87,40", "quantity 0 must be positive"),
    ("Material: 2 × à 87,40", "without a description"),
    ("Material: 2 × 1 à 87,40", "without a description"),
    ("Material: 2 × SSD à 87,40 (Angebot 4711)", "price '87,40 (Angebot 4711)' is not a number"),
    ("Material: 2 × SSD à 87,40 []", "empty category"),
    ("Material: 2 × SSD à zwölf", "no unit price"),
    ("Fahrt: 38", "has no unit"),
    ("Fahrt: ja", "travel needs a distance in km"),
    ("Fahrt: 20 miles", "book travel in km"),
    ("Travel: 38 km + 12 km", "holds more numbers"),
    ("Fahrt: 0 km", "distance must be positive"),
    ("Fahrt: 1.500 km", "distance '1.500' is ambiguous"),
    ("Vor-Ort: vielleicht", "not 'ja' or 'nein'"),
    ("Vor-Ort:", "not 'ja' or 'nein'"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(BookingSyntaxError) as caught:
        parse_line(line)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("text", "value"), [
    ("87", D(87)), ("87,4", D("87.4")), ("87.40", D("87.40")), ("0,125", D("0.125")),
    ("1.234,56", D("1234.56")), ("1,234.56", D("1234.56")), ("1.234.567", D(1234567)),
    ("1,234,567", D(1234567)), ("19,-", D(19)), ("19.--", D(19)),
])
def test_amounts(text: str, value: Decimal) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize("text", ["1.234", "999,000", "1,2,3", "12a", "", "1.23.4"])
def test_doubtful_amounts_are_refused(text: str) -> None:
    with pytest.raises(BookingSyntaxError):
        parse_amount(text)


def test_parse_note_ties_lines_to_ticket_note_and_line_number() -> None:
    text = (
        "Festplatte getauscht, Daten migriert.\n"
        "Material: 2 × SSD 1 TB à 87,40 [Hardware]\n"
        "\n"
        "Material: 3 Patchkabel à 4,90\n"
        "Fahrt: 38 km\n"
        "Vor-Ort: ja\n"
    )
    extras, problems = parse_note(text, ticket_remote_id="42", source_id="article:311",
                                  booked_at=AT, agent="anna")
    assert extras == [
        RemoteExtra("article:311:2", "42", "material", "SSD 1 TB", D(2), D("87.40"), "Hardware",
                    AT, "anna"),
        RemoteExtra("article:311:5", "42", "travel", "Fahrt 38 km", D(38), None, None, AT,
                    "anna"),
        RemoteExtra("article:311:6", "42", "visit", VISIT_DESCRIPTION, D(1), None, None, AT,
                    "anna"),
    ]
    assert problems == [BookingProblem(
        "42", "article:311", "Material: 3 Patchkabel à 4,90",
        "quantity unclear in '3 Patchkabel': write the count with '×' or 'x', e.g. "
        "'3 × Patchkabel'",
    )]
    again = parse_note(text, ticket_remote_id="42", source_id="article:311", booked_at=AT,
                       agent="anna")
    assert again == (extras, problems), "a re-read gives the same ids"


def test_html_notes_become_lines() -> None:
    body = ("<div>Einsatz beim Kunden.</div><div><b>Material:</b> 2 × SSD 1 TB à 87,40&nbsp;€"
            "</div><p>Fahrt: 38&nbsp;km<br>Vor-Ort: ja</p><ul><li>Material: 1 × Maus à 19</li>"
            "</ul>")
    lines = [line for line in note_text(body, "text/html").splitlines() if line.strip()]
    assert lines == ["Einsatz beim Kunden.", "Material: 2 × SSD 1 TB à 87,40 €", "Fahrt: 38 km",
                     "Vor-Ort: ja", "Material: 1 × Maus à 19"]
    extras, problems = parse_note(note_text(body, "text/html"), ticket_remote_id="1",
                                  source_id="article:9", booked_at=AT, agent="a")
    assert [(e.kind, e.quantity) for e in extras] == [
        ("material", D(2)), ("travel", D(38)), ("visit", D(1)), ("material", D(1))]
    assert problems == []


def test_plain_text_keeps_its_lines() -> None:
    assert note_text("a\r\nMaterial: 1 × X à 1\r\n", "text/plain") == "a\nMaterial: 1 × X à 1"
