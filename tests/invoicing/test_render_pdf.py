"""The invoice PDF: legally required content per language, embedded fonts, annex, page count.

Every document is rendered once per module and read back with pypdf, so the assertions check what
a recipient's accountant actually sees, formatted as the invoice language demands.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
import snapshot_factories as fx
from PIL import Image
from pypdf import PdfReader
from xhtml2pdf import pisa

from addon.invoicing import render_pdf as render_module
from addon.invoicing.formatting import Formats, language_of
from addon.invoicing.pdf_pages import assemble
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot, Line, Party, VatGroup

BASE14 = {
    "Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Helvetica-BoldOblique",
    "Times-Roman", "Times-Bold", "Times-Italic", "Times-BoldItalic",
    "Courier", "Courier-Bold", "Courier-Oblique", "Courier-BoldOblique",
    "Symbol", "ZapfDingbats",
}


def page_texts(rendered: RenderedFile) -> list[str]:
    """Text per page, with non-breaking spaces and line breaks collapsed to single spaces."""
    reader = PdfReader(io.BytesIO(rendered.content))
    return [re.sub(r"\s+", " ", page.extract_text().replace("\xa0", " ")) for page in reader.pages]


def all_text(rendered: RenderedFile) -> str:
    return " ".join(page_texts(rendered))


def fonts_of(rendered: RenderedFile) -> list[tuple[str, bool]]:
    """(base font name, embedded as TrueType) for every font of every page and form XObject."""
    found: list[tuple[str, bool]] = []

    def walk(resources, depth: int = 0) -> None:
        resources = resources.get_object() if resources is not None else {}
        for font in (resources.get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            embedded = descriptor is not None and "/FontFile2" in descriptor.get_object()
            found.append((str(font["/BaseFont"]).lstrip("/"), embedded))
        for xobject in (resources.get("/XObject") or {}).values():
            xobject = xobject.get_object()
            if xobject.get("/Subtype") == "/Form" and depth < 10:
                walk(xobject.get("/Resources"), depth + 1)

    for page in PdfReader(io.BytesIO(rendered.content)).pages:
        walk(page.get("/Resources"))
    return found


@pytest.fixture(scope="module")
def german() -> RenderedFile:
    return render_pdf(fx.invoice())


@pytest.fixture(scope="module")
def english() -> RenderedFile:
    return render_pdf(
        fx.invoice(language="en", payment_terms="Payable within 14 days without deduction.")
    )


@pytest.fixture(scope="module")
def cancellation() -> RenderedFile:
    return render_pdf(fx.cancellation())


@pytest.fixture(scope="module")
def reverse_charge() -> RenderedFile:
    return render_pdf(fx.reverse_charge())


def test_german_invoice_prints_every_mandatory_item(german: RenderedFile) -> None:
    text = all_text(german)
    expected = [
        "Rechnung RE-2026-00042",
        "Rechnungsnr. RE-2026-00042",
        "Rechnungsdatum 30.11.2026",
        "Fällig am 14.12.2026",
        "Leistungszeitraum 01.11.2026 – 30.11.2026",
        "Kundennr. K-10042",
        "Ihre Referenz PO-7781",
        # both parties, with addresses and VAT IDs; the seller's tax number and bank account
        "Nordlicht IT-Service GmbH",
        "Hafenstraße 12",
        "Müller & Söhne Maschinenbau KG z. Hd. Frau Petra Müller Industriestraße 7",
        "Ansprechpartner Anna Schmidt",
        "HRB 123456, AG Hamburg",
        "80331 München",
        "Ihre USt-IdNr. DE987654321",
        "USt-IdNr. DE123456789",
        "Steuernr. 27/123/45678",
        "IBAN DE89 3704 0044 0532 0130 00",
        "BIC COBADEFFXXX",
        "Commerzbank Hamburg",
        "buchhaltung@nordlicht-it.de",
        # lines under their ticket (named once): description, dates, quantity, unit price, net
        "Ticket 20261104001 – Mailserver nimmt keine Verbindungen an "
        "1 Störungsbehebung Mailserver 04.–05.11.2026 1,50 Std. 95,00 € 142,50 €",
        "Ticket 20261112007 – Neuer Arbeitsplatz Buchhaltung "
        "2 Einrichtung Arbeitsplatz 12.11.2026 1,75 Std. 95,00 € 166,25 €",
        "3 Anfahrt Kundenstandort 42,00 km 0,30 € 12,60 €",
        "4 Kulanzgutschrift Wartezeit -0,25 Std. 95,00 € -23,75 €",
        "USB-Headset 2 Stk. 500,00 € 1.000,00 €",
        # totals with the VAT breakdown
        "Summe netto 1.297,60 €",
        "Umsatzsteuer 19 % auf 1.297,60 € 246,54 €",
        "Gesamtbetrag 1.544,14 €",
        "Bitte überweisen Sie den Gesamtbetrag von 1.544,14 € bis zum 14.12.2026",
        "Zahlbar innerhalb von 14 Tagen ohne Abzug.",
        "Vielen Dank für Ihren Auftrag.",
    ]
    missing = [item for item in expected if item not in text]
    assert not missing, f"missing on the PDF: {missing}\n---\n{text}"
    assert german.filename == "Rechnung_RE-2026-00042.pdf"
    assert german.mimetype == "application/pdf"
    assert german.content.startswith(b"%PDF-")


def test_german_invoice_annex_follows_the_letter(german: RenderedFile) -> None:
    pages = page_texts(german)
    assert len(pages) == 2
    assert "Seite 1 von 2" in pages[0] and "Seite 2 von 2" in pages[1]
    annex = " ".join(pages)[" ".join(pages).index("Vielen Dank für Ihren Auftrag."):]
    for item in (
        "Leistungsnachweis",
        "Ticket 20261104001 – Mailserver nimmt keine Verbindungen an",
        "04.11.2026 Anna Schmidt Analyse Postfix-Logs, TLS-Zertifikat erneuert 0:47 1:00",
        "05.11.2026 Jonas Weber Monitoring eingerichtet 0:25 0:30",
        "Summe Ticket 20261104001 1:12 1:30",
        "12.11.2026 Anna Schmidt PC aufgesetzt, Drucker eingebunden 1:35 1:45",
        "Gesamtsumme 2:47 3:15",
    ):
        assert item in annex, f"{item!r} not in annex page: {annex}"
    # the seller footer repeats on every page
    assert "USt-IdNr. DE123456789" in pages[1]


@pytest.mark.parametrize(
    "snapshot, with_annex",
    [(fx.invoice(), False), (fx.invoice(annex=()), True)],
    ids=["annex-not-wanted", "annex-empty"],
)
def test_no_annex_page_without_annex(snapshot: InvoiceSnapshot, with_annex: bool) -> None:
    pages = page_texts(render_pdf(snapshot, with_annex=with_annex))
    assert len(pages) == 1
    assert "Seite 1 von 1" in pages[0]
    assert "Leistungsnachweis" not in pages[0]
    assert "Gesamtbetrag 1.544,14 €" in pages[0]


def test_english_invoice_uses_english_labels_and_formats(english: RenderedFile) -> None:
    text = all_text(english)
    for item in (
        "Invoice RE-2026-00042",
        "Invoice no. RE-2026-00042",
        "Invoice date 30 Nov 2026",
        "Due date 14 Dec 2026",
        "Service period 1 Nov 2026 – 30 Nov 2026",
        "Customer no. K-10042",
        "Your VAT ID DE987654321",
        "Contact Anna Schmidt",
        "Attn. Frau Petra Müller",
        "VAT ID DE123456789",
        "Tax no. 27/123/45678",
        "1.50 h €95.00 €142.50",
        "42.00 km €0.30 €12.60",
        "-0.25 h €95.00 -€23.75",
        "USB-Headset 2 pcs €500.00 €1,000.00",
        "Total net €1,297.60",
        "VAT 19% on €1,297.60 €246.54",
        "Total amount €1,544.14",
        "Please transfer the total amount of €1,544.14 by 14 Dec 2026",
        "Payable within 14 days without deduction.",
        "Page 1 of 2",
        "Activity report",
        "Total ticket 20261104001 1:12 1:30",
        "Grand total 2:47 3:15",
        "Germany",
    ):
        assert item in text, f"{item!r} not on the English PDF: {text}"
    for german_word in ("Rechnungsnr", "Seite", "Umsatzsteuer", "Leistungsnachweis", "1.544,14"):
        assert german_word not in text
    assert english.filename == "Invoice_RE-2026-00042.pdf"


def test_cancellation_references_the_original(cancellation: RenderedFile) -> None:
    text = all_text(cancellation)
    for item in (
        "Stornorechnung RE-2026-00050",
        "Storno zur Rechnung Nr. RE-2026-00042 vom 30.11.2026",
        "Stornorechnungsnr. RE-2026-00050",
        "Rechnungsdatum 03.12.2026",
        "Ursprungsrechnung RE-2026-00042",
        "vom 30.11.2026",
        "Gesamtbetrag 1.544,14 €",
        "Den Betrag von 1.544,14 € erstatten wir Ihnen",
        "hiermit stornieren wir die Rechnung Nr. RE-2026-00042 vom 30.11.2026 vollständig.",
        "Bitte buchen Sie die Rechnung RE-2026-00042 und diese Stornorechnung gegeneinander aus.",
        "Soweit die Leistungen zu berechnen sind, erhalten Sie darüber eine neue Rechnung.",
    ):
        assert item in text, f"{item!r} not on the cancellation: {text}"
    # a cancellation asks for no payment, has no due date and none of the invoice's phrases
    for phrase in ("Bitte überweisen", "Fällig am", "Vielen Dank für Ihren Auftrag", "Abgerechnete Tickets",
                   "berechnen wir Ihnen"):
        assert phrase not in text
    assert len(page_texts(cancellation)) == 1
    assert cancellation.filename == "Stornorechnung_RE-2026-00050.pdf"


def test_english_cancellation_title() -> None:
    text = all_text(render_pdf(fx.cancellation(language="en")))
    assert "Cancellation invoice RE-2026-00050" in text
    assert "Cancels invoice no. RE-2026-00042 of 30 Nov 2026" in text


def test_reverse_charge_prints_wording_and_both_vat_ids(reverse_charge: RenderedFile) -> None:
    text = all_text(reverse_charge)
    for item in (
        "Wiener Logistik GmbH",
        "1020 Wien AUSTRIA",
        "Ticket 20261120003 – VPN gateway migration 1 Remote support: VPN gateway migration 3.25 h €110.00 €357.50",
        "Firewall licence renewal 1 pcs €240.00 €240.00",
        "VAT 0% (reverse charge) on €597.50 €0.00",
        "Total amount €597.50",
        "Steuerschuldnerschaft des Leistungsempfängers",
        "Supplier VAT ID: DE123456789, customer VAT ID: ATU12345678.",
        "Your VAT ID ATU12345678",
    ):
        assert item in text, f"{item!r} not on the reverse-charge PDF: {text}"
    assert "19%" not in text


def test_reverse_charge_uses_the_snapshot_exemption_reason() -> None:
    reason = "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge)"
    snapshot = fx.reverse_charge(
        language="de",
        vat_groups=(VatGroup("AE", D("0"), D("597.50"), D("0.00"), reason),),
    )
    text = all_text(render_pdf(snapshot))
    assert reason in text
    assert (
        "USt-IdNr. des Leistenden: DE123456789, USt-IdNr. des Leistungsempfängers: ATU12345678."
        in text
    )
    assert "Umsatzsteuer 0 % (Reverse Charge) auf 597,50 € 0,00 €" in text
    assert "ÖSTERREICH" in text


def test_small_business_invoice_shows_section_19_note_and_no_vat_row() -> None:
    seller = replace(fx.SELLER, vat_id=None)
    line = Line(1, "Druckereinrichtung", D("2"), "HUR", D("60.00"), D("120.00"), D("0"),
                vat_category="E")
    snapshot = fx.invoice(
        seller=seller,
        lines=(line,),
        vat_groups=(VatGroup("E", D("0"), D("120.00"), D("0.00")),),
        net=D("120.00"),
        vat=D("0.00"),
        gross=D("120.00"),
        annex=(),
    )
    text = all_text(render_pdf(snapshot))
    assert "Kein Ausweis von Umsatzsteuer, da Kleinunternehmer gemäß § 19 UStG." in text
    assert "Steuernr. 27/123/45678" in text
    assert "Gesamtbetrag 120,00 €" in text
    assert "Summe netto" not in text  # one amount only (§ 34a UStDV)
    assert "Umsatzsteuer" not in text.replace("Kein Ausweis von Umsatzsteuer", "")


def test_every_font_is_embedded_and_none_is_base14(
    german: RenderedFile, english: RenderedFile, cancellation: RenderedFile,
    reverse_charge: RenderedFile,
) -> None:
    for rendered in (german, english, cancellation, reverse_charge):
        fonts = fonts_of(rendered)
        assert fonts, "no fonts found at all"
        assert all(embedded for _, embedded in fonts), fonts
        names = {name.split("+", 1)[-1] for name, _ in fonts}
        assert not names & BASE14, names
        assert b"Helvetica" not in rendered.content


def test_pdf_declares_an_srgb_output_intent(german: RenderedFile) -> None:
    root = PdfReader(io.BytesIO(german.content)).trailer["/Root"]
    intents = root["/OutputIntents"]
    assert len(intents) == 1
    intent = intents[0].get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3
    assert profile.get_data()[36:40] == b"acsp"  # the ICC profile signature


def test_long_invoice_flows_over_pages_with_page_numbers() -> None:
    lines = tuple(
        Line(n, f"Wartungsarbeit Nummer {n}", D("1.00"), "HUR", D("95.00"), D("95.00"),
             D("19"), ticket_number=f"2026110{n:04d}")
        for n in range(1, 61)
    )
    snapshot = fx.invoice(
        lines=lines,
        vat_groups=(VatGroup("S", D("19"), D("5700.00"), D("1083.00")),),
        net=D("5700.00"),
        vat=D("1083.00"),
        gross=D("6783.00"),
    )
    pages = page_texts(render_pdf(snapshot))
    count = len(pages)
    assert count >= 4  # at least 3 pages of lines and the annex
    for number, text in enumerate(pages, start=1):
        assert f"Seite {number} von {count}" in text
    assert "Wartungsarbeit Nummer 60" in " ".join(pages[:-1])
    # the table header repeats on continuation pages, the letter head does not
    assert "Pos. Beschreibung Menge Einzelpreis Betrag (netto)" in pages[1]
    assert "Sehr geehrte Damen und Herren" not in pages[1]
    assert "Leistungsnachweis" in pages[-1]
    assert "Gesamtbetrag 6.783,00 €" in " ".join(pages)


def test_logo_is_drawn_on_the_first_page(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGB", (300, 120), (31, 58, 95)).save(logo)
    rendered = render_pdf(fx.invoice(annex=()), logo_path=logo)
    page = PdfReader(io.BytesIO(rendered.content)).pages[0]
    images = [x.get_object() for x in page["/Resources"]["/XObject"].values()]
    assert any(x["/Subtype"] == "/Image" and x["/Width"] == 300 for x in images)


def test_markup_in_helpdesk_text_is_printed_not_interpreted() -> None:
    evil = "<b>Drucker</b> & <img src='/etc/passwd'> kaputt"
    snapshot = fx.invoice(
        lines=(replace(fx.lines_19()[0], description=evil),), annex=()
    )
    text = all_text(render_pdf(snapshot))
    assert "<b>Drucker</b> & <img src='/etc/passwd'> kaputt" in text


def test_snapshot_read_back_from_json_renders_the_same_text() -> None:
    snapshot = fx.invoice()
    again = InvoiceSnapshot.from_json(snapshot.to_json())
    assert page_texts(render_pdf(again)) == page_texts(render_pdf(snapshot))


@pytest.mark.parametrize(
    "snapshot, message",
    [
        (fx.cancellation(preceding_number=None), "must name the invoice it cancels"),
        (fx.reverse_charge(buyer=replace(fx.EU_BUYER, vat_id=None)), "VAT IDs of both"),
        (fx.invoice(language="fr"), "language 'fr' is not supported"),
        (fx.invoice(type_code="999"), "type code '999'"),
    ],
    ids=["cancellation-without-original", "reverse-charge-without-vat-id", "language",
         "type-code"],
)
def test_defective_snapshots_are_refused(snapshot: InvoiceSnapshot, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_pdf(snapshot)


def test_missing_logo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="logo"):
        render_pdf(fx.invoice(), logo_path=tmp_path / "nope.png")


def test_central_european_names_keep_their_letters() -> None:
    buyer = Party("Łódzka Spółka Informatyczna sp. z o.o.", "ul. Piotrkowska 5", "90-001",
                  "Łódź", "PL", vat_id="PL1234567890")
    text = all_text(render_pdf(fx.reverse_charge(buyer=buyer)))
    assert "Łódzka Spółka Informatyczna sp. z o.o." in text
    assert "90-001 Łódź POLAND" in text


@pytest.mark.parametrize(
    "language, method, args, expected",
    [
        ("de", "money", (D("1234.56"),), "1.234,56\xa0€"),
        ("en", "money", (D("1234.56"),), "€1,234.56"),
        ("de", "money", (D("-5"),), "-5,00\xa0€"),
        ("de", "unit_price", (D("0.345"),), "0,345\xa0€"),
        ("de", "quantity", (D("1.5"), "HUR"), "1,50"),
        ("en", "quantity", (D("1234.5"), "HUR"), "1,234.50"),
        ("de", "quantity", (D("3"), "C62"), "3"),
        ("de", "unit", ("HUR",), "Std."),
        ("en", "unit", ("C62",), "pcs"),
        ("de", "unit", ("KMT",), "km"),
        ("de", "percent", (D("19"),), "19\xa0%"),
        ("en", "percent", (D("7.5"),), "7.5%"),
        ("de", "date", (date(2026, 3, 5),), "05.03.2026"),
        ("en", "date", (date(2026, 3, 5),), "5 Mar 2026"),
        ("de", "duration", (D("95"),), "1:35"),
        ("de", "duration", (D("0"),), "0:00"),
        ("de", "duration", (D("59.5"),), "1:00"),
        ("de", "duration", (D("-30"),), "-0:30"),
        ("de", "country", ("AT",), "Österreich"),
    ],
)
def test_formats(language: str, method: str, args: tuple, expected: str) -> None:
    assert getattr(Formats(language, "EUR"), method)(*args) == expected


@pytest.mark.parametrize("tag, language", [("de", "de"), ("de-DE", "de"), ("en_GB", "en")])
def test_language_tags(tag: str, language: str) -> None:
    assert language_of(tag) == language


def test_plain_xhtml2pdf_output_with_helvetica_is_refused() -> None:
    """The post-processing guard: text in a base-14 font must never reach an issued invoice."""
    buffer = io.BytesIO()
    pisa.CreatePDF("<p>Rechnung</p>", dest=buffer)
    with pytest.raises(RuntimeError, match="Helvetica"):
        assemble(buffer.getvalue(), annex=None, frame_page=False, labels=None, label="plain")


def test_falls_back_to_reportlabs_vera_without_dejavu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(render_module, "DEJAVU_DIR", tmp_path / "no-fonts-here")
    render_module.invoice_fonts.cache_clear()
    try:
        rendered = render_pdf(fx.invoice(annex=()))
    finally:
        render_module.invoice_fonts.cache_clear()
    fonts = fonts_of(rendered)
    assert {name.split("+", 1)[-1] for name, _ in fonts} == {"BitstreamVeraSans-Roman",
                                                              "BitstreamVeraSans-Bold"}
    assert all(embedded for _, embedded in fonts)
    assert "Gesamtbetrag 1.544,14 €" in all_text(rendered)


def _annotations(rendered: RenderedFile) -> list:
    return [a.get_object() for page in PdfReader(io.BytesIO(rendered.content)).pages
            for a in page.get("/Annots") or ()]


def test_every_annotation_is_printed_and_never_hidden() -> None:
    """PDF/A-3 (ISO 19005-3 6.3.2): an annotation has /F with Print set and Hidden,
    Invisible, NoView, ToggleNoView clear. veraPDF failed 47 of 53 demo PDFs on this."""
    rendered = render_pdf(fx.invoice())  # the sample tickets carry a customer portal link
    annotations = _annotations(rendered)
    assert annotations, "the sample has ticket links; expected link annotations"
    for annotation in annotations:
        flags = int(annotation["/F"])
        assert flags & 4, annotation
        assert not flags & (1 | 2 | 32 | 256), annotation


def test_a_ticket_without_customer_url_is_printed_without_link() -> None:
    tickets = tuple(replace(ticket, url=None) for ticket in fx.TICKETS)
    rendered = render_pdf(fx.invoice(tickets=tickets))
    assert _annotations(rendered) == []
    assert "Ticket 20261104001 – Mailserver nimmt keine Verbindungen an" in all_text(rendered)
    assert b"helpdesk.example.com" not in rendered.content


def test_one_line_invoice_is_one_page() -> None:
    """A one-hour invoice with its two bookings used to take two pages (the annex forced a
    page break and page 2 held a one-row table)."""
    line = replace(fx.lines_19()[0], quantity=D("1.00"), net=D("95.00"))
    annex = tuple(e for e in fx.ANNEX if e.ticket_number == line.ticket_number)
    snapshot = fx.invoice(
        lines=(line,), tickets=fx.TICKETS[:1], annex=annex,
        vat_groups=(VatGroup("S", D("19"), D("95.00"), D("18.05")),),
        net=D("95.00"), vat=D("18.05"), gross=D("113.05"),
    )
    pages = page_texts(render_pdf(snapshot))
    assert len(pages) == 1, pages
    assert "Seite 1 von 1" in pages[0]
    assert "Leistungsnachweis" in pages[0] and "Summe Ticket 20261104001 1:12 1:30" in pages[0]


def test_footer_email_is_never_broken_inside_the_address() -> None:
    seller = replace(fx.SELLER, email="buchhaltung@nordlicht-it.example")
    rendered = render_pdf(fx.invoice(seller=seller, annex=()))
    raw = PdfReader(io.BytesIO(rendered.content)).pages[0].extract_text()
    footer = raw[raw.index("Hafenstraße 12\n20457"):]
    assert "buchhaltung@nordlicht-it.example" in footer, footer


def test_long_activity_report_has_running_head_footer_and_page_numbers() -> None:
    annex = tuple(
        replace(fx.ANNEX[i % 3], agent=f"Agent {i:03d}") for i in range(240)
    )
    rendered = render_pdf(fx.invoice(annex=annex))
    pages = page_texts(rendered)
    count = len(pages)
    assert count >= 6
    for number, text in enumerate(pages, start=1):
        assert f"Seite {number} von {count}" in text
        assert "USt-IdNr. DE123456789" in text  # the template's footer on every page
    for text in pages[2:]:
        assert "Rechnung RE-2026-00042 · 30.11.2026" in text  # the template's running head
    text = " ".join(pages)
    assert "Anlage zur Rechnung Nr. RE-2026-00042 vom 30.11.2026" in text
    assert all(f"Agent {i:03d}" in text for i in range(240))
    assert "Gesamtsumme" in pages[-1]
    assert all(embedded for _, embedded in fonts_of(rendered))
    assert b"Helvetica" not in rendered.content


def test_allowance_is_printed_between_line_total_and_net() -> None:
    from addon.invoicing.snapshot import Allowance

    allowance = Allowance("Kanzleinachlass", D("38.93"), D("19"), percent=D("3"), base=D("1297.60"))
    snapshot = fx.invoice(allowances=(allowance,), net=D("1258.67"), vat=D("239.15"), gross=D("1497.82"),
                          vat_groups=(VatGroup("S", D("19"), D("1258.67"), D("239.15")),), annex=())
    text = all_text(render_pdf(snapshot))
    assert ("Summe Positionen 1.297,60 € abzüglich Kanzleinachlass (3 % auf 1.297,60 €) -38,93 € "
            "Summe netto 1.258,67 € Umsatzsteuer 19 % auf 1.258,67 € 239,15 € Gesamtbetrag 1.497,82 €") in text


def test_activity_report_asks_for_nothing_and_shows_no_prices() -> None:
    from addon.invoicing.snapshot import ACTIVITY_REPORT

    free = tuple(replace(line, unit_price=D("0.00"), net=D("0.00")) for line in fx.lines_19()[:2])
    snapshot = fx.invoice(type_code=ACTIVITY_REPORT, number="LN-2026-00001", lines=free, due_date=None,
                          payment_terms=None, net=D("0.00"), vat=D("0.00"), gross=D("0.00"),
                          vat_groups=(VatGroup("S", D("19"), D("0.00"), D("0.00")),))
    rendered = render_pdf(snapshot)
    text = all_text(rendered)
    for item in ("Leistungsnachweis ohne Berechnung LN-2026-00001", "Nachweisnr. LN-2026-00001",
                 "haben wir für Sie ohne Berechnung erbracht", "eine Zahlung ist nicht zu leisten",
                 "Vielen Dank für Ihr Vertrauen."):
        assert item in text, item
    for phrase in ("Bitte überweisen", "Gesamtbetrag", "Einzelpreis", "Fällig am", "0,00 €",
                   "Vielen Dank für Ihren Auftrag"):
        assert phrase not in text, phrase
    assert rendered.filename == "Leistungsnachweis_ohne_Berechnung_LN-2026-00001.pdf"


def test_english_cancellation_is_worded_as_a_cancellation() -> None:
    text = all_text(render_pdf(fx.cancellation(language="en")))
    assert "we hereby cancel invoice no. RE-2026-00042 of 30 Nov 2026 in full" in text
    assert "Please book invoice RE-2026-00042 and this cancellation invoice against each other." in text
    assert "Thank you for your business" not in text and "Tickets billed" not in text
