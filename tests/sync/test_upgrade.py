"""Upgrade: a database created by the first released schema, with the data 0.1.0 wrote, is
migrated to the current heads; every row survives, the GoBD triggers still hold, and the
application works on it (lists and exports the old invoice, bills a new ticket with the next
number of the same series), on SQLite and PostgreSQL.

The first release is what main held when ticketbill first landed: migrations 0001 and 0002.
The rows are written with SQLAlchemy Core on the *reflected* 0002 tables, never through the
current models, so the test keeps describing the old database however the models change;
every migration added later (by anyone) runs between the insert and the checks.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, MetaData, select, text, update
from sqlalchemy.exc import DatabaseError
from sync_fixtures import SELLER, closed_ticket, make_settings

from addon.cli import main
from addon.db import _alembic_config, current_revisions, make_engine, make_session_factory, pending_migrations, upgrade
from addon.invoicing.issue import document_files
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice
from addon.sync.jobs import run_sync
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

FIRST_RELEASE = "0002"
ISSUED = datetime(2026, 10, 30, 15, 0, tzinfo=UTC)

# The snapshot 0.1.0 froze for RE-2026-00001, in 0.1.0's JSON format (InvoiceSnapshot.to_json).
SNAPSHOT_0_1_0 = {
    "annex": [], "buyer_reference": None, "currency": "EUR", "due_date": "2026-11-13", "gross": "158.87",
    "issue_date": "2026-10-30", "language": "de", "net": "133.50", "notes": [], "number": "RE-2026-00001",
    "payment_terms": "Zahlbar innerhalb von 14 Tagen ohne Abzug.", "preceding_date": None,
    "preceding_number": None, "service_end": "2026-10-29", "service_start": "2026-10-29", "type_code": "380",
    "vat": "25.37",
    "buyer": {"bank": None, "bic": None, "city": "Hamburg", "contact_name": None, "country": "DE",
              "customer_number": None, "email": None, "iban": None, "legal_registration_id": None,
              "name": "Bäckerei Hansen GmbH", "phone": None, "postcode": "22767", "street": "Große Bergstraße 143",
              "tax_number": None, "vat_id": None},
    "seller": {"bank": None, "bic": None, "city": "Hamburg", "contact_name": None, "country": "DE",
               "customer_number": None, "email": None, "iban": "DE89370400440532013000",
               "legal_registration_id": None, "name": "Nordlicht IT-Service GmbH", "phone": None,
               "postcode": "20457", "street": "Hafenstraße 12", "tax_number": None, "vat_id": "DE136695976"},
    "lines": [
        {"description": "Remote-Support (Anna Becker)", "explanation": {}, "net": "89.00", "position": 1,
         "quantity": "1.00", "service_end": "2026-10-29", "service_start": "2026-10-29", "ticket_number": "31001",
         "unit": "HUR", "unit_price": "89.00", "vat_category": "S", "vat_rate": "19"},
        {"description": "Vor-Ort-Einsatz (Jonas Schulz)", "explanation": {}, "net": "44.50", "position": 2,
         "quantity": "0.50", "service_end": "2026-10-29", "service_start": "2026-10-29", "ticket_number": "31001",
         "unit": "HUR", "unit_price": "89.00", "vat_category": "S", "vat_rate": "19"},
    ],
    "tickets": [{"number": "31001", "title": "Kassensystem startet nicht", "url": None}],
    "vat_groups": [{"amount": "25.37", "base": "133.50", "category": "S", "exemption_reason": None, "rate": "19"}],
}


def first_release_database(database_url: str) -> Engine:
    engine = make_engine(database_url)
    command.upgrade(_alembic_config(engine), FIRST_RELEASE)
    assert current_revisions(engine) == [FIRST_RELEASE]
    return engine


def write_release_data(engine: Engine, invoice_dir: Path) -> None:
    """What a 0.1.0 sidecar had stored after billing one ticket: customer, ticket, entries, an
    issued invoice with its lines and files, the billing links and history, audit log, run,
    cursor, counter and the write-back it performed."""
    snapshot = InvoiceSnapshot.from_json(json.dumps(SNAPSHOT_0_1_0))
    pdf, xml = document_files(snapshot, render_pdf)[:2]
    invoice_dir.mkdir(parents=True, exist_ok=True)
    paths = {f.filename: invoice_dir / f.filename for f in (pdf, xml)}
    for rendered in (pdf, xml):
        paths[rendered.filename].write_bytes(rendered.content)
    digest = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}
    tables = MetaData()
    tables.reflect(engine)
    t = tables.tables
    booked = datetime(2026, 10, 29, 9, 0, tzinfo=UTC)
    with engine.begin() as db:
        def add(table: str, **values: Any) -> Any:
            """One row as 0.1.0 wrote it; ids come from the database (its sequences on PostgreSQL)."""
            key = next(iter(t[table].primary_key.columns))
            return db.execute(t[table].insert().returning(key), values).scalar_one()

        customer = add("customer", helpdesk="zammad", remote_id="1", name="Bäckerei Hansen",
                       legal_name="Bäckerei Hansen GmbH", street="Große Bergstraße 143", postcode="22767",
                       city="Hamburg", country="DE", hourly_rate=Decimal("89.00"), language="de",
                       approval_required=False, xrechnung=False)
        ticket = add("ticket", helpdesk="zammad", remote_id="9001", number="31001", title="Kassensystem startet nicht",
                     customer_id=customer, state="closed", closed_at=ISSUED, remote_updated_at=ISSUED, group="Users",
                     tags=[], billing_status="invoiced", status_version=1, seen_at=ISSUED)
        entries = [
            add("time_entry", helpdesk="zammad", remote_id=remote, ticket_id=ticket, agent=agent, agent_name=name,
                activity=activity, minutes=Decimal(minutes), booked_at=booked, start=booked, content_hash=digit * 64)
            for remote, agent, name, activity, minutes, digit in (
                ("701", "anna.becker@nordlicht-it.example", "Anna Becker", "Remote", "50", "a"),
                ("702", "jonas.schulz@nordlicht-it.example", "Jonas Schulz", "Vor-Ort", "20", "b"))
        ]
        # as the sidecar does: the draft row and its lines first, then issued (the GoBD
        # triggers refuse lines on an issued invoice)
        invoice = add("invoice", series="invoice", number="RE-2026-00001", type_code="380", state="draft",
                      customer_id=customer, ticket_id=ticket, issued_at=ISSUED, net=Decimal("133.50"),
                      vat=Decimal("25.37"), gross=Decimal("158.87"), snapshot=snapshot.to_json(),
                      pdf_path=str(paths[pdf.filename]), pdf_sha256=digest[pdf.filename],
                      xml_path=str(paths[xml.filename]), xml_sha256=digest[xml.filename],
                      access_key="k3Y-0.1.0-upgrade-test-access", created_at=ISSUED)
        lines = [
            add("invoice_line", invoice_id=invoice, position=position, description=text_, quantity=Decimal(hours),
                unit="HUR", unit_price=Decimal("89.00"), net=Decimal(net), explanation={"entries": [entry]})
            for position, entry, text_, hours, net in (
                (1, entries[0], "Remote-Support (Anna Becker)", "1.00", "89.00"),
                (2, entries[1], "Vor-Ort-Einsatz (Jonas Schulz)", "0.50", "44.50"))
        ]
        db.execute(update(t["invoice"]).where(t["invoice"].c.id == invoice).values(state="issued"))
        for entry, line, raw, billed in zip(entries, lines, ("50", "20"), ("60", "30"), strict=True):
            add("billed_entry", entry_id=entry, invoice_id=invoice, line_id=line, raw_minutes=Decimal(raw),
                billed_minutes=Decimal(billed))
            add("billing_history", entry_id=entry, invoice_id=invoice, line_id=line, event="billed",
                raw_minutes=Decimal(raw), billed_minutes=Decimal(billed), at=ISSUED)
        add("audit_log", at=ISSUED, actor="sync", action="issue", invoice_id=invoice,
            details={"number": "RE-2026-00001", "gross": "158.87", "files": digest})
        add("number_series", name="invoice", year=2026, next_value=2)
        add("sync_run", helpdesk="zammad", started_at=ISSUED, finished_at=ISSUED, status="succeeded",
            counts={"invoiced": 1, "tickets_seen": 1}, error=None)
        add("sync_cursor", helpdesk="zammad", stream="closed_tickets", value=ISSUED)
        add("outbox", kind="ticket_writeback", ticket_id=ticket, invoice_id=invoice, marker="RE-2026-00001",
            payload={"billing_status": "invoiced", "invoice_reference": "RE-2026-00001"}, status="done",
            attempts=1, created_at=ISSUED, done_at=ISSUED)


#: first-release tables a later revision drops on purpose: 0011 replaced the lease rows of
#: `job_lock` by locks that die with their holder (nothing in them outlives a run)
DROPPED = {"job_lock"}


def all_rows(engine: Engine, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the first release's tables, in its columns only."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as db:
        return {name: sorted((tuple(r) for r in db.execute(select(*(tables.tables[name].c[c] for c in cols)))),
                             key=repr)
                for name, cols in columns.items()}


def test_first_release_database_upgrades_and_keeps_working(
    database_url: str, tmp_path: Path, sandbox: ZammadSandbox
) -> None:
    sb = sandbox  # the sync fixtures' sandbox: seeded, emptied of tickets
    settings = make_settings(sb, database_url, tmp_path / "data")
    engine = first_release_database(database_url)
    write_release_data(engine, settings.invoice_dir)
    first_tables = MetaData()
    first_tables.reflect(engine)
    columns = {name: [c.name for c in table.columns] for name, table in first_tables.tables.items()
               if name != "alembic_version"}
    before = all_rows(engine, columns)
    assert len(before["invoice"]) == 1 and len(before["billed_entry"]) == 2 and len(before["audit_log"]) == 1

    applied = upgrade(engine)  # what `ticketbill init` (and so ./install.sh) runs

    assert FIRST_RELEASE not in applied and pending_migrations(engine) == []
    kept = {name: cols for name, cols in columns.items() if name not in DROPPED}
    assert all_rows(engine, kept) == {name: rows for name, rows in before.items() if name in kept}
    with pytest.raises(DatabaseError, match="GoBD"), engine.begin() as db:
        db.execute(text("UPDATE invoice SET gross = 0 WHERE number = 'RE-2026-00001'"))

    # the application on the upgraded database: list, export from the old snapshot, bill on
    env_file = tmp_path / "upgraded.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in {
        "HELPDESK_KIND": "zammad", "HELPDESK_URL": sb.url, "HELPDESK_TOKEN": sb.admin_token,
        "DATABASE_URL": database_url, "DATA_DIR": str(settings.data_dir), **SELLER}.items()), encoding="utf-8")
    listed = CliRunner().invoke(main, ["--env-file", str(env_file), "invoices", "list"])
    assert listed.exit_code == 0, listed.output
    assert "RE-2026-00001" in listed.output and "158.87" in listed.output
    exported = CliRunner().invoke(main, ["--env-file", str(env_file), "export", "csv", "--from", "2026-10-01",
                                         "--to", "2026-10-31", "--out-dir", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    [invoices_csv] = (tmp_path / "export").glob("invoices_*.csv")
    assert "RE-2026-00001" in invoices_csv.read_text(encoding="utf-8")

    connector = ZammadConnector.from_settings(settings)
    connector.register()
    closed_ticket(sb, "Bondrucker", 1, [(45, 3, 1)])
    result = run_sync(make_session_factory(engine), connector, settings, render_pdf)
    assert result.ok, result.error
    with make_session_factory(engine)() as session:
        numbers = session.execute(select(Invoice.number).order_by(Invoice.id)).scalars().all()
    assert numbers == ["RE-2026-00001", "RE-2026-00002"]  # the 0.1.0 series goes on
    engine.dispose()
