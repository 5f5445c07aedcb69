"""Customer billing data: imported from JSON, validated as a whole, written in one transaction.

The helpdesk knows organizations; only the sidecar knows their legal address, VAT ID and
rate. An import file lists customers by the helpdesk's organization id (`remote_id`, shown
by `ticketbill customers list` and in every "needs attention" reason):

    {"default_rate": "95.00", "internal_activities": ["Intern"],
     "customers": [{"remote_id": "2", "legal_name": "Beispiel GmbH", "street": "Hauptstr. 1",
                    "postcode": "60311", "city": "Frankfurt am Main", "country": "DE",
                    "vat_id": "DE123456789", "hourly_rate": "110.00", "language": "de"}]}

Optional per customer: `email` (invoice delivery), `approval_required` (true: invoices wait as
drafts for `ticketbill invoices approve`), `debtor_account` (DATEV personal account),
`xrechnung` (true: also mail an XRechnung XML; needs `buyer_reference`, the Leitweg-ID, and
`email`), `discounts` (see addon/discounts.py), and the customer's own layout:
`invoice_template` (a template name, templates/invoice/<name>.html or INVOICE_TEMPLATE_DIR),
`letterhead` (a PNG/JPEG replacing INVOICE_LOGO) and `language`. A layout is checked here by
rendering a sample invoice, cancellation and activity report with it, so a broken template is
refused at import, not discovered when a real invoice is issued.

Billing data from the helpdesk. Where the helpdesk keeps it (Zammad organization fields that
`register` creates), every sync fills the billing-data keys (`BILLING_FIELDS`) from there,
validated by the same rules as the import. The import wins: a key an import file sets is the
customer's from then on (`Customer.imported_fields`) and the helpdesk value is ignored; set it
to `null` in a later import to hand it back to the helpdesk. Rates and flags come from the
import only. An entry gives the address (legal_name, street, postcode, city) completely or
not at all: without it, it sets only the other keys and the address comes from the helpdesk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.eu import vat as stdnum_vat

from addon.discounts import DiscountError, validate_discounts
from addon.models import ActivityType, Customer, GlobalRate
from connectors.base import CustomerDetails

FIELDS = {
    "remote_id", "name", "legal_name", "street", "postcode", "city", "country", "vat_id",
    "customer_number", "email", "hourly_rate", "timezone", "language",
    "approval_required", "debtor_account", "xrechnung", "buyer_reference",
    "invoice_template", "letterhead", "discounts",
}
#: Yes/no keys: JSON true/false only, so "false" as a string cannot silently mean yes.
FLAGS = {"approval_required", "xrechnung"}
#: The customer's billing data: from the import, or from the helpdesk where it keeps it.
BILLING_FIELDS = ("legal_name", "street", "postcode", "city", "country", "vat_id",
                  "customer_number", "email", "buyer_reference")
#: The address an invoice needs (§14 UStG): given all together, or not at all.
ADDRESS_FIELDS = ("legal_name", "street", "postcode", "city")


class CustomerImportError(ValueError):
    """The file is not a valid customer import; the message names the entry and key."""


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


def _money(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise CustomerImportError(f"{where}: {value!r} is not an amount such as \"95.00\"") from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise CustomerImportError(f"{where}: {value!r} must be positive with at most 2 decimals")
    return amount


def _validate(item: Any, index: int) -> dict[str, Any]:
    where = f"customers[{index}]"
    if not isinstance(item, dict):
        raise CustomerImportError(f"{where}: expected an object")
    unknown = set(item) - FIELDS
    if unknown:
        raise CustomerImportError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not str(item.get("remote_id") or "").strip():
        raise CustomerImportError(f"{where}.remote_id: missing (the helpdesk's organization id)")
    for key in FLAGS & set(item):
        if not isinstance(item[key], bool):
            raise CustomerImportError(f"{where}.{key}: {item[key]!r} must be true or false")
    data = {
        k: (str(v).strip() if v is not None and k not in ("hourly_rate", "discounts") and k not in FLAGS else v)
        for k, v in item.items()
    }
    if "discounts" in data:
        try:
            data["discounts"] = json.dumps(validate_discounts(data["discounts"], f"{where}.discounts")) or None
        except DiscountError as exc:
            raise CustomerImportError(str(exc)) from None
    if data.get("letterhead"):
        letterhead = Path(data["letterhead"]).expanduser().resolve()
        if letterhead.suffix.lower() not in (".png", ".jpg", ".jpeg") or not letterhead.is_file():
            raise CustomerImportError(f"{where}.letterhead: {data['letterhead']!r} is not an existing "
                                      ".png or .jpg file")
        data["letterhead"] = str(letterhead)
    if data.get("debtor_account") and not (data["debtor_account"].isdigit() and 5 <= len(data["debtor_account"]) <= 9):
        raise CustomerImportError(f"{where}.debtor_account: {data['debtor_account']!r} is not a DATEV personal "
                                  "account (5 to 9 digits)")
    if data.get("xrechnung") and not (data.get("buyer_reference") and data.get("email")):
        raise CustomerImportError(f"{where}: xrechnung needs buyer_reference (Leitweg-ID) and email")
    if any(data.get(key) for key in ADDRESS_FIELDS):
        for key in ADDRESS_FIELDS:
            if not data.get(key):
                raise CustomerImportError(f"{where}.{key}: missing (needed on the invoice, §14 UStG)")
        data.setdefault("country", None)
        data["country"] = data["country"] or "DE"
    for key in ("country", "vat_id"):
        if data.get(key):
            try:
                data[key] = clean_billing_value(key, data[key])
            except CustomerImportError as exc:
                raise CustomerImportError(f"{where}.{key}: {exc}") from None
    if data.get("hourly_rate") is not None:
        data["hourly_rate"] = _money(data["hourly_rate"], f"{where}.hourly_rate")
    if data.get("language") and data["language"] not in ("de", "en"):
        raise CustomerImportError(f"{where}.language: {data['language']!r} is not de or en")
    return data


def clean_billing_value(key: str, value: str) -> str:
    """One billing-data value as the invoice needs it (country and VAT ID checked and
    normalised); raises CustomerImportError saying what is wrong. Used for both sources."""
    value = value.strip()
    if key == "country":
        country = value.upper()
        if len(country) != 2 or not country.isalpha():
            raise CustomerImportError(f"{country!r} is not an ISO 3166 two-letter code")
        return country
    if key == "vat_id":
        vat_id = value.replace(" ", "").upper()
        if not stdnum_vat.is_valid(vat_id):
            raise CustomerImportError(f"{vat_id!r} is not a valid EU VAT ID")
        return vat_id
    return value


def imported_keys(customer: Customer) -> set[str]:
    return {key for key in (customer.imported_fields or "").split(",") if key}


def apply_helpdesk_details(customer: Customer, details: CustomerDetails) -> None:
    """The billing data the helpdesk keeps for the customer, where no import overrides it.

    Invalid values are not taken; they are named in `helpdesk_problems`, which keeps the
    customer's tickets from being billed until the admin fixes them in the helpdesk.
    """
    overridden = imported_keys(customer)
    problems: list[str] = []
    values = {key: getattr(details, key) for key in BILLING_FIELDS}
    if not values["country"] and any(values[key] for key in ADDRESS_FIELDS[1:]):
        values["country"] = "DE"  # as the import assumes
    for key, raw in values.items():
        if key in overridden:
            continue
        value = None
        if raw:
            try:
                value = clean_billing_value(key, raw)
            except CustomerImportError as exc:
                problems.append(f"{key} {exc}")
        setattr(customer, key, value)
    customer.helpdesk_problems = "; ".join(problems) or None


def missing_billing_data(customer: Customer) -> str:
    """Why the customer's tickets cannot be billed yet, for the "needs attention" note."""
    who = f"customer '{customer.name}' (helpdesk id {customer.remote_id})"
    if customer.helpdesk_problems:
        return (f"{who}: the billing data in the helpdesk is invalid ({customer.helpdesk_problems}); fix it "
                "there, or override it with `ticketbill customers import`")
    return (f"{who} has no billing address; fill in the organization's billing fields in the helpdesk "
            "or add it with `ticketbill customers import`")


def check_layouts(items: list[dict[str, Any]], template_dir: Path | None) -> None:
    """Render a sample of every document type in each customer layout of the file (template,
    letterhead, language); the first that fails refuses the import with the customer and why."""
    from addon.invoicing.render_pdf import check_layout

    seen: set[tuple[str, str | None, str]] = set()
    for index, data in enumerate(items):
        if not (data.get("invoice_template") or data.get("letterhead")):
            continue
        layout = (data.get("invoice_template") or "standard", data.get("letterhead"), data.get("language") or "de")
        if layout in seen:
            continue
        seen.add(layout)
        try:
            check_layout(*layout, template_dir=template_dir)
        except ValueError as exc:
            raise CustomerImportError(
                f"customers[{index}] ({data['remote_id']}): invoice layout unusable: {exc}") from None


def import_customers(session: Session, helpdesk: str, path: Path, *, template_dir: Path | None = None) -> ImportResult:
    """Validate the whole file first (layouts by rendering a sample), then upsert; a bad entry
    writes nothing. `template_dir` is the deployment's INVOICE_TEMPLATE_DIR."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CustomerImportError(f"{path}: {exc}") from None
    return import_customer_document(session, helpdesk, document, str(path), template_dir=template_dir)


def import_customer_document(session: Session, helpdesk: str, document: Any, source: str = "document", *,
                             template_dir: Path | None = None) -> ImportResult:
    """The import of an already parsed document (the web UI's customer form sends one entry).

    A customer's layout (`invoice_template`, letterhead) is checked by rendering samples, so a
    broken template is refused here, not when an invoice is issued."""
    path = source
    if not isinstance(document, dict) or not isinstance(document.get("customers"), list):
        raise CustomerImportError(f"{path}: expected an object with a \"customers\" list")
    unknown = set(document) - {"customers", "default_rate", "internal_activities"}
    if unknown:
        raise CustomerImportError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    items = [_validate(item, i) for i, item in enumerate(document["customers"])]
    check_layouts(items, template_dir)
    default_rate = _money(document["default_rate"], "default_rate") if "default_rate" in document else None
    internal = document.get("internal_activities", [])
    if not isinstance(internal, list) or not all(isinstance(a, str) and a.strip() for a in internal):
        raise CustomerImportError(f"{path}: internal_activities must be a list of activity names")
    created = updated = 0
    for data in items:
        customer = session.execute(
            select(Customer).where(Customer.helpdesk == helpdesk, Customer.remote_id == data["remote_id"])
        ).scalar_one_or_none()
        if customer is None:
            name = data.get("name") or data.get("legal_name") or data["remote_id"]
            customer = Customer(helpdesk=helpdesk, remote_id=data["remote_id"], name=name)
            session.add(customer)
            created += 1
        else:
            updated += 1
        overridden = imported_keys(customer)
        for key, value in data.items():
            if key != "remote_id":
                setattr(customer, key, value)
            if key in BILLING_FIELDS:  # null hands the key back to the helpdesk's data
                (overridden.add if value is not None else overridden.discard)(key)
        customer.imported_fields = ",".join(sorted(overridden)) or None
    if default_rate is not None:
        row = session.get(GlobalRate, "")
        if row is None:
            session.add(GlobalRate(activity="", hourly_rate=default_rate))
        else:
            row.hourly_rate = default_rate
    for name in internal:
        activity = session.get(ActivityType, name.strip())
        if activity is None:
            session.add(ActivityType(name=name.strip(), internal=True))
        else:
            activity.internal = True
    session.flush()
    return ImportResult(created, updated)
