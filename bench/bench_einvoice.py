"""Measure the legal-document path: issue + render + validate one invoice, and check a demo run.

Usage:
    .venv/bin/python bench/bench_einvoice.py [DEMO_DATA_DIR] [--runs N]

1. Issue timing: one complete `issue_invoice` (number, snapshot, PDF, CII XML, XSD+Schematron
   validation, Factur-X embedding, both files stored with SHA-256, entry links, audit, outbox)
   in a fresh SQLite database, N times; prints the first (cold: XSLT compile, fonts) and the
   median of the warm ones, and the split render / XML+validate / embed.
2. With a demo data directory (`ticketbill demo --data-dir DIR` first): re-validates every stored
   XML, extracts the XML from every hybrid PDF and compares it byte for byte, and prints counts.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import select

from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.invoicing.einvoice import embed_facturx, extract_xml, xml_file
from addon.invoicing.issue import Draft, DraftLine, EntryLink, issue_invoice
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import AnnexEntry, InvoiceSnapshot, VatGroup
from addon.invoicing.validate import validate_cii, validate_xrechnung
from addon.models import Customer, Invoice, Ticket, TimeEntry
from addon.settings import load_settings

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def issue_timings(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({
            "HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://helpdesk.test", "HELPDESK_TOKEN": "t",
            "DATA_DIR": folder, "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12",
            "SELLER_POSTCODE": "20457", "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976",
            "SELLER_IBAN": "DE89370400440532013000",
        })
        engine = make_engine(settings.database_url)
        upgrade(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            customer = Customer(helpdesk="zammad", remote_id="1", name="Bäckerei Hansen GmbH",
                                legal_name="Bäckerei Hansen GmbH", street="Große Bergstraße 143",
                                postcode="22767", city="Hamburg", country="DE")
            session.add(customer)
            session.flush()
            customer_id = customer.id
        totals: list[float] = []
        snapshot_json = ""
        for run in range(runs):
            with transaction(factory) as session:
                customer = session.get(Customer, customer_id)
                assert customer is not None
                ticket = Ticket(helpdesk="zammad", remote_id=str(run), number=f"310{run:02d}", title="Drucker",
                                customer_id=customer.id, state="closed", closed_at=NOW, remote_updated_at=NOW,
                                seen_at=NOW)
                session.add(ticket)
                session.flush()
                entry = TimeEntry(helpdesk="zammad", remote_id=str(run), ticket_id=ticket.id, agent="Anna",
                                  activity="Remote", minutes=D(50), booked_at=NOW, content_hash="x")
                session.add(entry)
                session.flush()
                line = DraftLine("Ticket Drucker — Remote", D("1.00"), "HUR", D("89.00"), D("89.00"), D("19"),
                                 date(2026, 11, 19), date(2026, 11, 19), (EntryLink(entry.id, D(50), D(60)),),
                                 {}, ticket.number)
                draft = Draft((line,), (VatGroup("S", D("19"), D("89.00"), D("16.91")),), D("89.00"), D("16.91"),
                              D("105.91"), (AnnexEntry(ticket.number, date(2026, 11, 19), "Anna", "Remote", D(50),
                                                       D(60)),))
                started = time.perf_counter()
                invoice = issue_invoice(session, settings, customer, [ticket], draft, render_pdf, NOW)
                totals.append(time.perf_counter() - started)
                snapshot_json = invoice.snapshot or ""
        engine.dispose()
    warm = totals[1:] or totals
    print(f"issue + render + validate + embed + store, 1 invoice: cold {totals[0] * 1000:.0f} ms, "
          f"warm median {statistics.median(warm) * 1000:.0f} ms (n={len(warm)})")
    snapshot = InvoiceSnapshot.from_json(snapshot_json)
    parts = {"render PDF": [], "build + validate XML": [], "embed Factur-X": []}
    for _ in range(max(3, runs // 2)):
        t0 = time.perf_counter()
        pdf = render_pdf(snapshot)
        t1 = time.perf_counter()
        xml = xml_file(snapshot).content
        assert validate_cii(xml) == []
        t2 = time.perf_counter()
        embed_facturx(pdf.content, xml)
        t3 = time.perf_counter()
        parts["render PDF"].append(t1 - t0)
        parts["build + validate XML"].append(t2 - t1)
        parts["embed Factur-X"].append(t3 - t2)
    print("  split (warm medians): " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in parts.items()))


def check_demo(data_dir: Path) -> int:
    engine = make_engine(f"sqlite:///{data_dir / 'ticketbill.sqlite'}")
    valid = invalid = identical = 0
    with make_session_factory(engine)() as session:
        # Activity reports (type LN) are no invoices and carry no e-invoice XML.
        invoices = session.execute(select(Invoice).where(Invoice.state != "draft", Invoice.type_code != "LN")
                                   ).scalars().all()
        xrechnung = 0
        for invoice in invoices:
            public = Path(invoice.xml_path or "").with_name(f"{invoice.number}-xrechnung.xml")
            if public.is_file():
                assert validate_xrechnung(public.read_bytes()) == [], invoice.number
                xrechnung += 1
            stored = Path(invoice.xml_path or "").read_bytes()
            errors = validate_cii(stored)
            valid += not errors
            invalid += bool(errors)
            identical += extract_xml(Path(invoice.pdf_path or "").read_bytes()) == stored
    engine.dispose()
    print(f"demo {data_dir}: {len(invoices)} documents, {valid} XML valid (XSD + EN 16931 Schematron), "
          f"{invalid} invalid, {identical} hybrids whose embedded XML == stored XML, "
          f"{xrechnung} XRechnung files valid (EN 16931 + XRechnung rules)")
    return 1 if invalid or identical != len(invoices) else 0


def main(argv: list[str]) -> int:
    runs = 10
    if "--runs" in argv:
        runs = int(argv[argv.index("--runs") + 1])
        del argv[argv.index("--runs"):argv.index("--runs") + 2]
    issue_timings(runs)
    return check_demo(Path(argv[0])) if argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
