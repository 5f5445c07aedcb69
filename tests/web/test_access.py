"""No page, file, export or API call without a session (or token) and the role for it.

The test walks the whole URL map, so a route added later without a permission is caught.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from web_fixtures import UI, csrf_of

from addon.db import transaction
from addon.models import AppUser, Invoice
from addon.users import PERMISSIONS, ROLES, issue_token, may
from addon.web.ui.access import PUBLIC, permission_of

#: The only routes anyone may reach without a session: each has a reason.
PUBLIC_ENDPOINTS = {
    "auth.login",  # the sign-in page itself
    "auth.language",  # choosing the language of the sign-in page
    "web.invoice_pdf",  # the link in the helpdesk ticket: its random access key is the credential
    "health.healthz",  # liveness probe, says only "ok"
    "health.readyz",  # readiness probe: which checks fail, never ticket data
    "static",  # CSS and the vendored scripts
}
SELF_AUTHENTICATED = {"push", "zammad_hook"}  # PUSH_API_TOKEN, the webhook's HMAC signature


def _url(rule, ids: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", str(ids.get(name, 1)), path)
    return path


def _routes(ui: UI):  # type: ignore[no-untyped-def]
    with ui.sidecar.factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().first()
        draft = session.execute(select(Invoice).where(Invoice.state == "draft")).scalars().first()
        ids = {"invoice_id": invoice.id, "draft_id": draft.id, "ticket_id": ui.tickets["attention"], "run_id": 1,
               "customer_id": 1, "code": "NONE", "key": invoice.access_key, "number": invoice.number,
               "filename": "app.css", "position": 1, "entry_id": 1}
    for rule in ui.app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, _url(rule, ids)


def test_every_route_declares_a_permission_or_is_deliberately_public(ui: UI) -> None:
    undeclared, public = [], set()
    for rule in ui.app.url_map.iter_rules():
        permission = permission_of(ui.app, rule.endpoint)
        if permission is None:
            undeclared.append(rule.endpoint)
        elif permission == PUBLIC and rule.endpoint.split(".")[0] not in SELF_AUTHENTICATED:
            public.add(rule.endpoint)
        else:
            assert permission == PUBLIC or permission in PERMISSIONS
    assert undeclared == []
    assert public == PUBLIC_ENDPOINTS


def test_anonymous_requests_are_refused_everywhere(ui: UI) -> None:
    client = ui.client()
    for rule, method, url in _routes(ui):
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.split(".")[0] in SELF_AUTHENTICATED:
            continue
        answer = client.open(url, method=method, headers={"Accept": "text/html"})
        if url.startswith("/api/v1/"):
            assert answer.status_code == 401, (method, url)
            assert "error" in answer.get_json()
        else:
            assert answer.status_code == 302, (method, url, answer.status_code)
            assert answer.headers["Location"].startswith("/login"), (method, url)


def test_runs_no_longer_leak_to_anonymous_clients(ui: UI) -> None:
    """Issue 16: /runs and /runs/<id> answered anyone with hosts, ports and SQL in `error`."""
    client = ui.client()
    for url in ("/runs", "/runs/1"):
        answer = client.get(url)  # a script's request: no Accept header
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
        assert answer.get_json(silent=True) is None
    signed_in = ui.client("viewer")
    assert signed_in.get("/runs").get_json()[0]["id"] == 1
    assert signed_in.get("/runs/1").get_json()["ready"] is True


@pytest.mark.parametrize("role", ROLES)
def test_pages_and_actions_refuse_roles_without_the_permission(ui: UI, role: str) -> None:
    client = ui.client(role)
    token = csrf_of(client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True))
    refused = allowed = 0
    for rule, method, url in _routes(ui):
        permission = permission_of(ui.app, rule.endpoint)
        if permission == PUBLIC or url.startswith("/api/v1/") or rule.endpoint == "auth.logout":
            continue
        if may(role, permission):
            allowed += 1
            continue
        data = {"csrf_token": token} if method == "POST" else None
        answer = client.open(url, method=method, data=data, headers={"Accept": "text/html"})
        assert answer.status_code == 403, (role, method, url, answer.status_code)
        refused += 1
    assert allowed > 0
    assert refused > 0 or role == "admin"


@pytest.mark.parametrize("role", ROLES)
def test_the_api_wants_a_token_and_the_role(ui: UI, role: str) -> None:
    with transaction(ui.sidecar.factory) as session:
        user = session.execute(select(AppUser).where(AppUser.login == role)).scalar_one()
        token, _row = issue_token(session, user, "test", datetime.now(UTC))
    client = ui.client()
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=auth).get_json()["role"] == role
    for rule, method, url in _routes(ui):
        if not url.startswith("/api/v1/"):
            continue
        permission = permission_of(ui.app, rule.endpoint)
        if not may(role, permission):
            assert client.open(url, method=method, headers=auth, json={}).status_code == 403, (role, url)


def test_a_post_without_the_csrf_token_is_refused(ui: UI) -> None:
    client = ui.client("admin")
    answer = client.post("/admin/catalogue", data={"kind": "activity", "name": "Schulung"})
    assert answer.status_code == 400


def test_sign_in_is_rate_limited(ui: UI) -> None:
    client = ui.client()
    statuses = []
    for _ in range(7):
        token = csrf_of(client.get("/login").get_data(as_text=True))
        statuses.append(client.post("/login", data={"csrf_token": token, "login": "admin",
                                                    "password": "wrong password!"}).status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
