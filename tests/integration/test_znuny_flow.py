"""The whole sidecar flow through a real Znuny 6.5: sync → invoice → write-back, twice.

Two agents account time on internal notes; the ticket is closed; the sidecar bills it, sets
the dynamic fields and adds one internal article the customer cannot see; a second run
changes nothing. The cursor starts at Znuny's "now", so tickets of other tests are not billed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from znuny_fixtures import *  # noqa: F403  (fixtures: znuny_env, znuny_desk, make_znuny_connector)
from znuny_fixtures import ZnunyDesk, ZnunyEnv

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.invoicing.render_pdf import render_pdf
from addon.models import Invoice, Ticket
from addon.settings import load_settings
from addon.sync.jobs import STREAM, run_sync
from addon.sync.store import advance_cursor
from connectors.otrs import OTRSConnector

pytestmark = pytest.mark.integration

def test_closed_znuny_ticket_is_invoiced_once(
    znuny_env: ZnunyEnv,
    znuny_desk: ZnunyDesk,
    make_znuny_connector: Callable[..., OTRSConnector],
    database_url: str,
    tmp_path: Path,
) -> None:
    connector = make_znuny_connector(overlap_seconds=0)
    report = connector.register()
    assert report.ok, report.problems
    settings = load_settings({
        "HELPDESK_KIND": "otrs", "HELPDESK_URL": znuny_env.url, "HELPDESK_USER": znuny_env.user,
        "HELPDESK_PASSWORD": znuny_env.password, "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "http://billing.test",
        "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
        "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
    })
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    customers = tmp_path / "customers.json"
    customers.write_text(json.dumps({"customers": [{
        "remote_id": "ACME", "legal_name": "ACME Industrie GmbH", "street": "Werkstraße 3",
        "postcode": "21079", "city": "Hamburg", "hourly_rate": "100.00"}]}), encoding="utf-8")
    with transaction(factory) as session:
        import_customers(session, "otrs", customers)
        advance_cursor(session, "otrs", STREAM, znuny_desk.znuny_now())
    ticket_id = znuny_desk.create_billable_ticket(
        "Server startet nicht", customer_user="cust1", bookings=[("alice", 50, None), ("bob", 20, None)]
    )

    def run():  # type: ignore[no-untyped-def]
        return run_sync(factory, connector, settings, render_pdf)

    first = run()

    assert first.ok, first.error
    with factory() as session:
        invoice = session.execute(
            select(Invoice).join(Ticket, Invoice.ticket_id == Ticket.id).where(Ticket.remote_id == str(ticket_id))
        ).scalar_one()
        number = invoice.number
        # 50 → 60 and 20 → 30 minutes at 100.00 per hour
        assert (invoice.net, invoice.gross) == (Decimal("150.00"), Decimal("178.50"))
    ticket = znuny_desk.get(ticket_id)
    fields = ZnunyDesk.fields(ticket)
    assert (fields["BillingStatus"], fields["InvoiceNumber"]) == ("invoiced", number)
    assert fields["InvoiceURL"].endswith(f"/{number}.pdf")
    notes = [a for a in ticket["Article"] if number in (a.get("Subject") or "") + (a.get("Body") or "")]
    assert len(notes) == 1
    assert notes[0]["IsVisibleForCustomer"] == 0
    customer_view = znuny_desk.get(ticket_id, customer="cust1")
    assert not any(number in (a.get("Subject") or "") for a in customer_view.get("Article", []))
    articles_before = len(ticket["Article"])

    second = run()

    assert second.ok, second.error
    assert second.counts.get("written", 0) == 0
    assert len(znuny_desk.get(ticket_id)["Article"]) == articles_before
    with factory() as session:
        mine = session.execute(
            select(Invoice).join(Ticket, Invoice.ticket_id == Ticket.id).where(Ticket.remote_id == str(ticket_id))
        ).scalars().all()
        assert [i.number for i in mine] == [number]
    engine.dispose()
