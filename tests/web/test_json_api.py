"""The JSON API answers as openapi/ticketbill-v1.yaml says (the file itself is a valid OpenAPI 3.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from sqlalchemy import select
from web_fixtures import UI

from addon.db import transaction
from addon.models import AppUser, Invoice
from addon.users import issue_token

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "ticketbill-v1.yaml"


def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


def test_the_openapi_file_is_valid() -> None:
    validate(spec())


def test_every_api_route_is_described_and_every_described_path_exists(ui: UI) -> None:
    described = {(path, method.upper()) for path, item in spec()["paths"].items() for method in item}
    served = set()
    for rule in ui.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = "/" + rule.rule.removeprefix("/api/v1/")
            path = path.replace("<int:", "{").replace(">", "}")
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == described


def _schema(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    response = document["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return {**response["content"]["application/json"]["schema"], "components": document["components"]}


def check(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    Draft202012Validator(_schema(document, path, method, str(status))).validate(body)


def test_answers_match_the_schemas(ui: UI) -> None:
    with transaction(ui.sidecar.factory) as session:
        user = session.execute(select(AppUser).where(AppUser.login == "admin")).scalar_one()
        token, _row = issue_token(session, user, "tests", datetime.now(UTC))
    with ui.sidecar.factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().first()
        draft = session.execute(select(Invoice).where(Invoice.state == "draft")).scalars().first()
    client = ui.client()
    auth = {"Authorization": f"Bearer {token}"}
    document = spec()
    calls = [("/me", "get", None), ("/overview", "get", None), ("/tickets", "get", None),
             (f"/tickets/{ui.tickets['invoiced']}", "get", "/tickets/{ticket_id}"), ("/drafts", "get", None),
             ("/invoices", "get", None), (f"/invoices/{invoice.id}", "get", "/invoices/{invoice_id}"),
             ("/customers", "get", None), ("/contracts", "get", None), ("/runs", "get", None)]
    for url, method, template in calls:
        answer = client.open(f"/api/v1{url}", method=method.upper(), headers=auth)
        assert answer.status_code == 200, (url, answer.get_json())
        check(document, template or url, method, 200, answer.get_json())
    approved = client.post(f"/api/v1/drafts/{draft.id}/approve", headers=auth)
    check(document, "/drafts/{draft_id}/approve", "post", 200, approved.get_json())
    again = client.post(f"/api/v1/drafts/{draft.id}/approve", headers=auth)
    assert again.status_code == 409
    check(document, "/drafts/{draft_id}/approve", "post", 409, again.get_json())
    paid = client.post(f"/api/v1/invoices/{invoice.id}/payments", headers=auth,
                       json={"amount": invoice.gross.to_eng_string(), "paid_on": datetime.now(UTC).date().isoformat()})
    assert paid.status_code == 200, paid.get_json()
    assert paid.get_json()["payment"]["status"] == "paid"
    check(document, "/invoices/{invoice_id}/payments", "post", 200, paid.get_json())
    bad = client.post(f"/api/v1/invoices/{invoice.id}/payments", headers=auth, json={"amount": "x"})
    assert bad.status_code == 400
    missing = client.get("/api/v1/tickets/999999", headers=auth)
    assert missing.status_code == 404
    check(document, "/tickets/{ticket_id}", "get", 404, missing.get_json())
    anonymous = client.get("/api/v1/overview")
    check(document, "/overview", "get", 401, anonymous.get_json())
