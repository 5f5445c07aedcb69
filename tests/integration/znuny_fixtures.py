"""Fixtures and helpers for tests against the real Znuny 6.5 that `.ci/znuny-up.sh` starts.

A test module takes the fixtures with `from znuny_fixtures import *` (`__all__` lists them) and
the classes by name (`ZnunyDesk`, `ZnunyEnv`). The end-to-end test reuses them: `znuny_desk`
creates tickets with time booked by given agents and closes them; `make_znuny_connector`
builds an `OTRSConnector` for the same Znuny.

Why a helper that talks to Znuny itself: tests must arrange state the connector never creates
(tickets, notes with time by a given agent, closing) and read back what it wrote through a path
independent of the code under test: plain `requests` with each agent's own header login, and
Znuny's PostgreSQL database for what no API shows (`time_accounting` rows).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from dotenv import dotenv_values

from connectors.otrs import OTRSConnector

__all__ = ["make_znuny_connector", "znuny_connector", "znuny_desk", "znuny_env"]

ENV_FILE = Path(os.environ.get("ZNUNY_ENV_FILE", "/tmp/ticketbill-znuny.env"))
JSON = {"Content-Type": "application/json"}


def _server_missing(what: str) -> None:
    """Fail in CI, skip locally (same rule as tests/conftest.py's `server_missing`)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}, but CI must run the Znuny integration tests", pytrace=False)
    pytest.skip(f"{what} (run `bash .ci/znuny-up.sh` first)")


@dataclass(frozen=True)
class ZnunyEnv:
    """Connection details written by `.ci/znuny-up.sh`."""

    url: str
    gi_path: str
    webservice: str
    user: str
    password: str
    agents: Mapping[str, str]
    customer_users: Mapping[str, str]
    dsn: str
    classic_webservice: str = "GenericTicketConnectorRESTClassic"
    home: str = "/opt/ticketbill-znuny"

    @property
    def service_url(self) -> str:
        return f"{self.url}{self.gi_path}/Webservice/{self.webservice}"


def load_znuny_env() -> ZnunyEnv:
    """Read the env file and prove the web service answers a login; skip or fail otherwise."""
    if not ENV_FILE.exists():
        _server_missing(f"Znuny is not set up ({ENV_FILE} is missing)")
    values = {k: v or "" for k, v in dotenv_values(ENV_FILE).items()}
    env = ZnunyEnv(
        url=values["ZNUNY_URL"],
        gi_path=values["ZNUNY_GI_PATH"],
        webservice=values["ZNUNY_WEBSERVICE"],
        user=values["ZNUNY_USER"],
        password=values["ZNUNY_PASSWORD"],
        agents=dict(pair.split(":", 1) for pair in values["ZNUNY_AGENTS"].split(",") if pair),
        customer_users=dict(
            pair.split(":", 1) for pair in values["ZNUNY_CUSTOMER_USERS"].split(",") if pair
        ),
        dsn=values["ZNUNY_DSN"],
        classic_webservice=values.get("ZNUNY_CLASSIC_WEBSERVICE")
        or "GenericTicketConnectorRESTClassic",
        home=values.get("ZNUNY_HOME") or "/opt/ticketbill-znuny",
    )
    try:
        answer = requests.post(
            f"{env.service_url}/Session",
            headers=JSON,
            timeout=20,
            json={"UserLogin": env.user, "Password": env.password},
        ).json()
    except (requests.RequestException, ValueError) as exc:
        _server_missing(f"Znuny at {env.url} does not answer ({type(exc).__name__})")
    if "SessionID" not in answer:
        _server_missing(f"Znuny at {env.url} refuses the login of {env.user}: {answer}")
    return env


@dataclass
class ZnunyDesk:
    """Arranges and inspects Znuny state through each agent's own login (not the connector)."""

    env: ZnunyEnv
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    created: list[int] = field(default_factory=list)

    def _call(
        self,
        method: str,
        route: str,
        agent: str | None = None,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        customer: str | None = None,
    ) -> dict[str, Any]:
        if customer is not None:
            auth = {
                "X-OTRS-Header-CustomerUserLogin": customer,
                "X-OTRS-Header-Password": f"{customer}-Secret1",
            }
        else:
            login = agent or self.env.user
            password = self.env.password if login == self.env.user else self.env.agents[login]
            auth = {"X-OTRS-Header-UserLogin": login, "X-OTRS-Header-Password": password}
        response = requests.request(
            method,
            f"{self.env.service_url}{route}",
            json=body,
            params=params,
            headers={**JSON, **auth},
            timeout=60,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        if "Error" in answer and customer is None:
            raise AssertionError(f"{method} {route} as {agent}: {answer['Error']}")
        return answer

    @staticmethod
    def _article(
        subject: str,
        body: str,
        time_unit: Decimal | int | str | None,
        activity: str | None,
        visible: int,
    ) -> dict[str, Any]:
        article: dict[str, Any] = {
            "Subject": subject,
            "Body": body,
            "ContentType": "text/plain; charset=utf-8",
            "IsVisibleForCustomer": visible,
        }
        if time_unit is not None:
            article["TimeUnit"] = str(time_unit)
        if activity is not None:
            article["DynamicField"] = [{"Name": "BillingActivity", "Value": activity}]
        return article

    def create_ticket(
        self, title: str, *, customer_user: str, agent: str, state: str = "open"
    ) -> int:
        """A ticket created by `agent` (who becomes its owner), first article without time."""
        answer = self._call(
            "POST",
            "/Ticket",
            agent,
            body={
                "Ticket": {
                    "Title": f"{title} [{self.run_tag}]",
                    "Queue": "Raw",
                    "State": state,
                    "Priority": "3 normal",
                    "CustomerUser": customer_user,
                },
                "Article": self._article(title, f"{title}: opened by {agent}", None, None, 1),
            },
        )
        ticket_id = int(answer["TicketID"])
        self.created.append(ticket_id)
        return ticket_id

    def book(
        self,
        ticket_id: int,
        agent: str,
        time_unit: Decimal | int | str,
        *,
        activity: str | None = None,
        subject: str = "Arbeit",
    ) -> int:
        """An internal note by `agent` with accounted time (and the article's activity)."""
        answer = self._call(
            "PATCH",
            f"/Ticket/{ticket_id}",
            agent,
            body={
                "Article": self._article(subject, f"{subject} by {agent}", time_unit, activity, 0)
            },
        )
        return int(answer["ArticleID"])

    def note(
        self,
        ticket_id: int,
        agent: str,
        body: str,
        *,
        html: bool = False,
        visible: int = 0,
        subject: str = "Notiz",
    ) -> int:
        """A note without time (internal unless `visible`), plain text or HTML."""
        article = self._article(subject, body, None, None, visible)
        if html:
            article["ContentType"] = "text/html; charset=utf-8"
        answer = self._call("PATCH", f"/Ticket/{ticket_id}", agent, body={"Article": article})
        return int(answer["ArticleID"])

    def set_state(self, ticket_id: int, state: str, agent: str | None = None) -> None:
        self._call("PATCH", f"/Ticket/{ticket_id}", agent, body={"Ticket": {"State": state}})

    def close(self, ticket_id: int, agent: str | None = None) -> None:
        self.set_state(ticket_id, "closed successful", agent)

    def set_field(self, ticket_id: int, name: str, value: str) -> None:
        self._call(
            "PATCH", f"/Ticket/{ticket_id}", body={"DynamicField": [{"Name": name, "Value": value}]}
        )

    def create_billable_ticket(
        self,
        title: str,
        *,
        customer_user: str,
        bookings: Sequence[tuple[str, Decimal | int | str, str | None]],
        close: bool = True,
    ) -> int:
        """The end-to-end building block: a ticket, notes with time per (agent, units,
        activity), closed by its owner (the first booking agent)."""
        owner = bookings[0][0] if bookings else next(iter(self.env.agents))
        ticket_id = self.create_ticket(title, customer_user=customer_user, agent=owner)
        for agent, units, activity in bookings:
            self.book(ticket_id, agent, units, activity=activity)
        if close:
            self.close(ticket_id, owner)
        return ticket_id

    def get(self, ticket_id: int, *, customer: str | None = None) -> dict[str, Any]:
        """Raw TicketGet with articles and dynamic fields, as the API user or a customer."""
        answer = self._call(
            "GET",
            f"/Ticket/{ticket_id}",
            customer=customer,
            params={"AllArticles": 1, "DynamicFields": 1, "Extended": 1},
        )
        if "Error" in answer:
            return answer
        ticket: dict[str, Any] = answer["Ticket"][0]
        return ticket

    @staticmethod
    def fields(ticket: Mapping[str, Any]) -> dict[str, Any]:
        return {f["Name"]: f["Value"] for f in ticket.get("DynamicField") or []}

    def accounted(self, ticket_id: int) -> list[tuple[int | None, Decimal, str]]:
        """`time_accounting` rows (article id, units, agent login) straight from the database."""
        with psycopg.connect(self.env.dsn) as connection:
            rows = connection.execute(
                "SELECT ta.article_id, ta.time_unit, u.login FROM time_accounting ta "
                "JOIN users u ON u.id = ta.create_by WHERE ta.ticket_id = %s ORDER BY ta.id",
                (ticket_id,),
            ).fetchall()
        return [(row[0], Decimal(row[1]), row[2]) for row in rows]

    def run_perl_as_otrs(self, script: str) -> subprocess.CompletedProcess[str]:
        """A Perl script (from stdin) as the system user `otrs` in the Znuny home, as the
        README tells the admin to run the scripts `register` writes. Needs root (CI is)."""
        if os.geteuid() != 0:
            pytest.skip("running a script as the otrs user needs root")
        return subprocess.run(
            ["runuser", "-u", "otrs", "--", "perl", "-"], input=script, text=True,
            capture_output=True, cwd=self.env.home, timeout=300, check=False,
        )

    def znuny_now(self) -> datetime:
        """Znuny's clock (its database's), so windows never depend on our clock's skew."""
        with psycopg.connect(self.env.dsn) as connection:
            row = connection.execute("SELECT current_timestamp").fetchone()
        assert row is not None
        moment: datetime = row[0]
        return moment.astimezone(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def znuny_env() -> ZnunyEnv:
    return load_znuny_env()


@pytest.fixture(scope="session")
def znuny_desk(znuny_env: ZnunyEnv) -> Iterator[ZnunyDesk]:
    yield ZnunyDesk(znuny_env)


@pytest.fixture(scope="session")
def make_znuny_connector(znuny_env: ZnunyEnv) -> Callable[..., OTRSConnector]:
    def build(**options: Any) -> OTRSConnector:
        options.setdefault("user", znuny_env.user)
        options.setdefault("password", znuny_env.password)
        options.setdefault("webservice", znuny_env.webservice)
        options.setdefault("gi_path", znuny_env.gi_path)
        return OTRSConnector(znuny_env.url, **options)

    return build


@pytest.fixture
def znuny_connector(make_znuny_connector: Callable[..., OTRSConnector]) -> OTRSConnector:
    return make_znuny_connector()
