"""Render an issued invoice, cancellation or activity report to PDF, from its frozen snapshot alone.

Jinja fills the customer's invoice template (templates/invoice/, or INVOICE_TEMPLATE_DIR for a
deployment's own) with the snapshot, xhtml2pdf lays the letter out in one pass, a long activity
report is drawn with platypus (`pdf_pages.annex_pdf`), and one pypdf pass assembles the file and
makes it PDF/A-3-ready for the later Factur-X embedding (`pdf_pages.assemble`; docs:
shared/reference/invoice-compliance.md §4.5).

A short activity report (the usual per-ticket invoice) stays in the letter, right after the
closing, so a one-hour invoice is one page; a long one starts on a page of its own.
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
from PIL import Image
from xhtml2pdf import pisa
from xhtml2pdf.config.resources import ResourceAccessPolicy

from addon.invoicing.formatting import Formats, language_of
from addon.invoicing.invoice_texts import kind_texts
from addon.invoicing.pdf_pages import AnnexReport, AnnexTable, annex_pdf, assemble, register_fonts, text_width
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import (
    ACTIVITY_REPORT,
    CANCELLATION,
    INVOICE,
    AnnexEntry,
    InvoiceSnapshot,
    Line,
)

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
PDF_MIMETYPE = "application/pdf"

#: Where Debian's fonts-dejavu-core puts DejaVu Sans.
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")

#: Default VAT texts per category when the snapshot carries no exemption reason of its own.
NOTE_CATEGORIES = ("AE", "E", "K", "G", "O")
DOCUMENT_TYPES = (INVOICE, CANCELLATION, ACTIVITY_REPORT)

#: Up to this many bookings the activity report follows the letter on its page (xhtml2pdf);
#: beyond, it is a platypus report on pages of its own (about 3 ms a row less each).
INLINE_ANNEX_ENTRIES = 30

#: The template every other one may extend; `template` names map to invoice/<name>.html.
STANDARD_TEMPLATE = "standard"
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")

#: The footer's contact column (mm, inside its padding) and the e-mail's font size there (pt).
FOOTER_CONTACT_MM, FOOTER_SIZE, FOOTER_MIN_SIZE = 40.0, 6.8, 5.0


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


def template_path(name: str) -> str:
    """The Jinja path of an invoice template name ("standard" is invoice/invoice.html)."""
    if not _TEMPLATE_NAME.match(name):
        raise ValueError(f"invoice template name {name!r} is not valid (lower-case letters, digits, - and _)")
    return "invoice/invoice.html" if name == STANDARD_TEMPLATE else f"invoice/{name}.html"


@cache
def _environment(template_dir: Path | None) -> jinja2.Environment:
    # A deployment's own templates (INVOICE_TEMPLATE_DIR/invoice/<name>.html) come first and may
    # extend the shipped ones. Autoescape: ticket titles and descriptions come from helpdesk
    # users, and markup in them must print as text, never reach xhtml2pdf as <img> or <link>.
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(TEMPLATES_DIR)]
    if template_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(template_dir))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
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


@dataclass(frozen=True)
class LineGroup:
    """Consecutive lines of one ticket under one heading: the ticket is named once."""

    ticket: str | None
    title: str
    url: str | None
    lines: tuple[Line, ...]


def line_groups(snapshot: InvoiceSnapshot) -> tuple[LineGroup, ...]:
    """The lines in their order, each run of one ticket's lines under that ticket's heading."""
    refs = {ticket.number: ticket for ticket in snapshot.tickets}
    groups: list[LineGroup] = []
    for line in snapshot.lines:
        if groups and groups[-1].ticket == line.ticket_number:
            last = groups[-1]
            groups[-1] = LineGroup(last.ticket, last.title, last.url, (*last.lines, line))
            continue
        ref = refs.get(line.ticket_number or "")
        groups.append(LineGroup(line.ticket_number, ref.title if ref else "", ref.url if ref else None, (line,)))
    return tuple(groups)


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

    @property
    def covered_minutes(self) -> Decimal:
        return sum((entry.covered_minutes for entry in self.entries), start=Decimal(0))


def annex_groups(snapshot: InvoiceSnapshot) -> tuple[AnnexGroup, ...]:
    """Annex entries grouped per ticket, in the order the tickets are listed, entries by date."""
    titles = {ticket.number: ticket.title for ticket in snapshot.tickets}
    order = [ticket.number for ticket in snapshot.tickets]
    order += [e.ticket_number for e in snapshot.annex if e.ticket_number not in order]
    by_ticket: dict[str, list[AnnexEntry]] = {}
    for entry in snapshot.annex:
        by_ticket.setdefault(entry.ticket_number, []).append(entry)
    return tuple(
        AnnexGroup(number, titles.get(number, ""), tuple(sorted(by_ticket[number], key=lambda e: e.date)))
        for number in dict.fromkeys(order) if by_ticket.get(number)
    )


def annex_report(snapshot: InvoiceSnapshot, groups: tuple[AnnexGroup, ...], title: str) -> AnnexReport:
    """The activity report formatted for the platypus renderer: the same texts the template
    prints for a short one."""
    language = language_of(snapshot.language)
    t, f = kind_texts(language, snapshot.type_code), Formats(language, snapshot.currency)
    covered = any(e.covered_minutes for g in groups for e in g.entries)
    columns = [t["col_date"], t["col_agent"], t["col_activity"], t["col_raw"], t["col_billed"]]
    if covered:
        columns.append(t["col_covered"])

    def row(entry: AnnexEntry) -> tuple[str, ...]:
        activity = f"{entry.activity} ({t['no_charge']})" if entry.no_charge else entry.activity
        cells = [f.date(entry.date), entry.agent, activity, f.duration(entry.raw_minutes),
                 f.duration(entry.billed_minutes)]
        if covered:
            cells.append(f.duration(entry.covered_minutes) if entry.covered_minutes else "–")
        return tuple(cells)

    def sums(label: str, items: tuple[AnnexGroup, ...]) -> tuple[str, ...]:
        cells = [label, "", "", f.duration(sum((g.raw_minutes for g in items), Decimal(0))),
                 f.duration(sum((g.billed_minutes for g in items), Decimal(0)))]
        if covered:
            cells.append(f.duration(sum((g.covered_minutes for g in items), Decimal(0))))
        return tuple(cells)

    tables = tuple(
        AnnexTable(
            f"{t['ticket']} {g.ticket_number}" + (f" – {g.title}" if g.title else ""),
            tuple(row(e) for e in g.entries),
            sums(t["annex_ticket_total"].format(number=g.ticket_number), (g,)),
        )
        for g in groups
    )
    total = sums(t["annex_total"], groups)
    grand = (total[0], *total[3:])
    return AnnexReport(
        title=t["annex_title"],
        subtitle=t["annex_subtitle"].format(document=title, number=snapshot.number, date=f.date(snapshot.issue_date)),
        hints=(t["annex_hint"], *((t["annex_hint_covered"],) if covered else ())),
        columns=tuple(columns), tables=tables, total=grand,
    )


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
    if snapshot.type_code not in DOCUMENT_TYPES:
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
    if snapshot.type_code == ACTIVITY_REPORT and any(line.net for line in snapshot.lines):
        raise ValueError(f"activity report {snapshot.number} has charged lines; it must be an invoice")


def payment_text(snapshot: InvoiceSnapshot, texts: dict[str, str], f: Formats) -> str:
    """What the reader is asked to do about money: pay (by a date), nothing, or nothing since
    the amount is refunded. Never a payment request for 0,00 €."""
    if snapshot.type_code == ACTIVITY_REPORT:
        return texts["pay"]
    if snapshot.type_code == CANCELLATION or snapshot.gross < 0:
        return texts["pay_cancellation"].format(amount=f.money(abs(snapshot.gross)))
    if snapshot.gross == 0:
        return texts["pay_nothing"]
    if snapshot.due_date:
        return texts["pay_due"].format(amount=f.money(snapshot.gross), date=f.date(snapshot.due_date),
                                       number=snapshot.number)
    return texts["pay_now"].format(amount=f.money(snapshot.gross), number=snapshot.number)


def intro_text(snapshot: InvoiceSnapshot, texts: dict[str, str], f: Formats) -> str:
    """The sentence before the lines, in the document type's words; a monthly invoice names
    its month and says why some lines carry earlier dates."""
    if snapshot.type_code == CANCELLATION:
        return texts["intro"].format(number=snapshot.preceding_number, date=f.date(snapshot.preceding_date))
    if snapshot.type_code == INVOICE and snapshot.billing_month:
        text = texts["intro_380_month"].format(month=f.month(snapshot.billing_month))
        if f"{snapshot.service_start:%Y-%m}" < snapshot.billing_month:
            text += " " + texts["intro_380_late"]
        return text
    return texts["intro"].format(period=f.period(snapshot.service_start, snapshot.service_end))


def footer_email_size(email: str | None) -> float:
    """The footer font size (pt) at which the seller's e-mail fits its column on one line: the
    usual size, smaller for a long address, never broken inside the word."""
    if not email:
        return FOOTER_SIZE
    faces = invoice_fonts()
    width = text_width(email, FOOTER_SIZE, register_fonts(faces.regular, faces.bold))
    room = FOOTER_CONTACT_MM * 72 / 25.4
    return FOOTER_SIZE if width <= room else max(FOOTER_MIN_SIZE, round(FOOTER_SIZE * room / width - 0.05, 1))


def render_html(
    snapshot: InvoiceSnapshot, *, logo_path: Path | None = None, with_annex: bool = True,
    template_dir: Path | None = None, inline_annex: bool = True, frame_page: bool = False,
) -> str:
    """The XHTML that xhtml2pdf lays out; separate so that layout problems can be inspected.

    `inline_annex` prints the activity report in the letter; `frame_page` ends the letter with
    a blank continuation page whose running head and footer the platypus annex pages reuse.
    """
    check_renderable(snapshot)
    language = language_of(snapshot.language)
    texts = kind_texts(language, snapshot.type_code)
    f = Formats(language, snapshot.currency)
    groups = annex_groups(snapshot) if with_annex and inline_annex else ()
    logo = Path(snapshot.letterhead) if snapshot.letterhead else logo_path
    return (
        _environment(template_dir)
        .get_template(template_path(snapshot.template))
        .render(
            inv=snapshot,
            f=f,
            t=texts,
            lang=language,
            kind=snapshot.type_code,
            title=texts["title"],
            cancellation=snapshot.type_code == CANCELLATION,
            report=snapshot.type_code == ACTIVITY_REPORT,
            vat_notes=vat_notes(snapshot, texts),
            intro=intro_text(snapshot, texts, f),
            payment=payment_text(snapshot, texts, f),
            groups=line_groups(snapshot),
            annex=groups,
            annex_covered=any(e.covered_minutes for g in groups for e in g.entries),
            frame_page=frame_page,
            fonts=invoice_fonts(),
            footer_email_pt=footer_email_size(snapshot.seller.email),
            logo=Logo.fitted(logo) if logo else None,
        )
    )


def render_pdf(
    snapshot: InvoiceSnapshot, *, logo_path: Path | None = None, with_annex: bool = True,
    template_dir: Path | None = None,
) -> RenderedFile:
    """Render the document PDF, with the activity report annex when asked for and non-empty.

    Raises ValueError for a snapshot that cannot make a correct document, FileNotFoundError for a
    missing logo, jinja2.TemplateError for a broken template, and RuntimeError when the layout
    engine fails or a font would not be embedded.
    """
    logo = Path(snapshot.letterhead) if snapshot.letterhead else logo_path
    if logo is not None and not logo.is_file():
        raise FileNotFoundError(f"invoice logo {logo} does not exist")
    fonts = invoice_fonts()
    names = register_fonts(fonts.regular, fonts.bold)
    groups = annex_groups(snapshot) if with_annex else ()
    inline = sum(len(g.entries) for g in groups) <= INLINE_ANNEX_ENTRIES
    separate = bool(groups) and not inline
    html = render_html(snapshot, logo_path=logo_path, with_annex=with_annex, template_dir=template_dir,
                       inline_annex=inline, frame_page=separate)
    roots: list[Path] = [fonts.directory]
    if logo is not None:
        roots.append(logo.resolve().parent)
    # Only the font directory and the logo's directory may be read; nothing remote, ever.
    policy = ResourceAccessPolicy(allow_remote=False, base_dir=TEMPLATES_DIR, extra_roots=tuple(roots))
    buffer = io.BytesIO()
    status = pisa.CreatePDF(html, dest=buffer, encoding="utf-8", resource_policy=policy)
    if status.err:
        raise RuntimeError(f"invoice {snapshot.number}: xhtml2pdf reported {status.err} error(s)")
    texts = kind_texts(language_of(snapshot.language), snapshot.type_code)
    annex = annex_pdf(annex_report(snapshot, groups, texts["title"]), names) if separate else None
    content = assemble(buffer.getvalue(), annex=annex, frame_page=separate, fonts=names, label=snapshot.number,
                       labels=lambda page, pages: texts["page_label"].format(page=page, pages=pages))
    return RenderedFile(pdf_filename(snapshot), PDF_MIMETYPE, content)


def document_title(snapshot: InvoiceSnapshot) -> str:
    """The printed title: Rechnung, Stornorechnung, Leistungsnachweis ohne Berechnung, …"""
    return kind_texts(language_of(snapshot.language), snapshot.type_code)["title"]


def pdf_filename(snapshot: InvoiceSnapshot) -> str:
    """The name to offer, e.g. Rechnung_RE-2026-00042.pdf: safe on every file system and mailer."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{document_title(snapshot)} {snapshot.number}")
    return f"{safe.strip('_.')}.pdf"


def layout_samples(template: str, letterhead: str | None, language: str) -> tuple[InvoiceSnapshot, ...]:
    """An invoice, its cancellation and an activity report in one customer layout, with every
    optional part a template may print (contact, reference, VAT ID, annex, allowance, notes)."""
    from datetime import date

    from addon.invoicing.snapshot import Allowance, Party, TicketRef, VatGroup

    seller = Party("Muster IT GmbH", "Hauptstraße 1", "10115", "Berlin", "DE", vat_id="DE136695976",
                   tax_number="27/123/45678", email="rechnung@muster-it.example", phone="+49 30 123456",
                   iban="DE89370400440532013000", bic="COBADEFFXXX", bank="Musterbank",
                   legal_registration_id="HRB 1, AG Berlin", contact_name="Anna Schmidt")
    buyer = Party("Beispiel GmbH", "Ringstraße 2", "20095", "Hamburg", "DE", vat_id="DE811907980",
                  customer_number="K-1", contact_name="Petra Müller")
    line = Line(1, "Remote (Anna Schmidt)", Decimal("1.0000"), "HUR", Decimal("100.00"), Decimal("100.00"),
                Decimal("19"), ticket_number="1001", service_start=date(2026, 11, 2), service_end=date(2026, 11, 2))
    allowance = Allowance("Rabatt", Decimal("10.00"), Decimal("19"), percent=Decimal("10"), base=Decimal("100.00"))
    invoice = InvoiceSnapshot(
        type_code=INVOICE, number="RE-2026-00001", issue_date=date(2026, 11, 30), due_date=date(2026, 12, 14),
        service_start=date(2026, 11, 1), service_end=date(2026, 11, 30), currency="EUR", language=language,
        seller=seller, buyer=buyer, lines=(line,), allowances=(allowance,),
        vat_groups=(VatGroup("S", Decimal("19"), Decimal("90.00"), Decimal("17.10")),),
        net=Decimal("90.00"), vat=Decimal("17.10"), gross=Decimal("107.10"),
        tickets=(TicketRef("1001", "Drucker offline"),),
        annex=(AnnexEntry("1001", date(2026, 11, 2), "Anna Schmidt", "Remote", Decimal(50), Decimal(60)),),
        notes=("Hinweis",), payment_terms="Zahlbar in 14 Tagen.", buyer_reference="PO-1",
        billing_month="2026-11", template=template, letterhead=letterhead,
    )
    from dataclasses import replace

    cancellation = replace(invoice, type_code=CANCELLATION, number="ST-2026-00001", due_date=None, annex=(),
                           preceding_number=invoice.number, preceding_date=invoice.issue_date, payment_terms=None)
    free = replace(line, unit_price=Decimal("0.00"), net=Decimal("0.00"))
    report = replace(invoice, type_code=ACTIVITY_REPORT, number="LN-2026-00001", lines=(free,), allowances=(),
                     vat_groups=(VatGroup("S", Decimal("19"), Decimal("0.00"), Decimal("0.00")),),
                     net=Decimal("0.00"), vat=Decimal("0.00"), gross=Decimal("0.00"), due_date=None,
                     payment_terms=None, billing_month=None)
    return invoice, cancellation, report


def check_layout(template: str, letterhead: str | None, language: str, *, template_dir: Path | None = None) -> None:
    """Render every document type in a customer layout; raise ValueError saying what broke
    (a template that does not exist, a syntax error, an unknown variable, an unreadable
    letterhead, a layout xhtml2pdf refuses). Called by the customers import."""
    template_path(template)
    for snapshot in layout_samples(template, letterhead, language):
        try:
            render_pdf(snapshot, template_dir=template_dir)
        except Exception as exc:  # any failure of this layout is the answer we are asked for
            where = f" ({exc.filename}, line {exc.lineno})" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            raise ValueError(f"{document_title(snapshot)}: {type(exc).__name__}: {exc}{where}") from exc
