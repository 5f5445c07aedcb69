"""Sample snapshots shared by the PDF, e-invoice, export and delivery tests: one per tax case.

It lives at the top of tests/ (on sys.path for every test), so all suites test the same
documents; tests/invoicing/snapshot_factories.py derives its layout samples from these.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from typing import Any

from addon.invoicing.snapshot import (
    CANCELLATION,
    INVOICE,
    InvoiceSnapshot,
    Line,
    Party,
    TicketRef,
    VatGroup,
)

SELLER = Party(
    name="Nordlicht IT-Service GmbH",
    street="Hafenstraße 12",
    postcode="20457",
    city="Hamburg",
    country="DE",
    vat_id="DE123456789",
    tax_number="27/123/45678",
    email="buchhaltung@nordlicht-it.de",
    phone="+49 40 1234567",
    iban="DE89 3704 0044 0532 0130 00",
    bic="COBADEFFXXX",
    bank="Commerzbank Hamburg",
    legal_registration_id="HRB 123456, Amtsgericht Hamburg",
    contact_name="Anna Schmidt",
)

BUYER = Party(
    name="Müller & Söhne Maschinenbau KG",
    street="Industriestraße 7",
    postcode="80331",
    city="München",
    country="DE",
    vat_id="DE987654321",
    email="rechnungen@mueller-soehne.de",
    customer_number="K-10042",
)

EU_BUYER = Party(
    name="Wiener Logistik GmbH",
    street="Praterstraße 31",
    postcode="1020",
    city="Wien",
    country="AT",
    vat_id="ATU12345678",
    email="office@wiener-logistik.at",
    customer_number="K-20007",
)

#: A Kleinunternehmer: only a Steuernummer, no USt-IdNr., no commercial register entry.
SMALL_SELLER = Party(
    name="Jana Berger IT-Dienstleistungen",
    street="Lindenweg 3",
    postcode="24103",
    city="Kiel",
    country="DE",
    tax_number="19/234/56789",
    email="jana@berger-it.de",
    iban="DE02120300000000202051",
)


def _lines_19() -> tuple[Line, ...]:
    return (
        Line(1, "Störungsbehebung Mailserver", D("1.50"), "HUR", D("95.00"), D("142.50"),
             D("19"), ticket_number="20261104001",
             service_start=date(2026, 11, 4), service_end=date(2026, 11, 5)),
        Line(2, "Einrichtung Arbeitsplatz", D("1.75"), "HUR", D("95.00"), D("166.25"),
             D("19"), ticket_number="20261112007"),
        Line(3, "Anfahrt Kundenstandort", D("42"), "KMT", D("0.30"), D("12.60"), D("19"),
             ticket_number="20261112007"),
        Line(4, "Kulanzgutschrift Wartezeit", D("-0.25"), "HUR", D("95.00"), D("-23.75"),
             D("19"), ticket_number="20261104001"),
        Line(5, "USB-Headset", D("2"), "C62", D("500.00"), D("1000.00"), D("19")),
    )


def invoice(**overrides: Any) -> InvoiceSnapshot:
    """Domestic German invoice: net 1.297,60 €, VAT 246,54 €, gross 1.544,14 €."""
    snapshot = InvoiceSnapshot(
        type_code=INVOICE,
        number="RE-2026-00042",
        issue_date=date(2026, 11, 30),
        due_date=date(2026, 12, 14),
        service_start=date(2026, 11, 1),
        service_end=date(2026, 11, 30),
        currency="EUR",
        language="de",
        seller=SELLER,
        buyer=BUYER,
        lines=_lines_19(),
        vat_groups=(VatGroup("S", D("19"), D("1297.60"), D("246.54")),),
        net=D("1297.60"),
        vat=D("246.54"),
        gross=D("1544.14"),
        tickets=(TicketRef("20261104001", "Mailserver nimmt keine Verbindungen an"),),
        notes=("Vielen Dank für Ihren Auftrag.",),
        payment_terms="Zahlbar innerhalb von 14 Tagen ohne Abzug.",
        buyer_reference="PO-7781",
    )
    return replace(snapshot, **overrides)


def english_invoice(**overrides: Any) -> InvoiceSnapshot:
    """The same domestic invoice for an English-speaking customer."""
    values: dict[str, Any] = {
        "number": "RE-2026-00044",
        "language": "en",
        "payment_terms": "Payable within 14 days without deduction.",
        "notes": ("Thank you for your business.",),
    }
    values.update(overrides)
    return invoice(**values)


def cancellation(**overrides: Any) -> InvoiceSnapshot:
    """Cancellation (381) of `invoice()`, amounts positive as EN 16931 wants for 381."""
    values: dict[str, Any] = {
        "type_code": CANCELLATION,
        "number": "RE-2026-00050",
        "issue_date": date(2026, 12, 3),
        "due_date": None,
        "preceding_number": "RE-2026-00042",
        "preceding_date": date(2026, 11, 30),
        "payment_terms": None,
        "notes": ("Storno zur Rechnung Nr. RE-2026-00042 vom 30.11.2026",),
    }
    values.update(overrides)
    return invoice(**values)


def reverse_charge(**overrides: Any) -> InvoiceSnapshot:
    """English invoice to an Austrian business: reverse charge (AE), no German VAT."""
    lines = (
        Line(1, "Remote support: VPN gateway migration", D("3.25"), "HUR", D("110.00"),
             D("357.50"), D("0"), vat_category="AE", ticket_number="20261120003"),
        Line(2, "Firewall licence renewal", D("1"), "C62", D("240.00"), D("240.00"),
             D("0"), vat_category="AE"),
    )
    values: dict[str, Any] = {
        "number": "RE-2026-00043",
        "language": "en",
        "buyer": EU_BUYER,
        "lines": lines,
        "vat_groups": (VatGroup("AE", D("0"), D("597.50"), D("0.00")),),
        "net": D("597.50"),
        "vat": D("0.00"),
        "gross": D("597.50"),
        "payment_terms": "Payable within 14 days without deduction.",
        "notes": (),
        "buyer_reference": None,
    }
    values.update(overrides)
    return invoice(**values)


def small_business(**overrides: Any) -> InvoiceSnapshot:
    """Kleinunternehmer invoice (§ 19 UStG): category E, seller with a tax number only."""
    lines = (
        Line(1, "Einrichtung WLAN", D("2.50"), "HUR", D("60.00"), D("150.00"), D("0"),
             vat_category="E", ticket_number="5512"),
        Line(2, "Anfahrt", D("18"), "KMT", D("0.30"), D("5.40"), D("0"), vat_category="E"),
    )
    values: dict[str, Any] = {
        "number": "2026-017",
        "seller": SMALL_SELLER,
        "lines": lines,
        "vat_groups": (VatGroup("E", D("0"), D("155.40"), D("0.00")),),
        "net": D("155.40"),
        "vat": D("0.00"),
        "gross": D("155.40"),
        "notes": ("Kein Ausweis von Umsatzsteuer, da Kleinunternehmer gemäß § 19 UStG.",),
        "buyer_reference": None,
    }
    values.update(overrides)
    return invoice(**values)
