"""Issuing as a legal document, on SQLite and PostgreSQL: Factur-X hybrid + validated XML with
hashes, GoBD immutability (ORM guard and database triggers), drafts, payment, audit log."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from addon.db import make_session_factory, transaction
from addon.invoicing.einvoice import extract_xml
from addon.invoicing.immutability import ImmutableInvoiceError
from addon.invoicing.issue import Draft, DraftLine, EntryLink, issue_invoice, store_draft
from addon.invoicing.lifecycle import LifecycleError, approve_draft, discard_draft, edit_draft, mark_paid
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import AnnexEntry, InvoiceSnapshot, VatGroup
from addon.invoicing.validate import InvalidEInvoice, validate_cii
from addon.models import (
    AuditLog,
    BilledEntry,
    BillingHistory,
    Customer,
    Invoice,
    InvoiceLine,
    NumberSeries,
    Ticket,
    TimeEntry,
)
from addon.settings import Settings, load_settings

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def make_settings(data_dir: Path, database_url: str) -> Settings:
    return load_settings({
        "HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://helpdesk.test", "HELPDESK_TOKEN": "t",
        "DATABASE_URL": database_url, "DATA_DIR": str(data_dir),
        "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12",
        "SELLER_POSTCODE": "20457", "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976",
        "SELLER_IBAN": "DE89370400440532013000",
    })


@dataclass
class World:
    settings: Settings
    factory: sessionmaker[Session]
    customer_id: int
    ticket_id: int
    entry_ids: list[int]


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        customer = Customer(helpdesk="zammad", remote_id="1", name="Bäckerei Hansen", legal_name="Bäckerei Hansen GmbH",
                            street="Große Bergstraße 143", postcode="22767", city="Hamburg", country="DE",
                            customer_number="K-1", email="buchhaltung@hansen.example")
        session.add(customer)
        session.flush()
        ticket = Ticket(helpdesk="zammad", remote_id="7", number="31007", title="Drucker", customer_id=customer.id,
                        state="closed", closed_at=NOW, remote_updated_at=NOW, seen_at=NOW)
        session.add(ticket)
        session.flush()
        entries = [
            TimeEntry(helpdesk="zammad", remote_id=str(i), ticket_id=ticket.id, agent="Anna", activity="Remote",
                      minutes=D(minutes), booked_at=NOW, content_hash="x")
            for i, minutes in enumerate((50, 20), start=1)
        ]
        session.add_all(entries)
        session.flush()
        ids = [e.id for e in entries]
        customer_id, ticket_id = customer.id, ticket.id
    yield World(make_settings(tmp_path / "data", str(engine.url)), factory, customer_id, ticket_id, ids)


def draft_for(world: World) -> Draft:
    line = DraftLine(
        description="Ticket #31007 Drucker — Remote", quantity=D("1.50"), unit="HUR", unit_price=D("89.00"),
        net=D("133.50"), vat_rate=D("19"), service_start=date(2026, 11, 19), service_end=date(2026, 11, 19),
        entries=(EntryLink(world.entry_ids[0], D(50), D(60)), EntryLink(world.entry_ids[1], D(20), D(30))),
        explanation={"rule": "15-minute increments"}, ticket_number="31007",
    )
    return Draft(
        lines=(line,), vat_groups=(VatGroup("S", D("19"), D("133.50"), D("25.37")),),
        net=D("133.50"), vat=D("25.37"), gross=D("158.87"),
        annex=(AnnexEntry("31007", date(2026, 11, 19), "Anna", "Remote", D(70), D(90)),),
    )


def issue(world: World, actor: str = "test") -> Invoice:
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        return issue_invoice(session, world.settings, customer, [ticket], draft_for(world), render_pdf, NOW, actor)


def assert_pdfa3_hybrid(pdf: bytes) -> None:
    """pypdf checks: every font embedded, one sRGB output intent, Factur-X XMP, /AF link, text."""
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    assert len(root["/OutputIntents"]) == 1
    assert "/AF" in root and root["/Lang"] == "de-DE"
    xmp = root["/Metadata"].get_object().get_data()
    assert b"<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert b"<pdfaid:part>3</pdfaid:part>" in xmp
    for page in reader.pages:
        for font in page["/Resources"].get_object()["/Font"].values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor") or font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            descriptor = descriptor.get_object()
            assert any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")), font["/BaseFont"]
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in ("RE-2026-00001", "20.11.2026", "DE136695976", "133,50", "25,37", "158,87"):
        assert expected in text, expected


def test_every_issued_invoice_is_a_valid_facturx_hybrid(world: World) -> None:
    invoice = issue(world)

    pdf = Path(invoice.pdf_path or "").read_bytes()
    stored_xml = Path(invoice.xml_path or "").read_bytes()
    assert Path(invoice.xml_path or "").parent == world.settings.invoice_dir
    assert hashlib.sha256(pdf).hexdigest() == invoice.pdf_sha256
    assert hashlib.sha256(stored_xml).hexdigest() == invoice.xml_sha256
    extracted = extract_xml(pdf)
    assert extracted == stored_xml
    assert validate_cii(extracted) == []
    assert b"RE-2026-00001" in extracted and b"158.87" in extracted
    # the check is not vacuous: the same XML with a wrong total fails the Schematron
    broken = extracted.replace(b"<ram:GrandTotalAmount>158.87", b"<ram:GrandTotalAmount>158.88")
    assert broken != extracted and validate_cii(broken)
    assert_pdfa3_hybrid(pdf)
    with world.factory() as session:
        [entry] = session.execute(select(AuditLog)).scalars().all()
        assert (entry.action, entry.actor, entry.invoice_id) == ("issue", "test", invoice.id)
        assert entry.details["files"][Path(invoice.xml_path or "").name] == invoice.xml_sha256
        history = session.execute(select(BillingHistory.event, BillingHistory.billed_minutes)).all()
        assert sorted(history) == [("billed", D(30)), ("billed", D(60))]


def test_invalid_xml_aborts_the_issue_and_keeps_nothing(world: World) -> None:
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        assert customer is not None
        customer.country = "XX"  # passes the import's shape check, but is no ISO 3166 country
    with pytest.raises(InvalidEInvoice, match="RE-2026-00001 is invalid") as caught:
        issue(world)
    assert any("CountryID" in error and "fatal" in error for error in caught.value.errors)
    with world.factory() as session:
        assert session.execute(select(func.count()).select_from(Invoice)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(BilledEntry)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(NumberSeries)).scalar_one() == 0  # number given back
    assert not list(world.settings.invoice_dir.glob("*.xml"))


def test_issued_invoice_refuses_changes_in_the_orm(world: World) -> None:
    invoice = issue(world)
    for column, value in (("gross", D("1.00")), ("number", "RE-2026-99999"), ("snapshot", "{}")):
        with pytest.raises(ImmutableInvoiceError, match="cannot change"), transaction(world.factory) as session:
            row = session.get(Invoice, invoice.id)
            setattr(row, column, value)
    with pytest.raises(ImmutableInvoiceError, match="cannot be deleted"), transaction(world.factory) as session:
        session.delete(session.get(Invoice, invoice.id))
    with pytest.raises(ImmutableInvoiceError, match="lines"), transaction(world.factory) as session:
        line = session.execute(select(InvoiceLine)).scalar_one()
        line.net = D("1.00")
    with pytest.raises(ImmutableInvoiceError, match="no line can be added"), transaction(world.factory) as session:
        session.add(InvoiceLine(invoice_id=invoice.id, position=2, description="extra", quantity=D(1), unit="C62",
                                unit_price=D(1), net=D(1), explanation={}))
    with pytest.raises(ImmutableInvoiceError, match="state issued cannot become draft"), \
            transaction(world.factory) as session:
        session.get(Invoice, invoice.id).state = "draft"  # type: ignore[union-attr]
    # the lifecycle columns may move on
    with transaction(world.factory) as session:
        mark_paid(session, str(invoice.number), NOW, "test")
    with world.factory() as session:
        assert session.get(Invoice, invoice.id).state == "paid"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoice SET gross = 1 WHERE id = :id",
        "UPDATE invoice SET number = 'RE-2026-09999' WHERE id = :id",
        "UPDATE invoice SET snapshot = '{}' WHERE id = :id",
        "UPDATE invoice SET pdf_sha256 = 'x', xml_sha256 = 'y' WHERE id = :id",
        "UPDATE invoice SET customer_id = customer_id + 0, issued_at = NULL WHERE id = :id",
        "UPDATE invoice SET state = 'draft' WHERE id = :id",
        "DELETE FROM invoice WHERE id = :id",
        "UPDATE invoice_line SET net = 1 WHERE invoice_id = :id",
        "DELETE FROM invoice_line WHERE invoice_id = :id",
        "INSERT INTO invoice_line (invoice_id, position, description, quantity, unit, unit_price, net, explanation)"
        " VALUES (:id, 9, 'extra', 1, 'C62', 1, 1, '{}')",
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM billing_history",
    ],
)
def test_database_refuses_raw_sql_changes(world: World, engine: Engine, statement: str) -> None:
    invoice = issue(world)
    with pytest.raises(DatabaseError, match="GoBD"), engine.begin() as connection:
        connection.execute(text(statement), {"id": invoice.id})
    with world.factory() as session:
        row = session.get(Invoice, invoice.id)
        assert row is not None and row.gross == D("158.87") and row.state == "issued"


def test_database_allows_the_lifecycle_columns_and_free_drafts(world: World, engine: Engine) -> None:
    invoice = issue(world)
    with engine.begin() as connection:
        connection.execute(
            update(Invoice).where(Invoice.id == invoice.id).values(state="sent", delivery_status="sent")
        )
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        session.execute(delete(BilledEntry))  # raw test setup: free the entries for a draft
        draft = store_draft(session, world.settings, customer, [ticket], draft_for(world), NOW)
        draft_id = draft.id
    with engine.begin() as connection:
        connection.execute(update(InvoiceLine).where(InvoiceLine.invoice_id == draft_id).values(description="x"))
        connection.execute(delete(BilledEntry).where(BilledEntry.invoice_id == draft_id))
        connection.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == draft_id))
        connection.execute(delete(Invoice).where(Invoice.id == draft_id))


def test_draft_has_no_number_until_approved(world: World) -> None:
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        draft = store_draft(session, world.settings, customer, [ticket], draft_for(world), NOW)
        draft_id = draft.id
    with world.factory() as session:
        row = session.get(Invoice, draft_id)
        assert row is not None
        assert (row.state, row.number, row.pdf_path, row.gross) == ("draft", None, None, D("158.87"))
        assert len(row.lines) == 1
        assert session.execute(select(func.count()).select_from(BilledEntry)).scalar_one() == 2

    with transaction(world.factory) as session:
        issued = approve_draft(session, world.settings, draft_id, render_pdf, NOW, "cli:anna")
    assert (issued.id, issued.number, issued.state) == (draft_id, "RE-2026-00001", "issued")
    assert validate_cii(Path(issued.xml_path or "").read_bytes()) == []
    with pytest.raises(LifecycleError, match="not a draft"), transaction(world.factory) as session:
        approve_draft(session, world.settings, draft_id, render_pdf, NOW, "cli:anna")
    with pytest.raises(LifecycleError, match="not a draft"), transaction(world.factory) as session:
        discard_draft(session, draft_id, NOW, "cli:anna")
    with world.factory() as session:
        actions = session.execute(select(AuditLog.action, AuditLog.actor).order_by(AuditLog.id)).all()
        assert actions == [("approve", "cli:anna"), ("issue", "cli:anna")]


def test_discarded_draft_frees_its_entries(world: World) -> None:
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        ticket.billing_status = "draft"
        draft_id = store_draft(session, world.settings, customer, [ticket], draft_for(world), NOW).id
    with transaction(world.factory) as session:
        freed = discard_draft(session, draft_id, NOW, "cli:anna")
    assert sorted(freed) == sorted(world.entry_ids)
    with world.factory() as session:
        assert session.execute(select(func.count()).select_from(Invoice)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(BilledEntry)).scalar_one() == 0
        assert session.get(Ticket, world.ticket_id).billing_status == "unbilled"  # type: ignore[union-attr]
        [entry] = session.execute(select(AuditLog)).scalars().all()
        assert entry.action == "discard" and entry.details["draft_id"] == draft_id
    # the freed entries can be billed again
    assert issue(world).number == "RE-2026-00001"


def test_mark_paid_follows_the_state_machine(world: World) -> None:
    invoice = issue(world)
    with transaction(world.factory) as session:
        mark_paid(session, str(invoice.number), NOW, "cli:anna")
    with pytest.raises(LifecycleError, match="is paid"), transaction(world.factory) as session:
        mark_paid(session, str(invoice.number), NOW, "cli:anna")
    with pytest.raises(LifecycleError, match="no invoice"), transaction(world.factory) as session:
        mark_paid(session, "RE-1999-00001", NOW, "cli:anna")


def test_gobd_trigger_migration_is_part_of_the_chain() -> None:
    """Regenerating 0001 from the models must never drop the hand-written trigger migration."""
    from alembic.script import ScriptDirectory

    from addon.db import MIGRATIONS_DIR

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    revisions = {revision.revision for revision in script.walk_revisions()}
    assert "0002" in revisions, "migrations/versions/0002_gobd_triggers.py is missing: restore it after regenerating"
    assert script.get_revision("0002").down_revision == "0001"


def test_draft_texts_can_be_edited_before_approval(world: World) -> None:

    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        draft_id = store_draft(session, world.settings, customer, [ticket], draft_for(world), NOW).id
    with transaction(world.factory) as session:
        edit_draft(session, draft_id, NOW, "cli:anna", {1: "Druckerwartung 2. OG (Fernwartung)"},
                   ["Bestellnummer 4711 laut Ihrer Anfrage"])
    with pytest.raises(LifecycleError, match="has lines 1 to 1, not 2"), transaction(world.factory) as session:
        edit_draft(session, draft_id, NOW, "cli:anna", {2: "x"})
    with pytest.raises(LifecycleError, match="must not be empty"), transaction(world.factory) as session:
        edit_draft(session, draft_id, NOW, "cli:anna", {1: "  "})

    with transaction(world.factory) as session:
        issued = approve_draft(session, world.settings, draft_id, render_pdf, NOW, "cli:anna")
        snapshot = InvoiceSnapshot.from_json(issued.snapshot or "")
        assert [line.description for line in issued.lines] == ["Druckerwartung 2. OG (Fernwartung)"]
        actions = session.execute(select(AuditLog.action).where(AuditLog.invoice_id == draft_id)).scalars().all()
    assert snapshot.lines[0].description == "Druckerwartung 2. OG (Fernwartung)"
    assert snapshot.notes == ("Bestellnummer 4711 laut Ihrer Anfrage",)
    assert snapshot.gross == D("158.87")  # amounts are never edited by hand
    assert "edit" in actions and "approve" in actions


def test_no_charge_only_draft_becomes_an_activity_report_not_a_zero_invoice(world: World) -> None:
    """A goodwill ticket produced "Rechnung … Bitte überweisen Sie den Gesamtbetrag von 0,00 €"."""
    from dataclasses import replace

    from addon.invoicing.cancel import cancel_invoice
    from addon.invoicing.lifecycle import LifecycleError

    base = draft_for(world)
    free = replace(base, lines=tuple(replace(line, unit_price=D("0.00"), net=D("0.00")) for line in base.lines),
                   vat_groups=(VatGroup("S", D("19"), D("0.00"), D("0.00")),), net=D("0.00"), vat=D("0.00"),
                   gross=D("0.00"))
    with transaction(world.factory) as session:
        customer = session.get(Customer, world.customer_id)
        ticket = session.get(Ticket, world.ticket_id)
        assert customer is not None and ticket is not None
        report = issue_invoice(session, world.settings, customer, [ticket], free, render_pdf, NOW, "test")
        assert (report.type_code, report.series, report.number) == ("LN", "activity_report", "LN-2026-00001")
        assert report.xml_path is None and report.pdf_path is not None
        text = " ".join(page.extract_text() for page in PdfReader(report.pdf_path).pages)
    assert "Bitte überweisen" not in text and "0,00 €" not in text
    assert "eine Zahlung ist nicht zu leisten" in " ".join(text.split())
    with pytest.raises(LifecycleError, match="activity report"), transaction(world.factory) as session:
        cancel_invoice(session, world.settings, "LN-2026-00001", None, render_pdf, NOW, "test")
