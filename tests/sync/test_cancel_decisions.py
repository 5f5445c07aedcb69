"""Issue 11, defect 3: cancelling decides what happens to the work — bill it again, hold it,
bill it to another customer or contract, or write it off — and the audit log keeps the decision.

Bäckerei Hansen (organization 1, 89.00 per hour) was invoiced for 50 minutes (60 billed) on
RE-2026-00001; Müller & Söhne (organization 2) pays the default 95.00 per hour."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_cancel_flow import cli
from test_contracts_helpers import ANNA, REMOTE, import_contracts
from verified import assert_verified

from addon.models import AuditLog, Invoice, Ticket, TimeEntry


def invoiced(sidecar: Sidecar, tmp_path: Path) -> int:
    sidecar.import_customers(tmp_path, [1, 2])
    ticket_id = closed_ticket(sidecar.sandbox, "Kassensystem", 1, [(50, ANNA, REMOTE)])
    assert sidecar.run().ok
    return ticket_id


def documents(sidecar: Sidecar) -> list[tuple[str | None, str, Decimal]]:
    with sidecar.factory() as session:
        rows = session.execute(select(Invoice).order_by(Invoice.id)).scalars()
        return [(i.number, i.customer.name, i.net) for i in rows]


def ticket_row(sidecar: Sidecar) -> tuple[str, str | None]:
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        return ticket.billing_status, ticket.attention_reason


def decisions(sidecar: Sidecar) -> list[tuple[str, dict[str, object]]]:
    with sidecar.factory() as session:
        rows = session.execute(select(AuditLog).where(AuditLog.action.in_(("cancel", "release")))
                               .order_by(AuditLog.id)).scalars().all()
        return [(r.action, r.details["decision"]) for r in rows]


def test_cancelling_needs_a_decision(sidecar: Sidecar, tmp_path: Path) -> None:
    invoiced(sidecar, tmp_path)

    result = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--reason", "Falscher Kunde")

    assert result.exit_code == 2 and "Missing option '--then'" in result.output
    assert documents(sidecar) == [("RE-2026-00001", "Bäckerei Hansen GmbH", Decimal("89.00"))]
    moved = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "move")
    assert moved.exit_code == 2 and "--then move needs --customer ID or --contract CODE" in moved.output
    unknown = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "move", "--customer", "9")
    assert unknown.exit_code == 1 and "there is no customer with helpdesk id 9" in unknown.output
    assert len(documents(sidecar)) == 1  # a refused decision issues no cancellation


def test_hold_keeps_the_ticket_waiting_until_released(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path)

    held = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--reason", "Kunde prüft",
               "--then", "hold")
    assert held.exit_code == 0, held.output
    for _ in range(2):
        sidecar.sandbox.advance(600)
        assert sidecar.run().ok

    assert [n for n, _c, _net in documents(sidecar)] == ["RE-2026-00001", "ST-2026-00001"]
    status, reason = ticket_row(sidecar)
    assert status == "cancelled" and "on hold: Kunde prüft" in (reason or "")
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "cancelled"
    assert any("warten auf eine Entscheidung" in n["body"] for n in sidecar.notes(ticket_id))
    assert_verified(sidecar.factory, sidecar.settings)

    released = cli(sidecar, tmp_path, "invoices", "release", "RE-2026-00001", "--then", "rebill")
    assert released.exit_code == 0, released.output
    assert sidecar.run().ok
    assert documents(sidecar)[-1] == ("RE-2026-00002", "Bäckerei Hansen GmbH", Decimal("89.00"))
    assert decisions(sidecar) == [
        ("cancel", {"then": "hold", "customer": None, "contract": None, "reason": "Kunde prüft"}),
        ("release", {"then": "rebill", "customer": None, "contract": None, "reason": None})]
    assert_verified(sidecar.factory, sidecar.settings)


def test_move_bills_the_work_to_another_customer(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path)

    moved = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--reason", "Falscher Kunde",
                "--then", "move", "--customer", "2")
    assert moved.exit_code == 0, moved.output
    assert sidecar.run().ok

    assert documents(sidecar)[-1] == ("RE-2026-00002", "Müller & Söhne Maschinenbau KG", Decimal("95.00"))
    assert sidecar.sandbox.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00002"
    assert decisions(sidecar) == [("cancel", {"then": "move", "customer": "2", "contract": None,
                                              "reason": "Falscher Kunde"})]
    sidecar.sandbox.advance(600)
    assert sidecar.run().ok and len(documents(sidecar)) == 3  # and stays with Müller
    assert_verified(sidecar.factory, sidecar.settings)


def test_move_bills_the_work_under_another_contract(sidecar: Sidecar, tmp_path: Path) -> None:
    invoiced(sidecar, tmp_path)
    import_contracts(sidecar, {"contracts": [{"code": "MUELLER-TM", "customer": "2", "rates": [{"rate": "120.00"}],
                                              "assign": {"tags": ["nie"]}}]})

    moved = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "move",
                "--contract", "MUELLER-TM")
    assert moved.exit_code == 0, moved.output
    assert sidecar.run().ok

    assert documents(sidecar)[-1] == ("RE-2026-00002", "Müller & Söhne Maschinenbau KG", Decimal("120.00"))
    assert_verified(sidecar.factory, sidecar.settings)


def test_write_off_never_bills_the_work_and_says_why(sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced(sidecar, tmp_path)

    refused = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "write-off")
    assert refused.exit_code == 2 and "needs a reason" in refused.output
    done = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "write-off",
               "--reason", "Kulanz nach Beschwerde")
    assert done.exit_code == 0, done.output
    for _ in range(2):
        sidecar.sandbox.advance(600)
        assert sidecar.run().ok

    assert [n for n, _c, _net in documents(sidecar)] == ["RE-2026-00001", "ST-2026-00001"]
    status, reason = ticket_row(sidecar)
    assert (status, reason) == ("not_billable", "written off (RE-2026-00001 cancelled by ST-2026-00001): "
                                                "Kulanz nach Beschwerde")
    assert sum("written off" in n["body"] or "nicht berechnet" in n["body"] for n in sidecar.notes(ticket_id)) == 1
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "not_billable"
    with sidecar.factory() as session:
        entry = session.execute(select(TimeEntry)).scalar_one()
        assert entry.written_off == "written off (RE-2026-00001 cancelled by ST-2026-00001): Kulanz nach Beschwerde"
    assert decisions(sidecar)[0][1]["then"] == "write-off"
    assert_verified(sidecar.factory, sidecar.settings)
