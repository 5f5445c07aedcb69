"""Factur-X/ZUGFeRD hybrid: XML embedded in a PDF made by xhtml2pdf, checked with pypdf."""

from __future__ import annotations

import io

import pytest
import snapshot_samples as samples
from pypdf import PdfReader
from xhtml2pdf import pisa

from addon.invoicing.einvoice import build_cii_xml, embed_facturx, extract_xml

HTML = """<html><body><h1>Rechnung RE-2026-00042</h1>
<p style="color:#1a4d80">Nordlicht IT-Service GmbH an Müller &amp; Söhne Maschinenbau KG</p>
<p>Gesamtbetrag 1.544,14 €</p></body></html>"""


@pytest.fixture(scope="module")
def plain_pdf() -> bytes:
    out = io.BytesIO()
    status = pisa.CreatePDF(HTML, dest=out, encoding="utf-8")
    assert not status.err
    return out.getvalue()


@pytest.fixture(scope="module")
def xml() -> bytes:
    return build_cii_xml(samples.invoice())


@pytest.fixture(scope="module")
def hybrid(plain_pdf: bytes, xml: bytes) -> bytes:
    return embed_facturx(plain_pdf, xml)


def test_embedded_xml_comes_back_byte_identical(hybrid: bytes, xml: bytes) -> None:
    assert extract_xml(hybrid) == xml


def test_the_embedded_file_is_factur_x_xml_and_linked_as_associated_file(hybrid: bytes) -> None:
    reader = PdfReader(io.BytesIO(hybrid))
    root = reader.trailer["/Root"]
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    assert names[0] == "factur-x.xml"
    filespec = names[1].get_object()
    assert filespec["/F"] == "factur-x.xml"
    assert filespec["/AFRelationship"] in ("/Data", "/Alternative", "/Source")
    assert filespec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"
    assert [a.get_object() for a in root["/AF"]] == [filespec]
    assert root["/Lang"] == "de-DE"
    assert "/ID" in reader.trailer
    assert "/Encrypt" not in reader.trailer


def test_srgb_output_intent_is_present(hybrid: bytes) -> None:
    root = PdfReader(io.BytesIO(hybrid)).trailer["/Root"]
    intents = [intent.get_object() for intent in root["/OutputIntents"]]
    assert len(intents) == 1
    intent = intents[0]
    assert intent["/S"] == "/GTS_PDFA1"
    assert intent["/OutputConditionIdentifier"] == "sRGB"
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3
    icc = profile.get_data()
    assert icc[36:40] == b"acsp" and icc[16:20] == b"RGB "  # ICC signature, RGB colour space


def test_xmp_declares_pdfa3_and_factur_x_en16931(hybrid: bytes) -> None:
    reader = PdfReader(io.BytesIO(hybrid))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfaid:part>3</pdfaid:part>" in xmp
    assert "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in xmp
    assert "<fx:DocumentType>INVOICE</fx:DocumentType>" in xmp
    assert "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#" in xmp
    assert hybrid.startswith(b"%PDF-1.7")


def test_the_visible_pdf_is_unchanged(hybrid: bytes, plain_pdf: bytes) -> None:
    before = PdfReader(io.BytesIO(plain_pdf)).pages[0].extract_text()
    after = PdfReader(io.BytesIO(hybrid)).pages[0].extract_text()
    assert after == before
    assert "1.544,14" in after


def test_an_existing_output_intent_is_kept_not_duplicated(hybrid: bytes, xml: bytes) -> None:
    again = embed_facturx(hybrid, xml)
    root = PdfReader(io.BytesIO(again)).trailer["/Root"]
    assert len(root["/OutputIntents"]) == 1
    assert extract_xml(again) == xml


def test_extracting_from_a_plain_pdf_is_a_clear_error(plain_pdf: bytes) -> None:
    with pytest.raises(ValueError, match="no embedded Factur-X"):
        extract_xml(plain_pdf)
