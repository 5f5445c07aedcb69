"""End to end over HTTP: what agents book in Zammad (activity types, billing category, travel,
materials, on-site visits) ends up on the invoice — exactly once.

The agent acts through the sandbox's REST API with her own token, as the Zammad UI does: she
sets the ticket's billing category, writes an internal note in the booking syntax and books
its time with an activity type. The sidecar syncs, rates and issues the PDF, read back here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from sync_fixtures import Sidecar
from test_contracts_helpers import ONSITE, REMOTE, import_contracts, pdf_text, run_at

from addon.db import transaction
from addon.invoicing.cancel import cancel_invoice
from addon.invoicing.render_pdf import render_pdf
from addon.models import BilledExtra, BookedExtra, Invoice, Ticket, TimeEntry
from connectors.sandbox.zammad import ZammadSandbox

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SERVICE = {
    "code": "MUELLER-SERVICE", "customer": "2", "kind": "time_and_material", "trigger": "per_ticket",
    "rounding": {"scope": "entry", "mode": "up", "increment": 15},
    "rates": [{"activity": "Remote", "rate": "100.00"}, {"activity": "Vor-Ort", "rate": "120.00"}],
    "travel": {"flat_per_visit": "45.00", "activities": [], "km_rate": "0.50"},
    "material_markup": {"hardware": "0.20"},
}
ONSITE_NOTE = ("<div>Platten getauscht, RAID neu aufgebaut.</div>"
               "<div>Material: 2 × SSD 1 TB à 87,40 € [Hardware]</div>"
               "<div>Material: Patchkabel à 4,90</div>"
               "<div>Fahrt: 38 km</div>"
               "<div>Vor-Ort: ja</div>")


def as_agent(sb: ZammadSandbox, method: str, path: str, body: dict[str, Any]) -> requests.Response:
    """A call with Anna's own token, as her browser would make it."""
    response = requests.request(method, f"{sb.api_url}{path}", json=body, timeout=10,
                                headers={"Authorization": f"Token token={sb.agent_user_token}"})
    assert response.status_code in (200, 201), response.text
    return response


def agent_ticket(sb: ZammadSandbox, title: str, org: int, category: str | None, minutes: int, activity: int,
                 note: str) -> int:
    """A ticket the agent works: category set in the sidebar, one internal note with the time
    booked in the dialog (activity type), closed."""
    ticket_id = int(sb.create_ticket(title, organization_id=org)["id"])
    if category is not None:
        as_agent(sb, "PUT", f"/tickets/{ticket_id}", {"billing_category": category})
    sb.advance(600)
    as_agent(sb, "POST", "/ticket_articles", {
        "ticket_id": ticket_id, "type": "note", "internal": True, "content_type": "text/html",
        "subject": "Einsatz", "body": note, "time_unit": str(minutes), "accounted_time_type_id": activity,
    })
    sb.advance(600)
    sb.close_ticket(ticket_id)
    return ticket_id


def setup_mueller(sidecar: Sidecar, tmp_path: Path) -> None:
    sidecar.import_customers(tmp_path, [2])
    import_contracts(sidecar, {"contracts": [SERVICE]})


def count(sidecar: Sidecar, model: type) -> int:
    with sidecar.factory() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_time_travel_visit_and_materials_are_billed_exactly_once(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    setup_mueller(sidecar, tmp_path)
    ticket_id = agent_ticket(sb, "Server vor Ort tauschen", 2, "billable", 90, ONSITE, ONSITE_NOTE)

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert result.counts["invoiced"] == 1
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        lines = [(line.description, line.quantity, line.unit, line.unit_price, line.net)
                 for line in invoice.lines]
        assert sorted(lines) == sorted([
            ("Vor-Ort (Anna Becker)", Decimal("1.5000"), "HUR", Decimal("120.0000"),
             Decimal("180.00")),
            ("Material: SSD 1 TB (2 × 104,88\xa0€)", Decimal("2.0000"), "C62", Decimal("104.8800"),
             Decimal("209.76")),
            ("Material: Patchkabel (1 × 4,90\xa0€)", Decimal("1.0000"), "C62", Decimal("4.9000"), Decimal("4.90")),
            ("Anfahrt 38 km", Decimal("38.0000"), "KMT", Decimal("0.5000"), Decimal("19.00")),
            ("Anfahrtspauschale Vor-Ort-Einsatz", Decimal("1.0000"), "C62", Decimal("45.0000"),
             Decimal("45.00")),
        ])
        assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("458.66"), Decimal("87.15"), Decimal("545.81"))
        links = session.execute(select(BilledExtra)).scalars().all()
        assert len(links) == 4 and {link.invoice_id for link in links} == {invoice.id}
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.category, ticket.booking_problems) == ("billable", None)
        pdf_path, number = invoice.pdf_path, invoice.number
    text = " ".join(pdf_text(pdf_path).split())
    for expected in ("SSD 1 TB", "104,88", "209,76", "Anfahrt 38 km", "Anfahrtspauschale Vor-Ort-Einsatz",
                     "Patchkabel", "458,66", "87,15", "545,81"):
        assert expected in text, expected
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"

    sb.advance(3600)
    again = run_at(sidecar, NOW)
    assert again.ok, again.error
    assert again.counts.get("invoiced", 0) == 0
    assert (count(sidecar, Invoice), count(sidecar, BilledExtra), count(sidecar, BookedExtra)) == (1, 4, 4)

    # A cancellation releases the extras like the time: the next run bills them again, once.
    with transaction(sidecar.factory) as session:
        cancel_invoice(session, sidecar.settings, number, "Adresse falsch", render_pdf, NOW, "test")
    rebilled = run_at(sidecar, NOW)
    assert rebilled.ok, rebilled.error
    assert rebilled.counts["invoiced"] == 1
    with sidecar.factory() as session:
        newest = session.execute(select(Invoice).where(Invoice.type_code == "380", Invoice.state == "issued")
                                 ).scalar_one()
        assert newest.net == Decimal("458.66")
        assert {link.invoice_id for link in session.execute(select(BilledExtra)).scalars()} == {newest.id}
    assert run_at(sidecar, NOW).counts.get("invoiced", 0) == 0


def test_malformed_material_line_is_flagged_and_nothing_is_billed(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    setup_mueller(sidecar, tmp_path)
    ticket_id = agent_ticket(sb, "Kabel verlegt", 2, None, 30, REMOTE,
                             "<div>Material: Kabel</div><div>Material: 1 × Dose à 3,20</div>")

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert result.counts["needs_attention"] == 1
    assert count(sidecar, Invoice) == 0
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.billing_status == "needs_attention"
        assert ticket.attention_reason.startswith("Material: Kabel — no unit price")
    remote = sb.ticket(ticket_id)
    assert remote["billing_status"] == "needs_attention"
    assert run_at(sidecar, NOW).counts.get("invoiced", 0) == 0


def test_warranty_is_not_billable_and_goodwill_is_a_no_charge_line(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    setup_mueller(sidecar, tmp_path)
    warranty = agent_ticket(sb, "Netzteil defekt (Garantie)", 2, "warranty", 60, REMOTE,
                            "<div>Material: Netzteil 650 W à 79,90</div>")
    goodwill = agent_ticket(sb, "Kurze Frage zum Drucker", 2, "goodwill", 20, REMOTE, "<div>Erklärt.</div>")

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert (result.counts["not_billable"], result.counts["invoiced"]) == (1, 1)
    with sidecar.factory() as session:
        tickets = {t.title: t for t in session.execute(select(Ticket)).scalars()}
        assert tickets["Netzteil defekt (Garantie)"].billing_status == "not_billable"
        assert tickets["Netzteil defekt (Garantie)"].attention_reason == "category warranty"
        reasons = session.execute(select(TimeEntry.not_billed_reason).where(
            TimeEntry.ticket_id == tickets["Netzteil defekt (Garantie)"].id)).scalars().all()
        assert reasons == ["category warranty"]
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.ticket_id == tickets["Kurze Frage zum Drucker"].id
        assert (invoice.net, invoice.gross) == (Decimal("0.00"), Decimal("0.00"))
        # Nothing to pay: an activity report of its own series, not a 0,00 € invoice.
        assert (invoice.type_code, invoice.series, invoice.number) == ("LN", "activity_report", "LN-2026-00001")
        assert invoice.xml_path is None  # not an invoice: no e-invoice, nothing for DATEV
        [line] = invoice.lines
        assert line.description == "Remote (Anna Becker) – ohne Berechnung: Kulanz"
        assert (line.quantity, line.net) == (Decimal("0.3333"), Decimal("0.00"))
        pdf_path = invoice.pdf_path
    text = " ".join(pdf_text(pdf_path).split())
    assert "Leistungsnachweis ohne Berechnung LN-2026-00001" in text
    assert "ohne Berechnung: Kulanz" in text
    assert "Es entstehen Ihnen keine Kosten; eine Zahlung ist nicht zu leisten." in text
    for phrase in ("Bitte überweisen", "Gesamtbetrag", "Fällig am", "Rechnungsnr."):
        assert phrase not in text, phrase
    assert sb.ticket(warranty)["billing_status"] == "not_billable"
    assert sb.ticket(goodwill)["billing_status"] == "invoiced"
    again = run_at(sidecar, NOW)
    assert again.ok and again.counts.get("invoiced", 0) == 0 and count(sidecar, Invoice) == 1


def test_travel_without_a_km_rate_needs_attention(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])  # no contract: time and material at 89.00, no km rate
    agent_ticket(sb, "Router vor Ort", 1, None, 30, ONSITE, "<div>Fahrt: 12 km</div>")

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert count(sidecar, Invoice) == 0
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.billing_status == "needs_attention"
        assert ticket.attention_reason == "travel km booked but no km rate configured (Fahrt 12 km)"


def test_monthly_contract_bills_the_extras_on_the_collective_invoice(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [2])
    import_contracts(sidecar, {"contracts": [{**SERVICE, "trigger": "monthly"}]})
    sb.set_now(datetime(2026, 10, 14, 8, 0, tzinfo=UTC))
    agent_ticket(sb, "Arbeitsplatz umziehen", 2, None, 45, REMOTE,
                 "<div>Material: 3 × Patchkabel à 4,90 [Hardware]</div><div>Fahrt: 10 km à 0,40</div>")

    during = run_at(sidecar, datetime(2026, 10, 20, 12, 0, tzinfo=UTC))
    assert during.ok, during.error
    assert during.counts["awaiting_period"] == 1 and count(sidecar, Invoice) == 0

    after = run_at(sidecar, NOW)

    assert after.ok, after.error
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        lines = sorted((line.description, line.net) for line in invoice.lines)
        assert lines == [("Anfahrt 10 km", Decimal("4.00")),
                         ("Material: Patchkabel (3 × 5,88\xa0€)", Decimal("17.64")),
                         ("Remote (Anna Becker)", Decimal("75.00"))]
        assert invoice.net == Decimal("96.64")
        links = session.execute(select(BilledExtra)).scalars().all()
        assert len(links) == 2 and {link.invoice_id for link in links} == {invoice.id}
    again = run_at(sidecar, NOW)
    assert again.ok and count(sidecar, Invoice) == 1


def test_material_booked_after_the_invoice_goes_on_a_new_invoice_alone(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    setup_mueller(sidecar, tmp_path)
    ticket_id = agent_ticket(sb, "Maus defekt", 2, None, 15, REMOTE, "<div>Material: Maus à 19,90</div>")
    assert run_at(sidecar, NOW).counts["invoiced"] == 1

    sb.advance(600)
    as_agent(sb, "POST", "/ticket_articles", {
        "ticket_id": ticket_id, "type": "note", "internal": True, "content_type": "text/html",
        "body": "<div>Nachtrag</div><div>Material: 2 × Batterie AA à 1,50</div>"})
    late = run_at(sidecar, NOW)

    assert late.ok, late.error
    assert late.counts["invoiced"] == 1
    with sidecar.factory() as session:
        first, second = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        assert first.net == Decimal("44.90")  # 15 min Remote at 100.00 + 19.90
        assert [(line.description, line.net) for line in second.lines] == [
            ("Material: Batterie AA (2 × 1,50\xa0€)", Decimal("3.00"))]
    assert run_at(sidecar, NOW).counts.get("invoiced", 0) == 0


def test_covered_time_is_free_but_its_material_is_billed_and_internal_bills_nothing(
    sidecar: Sidecar, tmp_path: Path,
) -> None:
    sb = sidecar.sandbox
    setup_mueller(sidecar, tmp_path)
    agent_ticket(sb, "Wartung laut Vertrag", 2, "covered", 30, REMOTE, "<div>Material: Lüfter à 14,00</div>")
    agent_ticket(sb, "Eigene Schulung", 2, "internal", 60, REMOTE, "<div>Fahrt: 20 km</div>")

    result = run_at(sidecar, NOW)

    assert result.ok, result.error
    assert (result.counts["invoiced"], result.counts["not_billable"]) == (1, 1)
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert sorted((line.description, line.net) for line in invoice.lines) == [
            ("Material: Lüfter (1 × 14,00\xa0€)", Decimal("14.00")),
            ("Remote (Anna Becker) – ohne Berechnung: durch Vertrag abgedeckt", Decimal("0.00"))]
        internal = session.execute(select(Ticket).where(Ticket.title == "Eigene Schulung")).scalar_one()
        assert (internal.billing_status, internal.attention_reason) == ("not_billable", "category internal")
