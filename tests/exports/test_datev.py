"""DATEV EXTF Buchungsstapel: header, 125 columns, cp1252/CRLF, amounts, dates, Storno."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal as D

import pytest
import snapshot_samples as samples

from addon.exports.datev import (
    COLUMNS,
    SKR03_REVENUE_ACCOUNTS,
    datev_buchungsstapel,
    datev_filename,
    tax_case,
)
from addon.invoicing.snapshot import VatGroup

DEBTORS = {"K-10042": 10042, "K-20007": 20007}
OPTIONS = {
    "consultant_number": 29098,
    "client_number": 55003,
    "fiscal_year_start": date(2026, 1, 1),
    "account_length": 4,
    "revenue_accounts": SKR03_REVENUE_ACCOUNTS,
    "debtor_account": DEBTORS,
    "created_at": datetime(2026, 12, 4, 9, 30, 0, 123000),
}


def export(invoices, **overrides) -> bytes:  # type: ignore[no-untyped-def]
    return datev_buchungsstapel(invoices, **{**OPTIONS, **overrides})


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("cp1252"), newline=""), delimiter=";"))


def col(name: str) -> int:
    return COLUMNS.index(name)


@pytest.fixture
def data() -> bytes:
    return export([samples.invoice(), samples.reverse_charge(), samples.cancellation()])


def test_file_is_cp1252_with_crlf_line_ends(data: bytes) -> None:
    text = data.decode("cp1252")
    assert data.endswith(b"\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert "Müller & Söhne" in text
    assert "Müller".encode("cp1252") in data and "Müller".encode() not in data
    assert len(text.split("\r\n")) == 2 + 3 + 1  # header, headings, 3 bookings, final CRLF


def test_header_line_follows_extf_700_category_21_version_13(data: bytes) -> None:
    header = data.decode("cp1252").split("\r\n")[0].split(";")
    assert len(header) == 31
    assert header[:6] == ['"EXTF"', "700", "21", '"Buchungsstapel"', "13", "20261204093000123"]
    assert header[7] == '"RE"'
    assert header[10:16] == ["29098", "55003", "20260101", "4", "20261130", "20261203"]
    assert header[16] == '"Rechnungen 11/2026"'
    assert header[18:22] == ["1", "0", "0", '"EUR"']
    assert header[26] == '"03"'


def test_column_headings_are_the_125_of_format_version_13(data: bytes) -> None:
    line = data.decode("cp1252").split("\r\n")[1]
    assert line.startswith("Umsatz (ohne Soll/Haben-Kz);Soll/Haben-Kennzeichen;WKZ Umsatz;")
    headings = line.split(";")
    assert len(headings) == 125 == len(COLUMNS)
    expected = {
        1: "Umsatz (ohne Soll/Haben-Kz)", 2: "Soll/Haben-Kennzeichen", 7: "Konto",
        8: "Gegenkonto (ohne BU-Schlüssel)", 9: "BU-Schlüssel", 10: "Belegdatum",
        11: "Belegfeld 1", 14: "Buchungstext", 21: "Beleginfo - Art 1",
        36: "Beleginfo - Inhalt 8", 40: "EU-Land u. UStID (Bestimmung)",
        48: "Zusatzinformation - Art 1", 49: "Zusatzinformation- Inhalt 1",
        87: "Zusatzinformation- Inhalt 20", 88: "Stück", 114: "Festschreibung",
        115: "Leistungsdatum", 117: "Fälligkeit", 118: "Generalumkehr (GU)", 119: "Steuersatz",
        120: "Land", 125: "Abw. Skontokonto",
    }
    for position, name in expected.items():
        assert headings[position - 1] == name


def test_bookings_have_positive_decimal_comma_amounts_and_ttmm_dates(data: bytes) -> None:
    rows = parse(data)[2:]
    assert all(len(row) == 125 for row in rows)
    for row in rows:
        assert re.fullmatch(r"\d{1,10},\d{2}", row[0]), row[0]
        assert re.fullmatch(r"\d{4}", row[col("Belegdatum")])
        assert row[col("BU-Schlüssel")] == ""  # automatic revenue accounts
    invoice, reverse_charge, _ = rows
    assert invoice[:11] == ["1544,14", "S", "EUR", "", "", "", "10042", "8400", "", "3011",
                            "RE-2026-00042"]
    assert invoice[col("Buchungstext")] == "Müller & Söhne Maschinenbau KG RE-2026-00042"
    assert invoice[col("Leistungsdatum")] == "30112026"
    assert invoice[col("Fälligkeit")] == "14122026"
    assert invoice[col("Festschreibung")] == "0"
    assert reverse_charge[:11] == ["597,50", "S", "EUR", "", "", "", "20007", "8336", "", "3011",
                                   "RE-2026-00043"]
    assert reverse_charge[col("EU-Land u. UStID (Bestimmung)")] == "ATU12345678"
    assert invoice[col("EU-Land u. UStID (Bestimmung)")] == ""


def test_cancellation_is_booked_on_the_credit_side_with_a_positive_amount(data: bytes) -> None:
    cancellation = parse(data)[2:][2]
    assert cancellation[:11] == ["1544,14", "H", "EUR", "", "", "", "10042", "8400", "", "0312",
                                 "RE-2026-00050"]
    assert cancellation[col("Buchungstext")].startswith("Storno RE-2026-00042 ")
    assert cancellation[col("Generalumkehr (GU)")] == ""


def test_cancellation_with_negative_amounts_is_booked_the_same_way() -> None:
    positive = samples.cancellation()
    negative = replace(
        positive,
        vat_groups=tuple(replace(g, base=-g.base, amount=-g.amount) for g in positive.vat_groups),
        net=-positive.net, vat=-positive.vat, gross=-positive.gross,
    )
    assert parse(export([negative]))[2][:2] == ["1544,14", "H"]


def test_one_booking_per_vat_group() -> None:
    snapshot = samples.invoice(
        vat_groups=(
            VatGroup("S", D("19"), D("1000.00"), D("190.00")),
            VatGroup("S", D("7"), D("297.60"), D("20.83")),
        ),
        vat=D("210.83"),
        gross=D("1508.43"),
    )
    rows = parse(export([snapshot]))[2:]
    assert [(r[0], r[7]) for r in rows] == [("1190,00", "8400"), ("318,43", "8300")]


def test_debtor_account_may_be_a_callable() -> None:
    rows = parse(export([samples.invoice()], debtor_account=lambda s: 10000 + len(s.buyer.name)))
    assert rows[2][col("Konto")] == "10030"


def test_text_fields_are_quoted_with_inner_quotes_doubled() -> None:
    buyer = replace(samples.BUYER, name='Kunde "Alpha" GmbH;\nBerlin')
    line = export([samples.invoice(buyer=buyer)]).decode("cp1252").split("\r\n")[2]
    assert '"Kunde ""Alpha"" GmbH; Berlin RE-2026-00042"' in line


@pytest.mark.parametrize(
    ("overrides", "snapshot", "message"),
    [
        ({}, samples.small_business(), "no revenue account for tax case 'E'"),
        ({}, samples.invoice(number="RE_2026 42"), "cannot be Belegfeld 1"),
        ({"debtor_account": {"K-10042": 1004}}, samples.invoice(), "debtor account 1004"),
        ({"debtor_account": {}}, samples.invoice(), "no debtor account for customer 'K-10042'"),
        ({"fiscal_year_start": date(2025, 1, 1)}, samples.invoice(), "fiscal year"),
        ({"consultant_number": 99}, samples.invoice(), "Beraternummer"),
        ({"account_length": 9}, samples.invoice(), "Sachkontenlänge"),
        ({}, samples.invoice(currency="USD"), "only EUR"),
    ],
)
def test_what_datev_would_reject_is_a_clear_error(overrides, snapshot, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=re.escape(message)):
        export([snapshot], **overrides)


def test_invoices_outside_the_given_period_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the exported period"):
        export([samples.invoice()], period_start=date(2026, 12, 1), period_end=date(2026, 12, 31))


def test_tax_case_keys_and_filename() -> None:
    assert tax_case(VatGroup("S", D("19.00"), D(1), D(0))) == "S19"
    assert tax_case(VatGroup("S", D("7"), D(1), D(0))) == "S7"
    assert tax_case(VatGroup("AE", D("0"), D(1), D(0))) == "AE"
    assert datev_filename(date(2026, 11, 1), date(2026, 11, 30)) == (
        "EXTF_Buchungsstapel_20261101-20261130.csv"
    )


def test_row_count_equals_the_documents_reported_booked() -> None:
    """The CLI said "26 documents" for a file of 25 rows: the 0,00 € invoice was skipped
    silently. Now every document is either booked (its rows) or reported as not booked."""
    from addon.exports.datev import datev_export
    from addon.invoicing.snapshot import ACTIVITY_REPORT

    zero = samples.invoice(number="RE-2026-00044", lines=(replace(samples.invoice().lines[0], net=D("0.00")),),
                           vat_groups=(VatGroup("S", D("19"), D("0.00"), D("0.00")),),
                           net=D("0.00"), vat=D("0.00"), gross=D("0.00"))
    report = replace(zero, type_code=ACTIVITY_REPORT, number="LN-2026-00001")
    documents = [samples.invoice(), samples.reverse_charge(), zero, report]
    result = datev_export(documents, **OPTIONS)
    rows = parse(result.content)[2:]
    assert result.rows == len(rows) == len(result.booked) == 2
    assert [row[col("Belegfeld 1")] for row in rows] == list(result.booked)
    assert result.not_booked == (("LN-2026-00001", "activity report, not an invoice"),
                                 ("RE-2026-00044", "no amount to book (0,00)"))
    assert len(result.booked) + len(result.not_booked) == len(documents)


def test_booking_text_keeps_the_invoice_number_whole() -> None:
    buyer = replace(samples.BUYER, name="Müller & Söhne Maschinen- und Anlagenbau Kommanditgesellschaft Hamburg")
    [row] = parse(export([samples.invoice(buyer=buyer)]))[2:]
    text = row[col("Buchungstext")]
    assert len(text) <= 60
    assert text.endswith(" RE-2026-00042"), text
    assert text.startswith("Müller & Söhne Maschinen")
    storno = parse(export([samples.cancellation(buyer=buyer)]))[2][col("Buchungstext")]
    assert len(storno) <= 60 and storno.startswith("Storno RE-2026-00042 "), storno


def test_letters_outside_cp1252_are_transliterated_not_question_marks() -> None:
    buyer = replace(samples.EU_BUYER, name="Łódź Spółka – Oddział Kraków")
    data = export([samples.reverse_charge(buyer=buyer)])
    [row] = parse(data)[2:]
    # ó is Windows-1252 and stays; Ł, ź, ł have no cp1252 code and are transliterated
    assert row[col("Buchungstext")] == "Lódz Spólka – Oddzial Kraków RE-2026-00043"
    assert b"?" not in data


def test_a_discounted_invoice_is_booked_at_its_discounted_gross() -> None:
    """Discounts reach DATEV through the VAT breakdown: the booking is what the customer owes."""
    from addon.invoicing.snapshot import Allowance

    base = samples.invoice()
    allowance = Allowance("Kanzleinachlass", D("38.93"), D("19"), percent=D("3"), base=base.net)
    net = base.net - allowance.amount
    vat = (net * D("0.19")).quantize(D("0.01"))
    snapshot = replace(base, allowances=(allowance,), net=net, vat=vat, gross=net + vat,
                       vat_groups=(VatGroup("S", D("19"), net, vat),))
    [row] = parse(export([snapshot]))[2:]
    assert row[col("Umsatz (ohne Soll/Haben-Kz)")] == f"{net + vat:.2f}".replace(".", ",")
    assert row[col("Gegenkonto (ohne BU-Schlüssel)")] == "8400"
