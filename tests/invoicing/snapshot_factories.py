"""Snapshot factories for the invoicing tests: realistic documents, overridable per test."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from typing import Any

import snapshot_samples as samples

from addon.invoicing.snapshot import (
    CANCELLATION,
    AnnexEntry,
    InvoiceSnapshot,
    Line,
    TicketRef,
    VatGroup,
)

# The parties of the shared samples, with the details these layout tests print.
SELLER = replace(samples.SELLER, iban="DE89370400440532013000", legal_registration_id="HRB 123456, AG Hamburg")
BUYER = replace(samples.BUYER, email=None, contact_name="Frau Petra Müller")
EU_BUYER = replace(samples.EU_BUYER, vat_id="ATU12345678", email=None)

TICKETS = (
    TicketRef("20261104001", "Mailserver nimmt keine Verbindungen an",
              "https://helpdesk.example.com/#ticket/zoom/4711"),
    TicketRef("20261112007", "Neuer Arbeitsplatz Buchhaltung",
              "https://helpdesk.example.com/#ticket/zoom/4733"),
)

ANNEX = (
    AnnexEntry("20261104001", date(2026, 11, 4), "Anna Schmidt",
               "Analyse Postfix-Logs, TLS-Zertifikat erneuert", D("47"), D("60")),
    AnnexEntry("20261104001", date(2026, 11, 5), "Jonas Weber",
               "Monitoring eingerichtet", D("25"), D("30")),
    AnnexEntry("20261112007", date(2026, 11, 12), "Anna Schmidt",
               "PC aufgesetzt, Drucker eingebunden", D("95"), D("105")),
)


def lines_19() -> tuple[Line, ...]:
    """The shared sample lines (one a negative goodwill credit); line 2 has its own dates."""
    lines = samples.invoice().lines
    second = replace(lines[1], service_start=date(2026, 11, 12), service_end=date(2026, 11, 12))
    return (lines[0], second, *lines[2:])


def invoice(**overrides: Any) -> InvoiceSnapshot:
    """The shared domestic invoice (net 1.297,60 €, VAT 246,54 €, gross 1.544,14 €) with the
    parties, tickets and activity report these layout tests print."""
    snapshot = samples.invoice(
        seller=SELLER, buyer=BUYER, lines=lines_19(), tickets=TICKETS, annex=ANNEX, notes=()
    )
    return replace(snapshot, **overrides)


def cancellation(**overrides: Any) -> InvoiceSnapshot:
    """A cancellation (381) of `invoice()`, amounts positive as EN 16931 wants for 381."""
    values: dict[str, Any] = {
        "type_code": CANCELLATION,
        "number": "RE-2026-00050",
        "issue_date": date(2026, 12, 3),
        "due_date": None,
        "preceding_number": "RE-2026-00042",
        "preceding_date": date(2026, 11, 30),
        "annex": (),
        "payment_terms": None,
    }
    values.update(overrides)
    return invoice(**values)


def reverse_charge(**overrides: Any) -> InvoiceSnapshot:
    """An English invoice to an Austrian business: reverse charge, no German VAT."""
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
        "vat_groups": (VatGroup("AE", D("0"), D("597.50"), D("0.00"), None),),
        "net": D("597.50"),
        "vat": D("0.00"),
        "gross": D("597.50"),
        "tickets": (TicketRef("20261120003", "VPN gateway migration"),),
        "annex": (),
        "payment_terms": None,
        "buyer_reference": None,
    }
    values.update(overrides)
    return invoice(**values)
