"""The invoice snapshot: everything printed on an issued invoice, frozen at issue time.

An issued invoice is never re-read from live data (GoBD): seller and buyer addresses, VAT IDs,
lines, totals and texts are copied here once, stored as JSON with the invoice row, and every
renderer (PDF, CII XML, DATEV, e-mail) works from this object alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any

from addon.plain import plain

INVOICE = "380"
CANCELLATION = "381"
#: Not an invoice: a document listing work done without charge (only no-charge lines). It asks
#: for no payment, has its own number series, no e-invoice XML and no booking (README, invoices).
ACTIVITY_REPORT = "LN"
#: UNCL 5189 allowance reason code "Discount" (EN 16931 BT-98).
DISCOUNT_REASON_CODE = "95"


@dataclass(frozen=True)
class Party:
    """Seller or buyer as printed. `country` is ISO 3166 alpha-2."""

    name: str
    street: str
    postcode: str
    city: str
    country: str
    vat_id: str | None = None
    tax_number: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_number: str | None = None
    iban: str | None = None
    bic: str | None = None
    bank: str | None = None
    #: Commercial register entry (e.g. "HRB 12345, AG Berlin"): EN 16931 BT-30 / BT-47.
    legal_registration_id: str | None = None
    #: Contact person printed and sent as BG-6 (XRechnung BR-DE-5 wants a name).
    contact_name: str | None = None


@dataclass(frozen=True)
class AnnexEntry:
    """One booking in the activity report (Leistungsnachweis)."""

    ticket_number: str
    date: date
    agent: str
    activity: str
    raw_minutes: Decimal
    billed_minutes: Decimal
    #: Minutes of `billed_minutes` a retainer's contingent covered (no price of their own).
    covered_minutes: Decimal = Decimal(0)
    #: The entry is shown at 0,00 € (goodwill, covered by contract).
    no_charge: bool = False


@dataclass(frozen=True)
class Allowance:
    """A document-level allowance (EN 16931 BG-20), e.g. a customer discount.

    `amount` is positive and reduces the VAT base of (category, rate); `base` and `percent` say
    how it was computed when it is a percentage (BT-93, BT-94).
    """

    reason: str
    amount: Decimal
    vat_rate: Decimal
    vat_category: str = "S"
    percent: Decimal | None = None
    base: Decimal | None = None
    reason_code: str = DISCOUNT_REASON_CODE


@dataclass(frozen=True)
class Line:
    """One invoice line. `unit` is a UN/ECE rec. 20 code: HUR (hour), C62 (piece), KMT (km)."""

    position: int
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal
    vat_rate: Decimal
    vat_category: str = "S"
    ticket_number: str | None = None
    service_start: date | None = None
    service_end: date | None = None
    explanation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VatGroup:
    """VAT breakdown per (category, rate): BT-116 base, BT-117 amount (EN 16931 BG-23)."""

    category: str
    rate: Decimal
    base: Decimal
    amount: Decimal
    exemption_reason: str | None = None


@dataclass(frozen=True)
class TicketRef:
    """A ticket this invoice bills, with its helpdesk link."""

    number: str
    title: str
    url: str | None = None


@dataclass(frozen=True)
class InvoiceSnapshot:
    """The complete content of one issued document (invoice 380 or cancellation 381)."""

    type_code: str
    number: str
    issue_date: date
    due_date: date | None
    service_start: date
    service_end: date
    currency: str
    language: str
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    vat_groups: tuple[VatGroup, ...]
    net: Decimal
    vat: Decimal
    gross: Decimal
    tickets: tuple[TicketRef, ...] = ()
    annex: tuple[AnnexEntry, ...] = ()
    notes: tuple[str, ...] = ()
    payment_terms: str | None = None
    buyer_reference: str | None = None
    preceding_number: str | None = None
    preceding_date: date | None = None
    #: Document-level allowances (discounts); `net` is the VAT base after them (BT-109).
    allowances: tuple[Allowance, ...] = ()
    #: The month a monthly collective invoice bills ("2026-11"); None for per-ticket documents.
    billing_month: str | None = None
    #: The invoice template that laid the document out and the letterhead image it used.
    template: str = "standard"
    letterhead: str | None = None

    @property
    def line_total(self) -> Decimal:
        """BT-106: the sum of line nets, before document-level allowances."""
        return sum((line.net for line in self.lines), Decimal(0))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, decimals and dates as strings) for storage and hashing."""
        return json.dumps(plain(self), sort_keys=True, default=str, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> InvoiceSnapshot:
        return _build(cls, json.loads(text))


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    text = str(kind)
    if "Decimal" in text:
        return Decimal(value)
    if text == "bool":
        return bool(value)
    if text.startswith("date"):
        return date.fromisoformat(value)
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    nested = {"seller": Party, "buyer": Party}
    sequences = {"lines": Line, "vat_groups": VatGroup, "tickets": TicketRef, "annex": AnnexEntry,
                 "allowances": Allowance}
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in nested:
            kwargs[f.name] = _build(nested[f.name], value)
        elif f.name in sequences:
            kwargs[f.name] = tuple(_build(sequences[f.name], item) for item in value)
        elif f.name == "notes":
            kwargs[f.name] = tuple(value)
        else:
            kwargs[f.name] = _convert(f.type, value)
    return cls(**kwargs)
