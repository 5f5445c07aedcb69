"""Structured e-invoices from an issued invoice: EN 16931 CII XML, XRechnung, Factur-X hybrid PDF.

The XML is built with drafthorse (a 1:1 model of the ZUGFeRD/Factur-X CII schema that refuses to
serialize XSD-invalid documents) and embedded with factur-x (XMP, /AF, PDF/A-3 claim). Everything
comes from the frozen `InvoiceSnapshot` so the PDF and the XML can never tell different stories;
the XML is the legally relevant part of a hybrid (BMF 15.10.2025), so the builder refuses a
snapshot whose totals do not add up instead of writing them out.
"""

from __future__ import annotations

import io
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import facturx
from drafthorse.models.accounting import ApplicableTradeTax, CategoryTradeTax, TradeAllowanceCharge
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration, TradeParty
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.trade import TradeSettlement
from drafthorse.models.tradelines import LineItem
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from addon.invoicing.formatting import Formats, language_of
from addon.invoicing.invoice_texts import TEXTS
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import CANCELLATION, INVOICE, Allowance, InvoiceSnapshot, Line, Party

#: BT-24 of a plain EN 16931 invoice (also the Factur-X/ZUGFeRD "EN 16931" profile).
EN16931_GUIDELINE = "urn:cen.eu:en16931:2017"
#: BT-24 of an XRechnung 3.0 invoice (CIUS of EN 16931 for German public buyers).
XRECHNUNG_GUIDELINE = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
#: BT-23 expected by XRechnung 3.0 (Peppol billing process).
PEPPOL_BILLING_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


#: VATEX codes (BT-121) for the exempt categories whose reason has a code.
EXEMPTION_CODES = {"AE": "VATEX-EU-AE", "K": "VATEX-EU-IC", "G": "VATEX-EU-G", "O": "VATEX-EU-O"}
#: Categories that carry a rate of 0 and need an exemption reason (BR-AE-10, BR-E-10, ...).
EXEMPT_CATEGORIES = frozenset({"AE", "E", "K", "G", "O"})

#: UNCL 4461 payment means: SEPA credit transfer, and "not defined" for a credit note we refund
#: or offset without knowing the buyer's account.
SEPA_CREDIT_TRANSFER = "58"
INSTRUMENT_NOT_DEFINED = "1"

CENT = Decimal("0.01")


def build_cii_xml(snapshot: InvoiceSnapshot) -> bytes:
    """The EN 16931 CII XML (Factur-X/ZUGFeRD profile EN 16931) of an issued invoice.

    Raises ValueError for a snapshot that cannot become a correct e-invoice (inconsistent totals,
    a cancellation without the invoice it cancels, an unknown type code).
    """
    return _serialize(_document(snapshot, EN16931_GUIDELINE))


def build_xrechnung_xml(snapshot: InvoiceSnapshot) -> bytes:
    """The XRechnung 3.0 CII XML for public-sector buyers.

    XRechnung makes several optional EN 16931 fields mandatory: the buyer reference (BT-10,
    the Leitweg-ID for public buyers), the seller contact with phone and e-mail (BR-DE-2/6/7) and
    the electronic addresses of both parties (BT-34/BT-49). A snapshot lacking them raises
    ValueError naming what is missing, because a rejected XRechnung is not an invoice to the buyer.
    """
    missing = []
    if not (snapshot.buyer_reference or "").strip():
        missing.append("buyer reference / Leitweg-ID (BT-10)")
    if not snapshot.seller.phone:
        missing.append("seller phone (BT-42)")
    if not snapshot.seller.email:
        missing.append("seller e-mail (BT-43/BT-34)")
    if not snapshot.buyer.email:
        missing.append("buyer e-mail as electronic address (BT-49)")
    if missing:
        raise ValueError(f"XRechnung for {snapshot.number} needs: {', '.join(missing)}")
    doc = _document(snapshot, XRECHNUNG_GUIDELINE)
    doc.context.business_parameter.id = PEPPOL_BILLING_PROCESS
    return _serialize(doc)


def xml_file(snapshot: InvoiceSnapshot, *, xrechnung: bool = False) -> RenderedFile:
    """The e-invoice XML as a file to store or mail next to the PDF."""
    if xrechnung:
        return RenderedFile(
            f"{snapshot.number}-xrechnung.xml", "application/xml", build_xrechnung_xml(snapshot)
        )
    return RenderedFile(f"{snapshot.number}.xml", "application/xml", build_cii_xml(snapshot))


def embed_facturx(pdf_bytes: bytes, xml_bytes: bytes, *, lang: str = "de-DE") -> bytes:
    """Turn a rendered invoice PDF into a Factur-X/ZUGFeRD hybrid with profile EN 16931.

    factur-x embeds the XML as `factur-x.xml`, links it via /AF and writes the PDF/A-3 and
    Factur-X XMP, but checks nothing about PDF/A itself. The one PDF/A requirement that can be
    added afterwards is done here: an sRGB OutputIntent, needed because the renderer paints in
    DeviceRGB (ISO 19005-3 6.2.4.3). Embedded fonts are the PDF renderer's job. `lang` becomes
    the catalog /Lang ("en-GB" for English invoices). An XRechnung XML can be embedded too, but
    the XMP then says "EN 16931" (factur-x knows no XRECHNUNG level); public buyers should get
    the pure XRechnung XML.
    """
    pdf = _with_srgb_output_intent(pdf_bytes)
    return facturx.generate_from_binary(
        pdf, xml_bytes, flavor="factur-x", level="en16931", check_xsd=True, lang=lang
    )


def extract_xml(pdf_bytes: bytes) -> bytes:
    """The embedded e-invoice XML of a Factur-X/ZUGFeRD PDF, byte for byte.

    Raises ValueError when the PDF carries no Factur-X/ZUGFeRD XML.
    """
    _filename, xml = facturx.get_facturx_xml_from_pdf(pdf_bytes, check_xsd=False)
    if not xml:
        raise ValueError("the PDF has no embedded Factur-X/ZUGFeRD XML")
    return bytes(xml)


# --- XML model -------------------------------------------------------------------------------


def _serialize(doc: Document) -> bytes:
    # drafthorse validates against the bundled Factur-X EN 16931 XSD and raises if invalid.
    return doc.serialize(schema="FACTUR-X_EN16931")


def _document(snapshot: InvoiceSnapshot, guideline: str) -> Document:
    if snapshot.type_code not in (INVOICE, CANCELLATION):
        raise ValueError(f"unsupported document type code {snapshot.type_code!r}")
    _check_totals(snapshot)
    sign = _credit_note_sign(snapshot)
    language = language_of(snapshot.language)

    doc = Document()
    doc.context.guideline_parameter.id = guideline
    doc.header.id = snapshot.number
    doc.header.type_code = snapshot.type_code
    doc.header.issue_date_time = snapshot.issue_date
    for text in snapshot.notes:
        note = IncludedNote()
        note.content = text
        doc.header.notes.add(note)

    agreement = doc.trade.agreement
    if snapshot.buyer_reference:
        agreement.buyer_reference = snapshot.buyer_reference
    _seller(agreement.seller, snapshot.seller)
    _buyer(agreement.buyer, snapshot.buyer)

    # BT-72: the service was completed at the end of the billed period (BG-14 follows below).
    doc.trade.delivery.event.occurrence = snapshot.service_end

    settlement = doc.trade.settlement
    settlement.currency_code = snapshot.currency
    settlement.payment_reference = snapshot.number
    _payment(settlement, snapshot)
    for group in snapshot.vat_groups:
        tax = ApplicableTradeTax()
        tax.calculated_amount = _money(sign * group.amount)
        tax.type_code = "VAT"
        if group.category in EXEMPT_CATEGORIES:
            tax.exemption_reason = group.exemption_reason or TEXTS[language][f"note_{group.category}"]
            if group.category in EXEMPTION_CODES:
                tax.exemption_reason_code = EXEMPTION_CODES[group.category]
        tax.basis_amount = _money(sign * group.base)
        tax.category_code = group.category
        tax.rate_applicable_percent = _rate(group.category, group.rate)
        settlement.trade_tax.add(tax)
    settlement.period.start = snapshot.service_start
    settlement.period.end = snapshot.service_end
    terms_text = snapshot.payment_terms
    if not terms_text and snapshot.type_code == CANCELLATION:
        # BR-CO-25 wants BT-9 or BT-20 when an amount is due; for a credit note the PDF's
        # refund sentence is the honest payment term.
        amount = Formats(language, snapshot.currency).money(abs(snapshot.gross))
        terms_text = TEXTS[language]["pay_cancellation"].format(amount=amount)
    if terms_text or snapshot.due_date:
        terms = PaymentTerms()
        if terms_text:
            terms.description = terms_text
        if snapshot.due_date:
            terms.due = snapshot.due_date
        settlement.terms.add(terms)

    for allowance in snapshot.allowances:
        settlement.allowance_charge.add(_allowance(allowance, sign))

    totals = settlement.monetary_summation
    totals.line_total = _money(sign * snapshot.line_total)
    totals.charge_total = _money(Decimal(0))
    allowance_total = sum((a.amount for a in snapshot.allowances), Decimal(0))
    totals.allowance_total = _money(sign * allowance_total if allowance_total else allowance_total)
    totals.tax_basis_total = _money(sign * snapshot.net)
    totals.tax_total = (_money(sign * snapshot.vat), snapshot.currency)
    totals.grand_total = _money(sign * snapshot.gross)
    totals.due_amount = _money(sign * snapshot.gross)

    if snapshot.type_code == CANCELLATION:
        if not snapshot.preceding_number:
            raise ValueError(f"cancellation {snapshot.number} does not name the invoice it cancels")
        settlement.invoice_referenced_document.issuer_assigned_id = snapshot.preceding_number
        if snapshot.preceding_date:
            settlement.invoice_referenced_document.issue_date_time = snapshot.preceding_date

    titles = {ticket.number: ticket.title for ticket in snapshot.tickets}
    for line in snapshot.lines:
        doc.trade.items.add(_line_item(line, sign, titles))
    return doc


def _seller(party: TradeParty, seller: Party) -> None:
    party.name = seller.name
    if seller.legal_registration_id:
        party.legal_organization.id = seller.legal_registration_id
    elif not seller.vat_id and seller.tax_number:
        # BR-CO-26 wants BT-29, BT-30 or BT-31; a Kleinunternehmer often has only a tax number,
        # which does identify the seller, so it doubles as seller identifier BT-29.
        party.id = seller.tax_number
    if seller.contact_name or seller.phone or seller.email:
        party.contact.person_name = seller.contact_name or seller.name
        if seller.phone:
            party.contact.telephone.number = seller.phone
        if seller.email:
            party.contact.email.address = seller.email
    _address(party, seller)
    if seller.email:
        party.electronic_address.uri_ID = ("EM", seller.email)
    if seller.vat_id:
        party.tax_registrations.add(TaxRegistration(id=("VA", seller.vat_id)))
    if seller.tax_number:
        party.tax_registrations.add(TaxRegistration(id=("FC", seller.tax_number)))


def _buyer(party: TradeParty, buyer: Party) -> None:
    if buyer.customer_number:
        party.id = buyer.customer_number
    party.name = buyer.name
    if buyer.legal_registration_id:
        party.legal_organization.id = buyer.legal_registration_id
    _address(party, buyer)
    if buyer.email:
        party.electronic_address.uri_ID = ("EM", buyer.email)
    if buyer.vat_id:
        party.tax_registrations.add(TaxRegistration(id=("VA", buyer.vat_id)))


def _address(party: TradeParty, source: Party) -> None:
    if source.postcode:
        party.address.postcode = source.postcode
    if source.street:
        party.address.line_one = source.street
    if source.city:
        party.address.city_name = source.city
    party.address.country_id = source.country.upper()


def _payment(settlement: TradeSettlement, snapshot: InvoiceSnapshot) -> None:
    """BG-16: invoices are paid by SEPA transfer to the seller; credit notes are refunded to the
    buyer's account if known, otherwise refunded or offset as the PDF says (means not defined)."""
    means = PaymentMeans()
    if snapshot.type_code == CANCELLATION:
        account = snapshot.buyer
        means.type_code = SEPA_CREDIT_TRANSFER if account.iban else INSTRUMENT_NOT_DEFINED
    else:
        account = snapshot.seller
        if not account.iban:
            raise ValueError(f"invoice {snapshot.number}: the seller has no IBAN to be paid to")
        means.type_code = SEPA_CREDIT_TRANSFER
    if account.iban:
        means.payee_account.iban = account.iban.replace(" ", "").upper()
        means.payee_account.account_name = account.name
        if account.bic:
            means.payee_institution.bic = account.bic.replace(" ", "").upper()
    settlement.payment_means.add(means)


def _allowance(allowance: Allowance, sign: int) -> TradeAllowanceCharge:
    """BG-20: a document-level allowance with its reason (BT-97/98), base and percent
    (BT-93/94) and VAT category (BT-95/96); BR-CO-11/13 sum it into BT-107 and BT-109."""
    item = TradeAllowanceCharge()
    item.indicator = False
    if allowance.percent is not None:
        item.calculation_percent = allowance.percent.quantize(CENT)
    if allowance.base is not None:
        item.basis_amount = _money(sign * allowance.base)
    item.actual_amount = _money(sign * allowance.amount)
    item.reason_code = allowance.reason_code
    item.reason = allowance.reason
    tax = CategoryTradeTax()
    tax.type_code = "VAT"
    tax.category_code = allowance.vat_category
    tax.rate_applicable_percent = _rate(allowance.vat_category, allowance.vat_rate)
    item.trade_tax.add(tax)
    return item


def _line_item(line: Line, sign: int, titles: dict[str, str]) -> LineItem:
    """BG-25. The PDF prints a ticket once above its lines; an XML line stands alone, so its
    name (BT-153) carries the ticket and its description (BT-154) the ticket's title."""
    item = LineItem()
    item.document.line_id = str(line.position)
    item.product.name = f"Ticket {line.ticket_number}: {line.description}" if line.ticket_number else line.description
    if line.ticket_number and titles.get(line.ticket_number):
        item.product.description = titles[line.ticket_number]
    # BR-27: the net price is never negative; a credit or discount line goes negative in quantity.
    quantity = line.quantity * sign * (1 if line.unit_price >= 0 else -1)
    item.agreement.net.amount = _price(abs(line.unit_price))
    item.delivery.billed_quantity = (_plain(quantity), line.unit)
    item.settlement.trade_tax.type_code = "VAT"
    item.settlement.trade_tax.category_code = line.vat_category
    item.settlement.trade_tax.rate_applicable_percent = _rate(line.vat_category, line.vat_rate)
    if line.service_start and line.service_end:
        item.settlement.period.start = line.service_start
        item.settlement.period.end = line.service_end
    item.settlement.monetary_summation.total_amount = _money(sign * line.net)
    return item


def _check_totals(snapshot: InvoiceSnapshot) -> None:
    """Refuse what EN 16931 BR-CO-10/13/14/15 would reject, with the figures that disagree."""
    problems = []
    line_sum = sum((line.net for line in snapshot.lines), Decimal(0))
    allowances = sum((allowance.amount for allowance in snapshot.allowances), Decimal(0))
    if _money(line_sum - allowances) != _money(snapshot.net):
        problems.append(f"lines sum to {line_sum} less allowances {allowances}, net is {snapshot.net}")
    base_sum = sum((group.base for group in snapshot.vat_groups), Decimal(0))
    if _money(base_sum) != _money(snapshot.net):
        problems.append(f"VAT bases sum to {base_sum}, net is {snapshot.net}")
    vat_sum = sum((group.amount for group in snapshot.vat_groups), Decimal(0))
    if _money(vat_sum) != _money(snapshot.vat):
        problems.append(f"VAT amounts sum to {vat_sum}, VAT total is {snapshot.vat}")
    if _money(snapshot.net + snapshot.vat) != _money(snapshot.gross):
        problems.append(f"net {snapshot.net} + VAT {snapshot.vat} != gross {snapshot.gross}")
    if not snapshot.lines:
        problems.append("no lines")
    if problems:
        raise ValueError(f"invoice {snapshot.number} is inconsistent: {'; '.join(problems)}")


def _credit_note_sign(snapshot: InvoiceSnapshot) -> int:
    """EN 16931 credit notes (381) state the credited amounts as positive figures. A snapshot
    that mirrors the cancelled invoice with negative amounts is flipped, so either convention of
    the issuing code yields the same, correct XML."""
    return -1 if snapshot.type_code == CANCELLATION and snapshot.gross < 0 else 1


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _price(value: Decimal) -> Decimal:
    """Two decimals unless the price really has sub-cent digits (0.345 EUR/km), then up to four."""
    if value == value.quantize(CENT):
        return value.quantize(CENT)
    return value.quantize(Decimal("0.0001"), ROUND_HALF_UP)


def _plain(value: Decimal) -> str:
    """A decimal without exponent notation, which the XSD would reject (1E+1)."""
    return f"{value:f}"


def _rate(category: str, rate: Decimal) -> Decimal:
    # BR-AE-05, BR-E-05, ...: exempt categories carry rate 0 whatever the snapshot says.
    return Decimal("0.00") if category in EXEMPT_CATEGORIES else rate.quantize(CENT)


# --- PDF/A OutputIntent ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _srgb_icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _with_srgb_output_intent(pdf_bytes: bytes) -> bytes:
    """Add a /GTS_PDFA1 sRGB OutputIntent unless the PDF already has one (the renderer's do:
    then the file is not rewritten, which for a long invoice saves a full pypdf pass)."""
    reader = PdfReader(io.BytesIO(pdf_bytes))
    if "/OutputIntents" in reader.trailer["/Root"]:
        return pdf_bytes
    writer = PdfWriter(clone_from=reader)
    root = writer._root_object
    profile = DecodedStreamObject()
    profile.set_data(_srgb_icc_profile())
    profile[NameObject("/N")] = NumberObject(3)
    intent = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/OutputIntent"),
            NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
            NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/DestOutputProfile"): writer._add_object(profile),
        }
    )
    root[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    # PDF/A-3 is based on PDF 1.7; ReportLab writes a 1.3/1.4 header.
    writer.pdf_header = b"%PDF-1.7"
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()

