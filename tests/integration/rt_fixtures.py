"""Fixtures and helpers for tests against the real Request Tracker 5 that `.ci/rt-up.sh` starts.

A test module takes the fixtures with `from rt_fixtures import *` (`__all__` lists them) and
the classes by name (`RTDesk`, `RTEnv`).
Why a helper class next to the connector: tests must arrange RT state the connector never
creates (tickets, bookings by a given agent at a given time, resolving) and read back what it
wrote, through a path independent of the code under test.

The connector under test runs as the least-privileged user `billing` that `.ci/rt-up.sh` sets
up with exactly the README's rights (global: ManageAuthTokens and the three register rights;
per billed queue: the day-to-day rights). Test data is arranged as root. Every queue a test
creates gets the billing user's queue rights through rt-up's `queue-rights.pl`, as an admin
would grant them on a new customer queue.

Bookings at a chosen time: RT stamps a transaction with the current time and its API cannot
change it, so `RTDesk.book(..., at=...)` posts the comment as the agent, then rewrites that one
transaction's `Created` in RT's SQLite database (path from the env file). RT reads it back
from the database on every request, so the API then reports the chosen time.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from dotenv import dotenv_values

from connectors.rt import RTConnector

__all__ = ["make_rt_connector", "rt_connector", "rt_desk", "rt_env", "rt_queues"]

ENV_FILE = Path(os.environ.get("RT_ENV_FILE", "/tmp/ticketbill-rt.env"))
API = "/REST/2.0"


def _server_missing(what: str) -> None:
    """Fail in CI, skip locally (same rule as tests/conftest.py's `server_missing`)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}, but CI must run the RT integration tests", pytrace=False)
    pytest.skip(f"{what} (run `bash .ci/rt-up.sh` first)")


@dataclass(frozen=True)
class RTEnv:
    """Connection details written by `.ci/rt-up.sh`."""

    url: str
    token: str
    user: str
    password: str
    agents: Mapping[str, str]
    db_path: Path
    customer_cf: str
    billing_user: str
    billing_password: str
    billing_token: str
    grant_queue_rights: tuple[str, ...]


def load_rt_env() -> RTEnv:
    """Read the env file and prove RT answers with the token; skip or fail otherwise."""
    if not ENV_FILE.exists():
        _server_missing(f"RT is not set up: {ENV_FILE} does not exist")
    values = {k: v or "" for k, v in dotenv_values(ENV_FILE).items()}
    if not values.get("RT_BILLING_TOKEN") or not values.get("RT_GRANT_QUEUE_RIGHTS"):
        _server_missing(f"{ENV_FILE} has no least-privileged billing user (an older rt-up.sh ran)")
    env = RTEnv(
        url=values["RT_URL"].rstrip("/"),
        token=values["RT_TOKEN"],
        user=values.get("RT_USER", "root"),
        password=values.get("RT_PASSWORD", ""),
        agents=dict(
            pair.split(":", 1) for pair in values.get("RT_AGENTS", "").split(",") if ":" in pair
        ),
        db_path=Path(values.get("RT_DB", "")),
        customer_cf=values.get("RT_CUSTOMER_CF", "Customer"),
        billing_user=values["RT_BILLING_USER"],
        billing_password=values["RT_BILLING_PASSWORD"],
        billing_token=values["RT_BILLING_TOKEN"],
        grant_queue_rights=tuple(shlex.split(values["RT_GRANT_QUEUE_RIGHTS"])),
    )
    for who, token in (("root", env.token), (env.billing_user, env.billing_token)):
        try:
            response = requests.get(
                f"{env.url}{API}/rt", headers={"Authorization": f"token {token}"}, timeout=10
            )
        except requests.RequestException as exc:
            _server_missing(f"RT at {env.url} is not reachable ({type(exc).__name__})")
        if response.status_code != 200:
            _server_missing(
                f"RT at {env.url} answered HTTP {response.status_code} to the token of {who}"
            )
    return env


@dataclass
class RTDesk:
    """Arranges and inspects RT state for tests, as root or as a named agent."""

    env: RTEnv
    tag: str
    _sessions: dict[str, requests.Session] = field(default_factory=dict)
    created_custom_fields: list[str] = field(default_factory=list)

    # -- plumbing -------------------------------------------------------------------------

    def session(self, agent: str | None = None) -> requests.Session:
        """Root (token) or an agent from the env file (basic auth, RT's default)."""
        key = agent or ""
        if key not in self._sessions:
            s = requests.Session()
            if agent is None:
                s.headers["Authorization"] = f"token {self.env.token}"
            else:
                s.auth = (agent, self.env.agents[agent])
            self._sessions[key] = s
        return self._sessions[key]

    def call(self, method: str, path: str, *, agent: str | None = None, **kw: Any) -> Any:
        response = self.session(agent).request(method, f"{self.env.url}{API}{path}", timeout=30,
                                               **kw)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content.strip() else None

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()

    # -- arranging ------------------------------------------------------------------------

    def name(self, base: str) -> str:
        """A name unique to this test session (RT keeps everything between runs)."""
        return f"{base} {self.tag}"

    def create_queue(self, name: str, *, grant: bool = True) -> str:
        """A new queue, created as root; the billing user gets its queue rights on it."""
        answer = self.call("POST", "/queue", json={
            "Name": name, "Description": "ticketbill tests", "CorrespondAddress": "",
            "CommentAddress": ""})
        if grant:
            self.grant_queue_rights(name)
        return str(answer["id"])

    def grant_queue_rights(self, *queues: str) -> None:
        """The README's queue rights for the billing user (rt-up's queue-rights.pl, as root)."""
        done = subprocess.run([*self.env.grant_queue_rights, *queues], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"granting queue rights failed: {done.stderr}"

    def create_ticket(
        self,
        queue: str,
        subject: str,
        *,
        requestor: str = "customer@example.com",
        custom_fields: Mapping[str, str] | None = None,
        agent: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "Queue": queue, "Subject": subject, "Requestor": requestor,
            "Content": "Please help.", "ContentType": "text/plain",
        }
        if custom_fields:
            body["CustomFields"] = dict(custom_fields)
        return str(self.call("POST", "/ticket", json=body, agent=agent)["id"])

    def book(
        self,
        ticket_id: str,
        agent: str,
        minutes: int,
        *,
        at: datetime | None = None,
        kind: str = "comment",
    ) -> str:
        """Book `minutes` as `agent` by a comment or reply; optionally at time `at` (UTC).

        Returns the transaction id RT recorded.
        """
        assert kind in ("comment", "correspond")
        self.call("POST", f"/ticket/{ticket_id}/{kind}", agent=agent, json={
            "Content": f"worked {minutes} min", "ContentType": "text/plain",
            "TimeTaken": minutes})
        mine = [
            txn for txn in self.history(ticket_id)
            if txn["Creator"]["id"] == agent and int(txn["TimeTaken"]) == minutes
            and txn["Type"] == kind.capitalize()
        ]
        txn_id = str(max(int(txn["id"]) for txn in mine))
        if at is not None:
            self.backdate(txn_id, at)
        return txn_id

    def backdate(self, transaction_id: str, at: datetime) -> None:
        """Rewrite one transaction's creation time (RT stores UTC `YYYY-MM-DD HH:MM:SS`)."""
        if not os.access(self.env.db_path, os.W_OK):
            pytest.skip(f"cannot write RT's database {self.env.db_path} to backdate bookings")
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with sqlite3.connect(self.env.db_path, timeout=30) as db:
            changed = db.execute(
                "UPDATE Transactions SET Created = ? WHERE id = ?", (stamp, int(transaction_id))
            ).rowcount
        assert changed == 1, f"transaction {transaction_id} not found in {self.env.db_path}"

    def resolve(self, ticket_id: str) -> None:
        messages = self.call("PUT", f"/ticket/{ticket_id}", json={"Status": "resolved"})
        assert any("resolved" in str(m) for m in messages), messages

    def merge(self, ticket_id: str, into: str) -> None:
        """Merge via REST 1.0 (REST2 in RT 5.0 has no merge endpoint)."""
        response = requests.post(
            f"{self.env.url}/REST/1.0/ticket/{ticket_id}/merge/{into}",
            data={"user": self.env.user, "pass": self.env.password}, timeout=30)
        assert "Merge completed" in response.text, response.text

    # -- reading back ---------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.call("GET", f"/ticket/{ticket_id}")

    def custom_fields(self, ticket_id: str) -> dict[str, list[str]]:
        """{CF name: values} as RT stores them now."""
        return {cf["name"]: cf["values"] for cf in self.ticket(ticket_id)["CustomFields"]}

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self.call("GET", f"/ticket/{ticket_id}/history", params={
                "fields": "Type,TimeTaken,Creator,Created,Data,Field,NewValue",
                "per_page": 100, "page": page})
            items += answer["items"]
            if len(answer["items"]) < 100:
                return items
            page += 1

    def comments(self, ticket_id: str) -> list[dict[str, Any]]:
        """Comment transactions with their subject (`Data`) and full content."""
        result = []
        for txn in self.history(ticket_id):
            if txn["Type"] != "Comment":
                continue
            attachments = self.call("GET", f"/transaction/{txn['id']}/attachments", params={
                "fields": "Subject,Content,ContentType"})["items"]
            result.append({
                "id": txn["id"], "subject": str(txn.get("Data") or "").strip(),
                "creator": txn["Creator"]["id"], "created": txn["Created"],
                "attachments": attachments,
            })
        return result

    def disable_custom_field(self, cf_id: str) -> None:
        self.call("PUT", f"/customfield/{cf_id}", json={"Disabled": 1})


@pytest.fixture(scope="session")
def rt_env() -> RTEnv:
    return load_rt_env()


@pytest.fixture(scope="session")
def rt_desk(rt_env: RTEnv) -> Iterator[RTDesk]:
    """Session helper; billing CFs it registered are disabled at the end (RT keeps them)."""
    desk = RTDesk(rt_env, tag=uuid.uuid4().hex[:8])
    yield desk
    for cf_id in desk.created_custom_fields:
        desk.disable_custom_field(cf_id)
    desk.close()


@pytest.fixture(scope="session")
def rt_queues(rt_desk: RTDesk) -> dict[str, str]:
    """Two customer queues and a general one, fresh per session: {role: queue name}."""
    names = {
        "acme": rt_desk.name("Acme GmbH"),
        "globex": rt_desk.name("Globex AG"),
        "general": rt_desk.name("Support"),
    }
    for name in names.values():
        rt_desk.create_queue(name, grant=False)
    rt_desk.grant_queue_rights(*names.values())  # one RT start-up for all three
    return names


@pytest.fixture(scope="session")
def make_rt_connector(
    rt_env: RTEnv, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> Callable[..., RTConnector]:
    """Factory: an RTConnector as the billing user on this session's queues and field names.

    Field names carry the session tag, so registration really creates them in each session.
    """

    def make(**options: Any) -> RTConnector:
        defaults: dict[str, Any] = {
            "token": rt_env.billing_token,
            "queues": tuple(rt_queues.values()),
            "status_field": rt_desk.name("Billing Status"),
            "invoice_field": rt_desk.name("Invoice Number"),
            "invoice_url_field": rt_desk.name("Invoice URL"),
            "customer_field": rt_env.customer_cf,
        }
        defaults.update(options)
        return RTConnector(rt_env.url, **defaults)

    return make


@pytest.fixture(scope="session")
def rt_connector(make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk) -> RTConnector:
    """A registered connector (customer = queue); registration's CFs are cleaned up later."""
    connector = make_rt_connector()
    report = connector.register()
    assert report.ok, report.problems
    rt_desk.created_custom_fields.extend(connector.custom_field_ids().values())
    return connector
