"""Issue 11, defects 1 and 2: a contract imported after billing never bills invoiced time again,
applies to the past only when the admin asks (after a preview), keeps corrections of time
invoiced under the earlier terms as correction lines, and writes no notes on invoiced tickets.

Sandbox clock: November 2026; Bäckerei Hansen (organization 1) is billed per ticket at its own
rate 89.00 until the contract arrives."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sync_fixtures import Sidecar, closed_ticket
from test_cancel_flow import cli
from test_contracts_helpers import ANNA, JONAS, REMOTE, run_at
from verified import assert_verified

from addon.contracts import import_document
from addon.contracts.preview import preview_import
from addon.db import transaction
from addon.models import Contract, Invoice, Outbox, Ticket
from addon.sync.jobs import collect

MONTHLY = {"code": "HANSEN-MONAT", "customer": "1", "kind": "time_and_material", "trigger": "monthly",
           "rates": [{"rate": "100.00"}]}
NOV_5 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
DEC_2 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def invoices(sidecar: Sidecar) -> list[tuple[str | None, Decimal, str | None]]:
    with sidecar.factory() as session:
        return [(i.number, i.net, i.billing_period)
                for i in session.execute(select(Invoice).order_by(Invoice.id)).scalars()]


def notes_queued(sidecar: Sidecar) -> int:
    with sidecar.factory() as session:
        rows = session.execute(select(Outbox.payload)).scalars().all()
        return sum(1 for payload in rows if payload.get("note_html"))


def invoiced_ticket(sidecar: Sidecar, tmp_path: Path) -> int:
    """Ticket A: 50 min remote, invoiced per ticket under the implicit contract (60 min × 89)."""
    sidecar.import_customers(tmp_path, [1])
    sidecar.sandbox.set_now(NOV_5)
    ticket_id = closed_ticket(sidecar.sandbox, "Drucker", 1, [(50, ANNA, REMOTE)])
    assert run_at(sidecar, NOV_5).ok
    assert invoices(sidecar) == [("RE-2026-00001", Decimal("89.00"), None)]
    return ticket_id


def import_contract(sidecar: Sidecar, contract: dict[str, object], apply_from: date | None = None) -> None:
    with transaction(sidecar.factory) as session:
        import_document(session, "zammad", {"contracts": [contract]}, apply_from=apply_from)


def test_a_monthly_contract_without_start_never_rebills_invoiced_time(sidecar: Sidecar, tmp_path: Path) -> None:
    invoiced_ticket(sidecar, tmp_path)
    import_contract(sidecar, MONTHLY)  # no valid_from: before the fix, all of November again

    result = run_at(sidecar, DEC_2)  # the scheduled run bills November for monthly contracts

    assert result.ok, result.error
    assert invoices(sidecar) == [("RE-2026-00001", Decimal("89.00"), None)]
    assert_verified(sidecar.factory, sidecar.settings)


def test_a_contract_from_a_date_bills_new_time_only(sidecar: Sidecar, tmp_path: Path) -> None:
    invoiced_ticket(sidecar, tmp_path)
    import_contract(sidecar, {**MONTHLY, "valid_from": "2026-11-01"})
    sidecar.sandbox.set_now(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
    closed_ticket(sidecar.sandbox, "Server", 1, [(30, JONAS, REMOTE)])  # after the import: new terms

    assert run_at(sidecar, datetime(2026, 11, 10, 12, 0, tzinfo=UTC)).ok
    assert run_at(sidecar, DEC_2).ok

    assert invoices(sidecar) == [("RE-2026-00001", Decimal("89.00"), None),
                                 ("RE-2026-00002", Decimal("50.00"), "2026-11")]  # 30 min × 100.00
    assert_verified(sidecar.factory, sidecar.settings)


def stored_not_billed(sidecar: Sidecar, tmp_path: Path) -> str:
    """A closed ticket the sidecar has stored (collect) but not billed yet; returns its number."""
    sidecar.import_customers(tmp_path, [1])
    sidecar.sandbox.set_now(NOV_5)
    ticket_id = closed_ticket(sidecar.sandbox, "Drucker", 1, [(50, ANNA, REMOTE)])
    collect(sidecar.factory, sidecar.connector, lambda: NOV_5, Counter(), [])
    return str(sidecar.sandbox.ticket(ticket_id)["number"])


def test_time_known_before_the_import_keeps_its_terms_unless_applied_after_a_preview(
        sidecar: Sidecar, tmp_path: Path) -> None:
    number = stored_not_billed(sidecar, tmp_path)

    with transaction(sidecar.factory) as session:
        preview = preview_import(session, sidecar.settings, "zammad", {"contracts": [MONTHLY]},
                                 apply_from=date(2026, 11, 1))
    assert [(e.ticket, e.minutes, e.old_contract, e.new_contract) for e in preview.entries] == [
        (number, Decimal(50), "default", "HANSEN-MONAT")]
    assert "1 unbilled entry (0:50 h) of Bäckerei Hansen GmbH" in "\n".join(preview.lines())
    with sidecar.factory() as session:  # a preview writes nothing
        assert session.execute(select(func.count()).select_from(Contract)).scalar_one() == 0

    import_contract(sidecar, {**MONTHLY, "valid_from": "2026-11-01"})  # not applied to known time
    assert run_at(sidecar, NOV_5).ok
    assert invoices(sidecar) == [("RE-2026-00001", Decimal("89.00"), None)]  # the earlier terms
    assert_verified(sidecar.factory, sidecar.settings)


def test_known_time_applied_explicitly_goes_to_the_new_contract(sidecar: Sidecar, tmp_path: Path) -> None:
    stored_not_billed(sidecar, tmp_path)

    import_contract(sidecar, MONTHLY, apply_from=date(2026, 11, 1))
    assert run_at(sidecar, NOV_5).ok
    assert invoices(sidecar) == []  # waits for the monthly invoice
    assert run_at(sidecar, DEC_2).ok
    assert invoices(sidecar) == [("RE-2026-00001", Decimal("100.00"), "2026-11")]  # 50 → 60 min × 100.00
    assert_verified(sidecar.factory, sidecar.settings)


def test_a_correction_of_time_invoiced_under_the_earlier_terms_is_a_correction_line(
        sidecar: Sidecar, tmp_path: Path) -> None:
    ticket_id = invoiced_ticket(sidecar, tmp_path)
    import_contract(sidecar, MONTHLY)
    sidecar.sandbox.set_now(datetime(2026, 11, 6, 9, 0, tzinfo=UTC))
    sidecar.sandbox.book_time(ticket_id, -20, agent_id=ANNA, type_id=REMOTE)  # 50 − 20 = 30 min

    assert run_at(sidecar, datetime(2026, 11, 6, 12, 0, tzinfo=UTC)).ok
    assert run_at(sidecar, DEC_2).ok

    numbers = invoices(sidecar)
    assert numbers == [("RE-2026-00001", Decimal("89.00"), None), ("RE-2026-00002", Decimal("-44.50"), None)]
    with sidecar.factory() as session:
        second = session.execute(select(Invoice).where(Invoice.number == "RE-2026-00002")).scalar_one()
        [line] = second.lines
        assert (line.quantity, line.unit_price, line.net) == (Decimal("-0.5000"), Decimal("89.0000"),
                                                              Decimal("-44.50"))
        assert line.description.startswith("Korrektur: ")
    assert_verified(sidecar.factory, sidecar.settings)


def test_syncs_after_a_contract_import_write_no_notes_on_invoiced_tickets(sidecar: Sidecar, tmp_path: Path) -> None:
    """Defect 2: the status of an invoiced ticket never regresses; no note without a change."""
    ticket_id = invoiced_ticket(sidecar, tmp_path)
    sidecar.sandbox.book_time(ticket_id, 45, agent_id=ANNA, type_id=4)  # internal time, booked later
    assert run_at(sidecar, NOV_5).ok
    before = notes_queued(sidecar)
    import_contract(sidecar, {**MONTHLY, "valid_from": "2026-12-01"})

    for hour in range(3):
        assert run_at(sidecar, datetime(2026, 11, 6, 9 + hour, 0, tzinfo=UTC)).ok

    assert notes_queued(sidecar) == before
    assert sidecar.sandbox.ticket(ticket_id)["billing_status"] == "invoiced"
    with sidecar.factory() as session:
        assert session.execute(select(func.count()).select_from(Invoice)).scalar_one() == 1
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(ticket_id))).scalar_one()
        assert (ticket.billing_status, ticket.attention_reason) == ("invoiced", None)
    assert_verified(sidecar.factory, sidecar.settings)


def test_cli_preview_then_import_with_apply_from(sidecar: Sidecar, tmp_path: Path) -> None:
    number = stored_not_billed(sidecar, tmp_path)
    path = tmp_path / "contracts.json"
    path.write_text(json.dumps({"contracts": [MONTHLY]}), encoding="utf-8")

    shown = cli(sidecar, tmp_path, "contracts", "preview", str(path), "--apply-from", "2026-11-01")
    assert shown.exit_code == 0, shown.output
    assert "1 unbilled entry (0:50 h) of Bäckerei Hansen GmbH would be billed under the new terms:" in shown.output
    assert f"#{number} 2026-11-05" in shown.output and "default → HANSEN-MONAT" in shown.output

    refused = cli(sidecar, tmp_path, "contracts", "import", str(path), "--apply-from", "2026-11-01", input="n\n")
    assert "nothing imported" in refused.output
    applied = cli(sidecar, tmp_path, "contracts", "import", str(path), "--apply-from", "2026-11-01", "--yes")
    assert applied.exit_code == 0 and "contracts created: 1" in applied.output
    with sidecar.factory() as session:
        contract = session.execute(select(Contract)).scalar_one()
        assert contract.applies_from == date(2026, 11, 1)
