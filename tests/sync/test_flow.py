"""End to end over HTTP: closed sandbox tickets become invoices, and the tickets show it.

No mocking: the connector talks to the Zammad sandbox on loopback, the sidecar runs on
SQLite and PostgreSQL, the PDFs are rendered and read back with pypdf.
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy import func, select
from sync_fixtures import Sidecar, closed_ticket

from addon.models import BilledEntry, Invoice, Outbox, ReviewItem, SyncCursor, Ticket, TimeEntry
from addon.sync.jobs import STREAM

REMOTE, ONSITE, INTERNAL = 1, 2, 4


def count(sidecar: Sidecar, model: type) -> int:
    with sidecar.factory() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_closed_ticket_is_invoiced_and_written_back(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    # 50 min remote → 60 billed; 20 min on-site → 30 billed; internal time never billed
    ticket_id = closed_ticket(sb, "Drucker druckt nicht", 1, [(50, 3, REMOTE), (20, 4, ONSITE), (45, 3, INTERNAL)])

    result = sidecar.run()

    assert result.ok, result.error
    assert result.counts["invoiced"] == 1
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.number == "RE-2026-00001"
        assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("133.50"), Decimal("25.37"), Decimal("158.87"))
        billed = session.execute(select(BilledEntry)).scalars().all()
        assert sorted((b.raw_minutes, b.billed_minutes) for b in billed) == [(20, 30), (50, 60)]
        internal = session.execute(select(TimeEntry).where(TimeEntry.activity == "Intern")).scalar_one()
        assert internal.not_billed_reason == "internal"
        pdf_path = Path(invoice.pdf_path)
        number, access_key = invoice.number, invoice.access_key
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf_path.read_bytes())).pages)
    for expected in ("RE-2026-00001", "Bäckerei Hansen GmbH", "Drucker druckt nicht", "133,50", "25,37",
                     "158,87", "89,00", "DE136695976", "DE89 3704 0044 0532 0130 00"):
        assert expected in text, expected
    assert sb.ticket(ticket_id)["number"] in text

    remote = sb.ticket(ticket_id)
    assert remote["billing_status"] == "invoiced"
    assert remote["billing_invoice_ref"] == number
    assert remote["billing_invoice_url"] == f"http://billing.test/invoices/{access_key}/{number}.pdf"
    notes = sidecar.notes(ticket_id)
    assert len(notes) == 1
    assert number in notes[0]["body"] and access_key in notes[0]["body"]


def test_second_run_changes_nothing(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1, 2])
    first = closed_ticket(sb, "VPN bricht ab", 1, [(30, 3, REMOTE)])
    second = closed_ticket(sb, "Backup fehlgeschlagen", 2, [(95, 5, REMOTE), (15, 6, REMOTE)])
    assert sidecar.run().ok
    requests_before = len(sb.requests_seen)

    sb.advance(3600)
    again = sidecar.run()

    assert again.ok, again.error
    assert again.counts.get("invoiced", 0) == 0
    assert again.counts["written"] == 0
    assert count(sidecar, Invoice) == 2
    assert [len(sidecar.notes(t)) for t in (first, second)] == [1, 1]
    writes = [r for r in list(sb.requests_seen)[requests_before:] if r[0] in ("PUT", "POST") and "search" not in r[1]]
    assert writes == []
    with sidecar.factory() as session:
        cursor = session.get(SyncCursor, ("zammad", STREAM))
        assert cursor is not None
        assert cursor.value >= session.execute(select(func.max(Ticket.remote_updated_at))).scalar_one()


def test_crash_after_the_helpdesk_write_does_not_write_twice(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "Kassensystem startet nicht", 1, [(40, 3, REMOTE)])
    assert sidecar.run().ok
    # the helpdesk call went through, but the commit marking the outbox row done was lost: the
    # row is left as the claim before the call committed it (in doubt), its settle time over
    with sidecar.factory() as session, session.begin():
        for row in session.execute(select(Outbox)).scalars():
            row.status, row.done_at, row.in_doubt, row.next_attempt_at = "pending", None, True, None

    result = sidecar.run()

    assert result.ok, result.error
    assert result.counts["already_present"] == 1
    assert result.counts["written"] == 0
    assert len(sidecar.notes(ticket_id)) == 1


def test_reopened_ticket_bills_only_the_new_time(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "WLAN im Lager", 1, [(60, 3, REMOTE)])
    assert sidecar.run().ok
    sb.advance(86400)
    sb.reopen_ticket(ticket_id)
    sb.advance(600)
    sb.book_time(ticket_id, 25, agent_id=4, type_id=REMOTE)
    sb.advance(600)
    sb.close_ticket(ticket_id)

    result = sidecar.run()

    assert result.ok, result.error
    with sidecar.factory() as session:
        invoices = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        assert [i.net for i in invoices] == [Decimal("89.00"), Decimal("44.50")]
    assert sb.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00002"
    assert len(sidecar.notes(ticket_id)) == 2


def test_customer_without_billing_data_needs_attention_until_configured(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    billed = closed_ticket(sb, "Outlook", 1, [(30, 3, REMOTE)])
    waiting = closed_ticket(sb, "Firewall-Freigabe", 3, [(30, 3, REMOTE)])

    result = sidecar.run()

    assert result.ok, result.error
    assert sb.ticket(billed)["billing_status"] == "invoiced"
    assert sb.ticket(waiting)["billing_status"] == "needs_attention"
    [note] = sidecar.notes(waiting)
    assert "has no billing address" in note["body"]
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(waiting))).scalar_one()
        assert "ticketbill customers import" in (ticket.attention_reason or "")

    # the same reason is not noted again on the next run
    sb.advance(3600)
    assert sidecar.run().ok
    assert len(sidecar.notes(waiting)) == 1

    sidecar.import_customers(tmp_path, [3])
    assert sidecar.run().ok
    assert sb.ticket(waiting)["billing_status"] == "invoiced"


def test_ticket_without_time_is_reported_not_billable(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "Passwort-Reset", 1, [])
    only_internal = closed_ticket(sb, "Doku", 1, [(30, 3, INTERNAL)])

    result = sidecar.run()

    assert result.ok, result.error
    assert result.counts["not_billable"] == 2
    assert count(sidecar, Invoice) == 0
    assert sb.ticket(ticket_id)["billing_status"] == "not_billable"
    assert "closed without booked time" in sidecar.notes(ticket_id)[0]["body"]
    assert sb.ticket(only_internal)["billing_status"] == "not_billable"


def test_billed_entry_changed_in_the_helpdesk_is_a_review_item(sidecar: Sidecar, tmp_path: Path) -> None:
    """The invoice keeps what it billed and the ticket stays invoiced (issue 11: a status never
    regresses); the change reaches the team lead as a review item with one note."""
    import requests

    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "Server-Update", 1, [(30, 3, REMOTE)])
    assert sidecar.run().ok
    [booking] = sb.bookings(ticket_id)
    sb.advance(3600)
    response = requests.put(
        f"{sb.url}/api/v1/tickets/{ticket_id}/time_accountings/{booking['id']}",
        json={"time_unit": "45"},
        headers={"Authorization": f"Token token={sb.admin_token}"},
        timeout=10,
    )
    assert response.status_code == 200

    result = sidecar.run()

    assert result.ok, result.error
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(ticket_id))).scalar_one()
        assert ticket.billing_status == "invoiced"
        [review] = session.execute(select(ReviewItem)).scalars().all()
        assert "changed after it was invoiced (minutes 30 min → 45 min)" in review.message
        entry = session.execute(select(TimeEntry)).scalar_one()
        assert entry.minutes == 30  # the billed content is never rewritten
    assert count(sidecar, Invoice) == 1
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"
    assert any("changed after it was invoiced" in note["body"] for note in sidecar.notes(ticket_id))


def test_correction_is_settled_with_the_entries_it_reduced(sidecar: Sidecar, tmp_path: Path) -> None:
    """60 + 10 − 20 minutes (one agent, one activity): the correction takes the later 10
    first, then 10 of the 60 → one line of 50 → 60 billed minutes. A second run must not bill
    the zeroed 10 or the correction on their own."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "Doppelt gebucht", 1, [(60, 3, REMOTE), (10, 3, REMOTE), (-20, 3, REMOTE)])

    assert sidecar.run().ok
    sb.advance(3600)
    again = sidecar.run()

    assert again.ok, again.error
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.net == Decimal("89.00")
        links = session.execute(select(BilledEntry.raw_minutes, BilledEntry.billed_minutes)).all()
        assert sorted(links) == [(-20, 0), (10, 0), (60, 60)]
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"
