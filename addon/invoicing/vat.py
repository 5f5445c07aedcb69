"""Which VAT applies to an invoice: standard rate, EU reverse charge, or small business.

Pure and small on purpose: the billing core prices the lines (nets do not depend on the VAT
treatment), and this step decides the VAT category of the whole document before it is stored.
- `E`: the seller is a small business (§ 19 UStG): no VAT, the exemption note is printed.
- `AE`: an IT service to a business in another EU member state (§ 3a Abs. 2 UStG) — the buyer
  owes the VAT; the invoice shows both VAT IDs and the reverse-charge wording (§ 14a UStG).
- `S`: everything else, at the configured rate.

>>> vat_category("DE", "AT", "ATU13585627", small_business=False)
'AE'
>>> vat_category("DE", "AT", None, small_business=False)
'S'
"""

from __future__ import annotations

from stdnum.eu.vat import MEMBER_STATES

#: ISO 3166 codes of the EU member states (stdnum lists VAT prefixes; Greece's is EL/GR there)
EU_COUNTRIES = frozenset(code.upper() for code in MEMBER_STATES if code != "xi")


def vat_category(seller_country: str, buyer_country: str, buyer_vat_id: str | None, *, small_business: bool) -> str:
    """The document's VAT category (EN 16931 UNCL 5305 code) for this seller and buyer."""
    if small_business:
        return "E"
    buyer = buyer_country.upper()
    if buyer != seller_country.upper() and buyer in EU_COUNTRIES and buyer_vat_id:
        return "AE"
    return "S"
