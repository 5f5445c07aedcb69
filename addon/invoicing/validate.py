"""Offline validation of CII e-invoices: XSD plus the EN 16931 business rules (Schematron).

Since the BMF letter of 15.10.2025 an XSD error makes a document "not an e-invoice" and a
fatal business-rule error can cost the buyer the input-tax deduction, so every XML is checked
before it leaves. Both artefacts ship inside the `factur-x` package (Factur-X 1.09 EN 16931 XSD
and the compiled EN 16931 Schematron XSLT with its code list database); saxonche runs the XSLT
in-process. Nothing is downloaded. factur-x's own `xml_check_schematron` needs an HTTP Saxon
server, which is why the XSLT is run here directly.

The XSLT is compiled once per process (0.3-0.6 s) and reused. A warm validation costs about
15 ms for a 3-line invoice and grows with the lines, about 1.5 ms each (48 lines 80 ms, 96 lines
150 ms on the 2-core development VM), almost all of it in the Schematron transform. The code
list lookups are not the cost: rewritten as xsl:key lookups they gave the same SVRL in the
same time.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import facturx
from lxml import etree

#: Folder with the Factur-X EN 16931 XSD and Schematron inside the installed factur-x package.
FACTURX_EN16931_DIR = Path(facturx.__file__).parent / "xsd_and_schematron" / "facturx-en16931"
XSD_PATH = FACTURX_EN16931_DIR / "Factur-X_EN16931.xsd"
SCHEMATRON_XSLT_PATH = FACTURX_EN16931_DIR / "FACTUR-X_EN16931.xslt"
CODEDB_PATH = FACTURX_EN16931_DIR / "FACTUR-X_EN16931_codedb.xml"

#: A compiled XRechnung CII Schematron XSLT (KoSIT) is not bundled with any package on PyPI,
#: Debian or npm (checked 2026-12: the PyPI candidates download it from GitHub at run time or
#: call a hosted service); deployments that have one point this variable at it and
#: `validate_xrechnung` runs it too. Without it, `xrechnung_rules` checks the national and
#: Peppol rules this sidecar's documents can break, written out below.
XRECHNUNG_XSLT_ENV = "TICKETBILL_XRECHNUNG_XSLT"

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
_GUIDELINE_ID_PATH = "GuidelineSpecifiedDocumentContextParameter"
_XRECHNUNG_MARK = "urn:xeinkauf.de:kosit:xrechnung"


@dataclass(frozen=True)
class Finding:
    """One failed check: rule id (e.g. BR-CO-15 or XSD), severity, where, and the rule text."""

    rule: str
    flag: str
    location: str
    text: str

    @property
    def is_error(self) -> bool:
        return self.flag not in ("warning", "information")

    def __str__(self) -> str:
        return f"{self.rule} [{self.flag}] {self.text} (at {self.location})"


class InvalidEInvoice(ValueError):
    """An e-invoice that must not be sent; `errors` lists every failed rule."""

    def __init__(self, number: str, errors: list[str]) -> None:
        super().__init__(f"e-invoice {number} is invalid: " + "; ".join(errors))
        self.errors = errors


def ensure_valid(xml_bytes: bytes, number: str, *, xrechnung: bool = False) -> None:
    """Raise InvalidEInvoice unless the XML passes; the issue step calls this before storing."""
    errors = validate_xrechnung(xml_bytes) if xrechnung else validate_cii(xml_bytes)
    if errors:
        raise InvalidEInvoice(number, errors)


def validate_cii(xml_bytes: bytes) -> list[str]:
    """Errors of an EN 16931 CII invoice against the XSD and the EN 16931 Schematron.

    An empty list means valid. Warnings are not errors; see `check_cii` for all findings.
    """
    return [str(finding) for finding in check_cii(xml_bytes) if finding.is_error]


def validate_xrechnung(xml_bytes: bytes, *, xrechnung_xslt: Path | None = None) -> list[str]:
    """Errors of an XRechnung CII invoice.

    Always: the XSD and all EN 16931 rules. The Factur-X Schematron also checks that BT-24 is a
    Factur-X profile id, which an XRechnung id never is; that single check is left out. The
    German national rules (BR-DE-*) need KoSIT's compiled XRechnung Schematron, which is run if
    `xrechnung_xslt` or the environment variable TICKETBILL_XRECHNUNG_XSLT names one.
    """
    findings = check_cii(xml_bytes)
    if _XRECHNUNG_MARK.encode() in _guideline(xml_bytes):
        findings = [f for f in findings if not _is_guideline_value_finding(f)]
    if not findings:
        findings.extend(xrechnung_rules(xml_bytes))
    path = xrechnung_xslt or (Path(p) if (p := os.environ.get(XRECHNUNG_XSLT_ENV)) else None)
    if path is not None and not findings:
        findings.extend(_schematron(xml_bytes, path))
    return [str(finding) for finding in findings if finding.is_error]


_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_AGREEMENT = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
_SETTLEMENT = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
_SELLER, _BUYER = f"{_AGREEMENT}/ram:SellerTradeParty", f"{_AGREEMENT}/ram:BuyerTradeParty"
_TYPE = "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:TypeCode"


def _one_of(path: str, *values: str) -> str:
    """XPath 1.0 (lxml) has no sequences: `path = 'a' or path = 'b' ...`."""
    return "(" + " or ".join(f"{path} = '{value}'" for value in values) + ")"


#: XRechnung 3.0 (KoSIT schematron 2.x) and Peppol rules, as XPath conditions that must hold:
#: (rule, flag, condition, text). Only rules a document of this sidecar can break are here; the
#: wording follows the rule texts. The EN 16931 rules themselves run from the official XSLT.
XRECHNUNG_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("BR-DE-1", "fatal", f"boolean({_SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans)",
     "An invoice must contain information on PAYMENT INSTRUCTIONS (BG-16)."),
    ("BR-DE-2", "fatal", f"boolean({_SELLER}/ram:DefinedTradeContact)",
     "The group SELLER CONTACT (BG-6) must be transmitted."),
    ("BR-DE-3", "fatal", f"boolean(normalize-space({_SELLER}/ram:PostalTradeAddress/ram:CityName))",
     "Seller city (BT-37) must be transmitted."),
    ("BR-DE-4", "fatal", f"boolean(normalize-space({_SELLER}/ram:PostalTradeAddress/ram:PostcodeCode))",
     "Seller post code (BT-38) must be transmitted."),
    ("BR-DE-5", "fatal", f"boolean(normalize-space({_SELLER}/ram:DefinedTradeContact/ram:PersonName))",
     "Seller contact point (BT-41) must be transmitted."),
    ("BR-DE-6", "fatal",
     f"boolean(normalize-space({_SELLER}/ram:DefinedTradeContact/ram:TelephoneUniversalCommunication"
     "/ram:CompleteNumber))", "Seller contact telephone number (BT-42) must be transmitted."),
    ("BR-DE-7", "fatal",
     f"boolean(normalize-space({_SELLER}/ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID))",
     "Seller contact email address (BT-43) must be transmitted."),
    ("BR-DE-8", "fatal", f"boolean(normalize-space({_BUYER}/ram:PostalTradeAddress/ram:CityName))",
     "Buyer city (BT-52) must be transmitted."),
    ("BR-DE-9", "fatal", f"boolean(normalize-space({_BUYER}/ram:PostalTradeAddress/ram:PostcodeCode))",
     "Buyer post code (BT-53) must be transmitted."),
    ("BR-DE-14", "fatal", f"not({_SETTLEMENT}/ram:ApplicableTradeTax[not(ram:RateApplicablePercent)])",
     "VAT category rate (BT-119) must be transmitted."),
    ("BR-DE-15", "fatal", f"boolean(normalize-space({_AGREEMENT}/ram:BuyerReference))",
     "Buyer reference (BT-10) must be transmitted (the Leitweg-ID of a public buyer)."),
    ("BR-DE-16", "fatal",
     f"not({_SETTLEMENT}/ram:ApplicableTradeTax/ram:CategoryCode"
     f"[{_one_of('.', 'S', 'Z', 'E', 'AE', 'K', 'G', 'L', 'M')}])"
     f" or boolean({_SELLER}/ram:SpecifiedTaxRegistration/ram:ID[{_one_of('@schemeID', 'VA', 'FC')}])",
     "Seller VAT identifier (BT-31) or seller tax registration (BT-32) must be transmitted."),
    ("BR-DE-17", "warning",
     _one_of(_TYPE, "326", "380", "384", "389", "381", "875", "876", "877"),
     "Invoice type code (BT-3) should be one of 326, 380, 384, 389, 381, 875, 876, 877."),
    ("BR-DE-21", "warning",
     "starts-with(/rsm:CrossIndustryInvoice/rsm:ExchangedDocumentContext"
     "/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID, "
     "'urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0')",
     "Specification identifier (BT-24) should be the XRechnung 3.0 identifier."),
    ("BR-DE-23-a", "fatal",
     f"not({_SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans[{_one_of('ram:TypeCode', '30', '58')}]"
     "[not(ram:PayeePartyCreditorFinancialAccount)])",
     "With payment means credit transfer (30, 58), CREDIT TRANSFER (BG-17) must be transmitted."),
    ("BR-DE-26", "warning",
     f"not({_TYPE} = '384') or boolean({_SETTLEMENT}/ram:InvoiceReferencedDocument)",
     "A corrected invoice (384) should reference the PRECEDING INVOICE (BG-3)."),
    ("PEPPOL-EN16931-R010", "fatal", f"boolean(normalize-space({_BUYER}/ram:URIUniversalCommunication/ram:URIID))",
     "Buyer electronic address (BT-49) MUST be provided."),
    ("PEPPOL-EN16931-R020", "fatal", f"boolean(normalize-space({_SELLER}/ram:URIUniversalCommunication/ram:URIID))",
     "Seller electronic address (BT-34) MUST be provided."),
)
#: Line period within the invoice period (PEPPOL-EN16931-R110 / R111), on yyyymmdd strings.
_PERIOD = f"{_SETTLEMENT}/ram:BillingSpecifiedPeriod"
_LINES = ("/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem"
          "/ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod")


def xrechnung_rules(xml_bytes: bytes) -> list[Finding]:
    """Findings of the XRechnung national rules (BR-DE-*) and the Peppol rules listed in
    XRECHNUNG_RULES, plus PEPPOL-EN16931-R110/R111: every line period (BG-26) inside the
    invoice period (BG-14). A re-implementation of these rules, not KoSIT's artefact."""
    root = etree.fromstring(xml_bytes, parser=etree.XMLParser(resolve_entities=False))
    findings = [Finding(rule, flag, "/", text) for rule, flag, condition, text in XRECHNUNG_RULES
                if not root.xpath(condition, namespaces=_NS)]
    start = root.xpath(f"string({_PERIOD}/ram:StartDateTime/udt:DateTimeString)", namespaces=_NS)
    end = root.xpath(f"string({_PERIOD}/ram:EndDateTime/udt:DateTimeString)", namespaces=_NS)
    for index, period in enumerate(root.xpath(_LINES, namespaces=_NS), start=1):
        line_start = period.xpath("string(ram:StartDateTime/udt:DateTimeString)", namespaces=_NS)
        line_end = period.xpath("string(ram:EndDateTime/udt:DateTimeString)", namespaces=_NS)
        if start and line_start and line_start < start:
            findings.append(Finding("PEPPOL-EN16931-R110", "fatal", f"line {index}",
                                    f"Start date of line period ({line_start}) MUST be within invoice period "
                                    f"({start}-{end})."))
        if end and line_end and line_end > end:
            findings.append(Finding("PEPPOL-EN16931-R111", "fatal", f"line {index}",
                                    f"End date of line period ({line_end}) MUST be within invoice period "
                                    f"({start}-{end})."))
    return findings


def check_cii(xml_bytes: bytes) -> list[Finding]:
    """All findings (errors and warnings). Schematron runs only on XSD-valid input, because
    business rules over a structurally broken document produce noise, not information."""
    try:
        document = etree.fromstring(xml_bytes, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        return [Finding("XML", "fatal", "/", f"not well-formed XML: {exc}")]
    schema = _xsd()
    if not schema.validate(document):
        return [
            Finding("XSD", "fatal", f"line {error.line}", error.message)
            for error in schema.error_log
        ]
    return _schematron(xml_bytes, SCHEMATRON_XSLT_PATH)


def _short_path(location: str) -> str:
    """`/*:A[namespace-uri()='...'][1]/*:B[...][1]` -> `/A/B`: readable in logs and reports."""
    return re.sub(r"\[[^\]]*\]", "", location).replace("*:", "")


def _guideline(xml_bytes: bytes) -> bytes:
    """BT-24 of the document, or b"" if it cannot be read."""
    try:
        root = etree.fromstring(xml_bytes, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        return b""
    values = root.xpath(f"//*[local-name()='{_GUIDELINE_ID_PATH}']/*[local-name()='ID']/text()")
    return str(values[0]).encode() if values else b""


def _is_guideline_value_finding(finding: Finding) -> bool:
    return _GUIDELINE_ID_PATH in finding.location and finding.rule.startswith("FX-SCH-")


_lock = threading.Lock()
_schema: etree.XMLSchema | None = None
_processor = None
_executables: dict[Path, Any] = {}


def _xsd() -> etree.XMLSchema:
    global _schema
    with _lock:
        if _schema is None:
            _schema = etree.XMLSchema(etree.parse(str(XSD_PATH)))
        return _schema


def _compile(processor: Any, xslt_path: Path) -> Any:
    """Compile a Schematron XSLT. The Factur-X one looks up its code lists with
    `document('FACTUR-X_EN16931_codedb.xml')` 118 times, and Saxon re-reads that 180 KB file in
    every transformation; passing it once as a pre-parsed parameter halves the validation time
    (about 18 -> 9 ms here) with an identical SVRL report."""
    if not xslt_path.is_file():
        raise FileNotFoundError(f"Schematron XSLT not found: {xslt_path}")
    compiler = processor.new_xslt30_processor()
    source = xslt_path.read_text(encoding="utf-8")
    lookup = f"document('{CODEDB_PATH.name}')"
    if xslt_path != SCHEMATRON_XSLT_PATH or lookup not in source:
        return compiler.compile_stylesheet(stylesheet_file=str(xslt_path))
    source = source.replace(lookup, "$codedb")
    first_declaration = source.index("<xsl:", source.index("<xsl:stylesheet") + 1)
    source = (
        source[:first_declaration]
        + '<xsl:param name="codedb" required="yes"/>\n'
        + source[first_declaration:]
    )
    executable = compiler.compile_stylesheet(stylesheet_text=source)
    executable.set_parameter("codedb", processor.parse_xml(xml_file_name=str(CODEDB_PATH)))
    return executable


def _schematron(xml_bytes: bytes, xslt_path: Path) -> list[Finding]:
    """Run one compiled Schematron XSLT and turn its SVRL failed-asserts into findings.

    saxonche's processor is not documented as thread-safe, so transforms are serialised; the
    monthly pass runs them in its render workers, one processor each (addon.invoicing.prerender).
    """
    global _processor
    from saxonche import PySaxonProcessor

    with _lock:
        if _processor is None:
            _processor = PySaxonProcessor(license=False)
        executable = _executables.get(xslt_path)
        if executable is None:
            executable = _compile(_processor, xslt_path)
            _executables[xslt_path] = executable
        node = _processor.parse_xml(xml_text=xml_bytes.decode("utf-8"))
        svrl = executable.transform_to_string(xdm_node=node)
    report = etree.fromstring(svrl.encode("utf-8"))
    return [
        Finding(
            rule=assertion.get("id") or "(no id)",
            flag=assertion.get("flag") or "fatal",
            location=_short_path(assertion.get("location") or ""),
            text=" ".join(assertion.findtext(f"{SVRL}text", default="").split()),
        )
        for assertion in report.iter(f"{SVRL}failed-assert", f"{SVRL}successful-report")
    ]
