"""The fast half of the invoice PDF: the long activity report drawn with ReportLab's platypus,
and the one pypdf pass that assembles and finishes the file.

Why not xhtml2pdf for everything: it wraps every table cell in a KeepInFrame and lays a
document with "page X of Y" out twice, which made a 20-page monthly invoice take seconds
(bench/bench_pdf.py prints the figures). The letter (letterhead, address, lines, totals) stays
with xhtml2pdf and the customer's template; a long annex is a plain platypus table here, about
5 ms a page; page numbers are stamped afterwards, so neither part needs a second layout pass.

The finishing pass (one pypdf writer, cost linear in pages):
- annex pages get the template's running head and footer, taken from a blank "later" page the
  letter rendered for that purpose, as a form XObject underneath;
- every page gets "Seite i von n" as a small form XObject (drawn once per page with ReportLab);
- the no-op font selections ReportLab leaves for base-14 Helvetica (`BT /F1 10 Tf 12 TL ET`,
  from table cell defaults) are cut from the content bytes and the unused font dropped: a
  PDF/A file may not reference an unembedded font (ISO 19005-3 6.2.11.4);
- every annotation gets the print flag /F 4 (ISO 19005-3 6.3.2);
- an sRGB OutputIntent, because ReportLab paints in DeviceRGB (6.2.4.3).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ImageCms
from pypdf import PageObject, PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle
from xhtml2pdf.builders.preflight import font_embedded

#: Geometry shared with templates/invoice/invoice.css ("later" pages and the footer frame).
PAGE_LEFT, PAGE_RIGHT, PAGE_TOP, PAGE_BOTTOM = 25 * mm, 20 * mm, 27 * mm, 34 * mm
#: Where "Seite i von n" stands: right-aligned at the text edge, in the top line of the footer.
LABEL_X, LABEL_Y, LABEL_SIZE = A4[0] - PAGE_RIGHT, 27.6 * mm, 7.5

INK, MUTED, ACCENT = HexColor("#1a1a1a"), HexColor("#555555"), HexColor("#1f3a5f")
HEAD_FILL, RULE = HexColor("#e6ebf2"), HexColor("#c8ced6")
#: Column widths (mm) of the activity report: date, agent, activity, recorded, billed[, covered].
ANNEX_COLUMNS = (22.0, 33.0, 68.0, 18.0, 24.0)
ANNEX_COLUMNS_COVERED = (22.0, 27.0, 54.0, 18.0, 24.0, 20.0)

@dataclass(frozen=True)
class Fonts:
    """The invoice font as registered with ReportLab: regular and bold face names."""

    regular: str
    bold: str


@cache
def register_fonts(regular: Path, bold: Path) -> Fonts:
    """Register the invoice font's faces with ReportLab once per process. Names are global in
    ReportLab, so they are derived from the files: another font never hides behind a name."""
    names = Fonts(f"Ticketbill-{regular.stem}", f"Ticketbill-{bold.stem}")
    pdfmetrics.registerFont(TTFont(names.regular, str(regular)))
    pdfmetrics.registerFont(TTFont(names.bold, str(bold)))
    return names


def text_width(text: str, size: float, fonts: Fonts) -> float:
    """Width in points of `text` in the regular invoice face."""
    return pdfmetrics.stringWidth(text, fonts.regular, size)


@dataclass(frozen=True)
class AnnexTable:
    """One ticket's block of the activity report, already formatted: heading, rows, sum row."""

    heading: str
    rows: tuple[tuple[str, ...], ...]
    total: tuple[str, ...]


@dataclass(frozen=True)
class AnnexReport:
    """The formatted activity report: titles, column heads, per-ticket tables, grand total."""

    title: str
    subtitle: str
    hints: tuple[str, ...]
    columns: tuple[str, ...]
    tables: tuple[AnnexTable, ...]
    total: tuple[str, ...]


def annex_pdf(report: AnnexReport, fonts: Fonts) -> bytes:
    """The activity report as PDF pages with the body geometry of the template's later pages
    (running head and footer are added by `assemble`). Plain strings are drawn as they are;
    only a cell wider than its column becomes a wrapping Paragraph, which is what keeps a
    thousand-row report at a few milliseconds per page."""
    widths = ANNEX_COLUMNS_COVERED if len(report.columns) == 6 else ANNEX_COLUMNS
    widths_pt = [w * mm for w in widths]
    regular, bold = fonts.regular, fonts.bold
    cell = ParagraphStyle("cell", fontName=regular, fontSize=8, leading=9.6, textColor=INK)
    title = ParagraphStyle("title", fontName=bold, fontSize=15, leading=18, textColor=ACCENT, spaceAfter=1 * mm)
    subtitle = ParagraphStyle("subtitle", fontName=bold, fontSize=9.5, leading=12, spaceAfter=2 * mm)
    hint = ParagraphStyle("hint", fontName=regular, fontSize=7.5, leading=9.5, textColor=MUTED)
    heading = ParagraphStyle("heading", fontName=bold, fontSize=9.5, leading=12, spaceBefore=4 * mm,
                             spaceAfter=1.5 * mm, keepWithNext=True)
    story: list = [Paragraph(_escape(report.title), title), Paragraph(_escape(report.subtitle), subtitle)]
    story += [Paragraph(_escape(text), hint) for text in report.hints]

    def fit(row: Sequence[str]) -> list:
        return [Paragraph(_escape(text), cell) if text_width(text, 8, fonts) > widths_pt[i] - 3 * mm else text
                for i, text in enumerate(row)]

    numeric = len(report.columns) - (3 if len(report.columns) == 6 else 2)
    base = [
        ("FONT", (0, 0), (-1, -1), regular, 8, 9.6),
        ("TEXTCOLOR", (0, 0), (-1, -1), INK),
        ("FONT", (0, 0), (-1, 0), bold, 8, 9.6),
        ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, ACCENT),
        ("LINEBELOW", (0, 1), (-1, -2), 0.4, RULE),
        ("FONT", (0, -1), (-1, -1), bold, 8, 9.6),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, ACCENT),
        ("ALIGN", (numeric, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 1.5 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 1.5 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 1 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 0.6 * mm),
    ]
    for block in report.tables:
        story.append(Paragraph(_escape(block.heading), heading))
        rows = [list(report.columns), *(fit(row) for row in block.rows), list(block.total)]
        table = Table(rows, colWidths=widths_pt, repeatRows=1)
        table.setStyle(TableStyle([*base, ("SPAN", (0, -1), (numeric - 1, -1))]))
        story.append(table)
    story.append(Spacer(1, 4 * mm))
    total = Table([list(report.total)], colWidths=[sum(widths_pt[:numeric]), *widths_pt[numeric:]])
    total.setStyle(TableStyle([*base[:2], ("FONT", (0, 0), (-1, -1), bold, 8, 9.6),
                               ("LINEBELOW", (0, 0), (-1, -1), 0.8, ACCENT),
                               ("ALIGN", (1, 0), (-1, -1), "RIGHT"), *base[-4:]]))
    story.append(total)
    out = io.BytesIO()
    frame = Frame(PAGE_LEFT, PAGE_BOTTOM, A4[0] - PAGE_LEFT - PAGE_RIGHT, A4[1] - PAGE_TOP - PAGE_BOTTOM,
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    doc = BaseDocTemplate(out, pagesize=A4, pageTemplates=[PageTemplate("annex", [frame])],
                          initialFontName=regular, invariant=True)
    doc.build(story)
    return out.getvalue()


def _escape(text: str) -> str:
    """Helpdesk text as Paragraph markup: printed, never interpreted."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page_labels(texts: Sequence[str], fonts: Fonts) -> bytes:
    """One page per label, each with its text where the footer expects the page number."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, initialFontName=fonts.regular, invariant=True)
    for text in texts:
        canvas.setFont(fonts.regular, LABEL_SIZE)
        canvas.setFillColor(MUTED)
        canvas.drawRightString(LABEL_X, LABEL_Y, text)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


@cache
def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


#: The no-op font selection ReportLab writes outside text objects (canvas.setFont).
_IDLE_SELECTION = rb"BT %s [\d.]+ Tf [\d.]+ TL ET\s?"


def assemble(letter: bytes, *, annex: bytes | None, frame_page: bool,
             labels: Callable[[int, int], str] | None, fonts: Fonts | None = None, label: str = "") -> bytes:
    """The finished PDF: letter pages, then annex pages on the letter's blank frame page (which
    the letter ends with when `frame_page`), page labels (`labels(page, pages)`, or None),
    fonts, annotations, output intent. Raises RuntimeError if any font is left unembedded.
    """
    writer = PdfWriter(clone_from=io.BytesIO(letter))
    dropped: set[int] = set()
    for page in writer.pages:
        dropped |= _drop_idle_fonts(writer, page)
    kept = {ref.idnum for page in writer.pages for ref in _font_refs(page)}
    for idnum in dropped - kept:
        # Unreferenced now, but pypdf would still write the object: a base-14 font in the file.
        writer._objects[idnum - 1] = None
    frame = None
    if frame_page:
        frame = _as_form(writer, writer.pages[-1])
        writer.remove_page(len(writer.pages) - 1)
    if annex is not None:
        for source in PdfReader(io.BytesIO(annex)).pages:
            page = writer.add_page(source)
            if frame is not None:
                _draw_form(writer, page, "/TBFrame", frame, under=True)
    if labels is not None:
        if fonts is None:
            raise ValueError("page labels need the invoice fonts")
        count = len(writer.pages)
        texts = [labels(n, count) for n in range(1, count + 1)]
        stamps = PdfReader(io.BytesIO(page_labels(texts, fonts))).pages
        for page, stamp in zip(writer.pages, stamps, strict=True):
            _draw_form(writer, page, "/TBPageLabel", _as_form(writer, stamp), under=False)
    for page in writer.pages:
        for annotation in page.get("/Annots") or ():
            # PDF/A: every annotation is printed with the page, never hidden.
            annotation.get_object()[NameObject("/F")] = NumberObject(4)
    missing = unembedded_fonts(writer)
    if missing:
        raise RuntimeError(f"invoice {label}: fonts not embedded: {missing}")
    intent = DictionaryObject({
        NameObject("/Type"): NameObject("/OutputIntent"),
        NameObject("/S"): NameObject("/GTS_PDFA1"),
        NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
        NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
        NameObject("/DestOutputProfile"): _stream(writer, _srgb_profile(), {"/N": NumberObject(3)}),
    })
    writer.root_object[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    writer.pdf_header = b"%PDF-1.7"  # PDF/A-3 is based on PDF 1.7; ReportLab writes 1.4
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _own_resources(page: PageObject) -> DictionaryObject:
    """The page's resources as a dictionary of its own: ReportLab may share one between pages,
    and each page here gets different XObjects or loses different fonts."""
    resources = DictionaryObject(page.get("/Resources", DictionaryObject()).get_object())
    page[NameObject("/Resources")] = resources
    return resources


def _streams(page: PageObject) -> list:
    contents = page.get("/Contents")
    if contents is None:
        return []
    contents = contents.get_object()
    return [item.get_object() for item in contents] if isinstance(contents, ArrayObject) else [contents]


def _font_refs(page: PageObject) -> list[IndirectObject]:
    fonts = page.get("/Resources", DictionaryObject()).get_object().get("/Font")
    values = fonts.get_object().values() if fonts is not None else ()
    return [value for value in values if isinstance(value, IndirectObject)]


def _drop_idle_fonts(writer: PdfWriter, page: PageObject) -> set[int]:
    """Cut ReportLab's no-op selections of unembedded fonts and drop such fonts when nothing
    else names them; returns the object numbers of the fonts dropped. A font still named (text
    really set in it) stays, and `unembedded_fonts` then refuses the file: nothing is guessed
    away."""
    resources = _own_resources(page)
    fonts = resources.get("/Font")
    if fonts is None:
        return set()
    fonts = DictionaryObject(fonts.get_object())
    idle = [name for name, font in fonts.items() if not font_embedded(font)]
    if not idle:
        return set()
    data = [stream.get_data() for stream in _streams(page)]
    cleaned = list(data)
    for name in idle:
        selection = re.compile(_IDLE_SELECTION % re.escape(name.encode()))
        cleaned = [selection.sub(b"", chunk) for chunk in cleaned]
    if cleaned != data:
        # ReportLab's ASCII85+Flate streams cannot be rewritten in place by pypdf: new ones.
        page[NameObject("/Contents")] = ArrayObject([_stream(writer, chunk) for chunk in cleaned])
    dropped = set()
    for name in idle:
        used = re.compile(re.escape(name.encode()) + rb"(?![A-Za-z0-9+#._-])")
        if not any(used.search(chunk) for chunk in cleaned):
            ref = fonts.raw_get(name)
            if isinstance(ref, IndirectObject):
                dropped.add(ref.idnum)
            del fonts[name]
    resources[NameObject("/Font")] = fonts
    return dropped


def unembedded_fonts(writer: PdfWriter) -> list[str]:
    """Names of fonts left in any page's or form's resources without an embedded font file.

    Stricter than a content-stream scan (a font merely listed counts) and far cheaper.
    """
    missing: set[str] = set()
    pending = [page.get("/Resources") for page in writer.pages]
    seen: set[int] = set()
    while pending:
        resources = pending.pop()
        resources = resources.get_object() if resources is not None else None
        if not resources or id(resources) in seen:
            continue
        seen.add(id(resources))
        fonts = resources.get("/Font")
        for font in (fonts.get_object() if fonts else {}).values():
            if not font_embedded(font):
                missing.add(str(font.get_object().get("/BaseFont", "?")).lstrip("/"))
        xobjects = resources.get("/XObject")
        for xobject in (xobjects.get_object() if xobjects else {}).values():
            xobject = xobject.get_object()
            if xobject.get("/Subtype") == "/Form":
                pending.append(xobject.get("/Resources"))
    return sorted(missing)


def _as_form(writer: PdfWriter, page: PageObject) -> IndirectObject:
    """A page's drawing as a form XObject of `writer` (resources cloned when foreign)."""
    data = b"\n".join(stream.get_data() for stream in _streams(page))
    resources = page.get("/Resources", DictionaryObject()).get_object()
    if page.pdf is not writer:
        resources = resources.clone(writer)
    return _stream(writer, data, {
        "/Type": NameObject("/XObject"), "/Subtype": NameObject("/Form"),
        "/BBox": ArrayObject(page.mediabox), "/Resources": resources,
    })


def _draw_form(writer: PdfWriter, page: PageObject, name: str, form: IndirectObject, *, under: bool) -> None:
    """Draw `form` under or over the page's content, the content wrapped in q/Q so that any
    graphics state it leaves cannot move the form."""
    resources = _own_resources(page)
    xobjects = DictionaryObject(resources.get("/XObject", DictionaryObject()).get_object())
    xobjects[NameObject(name)] = form
    resources[NameObject("/XObject")] = xobjects
    draw = _stream(writer, f"q {name} Do Q\n".encode())
    contents = [IndirectObject(s.indirect_reference.idnum, s.indirect_reference.generation, writer)
                if s.indirect_reference else writer._add_object(s) for s in _streams(page)]
    if under:
        page[NameObject("/Contents")] = ArrayObject([draw, _stream(writer, b"q\n"), *contents,
                                                     _stream(writer, b"\nQ\n")])
    else:
        page[NameObject("/Contents")] = ArrayObject([_stream(writer, b"q\n"), *contents,
                                                     _stream(writer, b"\nQ\n"), draw])


def _stream(writer: PdfWriter, data: bytes, entries: dict | None = None) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in (entries or {}).items():
        stream[NameObject(key)] = value
    # pypdf has no public way to add an indirect object to a writer.
    return writer._add_object(stream.flate_encode())
