"""Fixtures for the web UI: a sidecar on the Zammad sandbox with billed, drafted and flagged
tickets, one user per role, and signed-in Flask test clients (CSRF stays on)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from sync_fixtures import ADDRESSES, Sidecar, closed_ticket, make_settings, sandbox  # noqa: F401

from addon import create_app
from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.models import Ticket
from addon.users import ROLES, create_user
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

PASSWORD = "correct horse battery"
DRAFT_ORG, AUTO_ORG, UNCONFIGURED_ORG = 1, 2, 3


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


@dataclass
class UI:
    """The scenario: customer 1 gets drafts, customer 2 invoices at once, customer 3 has no
    billing data (its ticket needs attention)."""

    sidecar: Sidecar
    app: Flask
    tickets: dict[str, int] = field(default_factory=dict)  # scenario key → sidecar ticket id

    def client(self, role: str | None = None) -> FlaskClient:
        """A test client, signed in as the user of `role` (None: anonymous)."""
        client = self.app.test_client()
        if role is not None:
            token = csrf_of(client.get("/login").get_data(as_text=True))
            answer = client.post("/login", data={"csrf_token": token, "method": "local", "login": role,
                                                 "password": PASSWORD})
            assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
        return client

    def token(self, client: FlaskClient, path: str = "/") -> str:
        return csrf_of(client.get(path).get_data(as_text=True))


def write_customers(tmp_path: Path, factory, orgs: dict[int, dict]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ui-customers.json"
    path.write_text(json.dumps({"default_rate": "95.00", "internal_activities": ["Intern"],
                                "customers": [{"remote_id": str(i), **data} for i, data in orgs.items()]}),
                    encoding="utf-8")
    with transaction(factory) as session:
        import_customers(session, "zammad", path)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The UI tests run on SQLite; the service functions they call are tested on both backends."""
    return f"sqlite:///{tmp_path / 'ui.sqlite'}"


@pytest.fixture
def ui(sandbox: ZammadSandbox, database_url: str, tmp_path: Path) -> Iterator[UI]:  # noqa: F811
    settings = make_settings(sandbox, database_url, tmp_path / "data", DATEV_CONSULTANT_NUMBER="1001",
                             DATEV_CLIENT_NUMBER="1", DATEV_DEFAULT_DEBTOR="10000", SECRET_KEY="k" * 40)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    connector = ZammadConnector.from_settings(settings)
    connector.register()
    sidecar = Sidecar(settings, make_session_factory(engine), sandbox, connector)
    write_customers(tmp_path, sidecar.factory, {
        DRAFT_ORG: {**ADDRESSES[1], "approval_required": True},
        AUTO_ORG: ADDRESSES[2],
    })
    scenario = UI(sidecar, create_app(settings))
    scenario.tickets["draft"] = closed_ticket(sandbox, "Kassensystem neu einrichten", DRAFT_ORG,
                                              [(50, 3, 1), (25, 4, 2)])
    scenario.tickets["invoiced"] = closed_ticket(sandbox, "Drucker im 2. OG", AUTO_ORG, [(30, 3, 1)])
    scenario.tickets["attention"] = closed_ticket(sandbox, "VPN für Außendienst", UNCONFIGURED_ORG, [(45, 4, 1)])
    result = sidecar.run()
    assert result.run_id is not None
    with sidecar.factory() as session:  # from the sandbox's ticket ids to the sidecar's
        ids = dict(session.execute(select(Ticket.remote_id, Ticket.id)).all())
    scenario.tickets = {key: ids[str(remote)] for key, remote in scenario.tickets.items()}
    with transaction(sidecar.factory) as session:
        for role in ROLES:
            create_user(session, role, f"{role.replace('_', ' ').title()} Test", role, PASSWORD,
                        datetime.now(UTC))
    yield scenario
    scenario.app.extensions["ticketbill"].engine.dispose()
    engine.dispose()
