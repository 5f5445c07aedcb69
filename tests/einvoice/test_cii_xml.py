"""CII XML from snapshots: EN 16931 content per tax case, checked by XSD and Schematron."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest
import snapshot_samples as samples
from lxml import etree

from addon.invoicing.einvoice import (
    EN16931_GUIDELINE,
    PEPPOL_BILLING_PROCESS,
    XRECHNUNG_GUIDELINE,
    build_cii_xml,
    build_xrechnung_xml,
    xml_file,
)
from addon.invoicing.snapshot import InvoiceSnapshot, VatGroup
from addon.invoicing.validate import (
    InvalidEInvoice,
    check_cii,
    ensure_valid,
    validate_cii,
    validate_xrechnung,
)

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
SETTLEMENT = "//ram:ApplicableHeaderTradeSettlement"
TOTALS = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
SELLER = "//ram:SellerTradeParty"
BUYER = "//ram:BuyerTradeParty"

CASES = {
    "invoice": samples.invoice,
    "english": samples.english_invoice,
    "cancellation": samples.cancellation,
    "reverse_charge": samples.reverse_charge,
    "small_business": samples.small_business,
}


def texts(xml: bytes, path: str) -> list[str]:
    return [str(value) for value in etree.fromstring(xml).xpath(path, namespaces=NS)]


def text(xml: bytes, path: str) -> str:
    found = texts(xml, path)
    assert len(found) == 1, f"{path}: {found}"
    return found[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_tax_case_passes_xsd_and_en16931_schematron(case: str) -> None:
    xml = build_cii_xml(CASES[case]())
    assert validate_cii(xml) == []
    # Not even warnings: a receiving validator shows those to the customer.
    assert [str(f) for f in check_cii(xml)] == []
    assert text(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()") == (
        EN16931_GUIDELINE
    )


def test_standard_invoice_carries_the_mandatory_german_content() -> None:
    xml = build_cii_xml(samples.invoice())
    assert text(xml, "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID/text()") == (
        "RE-2026-00042"
    )
    assert text(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == "380"
    assert text(xml, "//rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString/text()") == (
        "20261130"
    )
    assert text(xml, f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']/text()") == (
        "DE123456789"
    )
    assert text(xml, f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='FC']/text()") == (
        "27/123/45678"
    )
    assert text(xml, f"{SELLER}/ram:SpecifiedLegalOrganization/ram:ID/text()") == (
        "HRB 123456, Amtsgericht Hamburg"
    )
    assert text(xml, f"{BUYER}/ram:Name/text()") == "Müller & Söhne Maschinenbau KG"
    assert text(xml, "//ram:BuyerReference/text()") == "PO-7781"
    # Payment: SEPA transfer (58) to the seller's IBAN, normalised without blanks; due date.
    assert text(xml, f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()"
                ) == "58"
    assert text(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID/text()") == (
        "DE89370400440532013000"
    )
    assert text(xml, "//ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/"
                     "udt:DateTimeString/text()") == "20261214"
    # Service period BG-14 and a line period BG-26.
    assert text(xml, f"{SETTLEMENT}/ram:BillingSpecifiedPeriod/ram:StartDateTime/"
                     "udt:DateTimeString/text()") == "20261101"
    assert text(xml, f"{SETTLEMENT}/ram:BillingSpecifiedPeriod/ram:EndDateTime/"
                     "udt:DateTimeString/text()") == "20261130"
    assert texts(xml, "//ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod/"
                      "ram:StartDateTime/udt:DateTimeString/text()") == ["20261104"]
    # Units and quantities, including the negative goodwill line with a positive price.
    assert texts(xml, "//ram:BilledQuantity/@unitCode") == ["HUR", "HUR", "KMT", "HUR", "C62"]
    assert texts(xml, "//ram:BilledQuantity/text()") == ["1.50", "1.75", "42", "-0.25", "2"]
    assert texts(xml, "//ram:NetPriceProductTradePrice/ram:ChargeAmount/text()") == [
        "95.00", "95.00", "0.30", "95.00", "500.00"
    ]
    # BR-CO-10 (sum of lines) and BR-CO-15 (gross = net + VAT) by independent arithmetic.
    line_totals = [D(v) for v in texts(xml, "//ram:SpecifiedTradeSettlementLineMonetarySummation"
                                            "/ram:LineTotalAmount/text()")]
    assert sum(line_totals) == D(text(xml, f"{TOTALS}/ram:LineTotalAmount/text()")) == D("1297.60")
    assert text(xml, f"{TOTALS}/ram:TaxTotalAmount/@currencyID") == "EUR"
    assert D(text(xml, f"{TOTALS}/ram:TaxBasisTotalAmount/text()")) + D(
        text(xml, f"{TOTALS}/ram:TaxTotalAmount/text()")
    ) == D(text(xml, f"{TOTALS}/ram:GrandTotalAmount/text()")) == D("1544.14")
    assert text(xml, f"{TOTALS}/ram:DuePayableAmount/text()") == "1544.14"
    assert text(xml, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:CategoryCode/text()") == "S"


def test_cancellation_references_the_cancelled_invoice_with_positive_amounts() -> None:
    xml = build_cii_xml(samples.cancellation())
    assert text(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == "381"
    ref = f"{SETTLEMENT}/ram:InvoiceReferencedDocument"
    assert text(xml, f"{ref}/ram:IssuerAssignedID/text()") == "RE-2026-00042"
    assert text(xml, f"{ref}/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == "20261130"
    assert text(xml, f"{TOTALS}/ram:GrandTotalAmount/text()") == "1544.14"
    assert text(xml, "//ram:SpecifiedTradePaymentTerms/ram:Description/text()") == (
        "Den Betrag von 1.544,14\xa0€ erstatten wir Ihnen bzw. verrechnen ihn mit offenen "
        "Forderungen."
    )
    # Without the buyer's account to pay to, the refund means are "not defined" (1).
    assert text(xml, f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()"
                ) == "1"


def test_cancellation_with_mirrored_negative_amounts_gives_the_same_credit_note() -> None:
    positive = samples.cancellation()
    negative = replace(
        positive,
        lines=tuple(replace(line, quantity=-line.quantity, net=-line.net) for line in positive.lines),
        vat_groups=tuple(replace(g, base=-g.base, amount=-g.amount) for g in positive.vat_groups),
        net=-positive.net,
        vat=-positive.vat,
        gross=-positive.gross,
    )
    assert build_cii_xml(negative) == build_cii_xml(positive)


def test_cancellation_refunds_to_the_buyer_iban_when_known() -> None:
    buyer = replace(samples.BUYER, iban="DE02100100100006820101")
    xml = build_cii_xml(samples.cancellation(buyer=buyer))
    assert text(xml, f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()"
                ) == "58"
    assert text(xml, "//ram:IBANID/text()") == "DE02100100100006820101"
    assert validate_cii(xml) == []


def test_reverse_charge_has_both_vat_ids_and_the_vatex_code() -> None:
    xml = build_cii_xml(samples.reverse_charge())
    tax = f"{SETTLEMENT}/ram:ApplicableTradeTax"
    assert text(xml, f"{tax}/ram:CategoryCode/text()") == "AE"
    assert text(xml, f"{tax}/ram:RateApplicablePercent/text()") == "0.00"
    assert text(xml, f"{tax}/ram:ExemptionReasonCode/text()") == "VATEX-EU-AE"
    assert text(xml, f"{tax}/ram:ExemptionReason/text()").startswith("Reverse charge")
    assert text(xml, f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']/text()") == (
        "DE123456789"
    )
    assert text(xml, f"{BUYER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']/text()") == (
        "ATU12345678"
    )
    assert text(xml, f"{TOTALS}/ram:TaxTotalAmount/text()") == "0.00"


def test_german_reverse_charge_uses_the_german_wording() -> None:
    xml = build_cii_xml(samples.reverse_charge(language="de"))
    reason = text(xml, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:ExemptionReason/text()")
    assert "Steuerschuldnerschaft des Leistungsempfängers" in reason
    assert validate_cii(xml) == []


def test_small_business_exemption_has_the_section_19_text_and_a_seller_identifier() -> None:
    xml = build_cii_xml(samples.small_business())
    tax = f"{SETTLEMENT}/ram:ApplicableTradeTax"
    assert text(xml, f"{tax}/ram:CategoryCode/text()") == "E"
    assert "§ 19 UStG" in text(xml, f"{tax}/ram:ExemptionReason/text()")
    assert texts(xml, f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']") == []
    # BR-CO-26: without VAT id or register entry the tax number identifies the seller (BT-29).
    assert text(xml, f"{SELLER}/ram:ID/text()") == "19/234/56789"


def test_explicit_exemption_reason_of_the_snapshot_wins() -> None:
    snapshot = samples.small_business(
        vat_groups=(VatGroup("E", D("0"), D("155.40"), D("0.00"), "Steuerfrei nach § 19 UStG"),)
    )
    xml = build_cii_xml(snapshot)
    assert text(xml, "//ram:ExemptionReason/text()") == "Steuerfrei nach § 19 UStG"


def test_sub_cent_unit_prices_keep_their_digits() -> None:
    base = samples.small_business()
    line = replace(base.lines[1], unit_price=D("0.345"), quantity=D("20"), net=D("6.90"))
    snapshot = samples.small_business(
        lines=(base.lines[0], line),
        vat_groups=(VatGroup("E", D("0"), D("156.90"), D("0.00")),),
        net=D("156.90"), gross=D("156.90"),
    )
    xml = build_cii_xml(snapshot)
    assert texts(xml, "//ram:ChargeAmount/text()")[1] == "0.3450"
    assert validate_cii(xml) == []


def test_broken_totals_fail_the_schematron() -> None:
    """The check cannot pass vacuously: a gross total off by one cent is caught (BR-CO-15)."""
    root = etree.fromstring(build_cii_xml(samples.invoice()))
    grand = root.xpath(f"{TOTALS}/ram:GrandTotalAmount", namespaces=NS)[0]
    grand.text = "1544.15"
    errors = validate_cii(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    assert any(error.startswith("BR-CO-15") for error in errors), errors


def test_standard_rate_without_any_seller_tax_id_fails_the_schematron() -> None:
    seller = replace(samples.SELLER, vat_id=None, tax_number=None)
    errors = validate_cii(build_cii_xml(samples.invoice(seller=seller)))
    assert any(error.startswith("BR-S-02") for error in errors), errors


def test_reverse_charge_without_buyer_vat_id_fails_the_schematron() -> None:
    buyer = replace(samples.EU_BUYER, vat_id=None)
    errors = validate_cii(build_cii_xml(samples.reverse_charge(buyer=buyer)))
    assert any(error.startswith("BR-AE-") for error in errors), errors


def test_code_list_rules_fire() -> None:
    """The code lists come from the Schematron's code database, passed in as a parameter."""
    errors = validate_cii(build_cii_xml(samples.invoice(currency="EUX")))
    assert any("InvoiceCurrencyCode" in error for error in errors), errors


def test_ensure_valid_raises_with_all_errors() -> None:
    ensure_valid(build_cii_xml(samples.invoice()), "RE-2026-00042")
    ensure_valid(build_xrechnung_xml(samples.invoice()), "RE-2026-00042", xrechnung=True)
    seller = replace(samples.SELLER, vat_id=None, tax_number=None)
    with pytest.raises(InvalidEInvoice, match="e-invoice RE-2026-00042 is invalid: BR-S-02") as info:
        ensure_valid(build_cii_xml(samples.invoice(seller=seller)), "RE-2026-00042")
    assert info.value.errors


def test_xsd_errors_are_reported_before_business_rules() -> None:
    root = etree.fromstring(build_cii_xml(samples.invoice()))
    doc_id = root.xpath("//rsm:ExchangedDocument/ram:ID", namespaces=NS)[0]
    etree.SubElement(doc_id.getparent(), f"{{{NS['ram']}}}Bogus").text = "x"
    errors = validate_cii(etree.tostring(root))
    assert errors and all(error.startswith("XSD") for error in errors)
    assert validate_cii(b"<not-closed>")[0].startswith("XML")


def test_builder_refuses_inconsistent_totals() -> None:
    with pytest.raises(ValueError, match=r"net 1297\.60 \+ VAT 246\.54 != gross 1544\.15"):
        build_cii_xml(samples.invoice(gross=D("1544.15")))
    with pytest.raises(ValueError, match="lines sum to"):
        build_cii_xml(samples.invoice(net=D("1297.61"), gross=D("1544.15")))


def test_cancellation_without_preceding_invoice_is_refused() -> None:
    with pytest.raises(ValueError, match="does not name the invoice it cancels"):
        build_cii_xml(samples.cancellation(preceding_number=None))


def test_invoice_without_seller_iban_is_refused() -> None:
    seller = replace(samples.SELLER, iban=None)
    with pytest.raises(ValueError, match="no IBAN"):
        build_cii_xml(samples.invoice(seller=seller))


def test_xrechnung_has_cius_ids_leitweg_id_and_passes_en16931() -> None:
    snapshot = samples.invoice(buyer_reference="04011000-12345-34")
    xml = build_xrechnung_xml(snapshot)
    assert text(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()") == (
        XRECHNUNG_GUIDELINE
    )
    assert text(xml, "//ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID/text()") == (
        PEPPOL_BILLING_PROCESS
    )
    assert text(xml, "//ram:BuyerReference/text()") == "04011000-12345-34"
    assert text(xml, f"{SELLER}/ram:DefinedTradeContact/ram:TelephoneUniversalCommunication/"
                     "ram:CompleteNumber/text()") == "+49 40 1234567"
    assert text(xml, f"{BUYER}/ram:URIUniversalCommunication/ram:URIID/@schemeID") == "EM"
    assert validate_xrechnung(xml) == []
    # The Factur-X Schematron itself rejects the XRechnung BT-24; only that check is excluded.
    assert [e[:15] for e in validate_cii(xml)] == ["FX-SCH-A-000556"]


def test_xrechnung_validation_still_catches_business_rule_errors() -> None:
    root = etree.fromstring(build_xrechnung_xml(samples.invoice()))
    root.xpath(f"{TOTALS}/ram:GrandTotalAmount", namespaces=NS)[0].text = "1.00"
    errors = validate_xrechnung(etree.tostring(root))
    assert any(error.startswith("BR-CO-15") for error in errors), errors


def test_xrechnung_requires_leitweg_id_and_contact_data() -> None:
    with pytest.raises(ValueError, match=r"Leitweg-ID \(BT-10\)"):
        build_xrechnung_xml(samples.invoice(buyer_reference=None))
    seller = replace(samples.SELLER, phone=None)
    with pytest.raises(ValueError, match=r"seller phone"):
        build_xrechnung_xml(samples.invoice(seller=seller))


def test_xml_file_names_and_types() -> None:
    plain = xml_file(samples.invoice())
    assert (plain.filename, plain.mimetype) == ("RE-2026-00042.xml", "application/xml")
    assert plain.content == build_cii_xml(samples.invoice())
    xrechnung = xml_file(samples.invoice(), xrechnung=True)
    assert xrechnung.filename == "RE-2026-00042-xrechnung.xml"


STAND_IN_XRECHNUNG_XSLT = """<xsl:stylesheet version="2.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:svrl="http://purl.oclc.org/dsdl/svrl"
    xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100">
  <xsl:template match="/">
    <svrl:schematron-output>
      <xsl:if test="not(matches(//ram:BuyerReference, '^\\d{2,12}-\\w{1,30}-\\d{2}$'))">
        <svrl:failed-assert id="BR-DE-TEST" flag="fatal" location="/">
          <svrl:text>BT-10 is not a Leitweg-ID</svrl:text>
        </svrl:failed-assert>
      </xsl:if>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>"""


def test_a_compiled_xrechnung_schematron_is_run_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KoSIT's XSLT is not installed here; a stand-in proves the hook runs whatever is given."""
    xslt = tmp_path / "XRechnung-CII-validation.xsl"
    xslt.write_text(STAND_IN_XRECHNUNG_XSLT, encoding="utf-8")
    po_number = build_xrechnung_xml(samples.invoice())
    leitweg = build_xrechnung_xml(samples.invoice(buyer_reference="04011000-12345-34"))
    errors = validate_xrechnung(po_number, xrechnung_xslt=xslt)
    assert [e.split(" ")[0] for e in errors] == ["BR-DE-TEST"]
    assert validate_xrechnung(leitweg, xrechnung_xslt=xslt) == []
    monkeypatch.setenv("TICKETBILL_XRECHNUNG_XSLT", str(xslt))
    assert validate_xrechnung(po_number) == errors


def test_xrechnung_validation_excludes_the_guideline_check_only_for_xrechnung_ids() -> None:
    root = etree.fromstring(build_cii_xml(samples.invoice()))
    guideline = root.xpath("//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
                           namespaces=NS)[0]
    guideline.text = "urn:example:not-a-profile"
    errors = validate_xrechnung(etree.tostring(root))
    assert [e.split(" ")[0] for e in errors] == ["FX-SCH-A-000556"]


def test_snapshot_json_round_trip_keeps_the_new_party_fields_and_the_xml() -> None:
    """Issued invoices are re-rendered from stored JSON; the XML must come out identical."""
    snapshot = samples.invoice()
    restored = InvoiceSnapshot.from_json(snapshot.to_json())
    assert restored.seller.legal_registration_id == "HRB 123456, Amtsgericht Hamburg"
    assert restored.seller.contact_name == "Anna Schmidt"
    assert build_cii_xml(restored) == build_cii_xml(snapshot)


def test_document_level_discount_is_an_allowance_that_adds_up() -> None:
    """A discount shown below the line total is EN 16931 BG-20: reason, code 95, base and
    percent, VAT category; BT-106 − BT-107 = BT-109 (BR-CO-13) and the EN 16931 rules pass."""
    from addon.invoicing.snapshot import Allowance

    base = samples.invoice()
    allowance = Allowance("Kanzleinachlass", D("38.93"), D("19"), percent=D("3"), base=D("1297.60"))
    net = base.net - allowance.amount
    vat = (net * D("0.19")).quantize(D("0.01"))
    snapshot = replace(base, allowances=(allowance,), net=net, vat=vat, gross=net + vat,
                       vat_groups=(VatGroup("S", D("19"), net, vat),))
    xml = build_cii_xml(snapshot)
    assert validate_cii(xml) == []
    root = etree.fromstring(xml)
    assert root.xpath(f"string({TOTALS}/ram:LineTotalAmount)", namespaces=NS) == "1297.60"
    assert root.xpath(f"string({TOTALS}/ram:AllowanceTotalAmount)", namespaces=NS) == "38.93"
    assert root.xpath(f"string({TOTALS}/ram:TaxBasisTotalAmount)", namespaces=NS) == "1258.67"
    charge = root.xpath(f"{SETTLEMENT}/ram:SpecifiedTradeAllowanceCharge", namespaces=NS)[0]
    assert [charge.xpath(f"string(ram:{name})", namespaces=NS) for name in (
        "ChargeIndicator/udt:Indicator", "CalculationPercent", "BasisAmount", "ActualAmount", "ReasonCode",
        "Reason", "CategoryTradeTax/ram:CategoryCode", "CategoryTradeTax/ram:RateApplicablePercent")] == [
        "false", "3.00", "1297.60", "38.93", "95", "Kanzleinachlass", "S", "19.00"]
    wrong = replace(snapshot, net=base.net)
    with pytest.raises(ValueError, match="less allowances"):
        build_cii_xml(wrong)
