"""Zammad's webhook fast path: `register` creates webhook and trigger, Zammad signs and sends,
the sidecar checks the signature over the raw body, stores each delivery once and starts the
next sync run, which bills the ticket.

The sandbox delivers as `TriggerWebhookJob` does (a real HTTP POST, `X-Hub-Signature` =
`sha1=` + HMAC-SHA1 hex of the body with the signature token, `X-Zammad-Delivery` kept on
retries); the sidecar is the real app on a loopback port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket, make_settings
from werkzeug.serving import make_server

from addon import create_app
from addon.db import make_engine, make_session_factory, upgrade
from addon.models import PushEvent
from addon.web.zammad_hook import PATH
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import TRIGGER_NAME, WEBHOOK_NAME, WEBHOOK_PATH, ZammadConnector

SECRET = "webhook-secret-0123456789abcdef"


def zammad_signature(token: str, body: bytes) -> str:
    """As Zammad computes it: OpenSSL::HMAC.hexdigest('sha1', signature_token, body)."""
    return "sha1=" + hmac.new(token.encode(), body, hashlib.sha1).hexdigest()


class ServedSidecar:
    """The sidecar app on a free loopback port, recording the sync runs it requests."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.requested: list[int] = []
        self.app = create_app(sidecar.settings)
        self.app.config["TICKETBILL_REQUEST_SYNC"] = lambda: self.requested.append(1)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["ticketbill"].engine.dispose()


@pytest.fixture
def hooked(database_url: str, tmp_path: Path) -> Iterator[tuple[Sidecar, ServedSidecar]]:
    """A sidecar with ZAMMAD_WEBHOOK_SECRET, served; registered against a fresh sandbox."""
    with ZammadSandbox.running(restart_seconds=0, webhook_retry_waits=(0.0,) * 4) as sb:
        with sb.lock:
            for ticket_id in list(sb.state.data["tickets"]):
                sb.state.delete_ticket(ticket_id)
        settings = make_settings(sb, database_url, tmp_path / "data", ZAMMAD_WEBHOOK_SECRET=SECRET)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        sidecar = Sidecar(settings, make_session_factory(engine), sb, ZammadConnector.from_settings(settings))
        served = ServedSidecar(sidecar)
        # PUBLIC_URL must point at the served app: the connector registers that endpoint.
        sidecar.connector.webhook_url = served.url + WEBHOOK_PATH
        yield sidecar, served
        served.stop()
        engine.dispose()


def test_register_creates_the_webhook_and_the_trigger_once(hooked: tuple[Sidecar, ServedSidecar]) -> None:
    sidecar, served = hooked
    first = sidecar.connector.register()
    assert first.ok, first.problems
    assert f"webhook {WEBHOOK_NAME!r} → {served.url}{WEBHOOK_PATH}" in first.created
    assert f"trigger {TRIGGER_NAME!r}" in first.created
    with sidecar.sandbox.lock:
        hooks = list(sidecar.sandbox.state.data["webhooks"].values())
        triggers = list(sidecar.sandbox.state.data["triggers"].values())
    assert [(h["name"], h["signature_token"], h["active"]) for h in hooks] == [(WEBHOOK_NAME, SECRET, True)]
    assert triggers[0]["execution_condition_mode"] == "selective"
    assert triggers[0]["perform"] == {"notification.webhook": {"webhook_id": str(hooks[0]["id"])}}
    again = sidecar.connector.register()
    assert again.ok and not [c for c in again.created if "webhook" in c or "trigger" in c]
    assert f"trigger {TRIGGER_NAME!r}" in again.present
    sidecar.connector.webhook_secret = SECRET + "-rotated"
    rotated = sidecar.connector.register()
    assert any(c.startswith(f"webhook {WEBHOOK_NAME!r}") and "signature_token" in c for c in rotated.created)


def test_a_close_in_zammad_reaches_the_sidecar_signed_once_and_is_billed(
    hooked: tuple[Sidecar, ServedSidecar], tmp_path: Path
) -> None:
    sidecar, served = hooked
    sb = sidecar.sandbox
    assert sidecar.connector.register().ok
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Drucker", 1, [(45, 3, 1)])
    sb.webhooks.wait_idle()
    assert [status for _, status in sb.webhooks.deliveries] == [202]
    assert served.requested == [1], "the sync run is started at once"
    with sidecar.factory() as session:
        events = session.execute(select(PushEvent)).scalars().all()
    assert [(e.source, e.ticket_remote_id) for e in events] == [("zammad", str(ticket))]

    result = sidecar.run()  # the run the webhook started: it bills like a polled one
    assert result.ok and result.counts["invoiced"] == 1
    sb.webhooks.wait_idle()
    # The sidecar's own write-back (a note, the billing fields) does not fire the trigger again.
    assert len(sb.webhooks.deliveries) == 1


def test_a_retried_delivery_is_acknowledged_without_effect(hooked: tuple[Sidecar, ServedSidecar]) -> None:
    _sidecar, served = hooked
    body = json.dumps({"ticket": {"id": 41, "state": "closed"}, "article": {}}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Zammad-Trigger": TRIGGER_NAME,
               "X-Zammad-Delivery": "0b3c4d5e-6f70-4182-93a4-b5c6d7e8f901",
               "X-Hub-Signature": zammad_signature(SECRET, body)}
    first = requests.post(served.url + PATH, data=body, headers=headers, timeout=10)
    retry = requests.post(served.url + PATH, data=body, headers=headers, timeout=10)
    assert (first.status_code, first.json()) == (202, {"accepted": True, "duplicate": False})
    assert (retry.status_code, retry.json()) == (200, {"accepted": False, "duplicate": True})
    assert served.requested == [1]


@pytest.mark.parametrize("signature", [None, "sha1=" + "0" * 40, "sha256=abc"])
def test_an_unsigned_or_wrongly_signed_request_changes_nothing(
    hooked: tuple[Sidecar, ServedSidecar], signature: str | None
) -> None:
    sidecar, served = hooked
    body = json.dumps({"ticket": {"id": 41}, "article": {}}).encode()
    headers = {"Content-Type": "application/json", "X-Zammad-Delivery": "d-1"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    answer = requests.post(served.url + PATH, data=body, headers=headers, timeout=10)
    assert answer.status_code == 401
    # A body re-encoded by a proxy (same JSON, other bytes) does not match either.
    respaced = json.dumps({"ticket": {"id": 41}, "article": {}}, indent=1).encode()
    signed_other = {**headers, "X-Hub-Signature": zammad_signature(SECRET, body)}
    assert requests.post(served.url + PATH, data=respaced, headers=signed_other, timeout=10).status_code == 401
    with sidecar.factory() as session:
        assert session.execute(select(PushEvent)).first() is None
    assert served.requested == []


def test_the_receiver_is_off_without_a_secret_and_refuses_foreign_bodies(
    hooked: tuple[Sidecar, ServedSidecar], database_url: str, tmp_path: Path
) -> None:
    sidecar, served = hooked
    body = b"not json"
    signed = {"X-Hub-Signature": zammad_signature(SECRET, body), "X-Zammad-Delivery": "d-2"}
    assert requests.post(served.url + PATH, data=body, headers=signed, timeout=10).status_code == 422
    off = create_app(make_settings(sidecar.sandbox, database_url, tmp_path / "off"))
    assert off.test_client().post(PATH, data=body, headers=signed).status_code == 404
    off.extensions["ticketbill"].engine.dispose()
    assert PATH == WEBHOOK_PATH  # the connector registers the path the receiver serves
