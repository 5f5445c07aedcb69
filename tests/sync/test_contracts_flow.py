"""End to end over HTTP: per-ticket contracts from the database price closed sandbox tickets;
contract selection and review flags reach the ticket (needs attention, or a note)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_contracts_helpers import (
    ANNA,
    EMERGENCY,
    JONAS,
    LENA,
    LOGINS,
    ONSITE,
    REMOTE,
    TOBIAS,
    import_contracts,
    run_at,
)

from addon.contracts.state import document_from_json
from addon.models import Invoice, Ticket

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ALL_AGENTS = [{"id": LOGINS[ANNA], "role": "senior"}, {"id": LOGINS[JONAS]}, {"id": LOGINS[LENA]},
              {"id": LOGINS[TOBIAS]}]
MUELLER_TM = {
    "code": "MUELLER-TM", "customer": "2", "kind": "time_and_material", "trigger": "per_ticket",
    "rounding": {"scope": "entry", "mode": "up", "increment": 15, "minimum_by_activity": {"Vor-Ort": 30}},
    "rates": [{"activity": "Remote", "rate": "100.00"}, {"activity": "Vor-Ort", "rate": "130.00"},
              {"role": "senior", "rate": "120.00"}],
}


def test_contract_rates_and_roles_price_the_ticket(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])  # Müller: no own rate; default 95.00
    import_contracts(sidecar, {"agents": ALL_AGENTS, "contracts": [MUELLER_TM]})
    # anna (senior) 50 Remote → 60 min × 100 (activity beats role); jonas 20 Vor-Ort → minimum 30 × 130;
    # anna 10 Notfall → 15 min × 120 (her role; the contract has no Notfall rate); lena 10 Notfall →
    # 15 min × 95 (no contract rate for her: the global default)
    ticket_id = closed_ticket(sb, "Server tauschen", 2, [(50, ANNA, REMOTE), (20, JONAS, ONSITE),
                                                          (10, ANNA, EMERGENCY), (10, LENA, EMERGENCY)])

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert result.counts["invoiced"] == 1
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.net == Decimal("218.75")  # 100 + 65 + 30 + 23.75
        assert invoice.vat == Decimal("41.56")
        lines = sorted((line.unit_price, line.quantity, line.net) for line in invoice.lines)
        assert lines == [(Decimal("95.0000"), Decimal("0.2500"), Decimal("23.75")),
                         (Decimal("100.0000"), Decimal("1.0000"), Decimal("100.00")),
                         (Decimal("120.0000"), Decimal("0.2500"), Decimal("30.00")),
                         (Decimal("130.0000"), Decimal("0.5000"), Decimal("65.00"))]
        documents = invoice.billing_documents
        assert documents is not None
    import json

    stored = document_from_json(json.loads(documents)["MUELLER-TM"])
    assert stored.document_id == str(invoice.id)
    assert sum(a.minutes for a in stored.allocations) == 60 + 30 + 15 + 15
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"
    again = run_at(sidecar, NOW)
    assert again.ok and again.counts.get("invoiced", 0) == 0


def test_two_contracts_claiming_one_ticket_need_attention(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])
    import_contracts(sidecar, {"contracts": [
        {**MUELLER_TM, "assign": {"groups": ["Users"]}},
        {**MUELLER_TM, "code": "MUELLER-SUPPORT", "assign": {"groups": ["Users"]}},
    ]})
    ticket_id = closed_ticket(sb, "Drucker", 2, [(30, ANNA, REMOTE)])

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert result.counts["needs_attention"] == 1
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.group == "Users"
        assert "contracts MUELLER-SUPPORT, MUELLER-TM all claim ticket" in (ticket.attention_reason or "")
        assert "by group" in (ticket.attention_reason or "")
        assert session.execute(select(Invoice)).first() is None
    assert sb.ticket(ticket_id)["billing_status"] == "needs_attention"
    assert any("all claim ticket" in n["body"] for n in sidecar.notes(ticket_id))


def test_explicit_assignment_beats_group_and_fallback(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])
    special = closed_ticket(sb, "Projekt", 2, [(60, JONAS, REMOTE)])
    normal = closed_ticket(sb, "Alltag", 2, [(60, JONAS, REMOTE)])
    number = sb.ticket(special)["number"]
    import_contracts(sidecar, {"contracts": [
        MUELLER_TM,  # no assignment: the fallback for every other ticket
        {**MUELLER_TM, "code": "MUELLER-PROJECT", "rates": [{"rate": "80.00"}], "assign": {"tickets": [number]}},
    ]})

    assert run_at(sidecar, NOW).ok
    with sidecar.factory() as session:
        nets = {inv.ticket.remote_id: inv.net for inv in session.execute(select(Invoice)).scalars()}
    assert nets == {str(special): Decimal("80.00"), str(normal): Decimal("100.00")}


def test_unknown_agent_holds_the_ticket_with_the_reason(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])
    import_contracts(sidecar, {"agents": ALL_AGENTS[:2], "contracts": [MUELLER_TM]})
    ticket_id = closed_ticket(sb, "Vertretung", 2, [(30, ANNA, REMOTE), (30, LENA, REMOTE)])

    assert run_at(sidecar, NOW).ok

    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.billing_status == "needs_attention"
        assert f"agent '{LOGINS[LENA]}' is not known" in (ticket.attention_reason or "")
    assert sb.ticket(ticket_id)["billing_status"] == "needs_attention"


def test_overlap_is_billed_with_a_warning_note(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])
    import_contracts(sidecar, {"contracts": [MUELLER_TM]})
    # two 30-minute bookings of anna 10 minutes apart: their derived intervals overlap
    ticket_id = closed_ticket(sb, "Doppelt", 2, [(30, ANNA, REMOTE), (30, ANNA, REMOTE)])

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert result.counts["invoiced"] == 1
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"
    # the warning and the invoice are written in one run: one write, one note with both
    [note] = [n["body"] for n in sidecar.notes(ticket_id)]
    assert "overlap" in note and "billed anyway" in note and "RE-2026-00001" in note
    assert run_at(sidecar, NOW).counts.get("written", 0) == 0
