"""OTRS/Znuny sandbox: an imitation of the GenericInterface REST provider, for demo and tests.

What it imitates (see shared/reference/otrs-api.md, checked against a real Znuny 6.5.15):
- URL `/<alias>/nph-genericinterface.pl/Webservice/<Name>/<Route>` with the alias `/otrs` or
  `/znuny`; per web service a route set: the Znuny example YAML (`POST /Ticket/Search`) or the
  classic one (`GET /Ticket`). Routes are tried in alphabetical order of operation name,
  filtered by method; no match is HTTP 500 text/plain "HTTP::REST Error while determine
  Operation for request URI '/Foo'.", an unknown web service a 500 HTML page.
- Bodies must be JSON with `Content-Type: application/json` (else 500 "Could not read input
  data"); query parameters merge into the data (repeated keys become lists), path parameters
  win; GET never reads a body, so dynamic-field search operators only work on POST.
- Authentication per call: `X-OTRS-Header-*` headers over data keys; a present but invalid
  `SessionID` fails even next to a valid login; sessions expire (2 h idle, 16 h total).
- Operation errors are HTTP 200 `{"Error": {"ErrorCode": "<Op>.<Code>", "ErrorMessage":
  "<Op>: ..."}}`; a missing ticket is `TicketGet.AccessDenied`.
- TicketSearch answers `{}` when empty and string ids otherwise, has only `Limit` (default
  500), matches `StateType` case-sensitively (PostgreSQL), and `TicketChangeTime*` /
  `TicketCloseTime*` on history rows; a future or malformed "newer" date gives `{}`; a
  `DynamicField_<Name>` filter on an unknown or article field is ignored.
- TicketGet: numbers as numbers, `TimeUnit` per ticket and article, dynamic fields only with
  `DynamicFields=1` (ticket fields only when set, article fields always, `null` when empty),
  `Closed` only with `Extended=1` on closed tickets. TicketUpdate: `IsVisibleForCustomer`
  defaults to 1, `TimeUnit` must be non-negative, answers `"TicketID": "2"` and `"ArticleID": 3`;
  article fields are set through `Article.DynamicField` on TicketUpdate (TicketCreate ignores
  them there, as Znuny 6.5 does). SessionGet returns the session's `UserID` and `UserLogin`.
- Time units are unitless; `time_unit="second"` seeds seconds as Znuny's dropdown input does.
- `merge_ticket(source, target)` is Znuny's `TicketMerge`: articles and time rows move to the
  target (ids unchanged), the source keeps a "Merged Ticket … to …" note and state `merged`.

`product="otrs-6.0"` imitates ((OTRS)) Community Edition 6.0 instead (otrs-api.md [O6-live]):
its only web service `GenericTicketConnectorREST` is the classic YAML it ships in
`development/webservices/` (`GET /Ticket` search, so the Znuny default `POST /Ticket/Search`
is HTTP 500 "determine Operation"), the alias is `/otrs` only, `X-OTRS-Header-*` logins are
ignored (AuthFail), form-encoded bodies are read, and TicketGet lists every valid ticket
dynamic field, `null` when empty.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import string
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

DATE = "%Y-%m-%d %H:%M:%S"
ROUTE_SETS: dict[str, dict[str, tuple[str, str]]] = {
    "examples": {
        "SessionCreate": ("POST", "/Session"),
        "SessionGet": ("GET", "/Session/:SessionID"),
        "TicketCreate": ("POST", "/Ticket"),
        "TicketGet": ("GET", "/Ticket/:TicketID"),
        "TicketHistoryGet": ("GET", "/Ticket/History/:TicketID"),
        "TicketSearch": ("POST", "/Ticket/Search"),
        "TicketUpdate": ("PATCH", "/Ticket/:TicketID"),
    },
    "classic": {
        "SessionCreate": ("POST", "/Session"),
        "SessionGet": ("GET", "/Session/:SessionID"),
        "TicketCreate": ("POST", "/Ticket"),
        "TicketGet": ("GET", "/Ticket/:TicketID"),
        "TicketGetList": ("GET", "/TicketList"),
        "TicketHistoryGet": ("GET", "/TicketHistory/:TicketID"),
        "TicketSearch": ("GET", "/Ticket"),
        "TicketUpdate": ("PATCH", "/Ticket/:TicketID"),
    },
}
STATES = {
    "new": "new",
    "open": "open",
    "closed successful": "closed",
    "closed unsuccessful": "closed",
    "pending reminder": "pending reminder",
    "merged": "merged",
    "removed": "removed",
}
QUEUES = ("Raw", "Junk", "Misc", "Postmaster")
PRODUCTS = ("znuny-6.5", "otrs-6.0")
BILLING_FIELDS: dict[str, dict[str, Any]] = {
    "BillingStatus": {
        "FieldType": "Dropdown",
        "ObjectType": "Ticket",
        "PossibleValues": (
            "unbilled",
            "billable",
            "not_billable",
            "needs_attention",
            "draft",
            "covered",
            "invoiced",
            "cancelled",
        ),
    },
    "InvoiceNumber": {"FieldType": "Text", "ObjectType": "Ticket"},
    "InvoiceURL": {"FieldType": "Text", "ObjectType": "Ticket"},
    "BillingCategory": {
        "FieldType": "Dropdown",
        "ObjectType": "Ticket",
        "PossibleValues": ("billable", "internal", "warranty", "goodwill", "covered"),
    },
    "BillingActivity": {"FieldType": "Text", "ObjectType": "Article"},
}
AUTH_FAIL_TEXT = {
    "TicketCreate": "User could not be authenticated!",
    "TicketUpdate": "User could not be authenticated!",
}
TIME_UNIT_RE = re.compile(r"^\d+([.,]\d+)?$")
SESSION_IDLE = timedelta(hours=2)
SESSION_MAX = timedelta(hours=16)


class OperationError(Exception):
    """An operation-level failure: HTTP 200 with an `Error` object, as Znuny does it."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {
            "Error": {
                "ErrorCode": f"{self.operation}.{self.code}",
                "ErrorMessage": f"{self.operation}: {self.message}",
            }
        }


class TransportError(Exception):
    """A provider-level failure: HTTP 500 (or 413) text/plain."""

    def __init__(self, text: str, status: int = 500, content_type: str = "text/plain") -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.content_type = content_type


@dataclass
class Agent:
    user_id: int
    login: str
    first_name: str
    last_name: str
    password: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass
class CustomerUser:
    login: str
    customer_id: str
    first_name: str
    last_name: str
    email: str
    password: str


@dataclass
class Article:
    article_id: int
    number: int
    sender_type: str
    channel: str
    visible: int
    sender: str
    to: str
    subject: str
    body: str
    content_type: str
    created: datetime
    create_by: int
    dynamic_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ticket:
    ticket_id: int
    number: str
    title: str
    queue: str
    state: str
    customer_id: str | None
    customer_user: str | None
    owner_id: int
    responsible_id: int
    created: datetime
    create_by: int
    changed: datetime
    change_by: int
    priority: str = "3 normal"
    dynamic_fields: dict[str, Any] = field(default_factory=dict)
    articles: list[Article] = field(default_factory=list)
    # (type, time, user id, article id, name, state type after the row)
    history: list[tuple[str, datetime, int, int | None, str, str]] = field(default_factory=list)
    # (article id or None, units, time, user id)
    time_rows: list[tuple[int | None, Decimal, datetime, int]] = field(default_factory=list)

    @property
    def state_type(self) -> str:
        return STATES[self.state]


@dataclass
class Session:
    session_id: str
    login: str
    customer: bool
    created: datetime
    last_used: datetime


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _parse_date(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip(), DATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _html_to_text(body: str) -> str:
    """Roughly Znuny's HTMLUtils->ToAscii: block ends and <br> become line breaks."""
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6])>", "\n", body)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip() + "\n"


def _flag(data: Mapping[str, Any], key: str) -> bool:
    return str(data.get(key, "0")).strip() not in ("", "0")


class _QuietHandler(WSGIRequestHandler):
    """No access log lines in test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class OTRSSandbox:
    """An in-memory Znuny 6.5 GenericInterface provider on a loopback port.

    `webservices` maps a web service name to a route set (`examples` or `classic`);
    `billing_fields=False` starts without the ticketbill dynamic fields (as before the admin
    imported them); `time_unit="second"` seeds booked time in seconds; `product="otrs-6.0"`
    behaves as OTRS CE 6.0 (see the module docstring). The product can change at run time.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        aliases: tuple[str, ...] = ("/otrs", "/znuny"),
        webservices: Mapping[str, str] | None = None,
        billing_fields: bool = True,
        seed: bool = True,
        seed_reference: datetime | None = None,
        time_unit: str = "minute",
        search_limit: int = 500,
        max_body: int = 100_000_000,
        product: str = "znuny-6.5",
    ) -> None:
        if product not in PRODUCTS:
            raise ValueError(f"product {product!r} is not one of {', '.join(PRODUCTS)}")
        self.product = product
        self.host = host
        self.port = port
        otrs6 = product == "otrs-6.0"
        self.aliases = ("/otrs",) if otrs6 else tuple(a.rstrip("/") for a in aliases)
        default_services = (
            {"GenericTicketConnectorREST": "classic"}
            if otrs6
            else {
                "GenericTicketConnectorREST": "examples",
                "GenericTicketConnectorRESTClassic": "classic",
            }
        )
        self.webservices = dict(webservices or default_services)
        self.search_limit = search_limit
        self.max_body = max_body
        self.time_factor = Decimal(60) if time_unit == "second" else Decimal(1)
        self._lock = threading.RLock()
        self._clock: datetime | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[tuple[str, str]] = []
        self.agents: dict[str, Agent] = {}
        self.customer_users: dict[str, CustomerUser] = {}
        self.companies: dict[str, str] = {}
        self.dynamic_fields: dict[str, dict[str, Any]] = {}
        self.tickets: dict[int, Ticket] = {}
        self.sessions: dict[str, Session] = {}
        self._next_ticket = 1
        self._next_article = 1
        self._add_agent("root@localhost", "Admin", "OTRS", "root")
        self.api_login, self.api_password = "billing", "billing-Secret1"
        self._add_agent(self.api_login, "Billing", "Agent", self.api_password)
        for login in ("alice", "bob", "carol"):
            self._add_agent(login, login.capitalize(), "Agent", f"{login}-Secret1")
        for cid, name in (
            ("ACME", "ACME Maschinenbau GmbH"),
            ("GLOBEX", "Globex Logistik AG"),
            ("INITECH", "Initech Software KG"),
        ):
            self.companies[cid] = name
        for login, cid in (
            ("cust1", "ACME"),
            ("cust2", "ACME"),
            ("cust3", "GLOBEX"),
            ("cust4", "INITECH"),
        ):
            self.customer_users[login] = CustomerUser(
                login,
                cid,
                login.capitalize(),
                cid,
                f"{login}@{cid.lower()}.test",
                f"{login}-Secret1",
            )
        if billing_fields:
            for name, spec in BILLING_FIELDS.items():
                self.add_dynamic_field(name, **spec)
        if seed:
            self._seed(
                seed_reference or self.now().replace(hour=8, minute=0, second=0, microsecond=0)
            )

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[OTRSSandbox]:
        sandbox = cls(**kwargs)
        sandbox.start()
        try:
            yield sandbox
        finally:
            sandbox.stop()

    def start(self) -> None:
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            daemon=True,
            kwargs={"poll_interval": 0.05},
            name="otrs-sandbox",
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def service_url(
        self, webservice: str = "GenericTicketConnectorREST", alias: str = "/otrs"
    ) -> str:
        return f"{self.url}{alias}/nph-genericinterface.pl/Webservice/{webservice}"

    # -- clock ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return (self._clock or datetime.now(UTC)).replace(microsecond=0)

    def set_now(self, moment: datetime | None) -> None:
        self._clock = moment

    def advance(self, delta: timedelta) -> datetime:
        self._clock = self.now() + delta
        return self._clock

    # -- state helpers (also used by tests) ----------------------------------------------

    def _add_agent(self, login: str, first: str, last: str, password: str) -> Agent:
        agent = Agent(len(self.agents) + 1, login, first, last, password)
        self.agents[login] = agent
        return agent

    def agent_by_id(self, user_id: int) -> Agent | None:
        return next((a for a in self.agents.values() if a.user_id == user_id), None)

    def add_dynamic_field(
        self,
        name: str,
        FieldType: str = "Text",
        ObjectType: str = "Ticket",
        PossibleValues: Any = None,
    ) -> None:
        self.dynamic_fields[name] = {
            "FieldType": FieldType,
            "ObjectType": ObjectType,
            "PossibleValues": tuple(PossibleValues or ()),
        }

    def create_ticket(
        self,
        title: str,
        *,
        customer_user: str | None = "cust1",
        agent: str = "alice",
        queue: str = "Raw",
        state: str = "open",
        at: datetime | None = None,
    ) -> Ticket:
        with self._lock:
            moment = at or self.now()
            user = self.agents[agent]
            customer = self.customer_users.get(customer_user) if customer_user else None
            number = f"{moment:%Y%m%d}10{self._next_ticket:05d}{self._next_ticket % 10}"
            ticket = Ticket(
                ticket_id=self._next_ticket,
                number=number,
                title=title,
                queue=queue,
                state=state,
                customer_id=customer.customer_id if customer else None,
                customer_user=customer.login if customer else customer_user,
                owner_id=user.user_id,
                responsible_id=1,
                created=moment,
                create_by=user.user_id,
                changed=moment,
                change_by=user.user_id,
            )
            self._next_ticket += 1
            self.tickets[ticket.ticket_id] = ticket
            self._history(ticket, "NewTicket", user.user_id, moment)
            return ticket

    def add_article(
        self,
        ticket: Ticket,
        *,
        agent: str = "alice",
        subject: str = "Note",
        body: str = "Work done",
        time_unit: Any = 0,
        visible: int = 0,
        activity: str | None = None,
        at: datetime | None = None,
        sender: str | None = None,
        content_type: str = "text/plain; charset=utf-8",
        sender_type: str = "agent",
        channel: str = "Internal",
    ) -> Article:
        with self._lock:
            moment = at or self.now()
            user = self.agents[agent]
            article = Article(
                article_id=self._next_article,
                number=len(ticket.articles) + 1,
                sender_type=sender_type,
                channel=channel,
                visible=visible,
                sender=sender or user.full_name,
                to=ticket.queue,
                subject=subject,
                body=body,
                content_type=content_type,
                created=moment,
                create_by=user.user_id,
            )
            for name, spec in self.dynamic_fields.items():
                if spec["ObjectType"] == "Article":
                    article.dynamic_fields[name] = None
            if activity is not None and "BillingActivity" in self.dynamic_fields:
                article.dynamic_fields["BillingActivity"] = activity
            self._next_article += 1
            ticket.articles.append(article)
            self._history(ticket, "AddNote", user.user_id, moment, article.article_id)
            units = Decimal(str(time_unit))
            if units:
                self.account_time(ticket, units, agent=agent, article=article, at=moment)
            return article

    def account_time(
        self,
        ticket: Ticket,
        units: Decimal,
        *,
        agent: str = "alice",
        article: Article | None = None,
        at: datetime | None = None,
    ) -> None:
        """A `time_accounting` row; without an article it shows only in the ticket total."""
        with self._lock:
            moment = at or self.now()
            user = self.agents[agent]
            ticket.time_rows.append(
                (article.article_id if article else None, units, moment, user.user_id)
            )
            total = sum((row[1] for row in ticket.time_rows), Decimal(0))
            self._history(
                ticket,
                "TimeAccounting",
                user.user_id,
                moment,
                article.article_id if article else None,
                f"%%{units}%%{total}",
            )

    def set_state(
        self, ticket: Ticket, state: str, *, agent: str = "alice", at: datetime | None = None
    ) -> None:
        with self._lock:
            moment = at or self.now()
            user = self.agents[agent]
            old = ticket.state
            ticket.state = state
            self._history(ticket, "StateUpdate", user.user_id, moment, None, f"%%{old}%%{state}%%")

    def set_field(
        self,
        ticket: Ticket,
        name: str,
        value: Any,
        *,
        agent: str = "billing",
        at: datetime | None = None,
    ) -> None:
        with self._lock:
            moment = at or self.now()
            old = ticket.dynamic_fields.get(name)
            if value in (None, ""):
                ticket.dynamic_fields.pop(name, None)
            else:
                ticket.dynamic_fields[name] = value
            self._history(
                ticket,
                "TicketDynamicFieldUpdate",
                self.agents[agent].user_id,
                moment,
                None,
                f"%%FieldName%%{name}%%Value%%{value}%%OldValue%%{old or ''}",
            )

    def delete_ticket(self, ticket_id: int) -> None:
        with self._lock:
            self.tickets.pop(ticket_id, None)

    def merge_ticket(
        self, source: Ticket, target: Ticket, *, agent: str = "alice", at: datetime | None = None
    ) -> None:
        """Znuny's `TicketMerge`: the articles *and* the `time_accounting` rows move to the
        target (`UPDATE time_accounting SET ticket_id = ?`, article ids unchanged); the source
        gets a note "Merged Ticket … to …", state `merged` (type merged) and a `Merged` history
        row, as does the target."""
        with self._lock:
            moment = at or self.now()
            user = self.agents[agent]
            target.articles = sorted(target.articles + source.articles, key=lambda a: a.article_id)
            target.time_rows = target.time_rows + source.time_rows
            source.articles, source.time_rows = [], []
            text = f"%%{source.number}%%{source.ticket_id}%%{target.number}%%{target.ticket_id}"
            self.add_article(source, agent=agent, subject="Ticket Merged", visible=1, at=moment,
                             body=f"Merged Ticket {source.number} to {target.number}.")
            source.state = "merged"
            self._history(source, "Merged", user.user_id, moment, None, text)
            self._history(target, "Merged", user.user_id, moment, None, text)

    def _history(
        self,
        ticket: Ticket,
        kind: str,
        user_id: int,
        moment: datetime,
        article_id: int | None = None,
        name: str = "",
    ) -> None:
        ticket.history.append((kind, moment, user_id, article_id, name, ticket.state_type))
        ticket.changed = max(ticket.changed, moment)
        ticket.change_by = user_id

    def _seed(self, reference: datetime) -> None:
        """30 tickets over 60 days for 3 customers: 22 closed (one closed twice), 1 pending."""
        customers = ("cust1", "cust3", "cust4", "cust2")
        agents = ("alice", "bob", "carol")
        minutes = (15, 30, 45, 60, 90, 20, 0, 120)
        activities = (None, "Remote", "Vor-Ort", None)
        for index in range(30):
            created = reference - timedelta(days=60 - 2 * index, hours=index % 5)
            ticket = self.create_ticket(
                f"Seed ticket {index + 1:02d}: {('Drucker', 'VPN', 'E-Mail', 'Server')[index % 4]}",
                customer_user=customers[index % 4],
                agent=agents[index % 3],
                at=created,
            )
            for n in range(1 + index % 3):
                self.add_article(
                    ticket,
                    agent=agents[(index + n) % 3],
                    subject=f"Arbeit {n + 1}",
                    body=f"Seed work {index + 1}.{n + 1}",
                    time_unit=Decimal(minutes[(index + n) % len(minutes)]) * self.time_factor,
                    activity=activities[(index + n) % len(activities)],
                    at=created + timedelta(hours=1 + n),
                )
            if index < 22:
                self.set_state(
                    ticket,
                    "closed successful",
                    agent=agents[index % 3],
                    at=created + timedelta(days=1 + index % 3),
                )
            elif index == 22:
                self.set_state(ticket, "pending reminder", at=created + timedelta(days=1))
            if index == 5:  # closed, reopened, closed again
                self.set_state(ticket, "open", at=created + timedelta(days=4))
                self.add_article(
                    ticket,
                    agent="bob",
                    subject="Nacharbeit",
                    time_unit=Decimal(10) * self.time_factor,
                    at=created + timedelta(days=4, hours=1),
                )
                self.set_state(ticket, "closed successful", at=created + timedelta(days=5))

    # -- WSGI -----------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((request.method, request.path))
        try:
            status, payload = self._dispatch(request)
            response = Response(
                json.dumps(payload, sort_keys=True, separators=(",", ":")),
                status=status,
                content_type="application/json; charset=UTF-8",
            )
        except TransportError as exc:
            response = Response(
                exc.text, status=exc.status, content_type=f"{exc.content_type}; charset=UTF-8"
            )
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> tuple[int, dict[str, Any]]:
        match = re.match(
            r"^(/[^/]+)/nph-genericinterface\.pl/Webservice/([^/]+)(/.*)?$", request.path
        )
        if not match or match.group(1) not in self.aliases:
            raise TransportError("<html><body><h1>Not Found</h1></body></html>", 404, "text/html")
        webservice, route = match.group(2), match.group(3) or "/"
        if webservice not in self.webservices:
            raise TransportError(
                "<html><body><h1>Internal Server Error</h1></body></html>", 500, "text/html"
            )
        operation, path_params = self._route(self.webservices[webservice], request.method, route)
        data = self._request_data(request)
        data.update(path_params)
        with self._lock:
            try:
                handler = getattr(self, f"_op_{operation}")
                return 200, handler(data, request)
            except OperationError as exc:
                return 200, exc.payload()

    def _route(self, route_set: str, method: str, route: str) -> tuple[str, dict[str, str]]:
        for operation, (verb, pattern) in sorted(ROUTE_SETS[route_set].items()):
            if verb != method:
                continue
            names = re.findall(r":(\w+)", pattern)
            regex = "^" + re.sub(r":\w+", r"([^/]+)", pattern) + "$"
            found = re.match(regex, route)
            if found:
                return operation, dict(zip(names, found.groups(), strict=True))
        raise TransportError(
            f"HTTP::REST Error while determine Operation for request URI '{route}'."
        )

    def _request_data(self, request: Request) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key in request.args:
            values = request.args.getlist(key)
            data[key] = values if len(values) > 1 else values[0]
        if request.method == "GET":
            return data
        raw = request.get_data()
        if len(raw) > self.max_body:
            raise TransportError("Request Entity Too Large", 413)
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        form = content_type in ("", "application/x-www-form-urlencoded", "multipart/form-data")
        if not raw or (form and self.product != "otrs-6.0"):  # OTRS 6.0 reads the JSON anyway
            raise TransportError("Could not read input data")
        try:
            body = json.loads(raw)
        except ValueError:
            raise TransportError("Error while decoding request content.") from None
        if isinstance(body, dict):
            for key, value in body.items():
                data.setdefault(key, value)
        # URI data overrides body keys of the same name
        return data

    # -- authentication -------------------------------------------------------------------

    def _auth(
        self, operation: str, data: dict[str, Any], request: Request, customer_allowed: bool = True
    ) -> tuple[Agent | None, CustomerUser | None]:
        for key in ("UserLogin", "CustomerUserLogin", "SessionID", "Password"):
            header = request.headers.get(f"X-OTRS-Header-{key}")
            if header and self.product != "otrs-6.0":  # OTRS 6.0 knows no header logins
                data[key] = header
        fail = OperationError(
            operation, "AuthFail", AUTH_FAIL_TEXT.get(operation, "Authorization failing!")
        )
        if data.get("SessionID"):
            session = self.sessions.get(str(data["SessionID"]))
            now = self.now()
            if (
                session is None
                or now - session.last_used > SESSION_IDLE
                or now - session.created > SESSION_MAX
            ):
                raise fail
            session.last_used = now
            if session.customer:
                if not customer_allowed:
                    raise fail
                return None, self.customer_users[session.login]
            return self.agents[session.login], None
        if data.get("UserLogin"):
            agent = self.agents.get(str(data["UserLogin"]))
            if agent is None or agent.password != data.get("Password"):
                raise fail
            return agent, None
        if data.get("CustomerUserLogin"):
            customer = self.customer_users.get(str(data["CustomerUserLogin"]))
            if (
                customer is None
                or customer.password != data.get("Password")
                or not customer_allowed
            ):
                raise fail
            return None, customer
        raise OperationError(
            operation, "MissingParameter", "UserLogin, CustomerUserLogin or SessionID is required!"
        )

    # -- operations -----------------------------------------------------------------------

    def _op_SessionCreate(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        login = data.get("UserLogin") or data.get("CustomerUserLogin")
        if not login or not data.get("Password"):
            raise OperationError(
                "SessionCreate",
                "MissingParameter",
                "UserLogin or CustomerUserLogin and Password are required!",
            )
        customer = not data.get("UserLogin")
        data.pop("SessionID", None)
        self._auth("SessionCreate", data, request)
        alphabet = string.ascii_letters + string.digits
        session_id = "".join(secrets.choice(alphabet) for _ in range(32))
        now = self.now()
        self.sessions[session_id] = Session(session_id, str(login), customer, now, now)
        return {"SessionID": session_id}

    def _op_SessionGet(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        session = self.sessions.get(str(data.get("SessionID")))
        if session is None:
            raise OperationError("SessionGet", "SessionInvalid", "SessionID is Invalid!")
        if session.customer:
            customer = self.customer_users[session.login]
            values = {
                "UserLogin": session.login,
                "UserType": "Customer",
                "UserCustomerID": customer.customer_id,
                "UserEmail": customer.email,
            }
        else:
            agent = self.agents[session.login]
            values = {
                "UserLogin": agent.login,
                "UserType": "User",
                "UserID": str(agent.user_id),
                "UserFullname": agent.full_name,
                "UserFirstname": agent.first_name,
                "UserLastname": agent.last_name,
                "SessionSource": "GenericInterface",
            }
        return {"SessionData": [{"Key": k, "Value": v} for k, v in sorted(values.items())]}

    def _visible(self, ticket: Ticket, customer: CustomerUser | None) -> bool:
        return customer is None or ticket.customer_id == customer.customer_id

    def _op_TicketSearch(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        _, customer = self._auth("TicketSearch", data, request)
        now = self.now()
        windows: list[tuple[str, datetime | None, datetime | None]] = []
        for prefix in (
            "TicketChangeTime",
            "TicketCloseTime",
            "TicketLastChangeTime",
            "TicketCreateTime",
        ):
            newer_raw, older_raw = data.get(f"{prefix}NewerDate"), data.get(f"{prefix}OlderDate")
            newer, older = _parse_date(newer_raw), _parse_date(older_raw)
            if (newer_raw and newer is None) or (older_raw and older is None):
                return {}  # malformed date: logged by Znuny, result empty
            if newer is not None and newer > now:
                return {}  # "newer than the future": no SQL runs
            if newer or older:
                windows.append((prefix, newer, older))
        state_types = [str(s) for s in _as_list(data.get("StateType"))]
        states = [str(s) for s in _as_list(data.get("States"))]
        queues = [str(q) for q in _as_list(data.get("Queues"))]
        customer_ids = [str(c) for c in _as_list(data.get("CustomerID"))]
        owner_ids = {int(i) for i in _as_list(data.get("OwnerIDs"))}
        responsible_ids = {int(i) for i in _as_list(data.get("ResponsibleIDs"))}
        df_filters = [
            (key[len("DynamicField_") :], ops)
            for key, ops in data.items()
            if key.startswith("DynamicField_")
            and isinstance(ops, Mapping)
            and self.dynamic_fields.get(key[len("DynamicField_") :], {}).get("ObjectType")
            == "Ticket"
        ]
        hits: list[Ticket] = []
        for ticket in self.tickets.values():
            if not self._visible(ticket, customer):
                continue
            if state_types and ticket.state_type not in state_types:
                continue
            if states and ticket.state not in states:
                continue
            if queues and ticket.queue not in queues:
                continue
            if customer_ids and ticket.customer_id not in customer_ids:
                continue
            if owner_ids and ticket.owner_id not in owner_ids:
                continue
            if responsible_ids and ticket.responsible_id not in responsible_ids:
                continue
            if not all(self._in_window(ticket, *w) for w in windows):
                continue
            if not all(
                self._df_matches(ticket.dynamic_fields.get(n), ops) for n, ops in df_filters
            ):
                continue
            hits.append(ticket)
        sort_by = str(_as_list(data.get("SortBy") or "Age")[0])
        order = str(_as_list(data.get("OrderBy") or "Down")[0])
        keys = {
            "Age": lambda t: t.created,
            "Changed": lambda t: t.changed,
            "TicketNumber": lambda t: t.number,
            "Title": lambda t: t.title,
        }
        hits.sort(
            key=lambda t: (keys.get(sort_by, keys["Age"])(t), t.ticket_id), reverse=order != "Up"
        )
        try:
            limit = int(data.get("Limit") or self.search_limit)
        except (TypeError, ValueError):
            limit = self.search_limit
        hits = hits[:limit]
        return {"TicketID": [str(t.ticket_id) for t in hits]} if hits else {}

    @staticmethod
    def _in_window(
        ticket: Ticket, prefix: str, newer: datetime | None, older: datetime | None
    ) -> bool:
        def inside(moment: datetime) -> bool:
            return (newer is None or moment >= newer) and (older is None or moment <= older)

        if prefix == "TicketChangeTime":
            return any(inside(row[1]) for row in ticket.history)
        if prefix == "TicketCloseTime":
            return any(
                inside(row[1])
                for row in ticket.history
                if row[0] in ("NewTicket", "StateUpdate") and row[5] == "closed"
            )
        if prefix == "TicketLastChangeTime":
            return inside(ticket.changed)
        return inside(ticket.created)

    @staticmethod
    def _df_matches(value: Any, ops: Mapping[str, Any]) -> bool:
        text = None if value in (None, "") else str(value)
        for op, wanted in ops.items():
            options = [str(w) for w in _as_list(wanted)]
            if op == "Empty":
                if (text is None) != bool(int(str(wanted or 0))):
                    return False
            elif op == "Equals":
                if text not in options:
                    return False
            elif op == "Like":
                patterns = [
                    re.compile("^" + re.escape(o).replace(r"\*", ".*") + "$", re.I) for o in options
                ]
                if text is None or not any(p.match(text) for p in patterns):
                    return False
            elif op in ("GreaterThan", "GreaterThanEquals", "SmallerThan", "SmallerThanEquals"):
                if text is None:
                    return False
                bound = options[0]
                if not {
                    "GreaterThan": text > bound,
                    "GreaterThanEquals": text >= bound,
                    "SmallerThan": text < bound,
                    "SmallerThanEquals": text <= bound,
                }[op]:
                    return False
        return True

    def _ticket_ids(self, operation: str, raw: Any) -> list[int]:
        parts: list[str] = []
        for item in _as_list(raw):
            parts.extend(p.strip() for p in str(item).split(","))
        if not parts or parts == [""]:
            raise OperationError(operation, "MissingParameter", "TicketID parameter is missing!")
        if not all(p.isdigit() for p in parts):
            raise OperationError(
                operation, "WrongStructure", "Invalid ticket ID parameter(s) found!"
            )
        return [int(p) for p in parts]

    def _op_TicketGet(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        _, customer = self._auth("TicketGet", data, request)
        records = []
        for ticket_id in self._ticket_ids("TicketGet", data.get("TicketID")):
            ticket = self.tickets.get(ticket_id)
            if ticket is None or not self._visible(ticket, customer):
                raise OperationError(
                    "TicketGet", "AccessDenied", "User does not have access to the ticket!"
                )
            records.append(self._ticket_json(ticket, data, customer))
        return {"Ticket": records}

    def _op_TicketGetList(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        return self._op_TicketGet(data, request)

    def _ticket_json(
        self, ticket: Ticket, data: Mapping[str, Any], customer: CustomerUser | None
    ) -> dict[str, Any]:
        owner = self.agent_by_id(ticket.owner_id)
        responsible = self.agent_by_id(ticket.responsible_id)
        total = sum((row[1] for row in ticket.time_rows), Decimal(0))
        record: dict[str, Any] = {
            "TicketID": ticket.ticket_id,
            "TicketNumber": ticket.number,
            "Title": ticket.title,
            "State": ticket.state,
            "StateID": list(STATES).index(ticket.state) + 1,
            "StateType": ticket.state_type,
            "Queue": ticket.queue,
            "QueueID": QUEUES.index(ticket.queue) + 1 if ticket.queue in QUEUES else 1,
            "Priority": ticket.priority,
            "PriorityID": 3,
            "Type": "Unclassified",
            "TypeID": 1,
            "Lock": "unlock",
            "LockID": 1,
            "Owner": owner.login if owner else "",
            "OwnerID": ticket.owner_id,
            "Responsible": responsible.login if responsible else "",
            "ResponsibleID": ticket.responsible_id,
            "CustomerID": ticket.customer_id,
            "CustomerUserID": ticket.customer_user,
            "ServiceID": "",
            "SLAID": "",
            "GroupID": 1,
            "ArchiveFlag": "n",
            "Created": _fmt(ticket.created),
            "CreateBy": ticket.create_by,
            "Changed": _fmt(ticket.changed),
            "ChangeBy": ticket.change_by,
            "Age": int((self.now() - ticket.created).total_seconds()),
            "UnlockTimeout": 0,
            "UntilTime": 0,
            "RealTillTimeNotUsed": 0,
            "EscalationTime": 0,
            "EscalationResponseTime": 0,
            "EscalationUpdateTime": 0,
            "EscalationSolutionTime": 0,
            "TimeUnit": _number(total),
        }
        if _flag(data, "Extended") and ticket.state_type == "closed":
            closes = [
                row[1]
                for row in ticket.history
                if row[0] in ("NewTicket", "StateUpdate") and row[5] == "closed"
            ]
            if closes:
                record["Closed"] = _fmt(closes[-1])
                record["SolutionInMin"] = 0
        if _flag(data, "DynamicFields"):
            if self.product == "otrs-6.0":  # every valid ticket field, null when empty
                values = [
                    {"Name": name, "Value": ticket.dynamic_fields.get(name)}
                    for name, spec in sorted(self.dynamic_fields.items())
                    if spec["ObjectType"] == "Ticket"
                ]
            else:
                values = [
                    {"Name": name, "Value": value}
                    for name, value in sorted(ticket.dynamic_fields.items())
                    if name in self.dynamic_fields and value not in (None, "")
                ]
            if values:
                record["DynamicField"] = values
        if _flag(data, "AllArticles"):
            record["Article"] = self._articles_json(ticket, data, customer)
        return record

    def _articles_json(
        self, ticket: Ticket, data: Mapping[str, Any], customer: CustomerUser | None
    ) -> list[dict[str, Any]]:
        sender_types = [str(s) for s in _as_list(data.get("ArticleSenderType"))]
        articles = [
            a
            for a in ticket.articles
            if (customer is None or a.visible)
            and (not sender_types or a.sender_type in sender_types)
        ]
        if str(data.get("ArticleOrder", "ASC")).upper() == "DESC":
            articles.reverse()
        try:
            limit = int(data.get("ArticleLimit") or 0)
        except (TypeError, ValueError):
            limit = 0
        if limit:
            articles = articles[:limit]
        result = []
        for article in articles:
            units = sum(
                (row[1] for row in ticket.time_rows if row[0] == article.article_id), Decimal(0)
            )
            mime = article.content_type.split(";")[0].strip()
            entry: dict[str, Any] = {
                "ArticleID": article.article_id,
                "ArticleNumber": article.number,
                "TicketID": ticket.ticket_id,
                "TimeUnit": _number(units),
                "IsVisibleForCustomer": article.visible,
                "SenderType": article.sender_type,
                "SenderTypeID": str({"agent": 1, "system": 2, "customer": 3}[article.sender_type]),
                "CommunicationChannel": article.channel,
                "CommunicationChannelID": {"Email": 1, "Phone": 2, "Internal": 3}.get(
                    article.channel, 3
                ),
                "From": article.sender,
                "To": article.to,
                "Cc": "",
                "Bcc": "",
                "ReplyTo": "",
                "Subject": article.subject,
                # HTML bodies come back as their plain-text rendering
                "Body": _html_to_text(article.body) if mime == "text/html" else article.body,
                "ContentType": "text/plain; charset=utf-8",
                "MimeType": "text/plain",
                "Charset": "utf-8",
                "ContentCharset": "utf-8",
                "MessageID": "",
                "InReplyTo": "",
                "References": "",
                "IncomingTime": int(article.created.timestamp()),
                "CreateTime": _fmt(article.created),
                "CreateBy": article.create_by,
                "ChangeTime": _fmt(article.created),
                "ChangeBy": article.create_by,
            }
            if _flag(data, "DynamicFields"):  # every article field, null when empty
                entry["DynamicField"] = [
                    {"Name": n, "Value": article.dynamic_fields.get(n)}
                    for n, spec in sorted(self.dynamic_fields.items())
                    if spec["ObjectType"] == "Article"
                ]
            result.append(entry)
        return result

    def _validate_fields(
        self, operation: str, raw: Any, object_type: str | None
    ) -> list[tuple[str, Any]]:
        fields = []
        for entry in _as_list(raw):
            if not isinstance(entry, Mapping) or not entry.get("Name"):
                raise OperationError(
                    operation, "MissingParameter", "DynamicField->Name parameter is missing!"
                )
            name = str(entry["Name"])
            spec = self.dynamic_fields.get(name)
            if spec is None or (object_type and spec["ObjectType"] != object_type):
                raise OperationError(
                    operation, "InvalidParameter", "DynamicField->Name parameter is invalid!"
                )
            value = entry.get("Value")
            if (
                spec["FieldType"] == "Dropdown"
                and value not in (None, "")
                and str(value) not in spec["PossibleValues"]
            ):
                raise OperationError(
                    operation, "InvalidParameter", "DynamicField->Value parameter is invalid!"
                )
            fields.append((name, value))
        return fields

    def _validate_article(self, operation: str, article: Any) -> dict[str, Any]:
        if not isinstance(article, Mapping):
            raise OperationError(operation, "InvalidParameter", "Article parameter is invalid!")
        for key in ("Subject", "Body"):
            if not article.get(key):
                raise OperationError(
                    operation, "MissingParameter", f"Article->{key} parameter is missing!"
                )
        if not article.get("ContentType") and not (
            article.get("MimeType") and article.get("Charset")
        ):
            raise OperationError(
                operation,
                "MissingParameter",
                "Article->ContentType or Ticket->MimeType and Article->Charset "
                "parameters are required!",
            )
        raw_units = article.get("TimeUnit")
        if raw_units not in (None, "") and not TIME_UNIT_RE.match(str(raw_units)):
            raise OperationError(
                operation, "InvalidParameter", "Article->TimeUnit parameter is invalid!"
            )
        sender_type = str(article.get("SenderType") or "agent")
        if sender_type not in ("agent", "system", "customer"):
            raise OperationError(
                operation, "InvalidParameter", "Article->SenderType parameter is invalid!"
            )
        return dict(article)

    def _store_article(
        self,
        operation: str,
        ticket: Ticket,
        agent: Agent,
        spec: Mapping[str, Any],
        top_fields: list[tuple[str, Any]],
        customer_from: bool = False,
    ) -> Article:
        try:
            units = Decimal(str(spec.get("TimeUnit") or 0).replace(",", ".")).quantize(
                Decimal("0.01")
            )
        except InvalidOperation:
            raise OperationError(
                operation, "InvalidParameter", "Article->TimeUnit parameter is invalid!"
            ) from None
        customer = self.customer_users.get(ticket.customer_user or "")
        sender = spec.get("From") or (
            f'"{customer.first_name} {customer.last_name}" <{customer.email}>'
            if customer_from and customer
            else agent.full_name
        )
        article = self.add_article(
            ticket,
            agent=agent.login,
            subject=str(spec["Subject"]),
            body=str(spec["Body"]),
            time_unit=0,
            visible=int(spec.get("IsVisibleForCustomer", 1)),
            sender=str(sender),
            content_type=str(
                spec.get("ContentType") or f"{spec.get('MimeType')}; charset={spec.get('Charset')}"
            ),
            sender_type=str(spec.get("SenderType") or "agent"),
            channel=str(spec.get("CommunicationChannel") or "Internal"),
        )
        if units:
            self.account_time(ticket, units, agent=agent.login, article=article)
        article_fields = (
            self._validate_fields(operation, spec.get("DynamicField"), "Article")
            if operation == "TicketUpdate"
            else []
        )
        for name, value in [
            *article_fields,
            *[f for f in top_fields if self.dynamic_fields[f[0]]["ObjectType"] == "Article"],
        ]:
            article.dynamic_fields[name] = value
        return article

    def _op_TicketCreate(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        agent, _ = self._auth("TicketCreate", data, request, customer_allowed=False)
        assert agent is not None
        spec = data.get("Ticket")
        if not isinstance(spec, Mapping):
            raise OperationError(
                "TicketCreate", "MissingParameter", "Ticket parameter is missing or not valid!"
            )
        for key in ("Title", "CustomerUser"):
            if not spec.get(key):
                raise OperationError(
                    "TicketCreate", "MissingParameter", f"Ticket->{key} parameter is missing!"
                )
        queue, state = spec.get("Queue") or "Raw", spec.get("State") or "new"
        if queue not in QUEUES:
            raise OperationError(
                "TicketCreate", "InvalidParameter", "Ticket->Queue parameter is invalid!"
            )
        if state not in STATES:
            raise OperationError(
                "TicketCreate", "InvalidParameter", "Ticket->State parameter is invalid!"
            )
        customer_user = str(spec["CustomerUser"])
        if customer_user not in self.customer_users and "@" not in customer_user:
            raise OperationError(
                "TicketCreate", "InvalidParameter", "Ticket->CustomerUser parameter is invalid!"
            )
        article = self._validate_article("TicketCreate", data.get("Article"))
        fields = self._validate_fields("TicketCreate", data.get("DynamicField"), None)
        ticket = self.create_ticket(
            str(spec["Title"]),
            customer_user=customer_user,
            agent=agent.login,
            queue=queue,
            state=state,
        )
        stored = self._store_article(
            "TicketCreate", ticket, agent, article, fields, customer_from=True
        )
        for name, value in fields:
            if self.dynamic_fields[name]["ObjectType"] == "Ticket":
                self.set_field(ticket, name, value, agent=agent.login)
        return {
            "TicketID": str(ticket.ticket_id),
            "TicketNumber": ticket.number,
            "ArticleID": stored.article_id,
        }

    def _op_TicketUpdate(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        agent, _ = self._auth("TicketUpdate", data, request, customer_allowed=False)
        assert agent is not None
        raw_id = data.get("TicketID")
        if raw_id in (None, "") and data.get("TicketNumber"):
            raw_id = next(
                (
                    t.ticket_id
                    for t in self.tickets.values()
                    if t.number == str(data["TicketNumber"])
                ),
                0,
            )
        try:
            ticket = self.tickets.get(int(str(raw_id)))
        except ValueError:
            ticket = None
        if ticket is None:
            raise OperationError(
                "TicketUpdate", "AccessDenied", "User does not have access to the ticket!"
            )
        spec, article_raw, fields_raw = (
            data.get("Ticket"),
            data.get("Article"),
            data.get("DynamicField"),
        )
        if not spec and not article_raw and not fields_raw:
            raise OperationError("TicketUpdate", "EmptyRequest", "The request data is invalid!")
        articles = [self._validate_article("TicketUpdate", a) for a in _as_list(article_raw)]
        fields = self._validate_fields("TicketUpdate", fields_raw, None)
        if isinstance(spec, Mapping):
            state = spec.get("State")
            if state is not None and state not in STATES:
                raise OperationError(
                    "TicketUpdate", "InvalidParameter", "Ticket->State parameter is invalid!"
                )
            if spec.get("Title"):
                ticket.title = str(spec["Title"])
            if spec.get("Owner") in self.agents:
                ticket.owner_id = self.agents[str(spec["Owner"])].user_id
            if state is not None and state != ticket.state:
                self.set_state(ticket, str(state), agent=agent.login)
        stored = [self._store_article("TicketUpdate", ticket, agent, a, fields) for a in articles]
        for name, value in fields:
            if (
                self.dynamic_fields[name]["ObjectType"] == "Ticket"
                and ticket.dynamic_fields.get(name) != value
            ):
                self.set_field(ticket, name, value, agent=agent.login)
        answer: dict[str, Any] = {"TicketID": str(ticket.ticket_id), "TicketNumber": ticket.number}
        if len(stored) == 1 and not isinstance(article_raw, list):
            answer["ArticleID"] = stored[0].article_id
        elif stored:
            answer["ArticleIDs"] = [a.article_id for a in stored]
        return answer

    def _op_TicketHistoryGet(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        self._auth("TicketHistoryGet", data, request, customer_allowed=False)
        result = []
        for ticket_id in self._ticket_ids("TicketHistoryGet", data.get("TicketID")):
            ticket = self.tickets.get(ticket_id)
            if ticket is None:
                raise OperationError(
                    "TicketHistoryGet", "AccessDenied", "User does not have access to the ticket!"
                )
            result.append(
                {
                    "TicketID": ticket_id,
                    "History": [
                        {
                            "HistoryType": kind,
                            "CreateTime": _fmt(moment),
                            "CreateBy": user_id,
                            "ArticleID": article_id or 0,
                            "Name": name,
                            "TicketID": ticket_id,
                        }
                        for kind, moment, user_id, article_id, name, _ in ticket.history
                    ],
                }
            )
        return {"TicketHistory": result}


def main() -> None:
    """`python -m connectors.sandbox.otrs [port]`: serve the sandbox for the demo."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8491
    sandbox = OTRSSandbox(port=port)
    sandbox.start()
    print(
        f"OTRS sandbox at {sandbox.service_url()} "
        f"(login {sandbox.api_login} / {sandbox.api_password})"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
