"""Fixtures for end-to-end sync tests: a Zammad sandbox over real HTTP and a sidecar on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from empty_sandbox import empty_sandbox
from sqlalchemy.orm import Session, sessionmaker

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.invoicing.render_pdf import render_pdf
from addon.settings import Settings, load_settings
from addon.sync.jobs import RunResult, run_sync
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

SELLER = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH",
    "SELLER_STREET": "Hafenstraße 12",
    "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg",
    "SELLER_VAT_ID": "DE136695976",
    "SELLER_IBAN": "DE89370400440532013000",
}

ADDRESSES = {
    1: {"legal_name": "Bäckerei Hansen GmbH", "street": "Große Bergstraße 143", "postcode": "22767",
        "city": "Hamburg", "hourly_rate": "89.00"},
    2: {"legal_name": "Müller & Söhne Maschinenbau KG", "street": "Industriestraße 7", "postcode": "21079",
        "city": "Hamburg", "vat_id": "DE136695976"},
    3: {"legal_name": "Kanzlei Richter & Partner mbB", "street": "Jungfernstieg 30", "postcode": "20354",
        "city": "Hamburg"},
}


@dataclass
class Sidecar:
    """A sidecar wired to a sandbox: settings, database and a connector over HTTP."""

    settings: Settings
    factory: sessionmaker[Session]
    sandbox: ZammadSandbox
    connector: ZammadConnector

    def run(self) -> RunResult:
        return run_sync(self.factory, self.connector, self.settings, render_pdf)

    def import_customers(self, tmp_path: Path, org_ids: list[int], default_rate: str = "95.00") -> None:
        path = tmp_path / "customers.json"
        customers = [{"remote_id": str(i), **ADDRESSES[i]} for i in org_ids]
        document = {"default_rate": default_rate, "internal_activities": ["Intern"], "customers": customers}
        path.write_text(json.dumps(document), encoding="utf-8")
        with transaction(self.factory) as session:
            import_customers(session, "zammad", path)

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The internal notes the sidecar wrote on a sandbox ticket."""
        with self.sandbox.lock:
            articles = list(self.sandbox.state.data["articles"].values())
        return [a for a in articles if a["ticket_id"] == ticket_id and a["internal"] and "ticketbill" in a["body"]]


def make_settings(sandbox: ZammadSandbox, database_url: str, data_dir: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "HELPDESK_KIND": "zammad",
            "HELPDESK_URL": sandbox.url,
            "HELPDESK_TOKEN": sandbox.admin_token,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "PUBLIC_URL": "http://billing.test",
            **SELLER,
            **extra,
        }
    )


@pytest.fixture
def sandbox() -> Iterator[ZammadSandbox]:
    """The seeded sandbox (40 tickets), emptied: each test books exactly what it checks.

    The organizations' billing fields are emptied too: billing data comes from each test's
    customer import, or from the fields a test fills in itself.
    """
    with empty_sandbox() as sb:
        yield sb


@pytest.fixture
def sidecar(sandbox: ZammadSandbox, database_url: str, tmp_path: Path) -> Iterator[Sidecar]:
    settings = make_settings(sandbox, database_url, tmp_path / "data")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    connector = ZammadConnector.from_settings(settings)
    connector.register()
    yield Sidecar(settings, make_session_factory(engine), sandbox, connector)
    engine.dispose()


def closed_ticket(sb: ZammadSandbox, title: str, org: int, bookings: list[tuple[int, int, str]]) -> int:
    """A ticket with (minutes, agent id, activity type id) bookings at the sandbox clock, closed."""
    ticket = sb.create_ticket(title, organization_id=org)
    for minutes, agent_id, type_id in bookings:
        sb.advance(600)
        sb.book_time(ticket["id"], minutes, agent_id=agent_id, type_id=int(type_id))
    sb.advance(600)
    sb.close_ticket(ticket["id"])
    return ticket["id"]
