"""DATEV-Format EXTF "Buchungsstapel" (header version 700, category 21, format version 13).

The tax adviser imports this file into DATEV Kanzlei-Rechnungswesen; it is the most common way
German SMEs hand their sales ledger over. PyPI has no maintained general EXTF writer, so this is
a small one, following DATEV's format description (developer.datev.de, "DATEV-Format") as
summarised in shared/reference/invoice-compliance.md §6.1:

- Windows-1252, CRLF, `;` separated, text in double quotes, decimal comma, no thousands mark;
- line 1 the 31-field header, line 2 the 125 column headings, then one booking per line;
- one booking per invoice and VAT group: gross amount on the debtor account (Konto) against the
  revenue account (Gegenkonto). Revenue accounts for the usual tax cases are *automatic* accounts
  in SKR03/SKR04, so no BU-Schlüssel is written (it would double the tax);
- Belegdatum as TTMM (the year comes from the header), Belegfeld 1 = invoice number;
- a cancellation (381) is booked with the Soll/Haben mark reversed ("H"), amounts stay positive;
- a document without an amount (a 0,00 € invoice issued before activity reports existed, or an
  activity report, which is no invoice) is not booked: DATEV refuses Umsatz 0,00. It is
  reported as not booked, so the counts the admin sees always match the rows in the file;
- text fields keep the document number whole (the name is shortened instead) and transliterate
  what cp1252 cannot hold with anyascii ("Łódź" → "Lodz"), rather than writing "?".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from anyascii import anyascii

from addon.invoicing.snapshot import ACTIVITY_REPORT, CANCELLATION, InvoiceSnapshot, VatGroup

HEADER_VERSION = 700
CATEGORY_BUCHUNGSSTAPEL = 21
FORMAT_NAME = "Buchungsstapel"
FORMAT_VERSION = 13
MAX_BOOKINGS = 99_999

#: The 125 column headings of Buchungsstapel format version 13, in DATEV's order.
COLUMNS: tuple[str, ...] = (
    "Umsatz (ohne Soll/Haben-Kz)",
    "Soll/Haben-Kennzeichen",
    "WKZ Umsatz",
    "Kurs",
    "Basis-Umsatz",
    "WKZ Basis-Umsatz",
    "Konto",
    "Gegenkonto (ohne BU-Schlüssel)",
    "BU-Schlüssel",
    "Belegdatum",
    "Belegfeld 1",
    "Belegfeld 2",
    "Skonto",
    "Buchungstext",
    "Postensperre",
    "Diverse Adressnummer",
    "Geschäftspartnerbank",
    "Sachverhalt",
    "Zinssperre",
    "Beleglink",
    *(f"Beleginfo - {kind} {n}" for n in range(1, 9) for kind in ("Art", "Inhalt")),
    "KOST1 - Kostenstelle",
    "KOST2 - Kostenstelle",
    "Kost-Menge",
    "EU-Land u. UStID (Bestimmung)",
    "EU-Steuersatz (Bestimmung)",
    "Abw. Versteuerungsart",
    "Sachverhalt L+L",
    "Funktionsergänzung L+L",
    "BU 49 Hauptfunktionstyp",
    "BU 49 Hauptfunktionsnummer",
    "BU 49 Funktionsergänzung",
    # DATEV spells the content heading without a space before the dash.
    *(
        heading
        for n in range(1, 21)
        for heading in (f"Zusatzinformation - Art {n}", f"Zusatzinformation- Inhalt {n}")
    ),
    "Stück",
    "Gewicht",
    "Zahlweise",
    "Forderungsart",
    "Veranlagungsjahr",
    "Zugeordnete Fälligkeit",
    "Skontotyp",
    "Auftragsnummer",
    "Buchungstyp",
    "USt-Schlüssel (Anzahlungen)",
    "EU-Land (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)",
    "EU-Steuersatz (Anzahlungen)",
    "Erlöskonto (Anzahlungen)",
    "Herkunft-Kz",
    "Buchungs GUID",
    "KOST-Datum",
    "SEPA-Mandatsreferenz",
    "Skontosperre",
    "Gesellschaftername",
    "Beteiligtennummer",
    "Identifikationsnummer",
    "Zeichnernummer",
    "Postensperre bis",
    "Bezeichnung SoBil-Sachverhalt",
    "Kennzeichen SoBil-Buchung",
    "Festschreibung",
    "Leistungsdatum",
    "Datum Zuord. Steuerperiode",
    "Fälligkeit",
    "Generalumkehr (GU)",
    "Steuersatz",
    "Land",
    "Abrechnungsreferenz",
    "BVV-Position",
    "EU-Land u. UStID (Ursprung)",
    "EU-Steuersatz (Ursprung)",
    "Abw. Skontokonto",
)
_COL = {name: index for index, name in enumerate(COLUMNS)}

#: Automatic revenue accounts per tax case (see `tax_case`). Verify against the client's chart
#: with the tax adviser; the exporter takes whatever mapping it is given.
SKR03_REVENUE_ACCOUNTS: Mapping[str, int] = {"S19": 8400, "S7": 8300, "AE": 8336, "O": 8338}
SKR04_REVENUE_ACCOUNTS: Mapping[str, int] = {"S19": 4400, "S7": 4300, "AE": 4336, "O": 4338}

#: Belegfeld 1: letters, digits and $ & % * + - / only, at most 36 characters.
_BELEGFELD = re.compile(r"^[A-Za-z0-9$&%*+\-/]{1,36}$")
_AMOUNT_LIMIT = Decimal("9999999999.99")

DebtorAccount = Callable[[InvoiceSnapshot], int | str] | Mapping[str, int | str]


def tax_case(group: VatGroup) -> str:
    """The key for `revenue_accounts`: "S19"/"S7" for standard-rated groups (category + rate),
    the category code alone for the others ("AE" reverse charge, "E" exempt, "O", "K", ...)."""
    if group.category in ("S", "Z"):
        rate = group.rate.normalize()
        return f"{group.category}{rate:f}"
    return group.category


@dataclass(frozen=True)
class DatevExport:
    """The file, the documents booked in it (one row per document and VAT rate) and the ones
    not booked with the reason, so a report can say exactly what the file holds."""

    content: bytes
    rows: int
    booked: tuple[str, ...]
    not_booked: tuple[tuple[str, str], ...]


def datev_buchungsstapel(invoices: Sequence[InvoiceSnapshot], **options: object) -> bytes:
    """The EXTF Buchungsstapel file (cp1252 bytes); see `datev_export` for the options."""
    return datev_export(invoices, **options).content  # type: ignore[arg-type]


def datev_export(
    invoices: Sequence[InvoiceSnapshot],
    *,
    consultant_number: int,
    client_number: int,
    fiscal_year_start: date,
    account_length: int,
    revenue_accounts: Mapping[str, int | str],
    debtor_account: DebtorAccount,
    period_start: date | None = None,
    period_end: date | None = None,
    description: str | None = None,
    chart: str = "03",
    exported_by: str = "ticketbill",
    created_at: datetime | None = None,
) -> DatevExport:
    """The EXTF Buchungsstapel export (cp1252 bytes) for the given issued documents.

    `debtor_account` maps a customer number to its personal account (account_length + 1 digits,
    e.g. 10000-69999 for length 4), or is a callable taking the snapshot. The period defaults to
    the first and last issue date; it must lie inside one fiscal year, as DATEV requires.
    Raises ValueError with the offending invoice for anything DATEV would reject, rather than
    writing a file the adviser's import refuses or, worse, books wrongly.
    """
    if not invoices:
        raise ValueError("nothing to export: no invoices")
    if not 1001 <= consultant_number <= 9_999_999:
        raise ValueError(f"Beraternummer {consultant_number} is not in 1001..9999999")
    if not 1 <= client_number <= 99_999:
        raise ValueError(f"Mandantennummer {client_number} is not in 1..99999")
    if not 4 <= account_length <= 8:
        raise ValueError(f"Sachkontenlänge {account_length} is not in 4..8")
    if chart not in ("03", "04"):
        raise ValueError(f"chart of accounts must be '03' or '04', not {chart!r}")
    start = period_start or min(snapshot.issue_date for snapshot in invoices)
    end = period_end or max(snapshot.issue_date for snapshot in invoices)
    fiscal_end = _fiscal_year_end(fiscal_year_start)
    if not fiscal_year_start <= start <= end <= fiscal_end or start.year != end.year:
        raise ValueError(
            f"period {start}..{end} must lie within one calendar year and the fiscal year "
            f"{fiscal_year_start}..{fiscal_end}"
        )

    rows = []
    booked: list[str] = []
    not_booked: list[tuple[str, str]] = []
    for snapshot in sorted(invoices, key=lambda s: (s.issue_date, s.number)):
        if not start <= snapshot.issue_date <= end:
            raise ValueError(f"{snapshot.number}: issue date {snapshot.issue_date} is outside "
                             f"the exported period {start}..{end}")
        if snapshot.type_code == ACTIVITY_REPORT:
            not_booked.append((snapshot.number, "activity report, not an invoice"))
            continue
        bookings = _bookings(snapshot, account_length, revenue_accounts, debtor_account)
        if not bookings:
            not_booked.append((snapshot.number, "no amount to book (0,00)"))
            continue
        rows.extend(bookings)
        booked.append(snapshot.number)
    if len(rows) > MAX_BOOKINGS:
        raise ValueError(f"{len(rows)} bookings exceed DATEV's limit of {MAX_BOOKINGS} per file")

    header = _header(
        consultant_number=consultant_number,
        client_number=client_number,
        fiscal_year_start=fiscal_year_start,
        account_length=account_length,
        start=start,
        end=end,
        description=description or f"Rechnungen {start:%m/%Y}",
        chart=chart,
        exported_by=exported_by,
        created_at=created_at or datetime.now(),
    )
    # Column headings are written bare, as in DATEV's own sample files.
    lines = [header, ";".join(COLUMNS), *(";".join(r) for r in rows)]
    content = ("\r\n".join(lines) + "\r\n").encode("cp1252")
    return DatevExport(content, len(rows), tuple(booked), tuple(not_booked))


def datev_filename(period_start: date, period_end: date) -> str:
    """DATEV imports files named EXTF_*.csv; the period makes repeated exports distinguishable."""
    return f"EXTF_Buchungsstapel_{period_start:%Y%m%d}-{period_end:%Y%m%d}.csv"


def _bookings(
    snapshot: InvoiceSnapshot,
    account_length: int,
    revenue_accounts: Mapping[str, int | str],
    debtor_account: DebtorAccount,
) -> list[list[str]]:
    if snapshot.currency != "EUR":
        raise ValueError(f"{snapshot.number}: only EUR invoices can be exported (is "
                         f"{snapshot.currency})")
    if not _BELEGFELD.match(snapshot.number):
        raise ValueError(f"{snapshot.number!r} cannot be Belegfeld 1: at most 36 characters "
                         "of A-Z a-z 0-9 $ & % * + - /")
    debtor = _account(_debtor(snapshot, debtor_account), account_length + 1, snapshot, "debtor")
    if snapshot.type_code == CANCELLATION:
        text = booking_text(f"Storno {snapshot.preceding_number or '?'}", snapshot.buyer.name, first=True)
    else:
        text = booking_text(snapshot.number, snapshot.buyer.name)
    cancellation = snapshot.type_code == CANCELLATION
    # A cancellation may carry positive (EN 16931 credit note) or mirrored negative amounts;
    # both mean the same booking.
    sign = -1 if cancellation and snapshot.gross < 0 else 1
    rows = []
    for group in snapshot.vat_groups:
        gross = sign * (group.base + group.amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if gross == 0:
            continue
        # Invoices debit the customer (S); cancellations credit him (H). A negative amount flips
        # the side again, so the amount written is always positive as DATEV demands.
        debit = (gross > 0) != cancellation
        case = tax_case(group)
        if case not in revenue_accounts:
            raise ValueError(f"{snapshot.number}: no revenue account for tax case {case!r}")
        revenue = _account(revenue_accounts[case], account_length, snapshot, "revenue")
        cells = [""] * len(COLUMNS)
        cells[_COL["Umsatz (ohne Soll/Haben-Kz)"]] = _amount(abs(gross), snapshot)
        cells[_COL["Soll/Haben-Kennzeichen"]] = _text("S" if debit else "H")
        cells[_COL["WKZ Umsatz"]] = _text(snapshot.currency)
        cells[_COL["Konto"]] = debtor
        cells[_COL["Gegenkonto (ohne BU-Schlüssel)"]] = revenue
        cells[_COL["BU-Schlüssel"]] = _text("")
        cells[_COL["Belegdatum"]] = f"{snapshot.issue_date:%d%m}"
        cells[_COL["Belegfeld 1"]] = _text(snapshot.number)
        cells[_COL["Buchungstext"]] = _text(text, BOOKING_TEXT_LIMIT)
        if group.category == "AE" and snapshot.buyer.vat_id:
            # Needed for the Zusammenfassende Meldung (§ 18a UStG).
            vat_id = snapshot.buyer.vat_id.replace(" ", "").upper()
            cells[_COL["EU-Land u. UStID (Bestimmung)"]] = _text(vat_id, 15)
        cells[_COL["Festschreibung"]] = "0"
        cells[_COL["Leistungsdatum"]] = f"{snapshot.service_end:%d%m%Y}"
        if snapshot.due_date:
            cells[_COL["Fälligkeit"]] = f"{snapshot.due_date:%d%m%Y}"
        rows.append(cells)
    return rows


def _header(
    *,
    consultant_number: int,
    client_number: int,
    fiscal_year_start: date,
    account_length: int,
    start: date,
    end: date,
    description: str,
    chart: str,
    exported_by: str,
    created_at: datetime,
) -> str:
    fields = [
        _text("EXTF"),  # 1 Kennzeichen: EXTF for third-party software
        str(HEADER_VERSION),  # 2 Versionsnummer
        str(CATEGORY_BUCHUNGSSTAPEL),  # 3 Formatkategorie
        _text(FORMAT_NAME),  # 4 Formatname
        str(FORMAT_VERSION),  # 5 Formatversion
        created_at.strftime("%Y%m%d%H%M%S") + f"{created_at.microsecond // 1000:03d}",  # 6
        "",  # 7 Importiert (reserved)
        _text("RE"),  # 8 Herkunft
        _text(exported_by, 25),  # 9 Exportiert von
        _text(""),  # 10 Importiert von
        str(consultant_number),  # 11 Beraternummer
        str(client_number),  # 12 Mandantennummer
        f"{fiscal_year_start:%Y%m%d}",  # 13 WJ-Beginn
        str(account_length),  # 14 Sachkontenlänge
        f"{start:%Y%m%d}",  # 15 Datum vom
        f"{end:%Y%m%d}",  # 16 Datum bis
        _text(description, 30),  # 17 Bezeichnung
        _text(""),  # 18 Diktatkürzel
        "1",  # 19 Buchungstyp: Finanzbuchführung
        "0",  # 20 Rechnungslegungszweck
        "0",  # 21 Festschreibung: no, the adviser reviews before locking
        _text("EUR"),  # 22 WKZ
        "",  # 23 reserved
        _text(""),  # 24 Derivatskennzeichen
        "",  # 25 reserved
        "",  # 26 reserved
        _text(chart),  # 27 Sachkontenrahmen
        "",  # 28 ID der Branchenlösung
        "",  # 29 reserved
        _text(""),  # 30 reserved
        _text(""),  # 31 Anwendungsinformation
    ]
    return ";".join(fields)


def _debtor(snapshot: InvoiceSnapshot, debtor_account: DebtorAccount) -> int | str:
    if callable(debtor_account):
        return debtor_account(snapshot)
    key = snapshot.buyer.customer_number
    if key is None or key not in debtor_account:
        raise ValueError(f"{snapshot.number}: no debtor account for customer {key!r}")
    return debtor_account[key]


def _account(value: int | str, digits: int, snapshot: InvoiceSnapshot, kind: str) -> str:
    text = str(value).strip()
    if not text.isdigit() or len(text) > digits or (kind == "debtor" and len(text) != digits):
        raise ValueError(f"{snapshot.number}: {kind} account {value!r} does not fit the account "
                         f"length ({digits} digits)")
    return text


def _amount(value: Decimal, snapshot: InvoiceSnapshot) -> str:
    if value > _AMOUNT_LIMIT:
        raise ValueError(f"{snapshot.number}: amount {value} exceeds DATEV's 10 integer digits")
    return f"{value:.2f}".replace(".", ",")


BOOKING_TEXT_LIMIT = 60


def booking_text(number: str, name: str, *, first: bool = False) -> str:
    """Buchungstext of at most 60 characters that keeps `number` whole: the name is shortened
    instead ("Müller & Söhne Maschinenbau … RE-2026-00042"). `first` puts the number first."""
    number = cp1252_text(number)
    room = BOOKING_TEXT_LIMIT - len(number) - 1
    name = " ".join(cp1252_text(name).split())
    if len(name) > room:
        name = name[: max(room - 1, 0)].rstrip() + "…"
    return f"{number} {name}" if first else f"{name} {number}"


def cp1252_text(value: str) -> str:
    """`value` with every character Windows-1252 cannot encode transliterated (anyascii):
    German umlauts and ß stay, "Łódź" becomes "Lodz", nothing becomes "?"."""
    out = []
    for char in value:
        try:
            char.encode("cp1252")
        except UnicodeEncodeError:
            char = anyascii(char)
        out.append(char)
    return "".join(out)


def _text(value: str, limit: int | None = None) -> str:
    """A quoted DATEV text field: no control characters, cp1252 only, inner quotes doubled,
    cut to length."""
    clean = " ".join(cp1252_text(value).split())
    if limit is not None:
        clean = clean[:limit]
    return '"' + clean.replace('"', '""') + '"'


def _fiscal_year_end(start: date) -> date:
    try:
        following = start.replace(year=start.year + 1)
    except ValueError:  # 29 February
        following = date(start.year + 1, 3, 1)
    return date.fromordinal(following.toordinal() - 1)
