"""The whole sidecar flow through a real Request Tracker 5: sync → invoice → write-back, twice.

Two agents book time on two days; the tickets are resolved; the first run finds a customer
without billing data (flagged in RT), the admin imports it, the next run bills and writes the
invoice number, link and one comment into RT; a further run changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rt_fixtures import *  # noqa: F403  (fixtures: rt_env, rt_desk, make_rt_connector, ...)
from rt_fixtures import RTDesk, RTEnv
from sqlalchemy import select

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.invoicing.render_pdf import render_pdf
from addon.models import Customer, Invoice, Ticket
from addon.settings import load_settings
from addon.sync.jobs import run_sync
from connectors.rt import RTConnector

pytestmark = pytest.mark.integration

def test_resolved_rt_tickets_are_invoiced_once(
    rt_env: RTEnv,
    rt_desk: RTDesk,
    make_rt_connector: Callable[..., RTConnector],
    database_url: str,
    tmp_path: Path,
) -> None:
    queue = rt_desk.name(f"Flow Maschinenbau {uuid.uuid4().hex[:6]}")
    queue_id = rt_desk.create_queue(queue)
    connector = make_rt_connector(queues=(queue,))
    assert connector.register().ok
    status_field, invoice_field, url_field = (spec.name for spec in connector.fields)
    agent1, agent2 = sorted(rt_env.agents)
    first = rt_desk.create_ticket(queue, "Server startet nicht")
    rt_desk.book(first, agent1, 50, at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    rt_desk.book(first, agent2, 20, at=datetime(2026, 11, 3, 14, 0, tzinfo=UTC))
    second = rt_desk.create_ticket(queue, "VPN für Außendienst")
    rt_desk.book(second, agent2, 35, at=datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    for ticket in (first, second):
        rt_desk.resolve(ticket)

    settings = load_settings({
        "HELPDESK_KIND": "rt", "HELPDESK_URL": rt_env.url, "HELPDESK_TOKEN": rt_env.billing_token,
        "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "http://billing.test",
        "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
        "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
    })
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)

    def run():  # type: ignore[no-untyped-def]
        return run_sync(factory, connector, settings, render_pdf)

    unconfigured = run()
    assert unconfigured.ok, unconfigured.error
    assert unconfigured.counts["needs_attention"] == 2
    assert rt_desk.custom_fields(first)[status_field] == ["needs_attention"]
    with factory() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.remote_id, customer.name) == (queue_id, queue)

    customers = tmp_path / "customers.json"
    customers.write_text(json.dumps({"customers": [{
        "remote_id": queue_id, "legal_name": "Flow Maschinenbau GmbH", "street": "Werkstraße 3",
        "postcode": "21079", "city": "Hamburg", "hourly_rate": "100.00"}]}), encoding="utf-8")
    with transaction(factory) as session:
        import_customers(session, "rt", customers)

    billed = run()

    assert billed.ok, billed.error
    assert billed.counts["invoiced"] == 2
    with factory() as session:
        invoices = {
            t.remote_id: inv
            for inv, t in session.execute(select(Invoice, Ticket).join(Ticket, Invoice.ticket_id == Ticket.id))
        }
    # 50 → 60 and 20 → 30 minutes at 100.00/h; 35 → 45 minutes
    assert invoices[first].net == Decimal("150.00")
    assert invoices[first].gross == Decimal("178.50")
    assert invoices[second].net == Decimal("75.00")
    for ticket in (first, second):
        fields = rt_desk.custom_fields(ticket)
        number = invoices[ticket].number
        assert fields[status_field] == ["invoiced"]
        assert fields[invoice_field] == [number]
        assert fields[url_field][0].endswith(f"/{number}.pdf")
        invoice_comments = [c for c in rt_desk.comments(ticket) if number in c["subject"]]
        assert len(invoice_comments) == 1

    comments_before = {t: len(rt_desk.comments(t)) for t in (first, second)}
    again = run()

    assert again.ok, again.error
    assert again.counts.get("invoiced", 0) == 0
    assert again.counts["written"] == 0
    assert {t: len(rt_desk.comments(t)) for t in (first, second)} == comments_before
    with factory() as session:
        assert len(session.execute(select(Invoice)).scalars().all()) == 2
    engine.dispose()
