"""Data access for the tax office (§ 147 Abs. 6 AO, GoBD Rz. 158 ff.): a GDPdU archive.

The *Beschreibungsstandard* of the GDPdU (the `index.xml` of DTD `gdpdu-01-09-2004.dtd`, read
by IDEA and the tax auditors' other tools) describes plain text tables so that an auditor can
import them without asking: file, column names, types, decimal symbol, date format, keys. One
ZIP holds the index, four tables of the period's documents (invoices, lines, VAT breakdown,
audit log) and the documents themselves (PDF and e-invoice XML) as they were sent.

Pure: snapshots, audit rows and document bytes in, archive bytes out; the shell
(`addon.exports.period.gdpdu_export`) reads them from the database and the invoice directory.
The tables follow the standard's defaults where it has them (`;` between columns, CRLF between
records, `"` around text, `,` as decimal symbol, dates as DD.MM.YYYY), written out explicitly
so no reader has to know the defaults; text is UTF-8 (`<UTF8/>`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from xml.etree import ElementTree as ET

from addon.invoicing.snapshot import InvoiceSnapshot

DTD = "gdpdu-01-09-2004.dtd"
DATE_FORMAT = "DD.MM.YYYY"
Kind = Literal["text", "number", "date"]


@dataclass(frozen=True)
class Column:
    """One column: its name in the index (German, as auditors read it), its type, and for
    numbers the decimal places (the standard's `Accuracy`, derived from the data)."""

    name: str
    kind: Kind
    description: str
    key: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the archive: its file, its columns and its rows (Python values)."""

    url: str
    name: str
    description: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[object, ...], ...]
    references: tuple[tuple[str, str], ...] = ()  # (column, table name) foreign keys

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        if keys != sorted(keys, reverse=True):  # the DTD lists primary keys before the columns
            raise ValueError(f"{self.name}: key columns must come first")


@dataclass(frozen=True)
class Document:
    """An issued document and the files that were sent (name in the archive, bytes)."""

    snapshot: InvoiceSnapshot
    files: tuple[tuple[str, bytes], ...]
    hashes: tuple[str | None, str | None]  # SHA-256 of PDF and XML as stored on the invoice


@dataclass(frozen=True)
class AuditRow:
    """One audit log row (who did what to which document, when)."""

    id: int
    at: datetime
    actor: str
    action: str
    number: str | None
    details: str


def _text(value: object) -> str:
    """Text columns: one line each (line breaks become " / "), quotes doubled."""
    text = "" if value is None else str(value)
    text = " / ".join(part.strip() for part in text.replace("\r\n", "\n").split("\n") if part.strip())
    return '"' + text.replace('"', '""') + '"'


def _places(values: Sequence[object]) -> int:
    """The decimal places a number column needs so that no value is rounded (at least 2 for
    money-like columns; the standard leaves more precision than `Accuracy` undefined)."""
    places = 0
    for value in values:
        if isinstance(value, Decimal):
            exponent = value.normalize().as_tuple().exponent
            places = max(places, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return places


def _number(value: object, places: int) -> str:
    if value is None:
        return ""
    number = Decimal(value) if not isinstance(value, Decimal) else value  # type: ignore[arg-type]
    return f"{number:.{places}f}".replace(".", ",")


def _date(value: object) -> str:
    return "" if value is None else f"{value:%d.%m.%Y}"


def accuracies(table: Table) -> dict[str, int]:
    """Decimal places per number column of `table`."""
    return {c.name: _places([row[i] for row in table.rows])
            for i, c in enumerate(table.columns) if c.kind == "number"}


def table_bytes(table: Table) -> bytes:
    """The table's file: no header row (the index names the columns), CRLF, UTF-8."""
    places = accuracies(table)
    out: list[str] = []
    for row in table.rows:
        cells = []
        for column, value in zip(table.columns, row, strict=True):
            if column.kind == "text":
                cells.append(_text(value))
            elif column.kind == "number":
                cells.append(_number(value, places[column.name]))
            else:
                cells.append(_date(value))
        out.append(";".join(cells) + "\r\n")
    return "".join(out).encode("utf-8")


def document_tables(documents: Sequence[Document], audit: Sequence[AuditRow]) -> tuple[Table, ...]:
    """The four tables of the archive, rows in issue order."""
    invoices = Table(
        "rechnungen.txt", "Rechnungen", "Ausgangsrechnungen und Stornorechnungen (ein Satz je Beleg)",
        (Column("Belegnummer", "text", "Rechnungs- bzw. Stornonummer", key=True),
         Column("Belegart", "text",
                "380 Rechnung, 381 Stornorechnung (UNTDID 1001), LN Leistungsnachweis ohne Berechnung"),
         Column("Belegdatum", "date", "Ausstellungsdatum"),
         Column("Faelligkeit", "date", "Zahlungsziel"),
         Column("Leistung_von", "date", "Leistungszeitraum Beginn"),
         Column("Leistung_bis", "date", "Leistungszeitraum Ende"),
         Column("Bezug_Belegnummer", "text", "storniert/berichtigt Rechnung Nr."),
         Column("Bezug_Belegdatum", "date", "Datum der Bezugsrechnung"),
         Column("Kundennummer", "text", "Kundennummer"),
         Column("Kunde", "text", "Name des Leistungsempfängers"),
         Column("Kunde_Anschrift", "text", "Anschrift des Leistungsempfängers"),
         Column("Kunde_Land", "text", "Land (ISO 3166-1)"),
         Column("Kunde_UStIdNr", "text", "USt-IdNr. des Leistungsempfängers"),
         Column("Waehrung", "text", "Währung (ISO 4217)"),
         Column("Netto", "number", "Summe netto (Bemessungsgrundlage)"),
         Column("Umsatzsteuer", "number", "Summe Umsatzsteuer"),
         Column("Brutto", "number", "Summe brutto"),
         Column("PDF", "text", "Beleg im Archiv (Pfad)"),
         Column("PDF_SHA256", "text", "SHA-256 des PDF bei Ausstellung"),
         Column("XML", "text", "E-Rechnung im Archiv (Pfad)"),
         Column("XML_SHA256", "text", "SHA-256 der XML-Datei bei Ausstellung")),
        tuple(
            (s.number, s.type_code, s.issue_date, s.due_date, s.service_start, s.service_end,
             s.preceding_number, s.preceding_date, s.buyer.customer_number, s.buyer.name,
             f"{s.buyer.street}, {s.buyer.postcode} {s.buyer.city}", s.buyer.country, s.buyer.vat_id,
             s.currency, s.net, s.vat, s.gross,
             next((n for n, _b in d.files if n.endswith(".pdf")), None), d.hashes[0],
             next((n for n, _b in d.files if n.endswith(".xml")), None), d.hashes[1])
            for d in documents for s in (d.snapshot,)),
    )
    lines = Table(
        "positionen.txt", "Rechnungspositionen", "Positionen der Belege",
        (Column("Belegnummer", "text", "Rechnungs- bzw. Stornonummer", key=True),
         Column("Position", "number", "Positionsnummer", key=True),
         Column("Beschreibung", "text", "Leistungsbeschreibung"),
         Column("Ticket", "text", "Ticketnummer im Helpdesk"),
         Column("Menge", "number", "Menge"),
         Column("Einheit", "text", "Einheit (UN/ECE Rec. 20)"),
         Column("Einzelpreis", "number", "Einzelpreis netto"),
         Column("Netto", "number", "Positionsbetrag netto"),
         Column("USt_Kategorie", "text", "Steuerkategorie (UNCL 5305)"),
         Column("USt_Satz", "number", "Steuersatz in Prozent"),
         Column("Leistung_von", "date", "Leistungszeitraum Beginn"),
         Column("Leistung_bis", "date", "Leistungszeitraum Ende")),
        tuple((d.snapshot.number, line.position, line.description, line.ticket_number, line.quantity,
               line.unit, line.unit_price, line.net, line.vat_category, line.vat_rate,
               line.service_start, line.service_end)
              for d in documents for line in d.snapshot.lines),
        references=(("Belegnummer", "Rechnungen"),),
    )
    vat = Table(
        "umsatzsteuer.txt", "Umsatzsteuer", "Aufschlüsselung der Umsatzsteuer je Beleg und Steuersatz",
        (Column("Belegnummer", "text", "Rechnungs- bzw. Stornonummer", key=True),
         Column("USt_Kategorie", "text", "Steuerkategorie (UNCL 5305)", key=True),
         Column("USt_Satz", "number", "Steuersatz in Prozent", key=True),
         Column("Bemessungsgrundlage", "number", "Nettobetrag zu diesem Steuersatz"),
         Column("Steuerbetrag", "number", "Umsatzsteuer zu diesem Steuersatz"),
         Column("Befreiungsgrund", "text", "Grund der Steuerbefreiung, falls befreit")),
        tuple((d.snapshot.number, g.category, g.rate, g.base, g.amount, g.exemption_reason)
              for d in documents for g in d.snapshot.vat_groups),
        references=(("Belegnummer", "Rechnungen"),),
    )
    log = Table(
        "protokoll.txt", "Protokoll", "Änderungsprotokoll (GoBD): wer hat wann was mit welchem Beleg getan",
        (Column("Nr", "number", "laufende Nummer des Protokolleintrags", key=True),
         Column("Datum", "date", "Datum (UTC)"),
         Column("Uhrzeit", "text", "Uhrzeit (UTC, HH:MM:SS)"),
         Column("Benutzer", "text", "Benutzer oder Prozess"),
         Column("Aktion", "text", "issue, approve, cancel, send, export, …"),
         Column("Belegnummer", "text", "betroffener Beleg"),
         Column("Details", "text", "Einzelheiten (JSON)")),
        tuple((row.id, row.at.date(), f"{row.at:%H:%M:%S}", row.actor, row.action, row.number, row.details)
              for row in audit),
    )
    return invoices, lines, vat, log


def index_xml(tables: Sequence[Table], supplier: tuple[str, str, str], media: str,
              first: date, last: date) -> bytes:
    """The `index.xml` describing `tables` (element order as the DTD prescribes)."""
    root = ET.Element("DataSet")
    ET.SubElement(root, "Version").text = "1.0"
    data_supplier = ET.SubElement(root, "DataSupplier")
    for tag, text in zip(("Name", "Location", "Comment"), supplier, strict=True):
        ET.SubElement(data_supplier, tag).text = text
    medium = ET.SubElement(root, "Media")
    ET.SubElement(medium, "Name").text = media
    for table in tables:
        element = ET.SubElement(medium, "Table")
        ET.SubElement(element, "URL").text = table.url
        ET.SubElement(element, "Name").text = table.name
        ET.SubElement(element, "Description").text = table.description
        validity = ET.SubElement(element, "Validity")
        period = ET.SubElement(validity, "Range")
        ET.SubElement(period, "From").text = f"{first:%d.%m.%Y}"
        ET.SubElement(period, "To").text = f"{last:%d.%m.%Y}"
        ET.SubElement(validity, "Format").text = DATE_FORMAT
        ET.SubElement(element, "UTF8")
        ET.SubElement(element, "DecimalSymbol").text = ","
        ET.SubElement(element, "DigitGroupingSymbol").text = "."
        variable = ET.SubElement(element, "VariableLength")
        ET.SubElement(variable, "ColumnDelimiter").text = ";"
        ET.SubElement(variable, "RecordDelimiter").text = "&#13;&#10;"
        ET.SubElement(variable, "TextEncapsulator").text = '"'
        places = accuracies(table)
        for column in table.columns:
            entry = ET.SubElement(variable, "VariablePrimaryKey" if column.key else "VariableColumn")
            ET.SubElement(entry, "Name").text = column.name
            ET.SubElement(entry, "Description").text = column.description
            if column.kind == "text":
                ET.SubElement(entry, "AlphaNumeric")
            elif column.kind == "number":
                ET.SubElement(ET.SubElement(entry, "Numeric"), "Accuracy").text = str(places[column.name])
            else:
                ET.SubElement(ET.SubElement(entry, "Date"), "Format").text = DATE_FORMAT
        for name, target in table.references:
            foreign = ET.SubElement(variable, "ForeignKey")
            ET.SubElement(foreign, "Name").text = name
            ET.SubElement(foreign, "References").text = target
    ET.indent(root)
    # CR LF as character references: a literal CR in element text would be normalised away
    body = ET.tostring(root, encoding="unicode").replace(
        "<RecordDelimiter>&amp;#13;&amp;#10;</RecordDelimiter>", "<RecordDelimiter>&#13;&#10;</RecordDelimiter>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE DataSet SYSTEM "{DTD}">\n{body}\n').encode()


def gdpdu_archive(documents: Sequence[Document], audit: Sequence[AuditRow], supplier: tuple[str, str, str],
                  first: date, last: date, made_at: datetime) -> bytes:
    """The ZIP: index.xml, the tables, and each document's files under `belege/`."""
    tables = document_tables(documents, audit)
    media = f"Ausgangsrechnungen {first:%d.%m.%Y} – {last:%d.%m.%Y}"
    buffer = io.BytesIO()
    stamp = made_at.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, content: bytes) -> None:
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), content, zipfile.ZIP_DEFLATED)

        add("index.xml", index_xml(tables, supplier, media, first, last))
        for table in tables:
            add(table.url, table_bytes(table))
        for document in documents:
            for name, content in document.files:
                add(name, content)
    return buffer.getvalue()


def gdpdu_filename(first: date, last: date) -> str:
    return f"gdpdu_{first:%Y%m%d}-{last:%Y%m%d}.zip"
