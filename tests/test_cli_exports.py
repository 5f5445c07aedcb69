"""`ticketbill export datev|csv` from the stored snapshots, through click's CliRunner, on
SQLite and PostgreSQL; the export is recorded in the audit log."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from addon.cli import main
from addon.db import make_session_factory, transaction
from addon.invoicing.issue import Draft, DraftLine, EntryLink, issue_invoice
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import VatGroup
from addon.models import AuditLog, Customer, Invoice, Ticket, TimeEntry
from addon.settings import load_settings

SELLER = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}


def env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {"HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://helpdesk.test", "HELPDESK_TOKEN": "t",
            "DATABASE_URL": database_url, "DATA_DIR": str(data_dir), **SELLER, **extra}


def run(tmp_path: Path, values: dict[str, str], *args: str) -> Result:
    env_file = tmp_path / "export.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()), encoding="utf-8")
    return CliRunner().invoke(main, ["--env-file", str(env_file), *args], catch_exceptions=False)


@pytest.fixture
def values(engine: Engine, database_url: str, tmp_path: Path) -> dict[str, str]:
    """Two invoices in November 2026 (one customer with its own debtor account), the first
    cancelled from the CLI, and one invoice in December that no November export may show."""
    values = env(database_url, tmp_path / "data", DATEV_CONSULTANT_NUMBER="29098", DATEV_CLIENT_NUMBER="55003",
                 DATEV_DEFAULT_DEBTOR="10000")
    settings = load_settings(values)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        customers = {}
        for org, debtor, name in (("1", None, "Bäckerei Hansen GmbH"), ("2", "10042", "Müller & Söhne KG")):
            customers[org] = Customer(helpdesk="zammad", remote_id=org, name=name, legal_name=name,
                                      street="Hauptstr. 1", postcode="20095", city="Hamburg", country="DE",
                                      debtor_account=debtor, customer_number=f"K-{org}")
            session.add(customers[org])
        session.flush()
        for org, when in (("1", datetime(2026, 11, 3, 9, tzinfo=UTC)), ("2", datetime(2026, 11, 12, 9, tzinfo=UTC)),
                          ("1", datetime(2026, 12, 2, 9, tzinfo=UTC))):
            customer = customers[org]
            ticket = Ticket(helpdesk="zammad", remote_id=f"{org}{when:%m%d}", number=f"3{when:%m%d}", title="Support",
                            customer_id=customer.id, state="closed", closed_at=when, remote_updated_at=when,
                            seen_at=when)
            session.add(ticket)
            session.flush()
            entry = TimeEntry(helpdesk="zammad", remote_id=f"{org}{when:%m%d}", ticket_id=ticket.id, agent="Anna",
                              activity="Remote", minutes=D(60), booked_at=when, content_hash="x")
            session.add(entry)
            session.flush()
            line = DraftLine("Support", D("1"), "HUR", D("100.00"), D("100.00"), D("19"), when.date(),
                             when.date(), (EntryLink(entry.id, D(60), D(60)),), {}, ticket.number)
            draft = Draft((line,), (VatGroup("S", D("19"), D("100.00"), D("19.00")),), D("100.00"),
                          D("19.00"), D("119.00"), ())
            issue_invoice(session, settings, customer, [ticket], draft, render_pdf, when)
    return values


def test_datev_export_of_a_period(values: dict[str, str], tmp_path: Path) -> None:
    cancelled = run(tmp_path, values, "invoices", "cancel", "RE-2026-00001", "--reason", "Test", "--then", "rebill")
    assert cancelled.exit_code == 0, cancelled.output
    out = tmp_path / "EXTF_Buchungsstapel.csv"
    today = date.today()  # the cancellation is dated today
    end = "2026-11-30"

    result = run(tmp_path, values, "export", "datev", "--from", "2026-11-01", "--to", end, "--out", str(out))

    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    decoded = raw.decode("cp1252")
    assert decoded.endswith("\r\n") and "\n" not in decoded.replace("\r\n", "")
    lines = decoded.split("\r\n")[:-1]
    header = lines[0].split(";")
    assert header[:5] == ['"EXTF"', "700", "21", '"Buchungsstapel"', "13"]
    assert (header[10], header[11], header[12], header[13]) == ("29098", "55003", "20260101", "4")
    assert (header[14], header[15]) == ("20261101", "20261130")
    assert lines[1].startswith("Umsatz (ohne Soll/Haben-Kz);Soll/Haben-Kennzeichen;")
    rows = [row.split(";") for row in lines[2:]]
    by_number = {row[10].strip('"'): row for row in rows}
    expected = {"RE-2026-00001", "RE-2026-00002"}
    if date(2026, 11, 1) <= today <= date(2026, 11, 30):
        expected.add("ST-2026-00001")
    assert set(by_number) == expected
    assert by_number["RE-2026-00001"][:2] == ["119,00", '"S"']
    assert (by_number["RE-2026-00001"][6], by_number["RE-2026-00001"][7]) == ("10000", "8400")
    assert by_number["RE-2026-00002"][6] == "10042"  # the customer's own debtor account
    if "ST-2026-00001" in by_number:
        assert by_number["ST-2026-00001"][:2] == ["119,00", '"H"']
    log = run(tmp_path, values, "invoices", "log", "RE-2026-00002")
    assert "export" in log.output and "datev" in log.output


def test_datev_export_needs_the_consultant_settings(values: dict[str, str], tmp_path: Path) -> None:
    values = {k: v for k, v in values.items() if k != "DATEV_CONSULTANT_NUMBER"}
    result = run(tmp_path, values, "export", "datev", "--from", "2026-11-01", "--to", "2026-11-30",
                 "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 2
    assert "DATEV_CONSULTANT_NUMBER" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_datev_export_names_customers_without_debtor_account(values: dict[str, str], tmp_path: Path) -> None:
    values = {k: v for k, v in values.items() if k != "DATEV_DEFAULT_DEBTOR"}
    result = run(tmp_path, values, "export", "datev", "--from", "2026-11-01", "--to", "2026-11-30",
                 "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert "Bäckerei Hansen GmbH" in result.output and "debtor_account" in result.output


def test_csv_export_of_a_period(values: dict[str, str], tmp_path: Path, engine: Engine) -> None:
    out_dir = tmp_path / "csv"

    result = run(tmp_path, values, "export", "csv", "--from", "2026-11-01", "--to", "2026-11-30",
                 "--out-dir", str(out_dir))

    assert result.exit_code == 0, result.output
    invoices = list(csv.DictReader(io.StringIO((out_dir / "invoices_20261101-20261130.csv").read_text("utf-8"))))
    assert [(row["number"], row["gross"], row["buyer_name"]) for row in invoices] == [
        ("RE-2026-00001", "119.00", "Bäckerei Hansen GmbH"), ("RE-2026-00002", "119.00", "Müller & Söhne KG")]
    lines = list(csv.DictReader(io.StringIO((out_dir / "invoice_lines_20261101-20261130.csv").read_text("utf-8"))))
    assert [(row["invoice_number"], row["net"]) for row in lines] == [("RE-2026-00001", "100.00"),
                                                                      ("RE-2026-00002", "100.00")]
    with make_session_factory(engine)() as session:
        export = session.execute(select(AuditLog).where(AuditLog.action == "export")).scalar_one()
        assert export.details["kind"] == "csv" and export.details["numbers"] == ["RE-2026-00001", "RE-2026-00002"]
        assert export.actor.startswith("cli:")


def read_gdpdu(archive: zipfile.ZipFile) -> dict[str, list[dict[str, object]]]:
    """Read every table as an auditor's tool does: only from what index.xml says (file, codepage,
    delimiters, column names and types, decimal places, date format)."""
    index = ElementTree.fromstring(archive.read("index.xml"))
    assert archive.read("index.xml").startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE DataSet SYSTEM')
    tables: dict[str, list[dict[str, object]]] = {}
    for table in index.iter("Table"):
        assert table.find("UTF8") is not None and table.findtext("DecimalSymbol") == ","
        layout = table.find("VariableLength")
        assert layout is not None
        assert (layout.findtext("ColumnDelimiter"), layout.findtext("RecordDelimiter"),
                layout.findtext("TextEncapsulator")) == (";", "\r\n", '"')
        columns = [c for c in layout if c.tag in ("VariablePrimaryKey", "VariableColumn")]
        raw = archive.read(table.findtext("URL") or "").decode("utf-8")
        assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
        rows = []
        for cells in csv.reader(io.StringIO(raw, newline=""), delimiter=";", quotechar='"'):
            assert len(cells) == len(columns)
            row: dict[str, object] = {}
            for column, cell in zip(columns, cells, strict=True):
                name = column.findtext("Name") or ""
                if column.find("Numeric") is not None:
                    places = int(column.findtext("Numeric/Accuracy") or 0)
                    fraction = cell.partition(",")[2]
                    assert cell == "" or len(fraction) == places, (name, cell)
                    row[name] = D(cell.replace(",", ".")) if cell else None
                elif column.find("Date") is not None:
                    assert column.findtext("Date/Format") == "DD.MM.YYYY"
                    row[name] = datetime.strptime(cell, "%d.%m.%Y").date() if cell else None
                else:
                    row[name] = cell
            rows.append(row)
        keys = [c.findtext("Name") for c in columns if c.tag == "VariablePrimaryKey"]
        assert len({tuple(r[k] for k in keys) for r in rows}) == len(rows)  # primary keys are unique
        tables[table.findtext("Name") or ""] = rows
    return tables


def test_gdpdu_archive_for_the_tax_office(values: dict[str, str], tmp_path: Path) -> None:
    cancelled = run(tmp_path, values, "invoices", "cancel", "RE-2026-00001", "--reason", "Test", "--then", "rebill")
    assert cancelled.exit_code == 0, cancelled.output
    out = tmp_path / "gdpdu.zip"

    result = run(tmp_path, values, "export", "gdpdu", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"2 documents → {out}")
    with zipfile.ZipFile(out) as archive:
        tables = read_gdpdu(archive)
        invoices = {row["Belegnummer"]: row for row in tables["Rechnungen"]}
        assert set(invoices) == {"RE-2026-00001", "RE-2026-00002"}  # not December's
        first = invoices["RE-2026-00001"]
        assert (first["Belegart"], first["Belegdatum"], first["Kunde"]) == ("380", date(2026, 11, 3),
                                                                           "Bäckerei Hansen GmbH")
        assert (first["Netto"], first["Umsatzsteuer"], first["Brutto"]) == (D("100.00"), D("19.00"), D("119.00"))
        for number, row in invoices.items():  # every document is in the archive as it was sent
            for kind in ("PDF", "XML"):
                content = archive.read(str(row[kind]))
                assert hashlib.sha256(content).hexdigest() == row[f"{kind}_SHA256"], (number, kind)
            lines = [line for line in tables["Rechnungspositionen"] if line["Belegnummer"] == number]
            assert sum(D(str(line["Netto"])) for line in lines) == row["Netto"]
            vat = [group for group in tables["Umsatzsteuer"] if group["Belegnummer"] == number]
            assert sum(D(str(group["Steuerbetrag"])) for group in vat) == row["Umsatzsteuer"]
        assert {row["Aktion"] for row in tables["Protokoll"]} >= {"issue", "cancel"}
    log = run(tmp_path, values, "invoices", "log", "RE-2026-00002")
    assert "gdpdu" in log.output


def test_gdpdu_archive_refuses_a_changed_document(values: dict[str, str], tmp_path: Path, engine: Engine) -> None:
    with make_session_factory(engine)() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number == "RE-2026-00002")).scalar_one()
        Path(invoice.pdf_path or "").write_bytes(b"%PDF-1.7 replaced")
    out = tmp_path / "gdpdu.zip"

    result = run(tmp_path, values, "export", "gdpdu", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out))

    assert result.exit_code == 1
    assert "RE-2026-00002" in result.output and "SHA-256" in result.output
    assert not out.exists()
