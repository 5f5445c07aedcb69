"""`ticketbill verify` on a real flow: clean after billing, cancelling and re-billing; and each
kind of damage an auditor must see (a changed PDF, a gap in the numbers, a lost link, a repeated
note, a failed write-back) is reported with what exactly is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_cancel_flow import cli
from verified import assert_verified

from addon.db import transaction
from addon.invoicing.cancel import REBILL, cancel_invoice
from addon.invoicing.render_pdf import render_pdf
from addon.models import BilledEntry, Invoice, NumberSeries, Outbox, Ticket
from addon.verify import verify

REMOTE, ONSITE, INTERNAL = 1, 2, 4
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def billed_twice_over(sidecar: Sidecar, tmp_path: Path) -> None:
    """Two invoices, one of them cancelled and billed again: every invariant must hold."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1, 2])
    closed_ticket(sb, "Drucker", 1, [(50, 3, REMOTE), (20, 4, ONSITE), (45, 3, INTERNAL)])
    closed_ticket(sb, "VPN", 2, [(30, 4, REMOTE)])
    assert sidecar.run().ok
    with transaction(sidecar.factory) as session:
        cancel_invoice(session, sidecar.settings, "RE-2026-00001", "Testlauf", render_pdf, NOW, "test",
                       decision=REBILL)
    assert sidecar.run().ok


def test_a_clean_flow_with_a_cancellation_verifies(sidecar: Sidecar, tmp_path: Path) -> None:
    billed_twice_over(sidecar, tmp_path)

    report = assert_verified(sidecar.factory, sidecar.settings)

    assert report.checked["entries"] == 4 and report.checked["numbers"] == 4
    result = cli(sidecar, tmp_path, "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("verify: OK (4 entries, 4 numbers")


def test_damage_is_reported_with_what_is_wrong(sidecar: Sidecar, tmp_path: Path) -> None:
    billed_twice_over(sidecar, tmp_path)
    with transaction(sidecar.factory) as session:
        second = session.execute(select(Invoice).where(Invoice.number == "RE-2026-00002")).scalar_one()
        Path(second.pdf_path or "").write_bytes(b"%PDF-1.7 replaced")
        session.execute(select(NumberSeries).where(NumberSeries.name == "invoice")).scalar_one().next_value += 1
        link = session.execute(select(BilledEntry).where(BilledEntry.invoice_id == second.id)).scalars().first()
        assert link is not None
        session.delete(link)
        ticket = session.execute(select(Ticket).where(Ticket.customer_id == second.customer_id)).scalar_one()
        for version in (7, 8):  # the same state noted twice: the endless-notes symptom of old
            session.add(Outbox(kind="ticket_writeback", ticket_id=ticket.id, marker=f"needs_attention:{version}:ab12",
                               payload={"billing_status": "needs_attention", "note_html": "<p>no contract</p>"},
                               created_at=NOW))
        session.execute(select(Outbox).where(Outbox.invoice_id == second.id)).scalar_one().status = "failed"

    report = verify(sidecar.factory, sidecar.settings)

    assert not report.ok
    messages = "\n".join(report.lines())
    assert "[documents] RE-2026-00002: the PDF" in messages and "no longer has the SHA-256" in messages
    assert "[numbers] series invoice 2026: gap: sequence numbers [4] were never issued" in messages
    assert "billing history nets to" in messages and "the entry is on no issued invoice" in messages
    assert "the same 'needs_attention' note was queued 2 times" in messages
    assert "failed for good" in messages
    result = cli(sidecar, tmp_path, "verify")
    assert result.exit_code == 1
    assert "finding(s)" in result.output.splitlines()[0]
