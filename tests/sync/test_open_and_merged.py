"""Issue 11, defects 4 and 5 over real HTTP against the Zammad sandbox (November 2026).

Open work is visible: an open ticket with time shows `billable`, `covered` or `not_billable`
with the reason and is billed on close; a retainer's figures count it. Merged time is billed
with the ticket it was merged into (Zammad leaves it on the merged ticket)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_contracts_helpers import ANNA, JONAS, REMOTE, import_contracts, run_at
from verified import assert_verified

from addon.contracts.ledger import contingent_report
from addon.models import Invoice, Ticket

INTERNAL = 4
NOV_5 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
FLAT = {
    "code": "HANSEN-FLAT", "customer": "1", "kind": "retainer", "trigger": "monthly",
    "rounding": {"scope": "entry", "mode": "up", "increment": 15},
    "retainer": {"start_period": "2026-11", "fee": "490.00", "fee_label": "Service-Flat",
                 "included_minutes": 300, "overage_rate": "105.00"},
}


def open_ticket(sidecar: Sidecar, title: str, bookings: list[tuple[int, int, int]]) -> int:
    sb = sidecar.sandbox
    ticket = sb.create_ticket(title, organization_id=1)
    for minutes, agent, activity in bookings:
        sb.advance(600)
        sb.book_time(ticket["id"], minutes, agent_id=agent, type_id=activity)
    return int(ticket["id"])


def invoices(sidecar: Sidecar) -> list[tuple[str | None, Decimal]]:
    with sidecar.factory() as session:
        return [(i.number, i.net) for i in session.execute(select(Invoice).order_by(Invoice.id)).scalars()]


def local(sidecar: Sidecar, ticket_id: int) -> tuple[str, str | None]:
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(ticket_id))).scalar_one()
        return ticket.billing_status, ticket.attention_reason


def test_open_work_shows_its_status_and_is_billed_on_close(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    sb.set_now(NOV_5)
    billable = open_ticket(sidecar, "Server", [(50, ANNA, REMOTE)])
    internal = open_ticket(sidecar, "Doku", [(30, ANNA, INTERNAL)])
    empty = open_ticket(sidecar, "Frage", [])

    assert run_at(sidecar, NOV_5).ok

    assert invoices(sidecar) == []
    assert local(sidecar, billable) == ("billable", "open: billed when the ticket is closed")
    assert local(sidecar, internal) == ("not_billable", "open: internal")
    assert sb.ticket(billable)["billing_status"] == "billable"
    assert sb.ticket(empty)["billing_status"] is None  # no time: nothing to say, nothing stored
    with sidecar.factory() as session:
        assert session.execute(select(Ticket).where(Ticket.remote_id == str(empty))).first() is None
    notes = len(sidecar.notes(billable))
    sb.advance(600)
    sb.book_time(billable, 20, agent_id=JONAS, type_id=REMOTE)  # more work: the state stays the same
    assert run_at(sidecar, NOV_5).ok
    assert len(sidecar.notes(billable)) == notes == 1

    sb.advance(600)
    sb.close_ticket(billable)
    assert run_at(sidecar, NOV_5).ok
    assert invoices(sidecar) == [("RE-2026-00001", Decimal("133.50"))]  # 60 + 30 min × 89.00
    assert sb.ticket(billable)["billing_status"] == "invoiced"
    assert_verified(sidecar.factory, sidecar.settings)


def test_an_idle_poll_costs_at_most_three_requests(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    open_ticket(sidecar, "Server", [(50, ANNA, REMOTE)])
    closed_ticket(sb, "Drucker", 1, [(30, ANNA, REMOTE)])
    for _ in range(3):  # bill, write back, see the own writes once more
        sb.advance(600)
        assert sidecar.run().ok
    sb.advance(600)
    before = len(sb.requests_seen)

    assert sidecar.run().ok

    assert len(sb.requests_seen) - before <= 3, list(sb.requests_seen)[before:]


def test_open_work_counts_in_the_contingent_and_is_covered(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    import_contracts(sidecar, {"contracts": [FLAT]})
    sb.set_now(NOV_5)
    closed_ticket(sb, "Drucker", 1, [(60, ANNA, REMOTE), (45, JONAS, REMOTE)])  # 1:45 h closed
    covered = open_ticket(sidecar, "Server", [(90, ANNA, REMOTE), (75, JONAS, REMOTE)])  # 2:45 h open

    assert run_at(sidecar, NOV_5).ok

    assert local(sidecar, covered) == ("covered", "open: covered by the contingent of HANSEN-FLAT")
    with sidecar.factory.begin() as session:
        report = contingent_report(session, sidecar.settings, datetime(2026, 11, 20, tzinfo=UTC))
    assert report[0] == ("HANSEN-FLAT (Bäckerei Hansen GmbH): 4:30 h of 5:00 h used this month, "
                         "2:45 h of it on open tickets")
    assert report[1].split() == ["allowance", "4:30", "h", "used,", "0:30", "h", "left"]

    assert run_at(sidecar, datetime(2026, 12, 1, 6, 0, tzinfo=UTC)).ok  # November's invoice
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.net == Decimal("490.00")  # the fee; open work is billed when it is closed
        assert any("4:30 h von 5:00 h verbraucht, davon 2:45 h auf offenen Tickets" in note
                   for note in json.loads(invoice.snapshot or "{}")["notes"])
    assert_verified(sidecar.factory, sidecar.settings)


def test_time_on_a_merged_ticket_is_billed_with_the_ticket_it_was_merged_into(
        sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    sb.set_now(NOV_5)
    duplicate = open_ticket(sidecar, "Drucker (Duplikat)", [(55, ANNA, REMOTE)])
    original = open_ticket(sidecar, "Drucker", [(30, JONAS, REMOTE)])
    sb.advance(600)
    sb.merge_ticket(duplicate, original)  # Zammad: the time rows stay on the duplicate
    sb.advance(600)
    sb.close_ticket(original)

    assert run_at(sidecar, NOV_5).ok

    assert invoices(sidecar) == [("RE-2026-00001", Decimal("133.50"))]  # (60 + 30) min × 89.00
    merged = sb.ticket(duplicate)
    assert (merged["billing_status"], merged["billing_invoice_ref"]) == ("invoiced", "RE-2026-00001")
    assert sb.ticket(original)["billing_invoice_ref"] == "RE-2026-00001"
    assert_verified(sidecar.factory, sidecar.settings)


def test_a_merged_ticket_on_a_monthly_invoice_is_marked_invoiced(sidecar: Sidecar, tmp_path: Path) -> None:
    """Found on the demo of 2026-12-06: the survivor went onto the customer's monthly invoice,
    the merged-away ticket kept "unbilled … billed with #…" although its time was invoiced."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    import_contracts(sidecar, {"contracts": [FLAT]})
    sb.set_now(NOV_5)
    duplicate = open_ticket(sidecar, "Drucker (Duplikat)", [(55, ANNA, REMOTE)])
    original = open_ticket(sidecar, "Drucker", [(30, JONAS, REMOTE)])
    sb.advance(600)
    sb.merge_ticket(duplicate, original)
    sb.advance(600)
    sb.close_ticket(original)

    assert run_at(sidecar, datetime(2026, 12, 1, 8, 0, tzinfo=UTC)).ok

    [(number, _net)] = invoices(sidecar)
    for ticket in (duplicate, original):
        remote = sb.ticket(ticket)
        assert (remote["billing_status"], remote["billing_invoice_ref"]) == ("invoiced", number), ticket
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        refs = {t["number"] for t in json.loads(invoice.snapshot or "{}")["tickets"]}
    assert refs == {sb.ticket(duplicate)["number"], sb.ticket(original)["number"]}
    assert_verified(sidecar.factory, sidecar.settings)


def test_time_merged_into_an_invoiced_ticket_is_billed_afterwards(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    sb.set_now(NOV_5)
    original = closed_ticket(sb, "Drucker", 1, [(30, JONAS, REMOTE)])
    assert run_at(sidecar, NOV_5).ok
    duplicate = open_ticket(sidecar, "Drucker (Duplikat)", [(55, ANNA, REMOTE)])
    sb.advance(600)
    sb.merge_ticket(duplicate, original)

    assert run_at(sidecar, NOV_5).ok

    assert invoices(sidecar) == [("RE-2026-00001", Decimal("44.50")), ("RE-2026-00002", Decimal("89.00"))]
    assert sb.ticket(duplicate)["billing_invoice_ref"] == "RE-2026-00002"
    assert_verified(sidecar.factory, sidecar.settings)
