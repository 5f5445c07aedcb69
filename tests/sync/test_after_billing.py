"""Issue 11, edits after billing: what happens to an invoiced ticket when reality changes.

Each test starts from a ticket of Bäckerei Hansen invoiced per ticket (89.00 per hour,
15-minute round-up) in the November sandbox, changes something in the helpdesk as an agent
would, and checks that the issued invoice stays as it is, the ticket keeps status `invoiced`,
the team lead gets one review item with one note saying what happened, later syncs stay
silent, and `ticketbill verify` finds nothing."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_cancel_flow import cli
from test_contracts_helpers import ANNA, REMOTE, run_at
from verified import assert_verified

from addon.db import transaction
from addon.models import Invoice, Outbox, ReviewItem, Ticket, TimeEntry
from addon.sync.jobs import collect
from addon.sync.writeback import set_status

ONSITE, INTERNAL = 2, 4
NOV_5 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def invoiced(sidecar: Sidecar, tmp_path: Path, bookings: list[tuple[int, int, int]]) -> int:
    sidecar.import_customers(tmp_path, [1])
    sidecar.sandbox.set_now(NOV_5)
    ticket_id = closed_ticket(sidecar.sandbox, "Drucker", 1, bookings)
    assert sidecar.run().ok
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "invoiced"
    return ticket_id


def api(sidecar: Sidecar, method: str, path: str, body: dict[str, Any], agent: bool = False) -> None:
    """A call as the admin, or (`agent`) as the agent Anna: the sidecar ignores its own notes."""
    sb = sidecar.sandbox
    token = sb.agent_user_token if agent else sb.admin_token
    response = requests.request(method, f"{sb.url}/api/v1/{path}", json=body, timeout=10,
                                headers={"Authorization": f"Token token={token}"})
    assert response.status_code in (200, 201), response.text


def state(sidecar: Sidecar, ticket_id: int) -> tuple[str, str | None, list[str], int]:
    """(status, attention reason, open review messages, notes written) of one ticket."""
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(ticket_id))).scalar_one()
        reviews = session.execute(select(ReviewItem.message).where(ReviewItem.ticket_id == ticket.id)
                                  .order_by(ReviewItem.id)).scalars().all()
        return ticket.billing_status, ticket.attention_reason, list(reviews), len(sidecar.notes(ticket_id))


def invoice_count(sidecar: Sidecar) -> int:
    with sidecar.factory() as session:
        return len(session.execute(select(Invoice)).scalars().all())


def test_changing_the_activity_of_a_billed_booking_says_what_changed(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path, [(15, ANNA, REMOTE)])
    [booking] = sidecar.sandbox.bookings(ticket_id)
    sidecar.sandbox.advance(3600)
    api(sidecar, "PUT", f"tickets/{ticket_id}/time_accountings/{booking['id']}", {"type_id": ONSITE})

    assert sidecar.run().ok
    assert sidecar.run().ok  # the second sync sees the ticket again (its own note) and stays silent

    status, reason, reviews, notes = state(sidecar, ticket_id)
    assert (status, reason) == ("invoiced", None)
    assert reviews == [f"time entry {booking['id']} changed after it was invoiced (activity Remote → Vor-Ort); "
                       "book a correction instead"]
    assert notes == 2  # the invoice's note and the review's note
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "invoiced"
    with sidecar.factory() as session:
        entry = session.execute(select(TimeEntry)).scalar_one()
        assert (entry.activity, entry.minutes) == ("Remote", 15)  # billed content is never rewritten
    assert invoice_count(sidecar) == 1
    assert_verified(sidecar.factory, sidecar.settings)


def test_reasons_of_unbilled_entries_survive_the_next_sync(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path, [(50, ANNA, REMOTE), (45, ANNA, INTERNAL)])
    sidecar.sandbox.advance(3600)

    with sidecar.sandbox.lock:  # an agent edits the title: the ticket comes back in the poll
        sidecar.sandbox.state.update_ticket(ticket_id, {"title": "Drucker (erledigt)"}, ANNA)

    again = sidecar.run()

    assert again.ok and again.counts["tickets_seen"] == 1
    with sidecar.factory() as session:
        internal = session.execute(select(TimeEntry).where(TimeEntry.activity == "Intern")).scalar_one()
        assert internal.not_billed_reason == "internal"
    assert state(sidecar, ticket_id)[0] == "invoiced"
    assert_verified(sidecar.factory, sidecar.settings)


def test_category_warranty_after_the_invoice_is_a_review_item(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path, [(50, ANNA, REMOTE)])
    sidecar.sandbox.advance(3600)
    api(sidecar, "PUT", f"tickets/{ticket_id}", {"billing_category": "warranty"})

    assert sidecar.run().ok
    assert sidecar.run().ok

    status, _reason, reviews, notes = state(sidecar, ticket_id)
    assert status == "invoiced"
    assert reviews == ["category changed to warranty after RE-2026-00001 was issued; cancel it (`ticketbill "
                       "invoices cancel RE-2026-00001 --then write-off --reason …`) if the customer is not to pay"]
    assert notes == 2
    assert invoice_count(sidecar) == 1
    listed = cli(sidecar, tmp_path, "review", "list")
    assert "category changed to warranty" in listed.output
    item_id = listed.output.split()[0]
    assert cli(sidecar, tmp_path, "review", "resolve", item_id).exit_code == 0
    assert cli(sidecar, tmp_path, "review", "list").output.strip() == "no open review items"
    assert_verified(sidecar.factory, sidecar.settings)


def test_a_state_noted_before_is_written_again_without_a_second_note(sidecar: Sidecar, tmp_path: Path) -> None:
    """Status A → B → A: the helpdesk shows A again, but A's note exists already."""
    sidecar.import_customers(tmp_path, [1])
    closed_ticket(sidecar.sandbox, "Flip", 1, [(30, ANNA, REMOTE)])
    collect(sidecar.factory, sidecar.connector, lambda: NOV_5, Counter(), [])
    with transaction(sidecar.factory) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        for status, reason in (("needs_attention", "A"), ("not_billable", "B"), ("needs_attention", "A")):
            assert set_status(session, ticket, status, reason, NOV_5)
    with sidecar.factory() as session:
        rows = session.execute(select(Outbox).order_by(Outbox.id)).scalars().all()
        assert [(r.payload["billing_status"], bool(r.payload.get("note_html"))) for r in rows] == [
            ("needs_attention", True), ("not_billable", True), ("needs_attention", False)]


def test_time_held_on_an_invoiced_ticket_is_a_review_not_a_status(sidecar: Sidecar, tmp_path: Path) -> None:
    """A later booking that cannot be billed (a booking note ticketbill cannot read) leaves the
    ticket invoiced; the team lead reads why in a review item."""
    ticket_id = invoiced(sidecar, tmp_path, [(50, ANNA, REMOTE)])
    sidecar.sandbox.advance(3600)
    api(sidecar, "POST", "ticket_articles", {"ticket_id": ticket_id, "body": "Material: ein paar Kabel",
                                             "internal": True, "type": "note"}, agent=True)

    assert sidecar.run().ok
    assert run_at(sidecar, datetime(2026, 11, 5, 14, 0, tzinfo=UTC)).ok

    status, _reason, reviews, _notes = state(sidecar, ticket_id)
    assert status == "invoiced"
    assert len(reviews) == 1 and "Material: ein paar Kabel" in reviews[0]
    assert invoice_count(sidecar) == 1
    assert_verified(sidecar.factory, sidecar.settings)


def test_a_correction_booked_a_month_later_is_a_correction_line(sidecar: Sidecar, tmp_path: Path) -> None:
    """Zammad books a correction without a start time; it corrects the work it refers to (the
    agent's latest booking of that activity before it), not the month it was typed in."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    sb.set_now(datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
    ticket_id = closed_ticket(sb, "Drucker", 1, [(60, ANNA, REMOTE)])
    assert run_at(sidecar, datetime(2026, 10, 20, 12, 0, tzinfo=UTC)).ok
    sb.set_now(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    sb.book_time(ticket_id, -15, agent_id=ANNA, type_id=REMOTE)

    assert run_at(sidecar, datetime(2026, 11, 20, 12, 0, tzinfo=UTC)).ok

    with sidecar.factory() as session:
        first, second = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        assert (first.net, second.net) == (Decimal("89.00"), Decimal("-22.25"))
        [line] = second.lines
        assert (line.quantity, line.unit_price) == (Decimal("-0.2500"), Decimal("89.0000"))
        assert line.description.startswith("Korrektur: ")
        assert not session.execute(select(ReviewItem)).scalars().all()  # no "negative net" flag
    assert state(sidecar, ticket_id)[0] == "invoiced"
    assert_verified(sidecar.factory, sidecar.settings)


def test_more_time_on_an_invoiced_closed_ticket_is_a_supplementary_invoice(sidecar: Sidecar, tmp_path: Path) -> None:
    """The rule (README "Guarantees"): the issued invoice stays; the later time is billed on a new
    invoice that names the earlier one, on the invoice and in the ticket's note."""
    ticket_id = invoiced(sidecar, tmp_path, [(50, ANNA, REMOTE)])
    sidecar.sandbox.advance(3600)
    sidecar.sandbox.book_time(ticket_id, 20, agent_id=ANNA, type_id=REMOTE)  # booked on the closed ticket

    assert sidecar.run().ok

    with sidecar.factory() as session:
        first, second = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        assert (first.net, second.net) == (Decimal("89.00"), Decimal("44.50"))
        notes = json.loads(second.snapshot or "{}")["notes"]
        assert notes == ["Nachberechnung zu Rechnung RE-2026-00001: Zeit, die nach deren Ausstellung gebucht wurde."]
    assert any("Nachberechnung zu RE-2026-00001" in n["body"] and "RE-2026-00002" in n["body"]
               for n in sidecar.notes(ticket_id))
    assert sidecar.sandbox.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00002"
    assert_verified(sidecar.factory, sidecar.settings)
