"""Forms with field-level errors and the decisions behind them: a contract (preview before it
applies, which tickets it bills), cancellation with a decision about the work, payments."""

from __future__ import annotations

from sqlalchemy import select
from web_fixtures import AUTO_ORG, UI, csrf_of

from addon.models import Contract, Invoice, Ticket


def post(client, url: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(url if not url.endswith(("/cancel", "/release", "/payments")) else "/").get_data(
        as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def test_a_contract_form_shows_field_errors_previews_and_saves(ui: UI) -> None:
    client = ui.client("admin")
    base = {"code": "MUELLER-TM", "customer": str(AUTO_ORG), "kind": "time_and_material", "trigger": "per_ticket",
            "surcharge_policy": "highest", "rounding_scope": "entry", "rounding_mode": "up",
            "rounding_increment": "x", "rounding_minimum": "0", "rates-0-rate": "150.00"}
    wrong = post(client, "/admin/contracts/new", {**base, "action": "save"})
    assert wrong.status_code == 422
    page = wrong.get_data(as_text=True)
    assert '<div class="has-error"><label for="rounding_increment">' in page  # the field, not the form
    assert 'value="x"' in page and "rounding.increment" in page
    with ui.sidecar.factory() as session:
        assert session.execute(select(Contract)).first() is None
    preview = post(client, "/admin/contracts/new", {**base, "rounding_increment": "30", "action": "preview"})
    assert preview.status_code == 200
    assert "Unbilled entries that change terms" in preview.get_data(as_text=True) or \
        "Offene Buchungen mit neuen Bedingungen" in preview.get_data(as_text=True)
    with ui.sidecar.factory() as session:
        assert session.execute(select(Contract)).first() is None  # a preview writes nothing
    saved = post(client, "/admin/contracts/new", {**base, "rounding_increment": "30", "action": "save"})
    assert saved.status_code == 302 and saved.headers["Location"] == "/admin/contracts/MUELLER-TM"
    shown = client.get("/admin/contracts/MUELLER-TM", headers={"Accept-Language": "en"}).get_data(as_text=True)
    with ui.sidecar.factory() as session:
        ticket = session.get(Ticket, ui.tickets["invoiced"])
        assert session.execute(select(Contract.rounding_increment)).scalar_one() == 30
    assert f"#{ticket.number}" in shown  # the tickets it bills (routed by the engine)


def test_cancel_with_a_decision_about_the_work(ui: UI) -> None:
    client = ui.client("accountant")
    with ui.sidecar.factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().first()
    url = f"/invoices/{invoice.id}"
    refused = post(client, f"{url}/cancel", {"decision": "write-off"})
    assert refused.status_code == 302
    assert "write-off needs a reason" in client.get(url).get_data(as_text=True)
    held = post(client, f"{url}/cancel", {"decision": "hold", "reason": "Kunde prüft"})
    assert held.status_code == 302
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Work on hold" in page
    released = post(client, f"{url}/release", {"decision": "write-off", "reason": "Kulanz"})
    assert released.status_code == 302
    with ui.sidecar.factory() as session:
        ticket = session.get(Ticket, ui.tickets["invoiced"])
        assert session.get(Invoice, invoice.id).state == "cancelled"
        assert ticket.billing_hold is None and all(e.written_off for e in ticket.entries)


def test_a_payment_needs_amount_and_date(ui: UI) -> None:
    client = ui.client("accountant")
    with ui.sidecar.factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().first()
    url = f"/invoices/{invoice.id}"
    assert post(client, f"{url}/payments", {"amount": "", "paid_on": ""}).status_code == 302
    assert "Betrag und Zahlungsdatum" in client.get(url, headers={"Accept-Language": "de"}).get_data(as_text=True)
    german = f"{invoice.gross:.2f}".replace(".", ",")
    assert post(client, f"{url}/payments", {"amount": german, "paid_on": invoice.issued_at.date().isoformat()}
                ).status_code == 302
    with ui.sidecar.factory() as session:
        assert session.get(Invoice, invoice.id).state == "paid"
