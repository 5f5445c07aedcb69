"""Render an issued invoice (or cancellation) to PDF, from its frozen snapshot alone.

Jinja fills templates/invoice/invoice.html with the snapshot, xhtml2pdf lays it out, and a pypdf
pass makes the file PDF/A-3-ready for the later Factur-X embedding: xhtml2pdf on its own leaves
an unembedded Helvetica in every page's resources and declares no output intent, and a PDF/A
validator rejects both (docs: shared/reference/invoice-compliance.md §4.5).
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import jinja2
import reportlab
from PIL import Image, ImageCms
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from xhtml2pdf import pisa
from xhtml2pdf.builders.preflight import drop_idle_fonts, font_embedded
from xhtml2pdf.config.resources import ResourceAccessPolicy

from addon.invoicing.formatting import Formats, language_of
from addon.invoicing.invoice_texts import TEXTS
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import CANCELLATION, INVOICE, AnnexEntry, InvoiceSnapshot

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
PDF_MIMETYPE = "application/pdf"

#: Where Debian's fonts-dejavu-core puts DejaVu Sans.
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")

#: Default VAT texts per category when the snapshot carries no exemption reason of its own.
NOTE_CATEGORIES = ("AE", "E", "K", "G", "O")


@dataclass(frozen=True)
class FontFaces:
    """The TrueType files of the one font family every invoice is set in (embedded, subset)."""

    regular: Path
    bold: Path
    italic: Path
    bold_italic: Path

    @property
    def directory(self) -> Path:
        return self.regular.parent



@cache
def invoice_fonts() -> FontFaces:
    """DejaVu Sans when installed (Debian fonts-dejavu-core), else ReportLab's bundled Vera.

    DejaVu covers Central European names (ł, ő, ę, Ś) that EU reverse-charge customers carry;
    Vera, its ancestor, ships inside reportlab and so is always there, but lacks those glyphs.
    """
    dejavu = FontFaces(
        DEJAVU_DIR / "DejaVuSans.ttf",
        DEJAVU_DIR / "DejaVuSans-Bold.ttf",
        DEJAVU_DIR / "DejaVuSans-Oblique.ttf",
        DEJAVU_DIR / "DejaVuSans-BoldOblique.ttf",
    )
    if all(path.is_file() for path in vars(dejavu).values()):
        return dejavu
    vera = Path(reportlab.__file__).resolve().parent / "fonts"
    return FontFaces(vera / "Vera.ttf", vera / "VeraBd.ttf", vera / "VeraIt.ttf", vera / "VeraBI.ttf")


@cache
def _environment() -> jinja2.Environment:
    # Autoescape: ticket titles and descriptions come from helpdesk users, and markup in them
    # must print as text, never reach xhtml2pdf as <img src> or <link> tags.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


#: The box in the letterhead's top right corner a logo is scaled into, in mm (width, height).
LOGO_BOX = (60.0, 22.0)


@dataclass(frozen=True)
class Logo:
    """A logo file and the size it is drawn at: fitted into LOGO_BOX, aspect ratio kept."""

    path: Path
    width_mm: float
    height_mm: float

    @classmethod
    def fitted(cls, path: Path) -> Logo:
        with Image.open(path) as image:
            width, height = image.size
        scale = min(LOGO_BOX[0] / width, LOGO_BOX[1] / height)
        return cls(path.resolve(), round(width * scale, 2), round(height * scale, 2))


@cache
def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@dataclass(frozen=True)
class AnnexGroup:
    """The activity report entries of one ticket, with their sums in minutes."""

    ticket_number: str
    title: str
    entries: tuple[AnnexEntry, ...]

    @property
    def raw_minutes(self) -> Decimal:
        return sum((entry.raw_minutes for entry in self.entries), start=Decimal(0))

    @property
    def billed_minutes(self) -> Decimal:
        return sum((entry.billed_minutes for entry in self.entries), start=Decimal(0))


def annex_groups(snapshot: InvoiceSnapshot) -> tuple[AnnexGroup, ...]:
    """Annex entries grouped per ticket, in the order the tickets are listed, entries by date."""
    titles = {ticket.number: ticket.title for ticket in snapshot.tickets}
    order = [ticket.number for ticket in snapshot.tickets]
    order += [e.ticket_number for e in snapshot.annex if e.ticket_number not in order]
    groups = []
    for number in dict.fromkeys(order):
        entries = tuple(
            sorted((e for e in snapshot.annex if e.ticket_number == number), key=lambda e: e.date)
        )
        if entries:
            groups.append(AnnexGroup(number, titles.get(number, ""), entries))
    return tuple(groups)


def vat_notes(snapshot: InvoiceSnapshot, texts: dict[str, str]) -> tuple[str, ...]:
    """The legally required VAT texts: exemption reasons, reverse charge with both VAT IDs."""
    notes: list[str] = []
    for group in snapshot.vat_groups:
        if group.category not in NOTE_CATEGORIES and not group.exemption_reason:
            continue
        notes.append(group.exemption_reason or texts[f"note_{group.category}"])
        if group.category == "AE":
            notes.append(
                texts["note_AE_ids"].format(
                    seller=snapshot.seller.vat_id or "–", buyer=snapshot.buyer.vat_id or "–"
                )
            )
    return tuple(dict.fromkeys(notes))


def check_renderable(snapshot: InvoiceSnapshot) -> None:
    """Refuse snapshots that would print a legally defective document, with the reason."""
    if snapshot.type_code not in (INVOICE, CANCELLATION):
        raise ValueError(f"invoice {snapshot.number}: type code {snapshot.type_code!r} unknown")
    if snapshot.type_code == CANCELLATION and not (
        snapshot.preceding_number and snapshot.preceding_date
    ):
        raise ValueError(
            f"cancellation {snapshot.number} must name the invoice it cancels "
            "(preceding_number and preceding_date, §31 Abs. 5 UStDV)"
        )
    if any(group.category == "AE" for group in snapshot.vat_groups) and not (
        snapshot.seller.vat_id and snapshot.buyer.vat_id
    ):
        raise ValueError(
            f"invoice {snapshot.number}: reverse charge needs the VAT IDs of both parties "
            "(§14a Abs. 1 UStG)"
        )


def render_html(
    snapshot: InvoiceSnapshot, *, logo_path: Path | None = None, with_annex: bool = True
) -> str:
    """The XHTML that xhtml2pdf lays out; separate so that layout problems can be inspected."""
    check_renderable(snapshot)
    language = language_of(snapshot.language)
    texts = TEXTS[language]
    groups = annex_groups(snapshot) if with_annex else ()
    return (
        _environment()
        .get_template("invoice/invoice.html")
        .render(
            inv=snapshot,
            f=Formats(language, snapshot.currency),
            t=texts,
            lang=language,
            title=document_title(snapshot),
            cancellation=snapshot.type_code == CANCELLATION,
            vat_notes=vat_notes(snapshot, texts),
            annex=groups,
            fonts=invoice_fonts(),
            logo=Logo.fitted(logo_path) if logo_path else None,
        )
    )


def render_pdf(
    snapshot: InvoiceSnapshot, *, logo_path: Path | None = None, with_annex: bool = True
) -> RenderedFile:
    """Render the invoice PDF, with the activity report annex when asked for and non-empty.

    Raises ValueError for a snapshot that cannot make a correct document, FileNotFoundError for a
    missing logo, and RuntimeError when the layout engine fails or a font would not be embedded.
    """
    if logo_path is not None and not logo_path.is_file():
        raise FileNotFoundError(f"invoice logo {logo_path} does not exist")
    html = render_html(snapshot, logo_path=logo_path, with_annex=with_annex)
    fonts = invoice_fonts()
    roots: list[Path] = [fonts.directory]
    if logo_path is not None:
        roots.append(logo_path.resolve().parent)
    # Only the font directory and the logo's directory may be read; nothing remote, ever.
    policy = ResourceAccessPolicy(
        allow_remote=False, base_dir=TEMPLATES_DIR, extra_roots=tuple(roots)
    )
    buffer = io.BytesIO()
    status = pisa.CreatePDF(html, dest=buffer, encoding="utf-8", resource_policy=policy)
    if status.err:
        raise RuntimeError(f"invoice {snapshot.number}: xhtml2pdf reported {status.err} error(s)")
    content = make_pdfa_ready(buffer.getvalue(), label=snapshot.number)
    return RenderedFile(pdf_filename(snapshot), PDF_MIMETYPE, content)


def document_title(snapshot: InvoiceSnapshot) -> str:
    """The printed title: Rechnung, Stornorechnung, Invoice or Cancellation invoice."""
    texts = TEXTS[language_of(snapshot.language)]
    return texts["title_cancellation" if snapshot.type_code == CANCELLATION else "title_invoice"]


def pdf_filename(snapshot: InvoiceSnapshot) -> str:
    """The name to offer, e.g. Rechnung_RE-2026-00042.pdf: safe on every file system and mailer."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{document_title(snapshot)} {snapshot.number}")
    return f"{safe.strip('_.')}.pdf"


def make_pdfa_ready(data: bytes, *, label: str = "") -> bytes:
    """Drop the idle base-14 fonts, require every text font embedded, add an sRGB OutputIntent.

    The XMP PDF/A identification is left to the Factur-X step, which writes it with the XML.
    """
    writer = PdfWriter(clone_from=io.BytesIO(data))
    dropped = drop_idle_fonts(writer)
    if dropped:
        log.debug("invoice %s: dropped idle fonts %s", label, dropped)
    missing = unembedded_fonts(writer)
    if missing:
        raise RuntimeError(f"invoice {label}: fonts not embedded: {missing}")
    intent = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/OutputIntent"),
            NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
            NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/DestOutputProfile"): _icc_stream(writer, _srgb_profile()),
        }
    )
    writer.root_object[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    # The dropped Helvetica is unreferenced now, but still an object in the file until removed.
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    writer.pdf_header = b"%PDF-1.7"
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def unembedded_fonts(writer: PdfWriter) -> list[str]:
    """Names of fonts left in any page's or form's resources without an embedded font file.

    Stricter than a content-stream scan (a font merely listed counts) and far cheaper: after
    drop_idle_fonts nothing unembedded should be listed at all.
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


def _icc_stream(writer: PdfWriter, profile: bytes) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(profile)
    stream[NameObject("/N")] = NumberObject(3)
    # pypdf has no public way to add an indirect object to a writer.
    return writer._add_object(stream.flate_encode())

