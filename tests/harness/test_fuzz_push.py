"""Hypothesis against what outsiders can send: the push API (PUT a ticket, POST a close event,
GET a status) and Zammad's signed webhook, on SQLite and PostgreSQL (issue 12).

Each example is one request through the Flask test client with a fuzzed body, fuzzed headers
(content type, authentication) and a fuzzed ticket id. The invariants: never a 5xx; a 2xx
answer is the documented one; any other answer stored nothing (the database's fingerprint is
unchanged). The bodies mix well-formed documents with one field swapped for a hostile value
(NUL bytes, lone surrogates, strings longer than their column, fullwidth or exotic numbers,
timestamps near year 1 or 9999, deep nesting, too many entries), arbitrary JSON and raw bytes.

Bounded: `EXAMPLES` per endpoint and backend, no deadline per example, no example database
(CI runs start fresh), so the whole file stays within about two minutes on a busy machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from addon import create_app
from addon.db import make_engine, make_session_factory, upgrade
from addon.models import Customer, PushEvent, Ticket, TimeEntry
from addon.settings import Settings, load_settings
from addon.web.payload import EARLIEST, LATEST, MAX_DEPTH, column_length
from addon.web.push import MAX_ENTRIES, MAX_ENTRY_MINUTES
from addon.web.zammad_hook import PATH as WEBHOOK_PATH

TOKEN = "fuzz-push-token-0123456789abcdef"
SECRET = "fuzz-webhook-secret-0123456789abcdef"
#: Examples per endpoint and backend: 4 endpoints × 2 backends × these = the cases reported.
EXAMPLES = {"put": 1500, "closed": 1000, "webhook": 600, "get": 300}
#: No shrinking: with bodies of a megabyte it can take many minutes, and CI must stay bounded;
#: a failure prints its example and the blob to reproduce it (@reproduce_failure).
FUZZ = settings(deadline=None, database=None, print_blob=True,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
#: a failing example of a megabyte is worth reporting even though its repr is large
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")

VALID_ENTRY = {"id": "w-1", "agent": "anna", "minutes": "50", "booked_at": "2026-11-20T10:00:00+01:00",
               "activity": "Remote"}
VALID_TICKET = {"number": "T-100", "title": "Kassensystem hängt", "customer": {"id": "C-17", "name": "Beispiel GmbH"},
                "state": "closed", "closed_at": "2026-11-20T16:00:00Z", "updated_at": "2026-11-20T16:00:00Z",
                "url": "https://tickets.example/T-100", "time_entries": [VALID_ENTRY]}


@dataclass
class Target:
    settings: Settings
    client: FlaskClient
    factory: sessionmaker[Session]
    statuses: Counter[int] = field(default_factory=Counter)

    def report(self, endpoint: str) -> None:
        backend = self.settings.database_url.split(":")[0].split("+")[0]
        print(f"\nfuzz {endpoint} on {backend}: {self.statuses.total()} cases, "
              f"answers {dict(sorted(self.statuses.items()))}")

    def fingerprint(self) -> tuple[Any, ...]:
        """Row counts and the newest write of each table a request could touch."""
        with self.factory() as session:
            return (
                session.execute(select(func.count(), func.max(Ticket.seen_at), func.sum(Ticket.status_version))
                                .select_from(Ticket)).one(),
                session.execute(select(func.count(), func.count(TimeEntry.removed_at)).select_from(TimeEntry)).one(),
                session.execute(select(func.count()).select_from(Customer)).scalar_one(),
                session.execute(select(func.count()).select_from(PushEvent)).scalar_one(),
            )


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Iterator[Target]:
    settings_ = load_settings({
        "HELPDESK_KIND": "api", "PUSH_API_TOKEN": TOKEN, "ZAMMAD_WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "s" * 40,
        "SELLER_NAME": "N", "SELLER_STREET": "S", "SELLER_POSTCODE": "1", "SELLER_CITY": "C",
        "SELLER_TAX_NUMBER": "1", "SELLER_IBAN": "DE89370400440532013000",
    })
    engine = make_engine(database_url)
    upgrade(engine)
    app = create_app(settings_)
    app.config["TICKETBILL_REQUEST_SYNC"] = lambda: None
    yield Target(settings_, app.test_client(), make_session_factory(engine))
    app.extensions["ticketbill"].engine.dispose()
    engine.dispose()


# --- hostile values -----------------------------------------------------------------------

any_char = st.characters(codec=None, exclude_categories=())  # includes lone surrogates and NUL
#: what a real sender writes: any storable text (emoji, combining marks, U+FFFF, RTL)
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=60)
#: the values that broke the API before (issue 12), drawn often enough to be hit every run
hostile_samples = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "５０", "1_0", "1e5", "-100000", "٣", "Ⅻ", "NaN", "Infinity",
    "0x10", "+5", "5.", ".5", "7.125", "1441", "-1441", "00050", "𝟓𝟎", "x" * 101, "x" * 201, "x" * 501,
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
hostile_text = st.one_of(
    plain_text,
    hostile_samples,
    st.text(any_char, max_size=30),
    st.text(st.characters(codec="ascii"), min_size=95, max_size=520),  # around the column lengths
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-20T10:00:00",
                     "2026-11-20", "2026-02-30T10:00:00Z", "2026-11-20T10:00:00+25:00", "２０２６-11-20T10:00:00Z",
                     "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2026-11-20T10:00:00z"]),
)
numbers = st.one_of(st.integers(), st.integers(-2000, 2000), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none())
scalars = st.one_of(hostile_text, numbers, timestamps)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)


#: Deep nesting is drawn as a marker and spliced into the encoded text: a Python object 1,000
#: levels deep would exhaust the recursion of json.dumps (and of hypothesis's reports) first.
_DEEP = re.compile(r'"__deep_([0-9]+)__"')
deep = st.integers(MAX_DEPTH - 2, 1_200).map(lambda depth: f"__deep_{depth}__")


def _splice_deep(text: str) -> str:
    return _DEEP.sub(lambda match: "[" * int(match.group(1)) + "]" * int(match.group(1)), text)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    entry = dict(VALID_ENTRY, id=draw(st.text(st.characters(codec="ascii"), min_size=1, max_size=8)))
    if draw(st.booleans()):
        key = draw(st.sampled_from([*VALID_ENTRY, "start", "unknown"]))
        entry[key] = draw(st.one_of(plain_text, hostile_samples, timestamps, scalars, deep, json_values)
                          if key != "minutes"
                          else st.one_of(st.integers(-1440, 1440), scalars, numbers))
    return entry


@st.composite
def ticket_documents(draw: st.DrawFn) -> Any:
    """Mostly valid documents with hostile fields, some arbitrary JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(json_values, deep))
    document: dict[str, Any] = json.loads(json.dumps(VALID_TICKET))
    document["state"] = draw(st.sampled_from(["closed", "open", "closed"]))
    document["time_entries"] = draw(st.lists(entries(), max_size=4, unique_by=lambda e: repr(e.get("id"))))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*VALID_TICKET, "customer.id", "customer.name", "priority"]))
        value = draw(st.one_of(plain_text, plain_text, hostile_samples, timestamps, scalars, json_values, deep))
        if key.startswith("customer."):
            customer = document["customer"] if isinstance(document["customer"], dict) else {}
            document["customer"] = {**customer, key.split(".")[1]: value}
        else:
            document[key] = value
    if draw(st.integers(0, 40)) == 0:  # one past the cap (1 of ~40: each is ~1 MB of JSON)
        document["time_entries"] = [dict(VALID_ENTRY, id=f"w-{i}") for i in range(MAX_ENTRIES + 1)]
    return document


close_events = st.one_of(
    st.fixed_dictionaries({"TicketID": st.one_of(scalars, json_values, deep)}),
    st.fixed_dictionaries({"Event": st.fixed_dictionaries({"TicketID": st.one_of(scalars, json_values)})}),
    st.fixed_dictionaries({"ticket_id": scalars}),
    json_values,
)
webhook_bodies = st.one_of(
    st.fixed_dictionaries({"ticket": st.fixed_dictionaries({"id": st.one_of(scalars, json_values, deep)})}),
    st.fixed_dictionaries({"ticket": json_values}),
    json_values,
)


@st.composite
def encoded(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """JSON as a sender might encode it, or bytes that are not quite JSON."""
    how = draw(st.sampled_from(["ascii", "utf-8", "utf-8", "utf-8", "raw", "truncated", "oversized"]))
    if how == "raw":
        return draw(st.binary(max_size=200))
    if how == "oversized" and draw(st.integers(0, 20)) == 0:
        return b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    text = _splice_deep(json.dumps(draw(documents), ensure_ascii=how == "ascii", allow_nan=True))
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8
    if how == "truncated" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


ascii_header = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
content_types = st.one_of(
    st.just("application/json"), st.just("application/json"), st.just("application/json; charset=utf-8"),
    st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/merge-patch+json", "text/json", None]), ascii_header)
basic = base64.b64encode(f"znuny:{TOKEN}".encode()).decode()
authorizations = st.one_of(
    st.just(f"Bearer {TOKEN}"), st.just(f"Bearer {TOKEN}"), st.just(f"Basic {basic}"),
    st.sampled_from([f"Bearer {TOKEN[:-1]}", "Bearer ", f"bearer {TOKEN}", "Basic !!!", None]), ascii_header)
ticket_ids = st.one_of(st.sampled_from(["100", "101", "x" * 101, "a\x00b", " ", "%", "😀" * 30]),
                       st.text(any_char, min_size=1, max_size=20))


def headers(content_type: str | None, authorization: str | None) -> dict[str, str]:
    sent = {}
    if content_type is not None:
        sent["Content-Type"] = content_type
    if authorization is not None:
        sent["Authorization"] = authorization
    return sent


def path_of(ticket_id: str) -> str:
    return "/api/push/v1/tickets/" + quote(ticket_id.encode("utf-8", "surrogatepass"), safe="")


def checked(target: Target, answer: Any, accepted: tuple[int, ...], before: tuple[Any, ...]) -> None:
    """The invariants of one request."""
    target.statuses[answer.status_code] += 1
    assert answer.status_code < 500, answer.get_data()[:500]
    if answer.status_code in accepted:
        return
    if answer.is_json:
        assert 400 <= answer.status_code < 500 and "error" in answer.get_json(), answer.get_data()[:200]
    else:  # only the router answers in HTML: an id with a decoded "/" matches no route (or a
        # doubled slash is redirected to the merged path)
        assert answer.status_code in (308, 404, 405), answer.get_data()[:200]
    assert target.fingerprint() == before, "a refused request stored something"


def assert_storable_everywhere(target: Target, remote_id: str) -> None:
    """What a 200 stored fits PostgreSQL's columns too: SQLite stores an over-long string or a
    NUL byte silently, so without this the SQLite run would pass values PostgreSQL refuses."""
    with target.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.helpdesk == "api", Ticket.remote_id == remote_id)
                                 ).scalar_one()
        values = [(column, getattr(ticket, column.key)) for column in (Ticket.remote_id, Ticket.number,
                                                                        Ticket.title, Ticket.web_url)]
        assert ticket.customer is not None
        values += [(Customer.remote_id, ticket.customer.remote_id), (Customer.name, ticket.customer.name)]
        for entry in ticket.entries:
            values += [(TimeEntry.remote_id, entry.remote_id), (TimeEntry.agent, entry.agent),
                       (TimeEntry.activity, entry.activity)]
            assert abs(entry.minutes) <= MAX_ENTRY_MINUTES
            assert EARLIEST <= entry.booked_at < LATEST
    for column, value in values:
        if value is not None:
            assert "\x00" not in value and len(value) <= (column_length(column) or len(value)), (column, value)


# --- the properties -----------------------------------------------------------------------

def test_put_ticket_never_500s_and_stores_nothing_it_refuses(target: Target) -> None:
    @settings(FUZZ, max_examples=EXAMPLES["put"])
    @given(ticket_id=ticket_ids, body=encoded(ticket_documents()), content_type=content_types,
           authorization=authorizations)
    def put(ticket_id: str, body: bytes, content_type: str | None, authorization: str | None) -> None:
        before = target.fingerprint()
        answer = target.client.put(path_of(ticket_id), data=body, headers=headers(content_type, authorization))
        checked(target, answer, (200,), before)
        if answer.status_code == 200:
            assert answer.get_json()["billing_status"] in ("unbilled", "needs_attention", "not_billable")
            assert_storable_everywhere(target, answer.get_json()["ticket"])

    put()
    target.report("PUT /tickets/<id>")


def test_ticket_closed_never_500s_and_stores_nothing_it_refuses(target: Target) -> None:
    @settings(FUZZ, max_examples=EXAMPLES["closed"])
    @given(body=encoded(close_events), content_type=content_types, authorization=authorizations,
           source=st.one_of(st.none(), st.sampled_from(["otrs", "znuny", "o" * 31, "\x00", ""]), ascii_header))
    def closed(body: bytes, content_type: str | None, authorization: str | None, source: str | None) -> None:
        before = target.fingerprint()
        query = "" if source is None else "?source=" + quote(source, safe="")
        answer = target.client.post(f"/api/push/v1/events/ticket-closed{query}", data=body,
                                    headers=headers(content_type, authorization))
        checked(target, answer, (200, 202), before)
        if answer.status_code in (200, 202):
            assert answer.get_json()["duplicate"] is (answer.status_code == 200)

    closed()
    target.report("POST /events/ticket-closed")


def test_zammad_webhook_never_500s_and_stores_nothing_it_refuses(target: Target) -> None:
    @settings(FUZZ, max_examples=EXAMPLES["webhook"])
    @given(body=encoded(webhook_bodies), signed=st.sampled_from([True, True, True, False]),
           delivery=st.one_of(st.none(), ascii_header))
    def webhook(body: bytes, signed: bool, delivery: str | None) -> None:
        signature = "sha1=" + hmac.new(SECRET.encode() if signed else b"guess", body, hashlib.sha1).hexdigest()
        sent = {"X-Hub-Signature": signature, "Content-Type": "application/json"}
        if delivery is not None:
            sent["X-Zammad-Delivery"] = delivery
        before = target.fingerprint()
        answer = target.client.post(WEBHOOK_PATH, data=body, headers=sent)
        checked(target, answer, (200, 202), before)

    webhook()
    target.report("POST /api/zammad/v1/webhook")


def test_get_status_never_500s(target: Target) -> None:
    @settings(FUZZ, max_examples=EXAMPLES["get"])
    @given(ticket_id=ticket_ids, authorization=authorizations)
    def get(ticket_id: str, authorization: str | None) -> None:
        before = target.fingerprint()
        answer = target.client.get(path_of(ticket_id), headers=headers(None, authorization))
        checked(target, answer, (200,), before)

    get()
    target.report("GET /tickets/<id>")
