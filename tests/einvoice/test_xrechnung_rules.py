"""XRechnung: a monthly invoice with late lines and its cancellation pass the EN 16931 rules and
the XRechnung/Peppol rules the sidecar's documents can break (BR-DE-*, PEPPOL-EN16931-R110/R111).

No package on PyPI, Debian or npm ships KoSIT's compiled XRechnung Schematron (the candidates
download it at run time or call a hosted service), so validate.xrechnung_rules re-implements the
named rules; every rule here has a document that breaks it, so none of them can pass vacuously.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest
import snapshot_samples as samples
from lxml import etree

from addon.invoicing.cancel import cancellation_snapshot
from addon.invoicing.einvoice import build_xrechnung_xml
from addon.invoicing.issue import Draft, DraftLine, build_snapshot
from addon.invoicing.snapshot import VatGroup
from addon.invoicing.validate import validate_xrechnung, xrechnung_rules
from addon.models import Customer, Ticket
from addon.settings import load_settings

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
SETTINGS = load_settings({
    "HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://127.0.0.1:1", "HELPDESK_TOKEN": "t",
    "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
    "SELLER_EMAIL": "buchhaltung@nordlicht-it.example", "SELLER_PHONE": "+49 40 1234567-0",
})
CITY = Customer(name="Bezirksamt", legal_name="Bezirksamt Hamburg-Nord", street="Kümmellstraße 7",
                postcode="20249", city="Hamburg", country="DE", customer_number="K-10004",
                email="e-rechnung@bezirksamt-nord.example", xrechnung=True, buyer_reference="02000000-12345-67")


def line(description: str, start: date, end: date, net: str) -> DraftLine:
    return DraftLine(description, D("1.0000"), "HUR", D(net), D(net), D("19"), start, end, (), {"kind": "time"},
                     ticket_number="31002")


def monthly_with_late_lines() -> Draft:
    """November's collective invoice that also bills October work booked late (as RE-2026-00026)."""
    lines = (line("Remote (Anna Becker)", date(2026, 10, 7), date(2026, 10, 13), "95.00"),
             line("Remote (Jonas Schulz)", date(2026, 11, 4), date(2026, 11, 4), "95.00"))
    return Draft(lines, (VatGroup("S", D("19"), D("190.00"), D("36.10")),), D("190.00"), D("36.10"), D("226.10"), (),
                 service_period=(date(2026, 11, 1), date(2026, 11, 30)))


def test_monthly_invoice_with_late_lines_has_a_header_period_covering_every_line() -> None:
    ticket = Ticket(number="31002", title="Monitor flackert")
    snapshot = build_snapshot(SETTINGS, CITY, [ticket], monthly_with_late_lines(), "RE-2026-00026",
                              date(2026, 12, 1))
    assert (snapshot.service_start, snapshot.service_end) == (date(2026, 10, 7), date(2026, 11, 30))
    assert snapshot.billing_month == "2026-11"
    xml = build_xrechnung_xml(snapshot)
    assert validate_xrechnung(xml) == []
    assert [f.rule for f in xrechnung_rules(xml)] == []


def test_the_old_header_period_fails_peppol_r110() -> None:
    """What RE-2026-00026 said: the month only, while lines were October work."""
    snapshot = build_snapshot(SETTINGS, CITY, [], monthly_with_late_lines(), "RE-2026-00026", date(2026, 12, 1))
    old = replace(snapshot, service_start=date(2026, 11, 1))
    findings = xrechnung_rules(build_xrechnung_xml(old))
    assert [f.rule for f in findings] == ["PEPPOL-EN16931-R110"]
    assert "20261007" in findings[0].text
    later = replace(snapshot, service_end=date(2026, 11, 3))
    assert [f.rule for f in xrechnung_rules(build_xrechnung_xml(later))] == ["PEPPOL-EN16931-R111"]


def test_cancellation_of_an_xrechnung_invoice_is_a_valid_xrechnung() -> None:
    invoice = build_snapshot(SETTINGS, CITY, [], monthly_with_late_lines(), "RE-2026-00026", date(2026, 12, 1))
    cancellation = cancellation_snapshot(invoice, SETTINGS, "ST-2026-00001", date(2026, 12, 3), "Adresse falsch")
    xml = build_xrechnung_xml(cancellation)
    assert validate_xrechnung(xml) == []  # XSD, every EN 16931 rule and the XRechnung rules
    root = etree.fromstring(xml)
    assert root.xpath("string(//rsm:ExchangedDocument/ram:TypeCode)", namespaces=NS) == "381"
    assert root.xpath("string(//ram:InvoiceReferencedDocument/ram:IssuerAssignedID)", namespaces=NS) == \
        "RE-2026-00026"


SETTLEMENT = "//ram:ApplicableHeaderTradeSettlement"
SELLER = "//ram:SellerTradeParty"
BUYER = "//ram:BuyerTradeParty"


@pytest.mark.parametrize(
    "remove, rule",
    [
        (f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans", "BR-DE-1"),
        (f"{SELLER}/ram:DefinedTradeContact", "BR-DE-2"),
        (f"{SELLER}/ram:PostalTradeAddress/ram:CityName", "BR-DE-3"),
        (f"{SELLER}/ram:PostalTradeAddress/ram:PostcodeCode", "BR-DE-4"),
        (f"{SELLER}/ram:DefinedTradeContact/ram:PersonName", "BR-DE-5"),
        (f"{SELLER}/ram:DefinedTradeContact/ram:TelephoneUniversalCommunication", "BR-DE-6"),
        (f"{SELLER}/ram:DefinedTradeContact/ram:EmailURIUniversalCommunication", "BR-DE-7"),
        (f"{BUYER}/ram:PostalTradeAddress/ram:CityName", "BR-DE-8"),
        (f"{BUYER}/ram:PostalTradeAddress/ram:PostcodeCode", "BR-DE-9"),
        (f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:RateApplicablePercent", "BR-DE-14"),
        ("//ram:BuyerReference", "BR-DE-15"),
        (f"{SELLER}/ram:SpecifiedTaxRegistration", "BR-DE-16"),
        (f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans/ram:PayeePartyCreditorFinancialAccount",
         "BR-DE-23-a"),
        (f"{BUYER}/ram:URIUniversalCommunication", "PEPPOL-EN16931-R010"),
        (f"{SELLER}/ram:URIUniversalCommunication", "PEPPOL-EN16931-R020"),
    ],
)
def test_each_rule_catches_the_document_that_breaks_it(remove: str, rule: str) -> None:
    snapshot = build_snapshot(SETTINGS, CITY, [], monthly_with_late_lines(), "RE-2026-00026", date(2026, 12, 1))
    root = etree.fromstring(build_xrechnung_xml(snapshot))
    nodes = root.xpath(remove, namespaces=NS)
    assert nodes, remove
    for node in nodes:
        node.getparent().remove(node)
    assert rule in [f.rule for f in xrechnung_rules(etree.tostring(root))]


@pytest.mark.parametrize("type_code, rule", [("875", None), ("71", "BR-DE-17"), ("384", "BR-DE-26")])
def test_type_code_rules_are_warnings(type_code: str, rule: str | None) -> None:
    snapshot = build_snapshot(SETTINGS, CITY, [], monthly_with_late_lines(), "RE-2026-00026", date(2026, 12, 1))
    root = etree.fromstring(build_xrechnung_xml(snapshot))
    root.xpath("//rsm:ExchangedDocument/ram:TypeCode", namespaces=NS)[0].text = type_code
    findings = xrechnung_rules(etree.tostring(root))
    assert [f.rule for f in findings] == ([rule] if rule else [])
    assert all(not f.is_error for f in findings)


def test_en16931_invoice_is_told_apart_by_br_de_21() -> None:
    from addon.invoicing.einvoice import build_cii_xml

    snapshot = replace(samples.invoice(), buyer=replace(samples.BUYER, email="a@b.example"))
    rules = [f.rule for f in xrechnung_rules(build_cii_xml(snapshot))]
    assert "BR-DE-21" in rules

