"""The push API: another ticket system pushes a closed ticket, ticketbill bills it, the sender
reads the invoice back; bad bodies change nothing; the Znuny close event is deduplicated."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from addon import create_app
from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.invoicing.render_pdf import render_pdf
from addon.models import PushEvent, Ticket, TimeEntry
from addon.settings import Settings, load_settings
from addon.sync.jobs import run_sync
from connectors import get_connector

TOKEN = "push-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICKET = {
    "number": "T-100",
    "title": "Kassensystem hängt",
    "customer": {"id": "C-17", "name": "Beispiel GmbH"},
    "state": "closed",
    "closed_at": "2026-11-20T16:00:00Z",
    "updated_at": "2026-11-20T16:00:00Z",
    "url": "https://tickets.example/T-100",
    "time_entries": [
        {"id": "w-1", "agent": "anna", "minutes": "50", "booked_at": "2026-11-20T10:00:00+01:00", "activity": "Remote"},
        {"id": "w-2", "agent": "ben", "minutes": 20, "booked_at": "2026-11-20T15:00:00Z"},
    ],
}


@dataclass
class PushSidecar:
    settings: Settings
    client: FlaskClient
    requested: list[int]

    def bill(self) -> dict[str, int]:
        engine = make_engine(self.settings.database_url)
        factory = make_session_factory(engine)
        result = run_sync(factory, get_connector(self.settings), self.settings, render_pdf)
        engine.dispose()
        assert result.ok, result.error
        return result.counts


@pytest.fixture
def push(database_url: str, tmp_path: Path) -> Iterator[PushSidecar]:
    settings = load_settings({
        "HELPDESK_KIND": "api", "PUSH_API_TOKEN": TOKEN, "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "http://billing.test",
        "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
        "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
    })
    engine = make_engine(settings.database_url)
    upgrade(engine)
    customers = tmp_path / "customers.json"
    customers.write_text(json.dumps({"customers": [{
        "remote_id": "C-17", "legal_name": "Beispiel GmbH", "street": "Hauptstraße 1", "postcode": "60311",
        "city": "Frankfurt am Main", "hourly_rate": "120.00"}]}), encoding="utf-8")
    with transaction(make_session_factory(engine)) as session:
        import_customers(session, "api", customers)
    engine.dispose()
    app = create_app(settings)
    requested: list[int] = []
    app.config["TICKETBILL_REQUEST_SYNC"] = lambda: requested.append(1)
    yield PushSidecar(settings, app.test_client(), requested)
    app.extensions["ticketbill"].engine.dispose()


def put(push: PushSidecar, ticket_id: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return push.client.put(f"/api/push/v1/tickets/{ticket_id}", json=body, headers=AUTH if headers is None else headers)


def test_pushed_ticket_is_billed_and_the_sender_reads_the_invoice(push: PushSidecar) -> None:
    answer = put(push, "100", TICKET)
    assert answer.status_code == 200
    assert answer.get_json()["billing_status"] == "unbilled"
    assert put(push, "100", TICKET).status_code == 200  # idempotent by the sender's ids

    counts = push.bill()

    assert counts["invoiced"] == 1
    status = push.client.get("/api/push/v1/tickets/100", headers=AUTH).get_json()
    assert status["billing_status"] == "invoiced"
    [invoice] = status["invoices"]
    # 50 → 60 and 20 → 30 minutes at 120.00/h = 180.00 net, 214.20 gross
    assert invoice["gross"] == "214.20"
    assert invoice["url"].startswith("http://billing.test/invoices/") and invoice["url"].endswith(".pdf")
    assert push.bill().get("invoiced", 0) == 0


def test_open_ticket_waits_and_a_removed_entry_is_not_billed(push: PushSidecar) -> None:
    assert put(push, "101", {**TICKET, "state": "open", "closed_at": None}).status_code == 200
    assert push.bill().get("invoiced", 0) == 0
    closed = {**TICKET, "time_entries": TICKET["time_entries"][:1]}
    assert put(push, "101", closed).status_code == 200
    push.bill()
    status = push.client.get("/api/push/v1/tickets/101", headers=AUTH).get_json()
    assert [i["gross"] for i in status["invoices"]] == ["142.80"]  # 60 min × 120.00 + 19 %


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"state": "done"}, "state"),
        ({"closed_at": None}, "closed_at"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"customer": "C-17"}, "customer"),
        ({"priority": 3}, "priority"),
        ({"time_entries": [{"id": "x", "agent": "a", "minutes": "viel", "booked_at": "2026-11-20T10:00:00Z"}]},
         "time_entries[0].minutes"),
        ({"time_entries": [{"id": "x", "agent": "a", "minutes": 5, "booked_at": "2026-11-20T10:00:00"}]},
         "time_entries[0].booked_at"),
    ],
)
def test_bad_body_is_refused_and_changes_nothing(push: PushSidecar, change: dict[str, Any], field: str) -> None:
    answer = put(push, "102", {**TICKET, **change})
    assert answer.status_code == 422
    assert answer.get_json()["field"] == field
    engine = make_engine(push.settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.execute(select(func.count()).select_from(Ticket)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(TimeEntry)).scalar_one() == 0
    engine.dispose()


def test_authentication(push: PushSidecar) -> None:
    assert put(push, "103", TICKET, headers={}).status_code == 401
    assert put(push, "103", TICKET, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert push.client.get("/api/push/v1/tickets/never", headers=AUTH).status_code == 404
    basic = base64.b64encode(f"znuny:{TOKEN}".encode()).decode()
    assert put(push, "103", TICKET, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"znuny:guess").decode()
    assert put(push, "103", TICKET, headers={"Authorization": f"Basic {wrong}"}).status_code == 401


def test_close_event_is_deduplicated_and_starts_a_sync(push: PushSidecar) -> None:
    body = {"Event": {"TicketID": "42", "Event": "TicketStateUpdate"}, "Ticket": {"StateType": "closed"}}
    first = push.client.post("/api/push/v1/events/ticket-closed", json=body, headers=AUTH)
    again = push.client.post("/api/push/v1/events/ticket-closed", json=body, headers=AUTH)
    assert (first.status_code, first.get_json()["duplicate"]) == (202, False)
    assert (again.status_code, again.get_json()["duplicate"]) == (200, True)
    assert push.requested == [1]
    bad = push.client.post("/api/push/v1/events/ticket-closed", json={"Event": {}}, headers=AUTH)
    assert bad.status_code == 422
    engine = make_engine(push.settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.execute(select(PushEvent.ticket_remote_id)).scalars().all() == ["42"]
    engine.dispose()


def test_push_api_is_off_without_a_token(tmp_path: Path) -> None:
    settings = load_settings({
        "HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://127.0.0.1:9", "HELPDESK_TOKEN": "t",
        "DATA_DIR": str(tmp_path), "SELLER_NAME": "N", "SELLER_STREET": "S", "SELLER_POSTCODE": "1",
        "SELLER_CITY": "C", "SELLER_TAX_NUMBER": "1", "SELLER_IBAN": "DE89370400440532013000",
    })
    app = create_app(settings)
    assert app.test_client().get("/api/push/v1/tickets/1", headers=AUTH).status_code == 404
    app.extensions["ticketbill"].engine.dispose()


def test_decimal_minutes_are_kept(push: PushSidecar) -> None:
    body = {**TICKET, "time_entries": [{**TICKET["time_entries"][0], "minutes": "7.5"}]}
    assert put(push, "104", body).status_code == 200
    engine = make_engine(push.settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.execute(select(TimeEntry.minutes)).scalar_one() == Decimal("7.5")
    engine.dispose()
