"""End to end over HTTP: a monthly retainer — one collective invoice per customer and month,
idempotent, late bookings on the next invoice with their own service date, the contingent
ledger persisted and printed, a cancelled invoice billed again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, select
from sync_fixtures import Sidecar, closed_ticket
from test_contracts_helpers import ANNA, JONAS, REMOTE, import_contracts, pdf_text, run_at
from verified import assert_verified

from addon.contracts.ledger import contingent_report
from addon.contracts.periods import invoice_period
from addon.invoicing.render_pdf import render_pdf
from addon.models import BilledEntry, ContingentLedger, Invoice, Ticket

FLAT = {
    "code": "HANSEN-FLAT", "customer": "1", "kind": "retainer", "trigger": "monthly",
    "rounding": {"scope": "entry", "mode": "up", "increment": 15},
    "retainer": {"start_period": "2026-10", "fee": "950.00", "fee_label": "Service-Flat",
                 "included_minutes": 120, "overage_rate": "115.00"},
}
OCTOBER = datetime(2026, 10, 14, 8, 0, tzinfo=UTC)
MID_OCTOBER = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def invoices(sidecar: Sidecar) -> list[Invoice]:
    with sidecar.factory() as session:
        rows = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        for row in rows:
            _ = [line.description for line in row.lines]  # load before the session closes
        return list(rows)


def october_retainer(sidecar: Sidecar, tmp_path: Path) -> int:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    import_contracts(sidecar, {"contracts": [FLAT]})
    sb.set_now(OCTOBER)
    # 90 + 60 min: 120 covered by the allowance, 30 overage at 115.00
    return closed_ticket(sb, "Netzwerk", 1, [(90, ANNA, REMOTE), (60, JONAS, REMOTE)])


def test_month_is_invoiced_once_after_it_ends(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = october_retainer(sidecar, tmp_path)

    during = run_at(sidecar, MID_OCTOBER)
    assert during.ok, during.error
    assert during.counts["awaiting_period"] == 1
    assert invoices(sidecar) == []

    after = run_at(sidecar, NOVEMBER)

    assert after.ok, after.error
    [invoice] = invoices(sidecar)
    assert invoice.billing_period == "2026-10"
    assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("1007.50"), Decimal("191.43"), Decimal("1198.93"))
    assert [(line.description, line.net) for line in invoice.lines] == [
        ("Service-Flat Oktober 2026", Decimal("950.00")),  # the month in words
        ("Remote (Jonas Schulz), über Kontingent", Decimal("57.50")),
    ]
    text = pdf_text(invoice.pdf_path or "")
    number = sidecar.sandbox.ticket(ticket_id)["number"]
    flat = " ".join(text.split())
    assert flat.count(f"Ticket {number}") == 3  # above its lines, the annex heading and sum
    # the contingent's 2:00 h are in the activity report, marked as covered (1:30 + 0:30)
    assert "Kontingent" in flat.split("Leistungsnachweis", 1)[1]
    assert "Remote 1:30 1:30 1:30" in flat and "Jonas Schulz Remote 1:00 1:00 0:30" in flat
    assert "Kontingent Oktober 2026: 2:00 h von 2:00 h verbraucht; 0:30 h darüber hinaus berechnet." in text
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "invoiced"
    with sidecar.factory() as session:
        ledger = session.execute(select(ContingentLedger)).scalars().all()
        assert [(r.period, r.bucket, r.granted, r.consumed, r.expired, r.overage) for r in ledger] == [
            ("2026-10", "allowance", 120, 120, 0, 30)]

    again = run_at(sidecar, NOVEMBER)
    assert again.ok and again.counts["period_unchanged"] == 1  # nothing changed: not rated again
    assert len(invoices(sidecar)) == 1


def test_late_booking_goes_on_a_new_invoice_with_its_service_date(sidecar: Sidecar, tmp_path: Path) -> None:
    october_retainer(sidecar, tmp_path)
    assert run_at(sidecar, NOVEMBER).ok
    sb = sidecar.sandbox
    late = sb.create_ticket("Nachtrag", organization_id=1)
    sb.set_now(datetime(2026, 10, 30, 10, 0, tzinfo=UTC))
    sb.book_time(late["id"], 40, agent_id=ANNA, type_id=REMOTE)  # booked in October …
    sb.set_now(datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    sb.close_ticket(late["id"])  # … reaches the sidecar after October was invoiced

    result = run_at(sidecar, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))

    assert result.ok, result.error
    _first, second = invoices(sidecar)
    assert second.billing_period == "2026-10"
    assert [(line.description, line.net) for line in second.lines] == [
        ("Remote (Anna Becker), über Kontingent", Decimal("86.25"))]  # 45 min overage; no second fee
    assert " ".join(pdf_text(second.pdf_path or "").split()).count("30.10.2026") == 2  # line and annex
    assert run_at(sidecar, datetime(2026, 11, 3, 13, 0, tzinfo=UTC)).counts["period_unchanged"] == 1


def test_cancelled_invoice_is_billed_again(sidecar: Sidecar, tmp_path: Path) -> None:
    october_retainer(sidecar, tmp_path)
    assert run_at(sidecar, NOVEMBER).ok
    with sidecar.factory.begin() as session:  # what the cancellation command does to the original
        invoice = session.execute(select(Invoice)).scalar_one()
        invoice.state = "cancelled"
        session.execute(delete(BilledEntry).where(BilledEntry.invoice_id == invoice.id))

    outcomes = invoice_period(sidecar.factory, sidecar.settings, render_pdf, "2026-10", NOVEMBER, remote_id="1")

    assert [o.outcome for o in outcomes] == ["invoiced"]
    first, second = invoices(sidecar)
    assert second.net == first.net == Decimal("1007.50")
    documents = json.loads(second.billing_documents or "{}")
    assert documents["HANSEN-FLAT"]["fee_periods"] == ["2026-10"]


def test_invoice_period_for_one_customer_and_the_contingent_report(sidecar: Sidecar, tmp_path: Path) -> None:
    october_retainer(sidecar, tmp_path)
    sidecar.sandbox.set_now(datetime(2026, 11, 5, 9, 0, tzinfo=UTC))
    closed_ticket(sidecar.sandbox, "November", 1, [(100, ANNA, REMOTE)])  # 105 billed in November
    run_at(sidecar, MID_OCTOBER)  # stores the tickets; nothing is due yet

    assert invoice_period(sidecar.factory, sidecar.settings, render_pdf, "2026-10", NOVEMBER, "2") == []
    [outcome] = invoice_period(sidecar.factory, sidecar.settings, render_pdf, "2026-10", NOVEMBER, "1")
    assert outcome.outcome == "invoiced"

    with sidecar.factory.begin() as session:
        report = contingent_report(session, sidecar.settings, datetime(2026, 11, 20, tzinfo=UTC))
    assert report[0] == "HANSEN-FLAT (Bäckerei Hansen GmbH): 1:45 h of 2:00 h used this month"
    assert report[1].split() == ["allowance", "1:45", "h", "used,", "0:15", "h", "left"]
    with sidecar.factory() as session:
        periods = session.execute(select(ContingentLedger.period, ContingentLedger.consumed)).all()
        assert sorted(periods) == [("2026-10", 120), ("2026-11", 105)]
        statuses = dict(session.execute(select(Ticket.title, Ticket.billing_status)).all())
    assert statuses == {"Netzwerk": "invoiced", "November": "unbilled"}


def test_a_ticket_straddling_the_month_verifies_while_its_later_time_waits(sidecar: Sidecar, tmp_path: Path) -> None:
    """Found on the demo of 2026-12-06: a retainer ticket with October and November time, closed in
    November. October's invoice bills the October entry and marks the ticket invoiced; the
    November entry waits for November's invoice, and `verify` flagged it as unexplained."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    import_contracts(sidecar, {"contracts": [FLAT]})
    sb.set_now(datetime(2026, 10, 30, 9, 0, tzinfo=UTC))
    ticket = sb.create_ticket("Umzug", organization_id=1)
    sb.book_time(ticket["id"], 45, agent_id=ANNA, type_id=REMOTE)
    sb.set_now(datetime(2026, 11, 1, 10, 0, tzinfo=UTC))
    sb.book_time(ticket["id"], 30, agent_id=ANNA, type_id=REMOTE)
    sb.advance(600)
    sb.close_ticket(ticket["id"])

    assert run_at(sidecar, NOVEMBER).ok

    [october] = invoices(sidecar)
    assert october.billing_period == "2026-10"
    assert sb.ticket(ticket["id"])["billing_status"] == "invoiced"
    assert_verified(sidecar.factory, sidecar.settings)  # the November entry waits for its invoice
    assert run_at(sidecar, datetime(2026, 12, 1, 8, 0, tzinfo=UTC)).ok
    assert [i.billing_period for i in invoices(sidecar)] == ["2026-10", "2026-11"]
    assert_verified(sidecar.factory, sidecar.settings)  # ... and now it is on November's invoice
