"""The push API: another ticket system pushes a closed ticket, ticketbill bills it, the sender
reads the invoice back; bad bodies change nothing; the Znuny close event is deduplicated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
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
from addon.web.push import MAX_ENTRIES
from connectors import get_connector

TOKEN = "push-token-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"
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
        "ZAMMAD_WEBHOOK_SECRET": WEBHOOK_SECRET,
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


def stored_rows(push: PushSidecar) -> int:
    """Tickets, time entries and close events in the database (0: the request stored nothing)."""
    engine = make_engine(push.settings.database_url)
    with make_session_factory(engine)() as session:
        count = sum(session.execute(select(func.count()).select_from(model)).scalar_one()
                    for model in (Ticket, TimeEntry, PushEvent))
    engine.dispose()
    return count


def _entry(**change: Any) -> dict[str, Any]:
    return {"time_entries": [{**TICKET["time_entries"][1], **change}]}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # PostgreSQL refused these with a 500 (issue 12): NUL bytes, strings longer than their column
        ({"title": "Drucker\x00"}, "title"),
        ({"number": "T" * 101}, "number"),
        ({"title": "x" * 501}, "title"),
        ({"url": "https://tickets.example/" + "x" * 500}, "url"),
        ({"customer": {"id": "C" * 101, "name": "Beispiel GmbH"}}, "customer.id"),
        ({"customer": {"id": "C-17", "name": "\x00"}}, "customer.name"),
        (_entry(agent="a" * 201), "time_entries[0].agent"),
        (_entry(id="w" * 101), "time_entries[0].id"),
        (_entry(activity="Remote\x00"), "time_entries[0].activity"),
        # both databases: lone surrogates, timestamps out of range
        ({"title": "\ud800"}, "title"),
        ({"customer": {"id": "C-17", "name": "\udfff Beispiel"}}, "customer.name"),
        ({"closed_at": "0001-01-01T00:00:00+01:00"}, "closed_at"),
        ({"updated_at": "9999-12-31T23:59:59-01:00"}, "updated_at"),
        (_entry(booked_at="1000-01-01T00:00:00Z"), "time_entries[0].booked_at"),
        (_entry(start="2026-11-20T10:00:00\uff0b01:00"), "time_entries[0].start"),
        # durations: strict integers (or decimals with two places), within one day per entry
        (_entry(minutes="\uff15\uff10"), "time_entries[0].minutes"),  # fullwidth "50"
        (_entry(minutes="1_0"), "time_entries[0].minutes"),
        (_entry(minutes="1e5"), "time_entries[0].minutes"),
        (_entry(minutes=1e5), "time_entries[0].minutes"),
        (_entry(minutes=-100000), "time_entries[0].minutes"),
        (_entry(minutes=1441), "time_entries[0].minutes"),
        (_entry(minutes="7.125"), "time_entries[0].minutes"),
        (_entry(minutes=" 50"), "time_entries[0].minutes"),
        (_entry(minutes=True), "time_entries[0].minutes"),
        (_entry(minutes=None), "time_entries[0].minutes"),
        ({"number": True}, "number"),
        ({"time_entries": [{**TICKET["time_entries"][1], "id": f"w-{i}"} for i in range(MAX_ENTRIES + 1)]},
         "time_entries"),
    ],
)
def test_hostile_values_are_refused_with_their_field(
    push: PushSidecar, change: dict[str, Any], field: str
) -> None:
    """Issue 12: 103 of 5,739 fuzzed bodies got a 500 on PostgreSQL; each is a 422 naming the field."""
    answer = put(push, "105", {**TICKET, **change})
    assert (answer.status_code, answer.get_json()["field"]) == (422, field), answer.get_json()
    assert stored_rows(push) == 0


def test_json_nested_1000_deep_is_refused(push: PushSidecar) -> None:
    body = json.dumps({**TICKET, "title": "__deep__"}).replace('"__deep__"', _nested(1000))
    answer = push.client.put("/api/push/v1/tickets/106", data=body, content_type="application/json", headers=AUTH)
    assert (answer.status_code, answer.get_json()["field"]) == (422, "body")
    closed = push.client.post("/api/push/v1/events/ticket-closed", data=f'{{"TicketID": {_nested(1000)}}}',
                              content_type="application/json", headers=AUTH)
    assert (closed.status_code, closed.get_json()["field"]) == (422, "body")
    assert stored_rows(push) == 0


@pytest.mark.parametrize("ticket_id", ["x" * 101, "a\x00b", " "])
def test_a_hostile_ticket_id_in_the_path_is_refused(push: PushSidecar, ticket_id: str) -> None:
    from urllib.parse import quote

    path = "/api/push/v1/tickets/" + quote(ticket_id, safe="")
    for answer in (push.client.put(path, json=TICKET, headers=AUTH), push.client.get(path, headers=AUTH)):
        assert (answer.status_code, answer.get_json()["field"]) == (422, "ticket_id")
    assert stored_rows(push) == 0


class CountingStream(io.BytesIO):
    """A request body that remembers whether anybody read it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def test_the_token_is_checked_before_the_body_is_read_and_big_bodies_get_413(push: PushSidecar) -> None:
    """Issue 12: 50 MB were read before the token was checked; now 401 unread, 413 beyond the limit."""
    limit = push.settings.max_request_bytes
    big = b'{"title": "' + b"x" * limit + b'"}'
    stream = CountingStream(big)
    anonymous = push.client.put("/api/push/v1/tickets/107", input_stream=stream, content_type="application/json",
                                headers={"Content-Length": str(len(big))})
    assert anonymous.status_code == 401
    assert stream.read_bytes == 0
    too_big = push.client.put("/api/push/v1/tickets/107", data=big, content_type="application/json", headers=AUTH)
    assert too_big.status_code == 413
    assert "error" in too_big.get_json()
    closed = push.client.post("/api/push/v1/events/ticket-closed", data=big, content_type="application/json",
                              headers=AUTH)
    assert closed.status_code == 413
    assert stored_rows(push) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_ticket_closed_wants_json_so_a_cross_site_form_cannot_post_it(
    push: PushSidecar, content_type: str | None
) -> None:
    """Issue 12: a browser form may post text/plain with the basic-auth credentials it remembers."""
    basic = base64.b64encode(f"znuny:{TOKEN}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = push.client.post("/api/push/v1/events/ticket-closed", data=b'{"TicketID": "42"}', headers=headers)
    assert answer.status_code == 415
    assert "application/json" in answer.get_json()["error"]
    assert stored_rows(push) == 0 and push.requested == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"TicketID": "9" * 101}, "TicketID"),
        ({"TicketID": "4\x002"}, "TicketID"),
        ({"TicketID": "\ud800"}, "TicketID"),
        ({"TicketID": {"nested": ["x"] * 50}}, "TicketID"),
        ({"TicketID": True}, "TicketID"),
        ({"Event": {"TicketID": 4.5}}, "Event.TicketID"),
        (["TicketID", 42], "body"),
    ],
)
def test_ticket_closed_refuses_hostile_ticket_ids(push: PushSidecar, body: Any, field: str) -> None:
    answer = push.client.post("/api/push/v1/events/ticket-closed", json=body, headers=AUTH)
    assert (answer.status_code, answer.get_json()["field"]) == (422, field)
    assert stored_rows(push) == 0


@pytest.mark.parametrize("source", ["o" * 31, "otrs\x00", ""])
def test_ticket_closed_refuses_a_hostile_source(push: PushSidecar, source: str) -> None:
    from urllib.parse import quote

    query = quote(source, safe="")
    answer = push.client.post(f"/api/push/v1/events/ticket-closed?source={query}", json={"TicketID": "42"},
                              headers=AUTH)
    assert (answer.status_code, answer.get_json()["field"]) == (422, "source")
    assert stored_rows(push) == 0


def _signed(body: bytes) -> dict[str, str]:
    signature = "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature": signature, "X-Zammad-Delivery": "d-1", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"ticket": {"id": "' + b"9" * 101 + b'"}}',
        b'{"ticket": {"id": "4\\u00002"}}',
        b'{"ticket": {"id": "\\ud800"}}',
        b'{"ticket": {"id": {"a": [1, 2, 3]}}}',
        b'{"ticket": {"id": true}}',
        b'{"ticket": ' + _nested(1000).encode() + b"}",
        b'{"ticket": {"id": NaN}}',
    ],
)
def test_a_signed_but_hostile_zammad_delivery_is_refused(push: PushSidecar, body: bytes) -> None:
    """The signature only says the body is Zammad's; its values are checked like any other."""
    answer = push.client.post("/api/zammad/v1/webhook", data=body, headers=_signed(body))
    assert answer.status_code == 422
    assert answer.get_json()["field"] in ("body", "ticket.id")
    assert stored_rows(push) == 0


SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "ticketbill-push-v1.yaml"


def test_the_openapi_file_states_the_limits_the_code_enforces() -> None:
    """The push API's OpenAPI file is valid, and its bounds are the models' and the code's."""
    import yaml
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate

    from addon.models import Customer
    from addon.web.payload import column_length
    from addon.web.push import MAX_ENTRY_MINUTES

    spec = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
    validate(spec)
    schemas = spec["components"]["schemas"]
    document, entry = schemas["TicketDocument"]["properties"], schemas["TimeEntry"]["properties"]
    assert document["number"]["maxLength"] == column_length(Ticket.number)
    assert document["title"]["maxLength"] == column_length(Ticket.title)
    assert document["url"]["maxLength"] == column_length(Ticket.web_url)
    assert document["customer"]["properties"]["name"]["maxLength"] == column_length(Customer.name)
    assert document["time_entries"]["maxItems"] == MAX_ENTRIES
    assert entry["agent"]["maxLength"] == column_length(TimeEntry.agent)
    assert entry["activity"]["maxLength"] == column_length(TimeEntry.activity)
    assert schemas["TicketId"]["maxLength"] == column_length(Ticket.remote_id)
    assert {s.get("maximum") for s in schemas["Minutes"]["anyOf"]} - {None} == {MAX_ENTRY_MINUTES}
    validator = Draft202012Validator({**schemas["TicketDocument"], "components": spec["components"]})
    validator.validate(TICKET)
    assert not validator.is_valid({**TICKET, **_entry(minutes="1_0")})


def test_a_ticket_with_the_most_entries_allowed_fits_the_default_body_limit(push: PushSidecar) -> None:
    """The cap is usable: MAX_ENTRIES realistic entries are under 2 MiB and stored on both backends."""
    entries = [{"id": f"zeit-{i:05d}", "agent": "anna.schmidt", "minutes": 15, "activity": "Remote",
                "booked_at": "2026-11-20T10:00:00+01:00"} for i in range(MAX_ENTRIES)]
    body = {**TICKET, "state": "open", "closed_at": None, "time_entries": entries}
    assert len(json.dumps(body)) < push.settings.max_request_bytes
    assert put(push, "108", body).status_code == 200
    engine = make_engine(push.settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.execute(select(func.count()).select_from(TimeEntry)).scalar_one() == MAX_ENTRIES
    engine.dispose()
