"""Webhooks and triggers: Zammad's validation, selective firing, signature and retries."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox


class Receiver:
    """Answers each delivery with the next status of `statuses` (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def app(self, environ: dict[str, object], start_response: object) -> object:
        request = Request(environ)
        self.seen.append((dict(request.headers), request.get_data()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return Response("{}", status=status)(environ, start_response)  # type: ignore[arg-type]


@pytest.fixture
def quick() -> Iterator[ZammadSandbox]:
    with ZammadSandbox.running(restart_seconds=0, webhook_retry_waits=(0.0,) * 4) as sb:
        yield sb


def receiving(statuses: list[int]) -> Receiver:
    receiver = Receiver(statuses)
    threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    return receiver


def hook_and_trigger(admin: Client, endpoint: str, mode: str = "selective") -> int:
    hook = admin.post("/webhooks", json={"name": "hook", "endpoint": endpoint,
                                         "signature_token": "s3cr3t"}).json()
    created = admin.post("/triggers", json={
        "name": f"closed {mode}", "condition": {"ticket.state_id": {"operator": "is", "value": ["4"]}},
        "perform": {"notification.webhook": {"webhook_id": str(hook["id"])}},
        "activator": "action", "execution_condition_mode": mode})
    assert created.status_code == 201, created.text
    return int(hook["id"])


def test_validation_texts(quick: ZammadSandbox) -> None:
    admin = Client(quick, quick.admin_token)
    bad = admin.post("/webhooks", json={"name": "x", "endpoint": "ftp://host/x"})
    assert (bad.status_code, bad.json()["error"]) == (
        422, "The provided endpoint is invalid, no http or https protocol was specified.")
    hook = hook_and_trigger(admin, "http://127.0.0.1:9/hook")
    duplicate = admin.post("/triggers", json={
        "name": "CLOSED SELECTIVE", "condition": {"ticket.state_id": {"operator": "is", "value": ["4"]}},
        "perform": {"notification.webhook": {"webhook_id": str(hook)}}})
    assert duplicate.status_code == 422
    missing = admin.post("/triggers", json={"name": "t2", "condition": {"ticket.state_id": {
        "operator": "is", "value": ["4"]}}, "perform": {"notification.webhook": {}}})
    assert "webhook_id is missing" in missing.json()["error"]
    assert admin.delete(f"/webhooks/{hook}").status_code == 422  # a trigger uses it
    assert Client(quick, quick.agent_token).get("/webhooks").status_code == 403


def test_selective_fires_once_per_close_signed_and_retries_with_the_same_delivery(
    quick: ZammadSandbox,
) -> None:
    admin = Client(quick, quick.admin_token)
    receiver = receiving([500, 200])
    hook_and_trigger(admin, receiver.url)
    ticket = quick.create_ticket("Drucker")
    quick.close_ticket(ticket["id"])
    admin.put(f"/tickets/{ticket['id']}", json={"title": "Drucker (erledigt)"})  # no state change
    quick.webhooks.wait_idle()
    assert [status for _, status in quick.webhooks.deliveries] == [500, 200]
    (first, body), (retry, again) = receiver.seen
    assert first["X-Zammad-Delivery"] == retry["X-Zammad-Delivery"] and body == again
    assert first["X-Hub-Signature"] == "sha1=" + hmac.new(b"s3cr3t", body, hashlib.sha1).hexdigest()
    assert first["User-Agent"] == "Zammad User Agent" and first["X-Zammad-Trigger"] == "closed selective"


def test_always_fires_on_every_update_of_a_closed_ticket(quick: ZammadSandbox) -> None:
    admin = Client(quick, quick.admin_token)
    receiver = receiving([200])
    hook_and_trigger(admin, receiver.url, mode="always")
    ticket = quick.create_ticket("Drucker")
    quick.close_ticket(ticket["id"])
    admin.put(f"/tickets/{ticket['id']}", json={"title": "Drucker (erledigt)"})
    quick.webhooks.wait_idle()
    assert len(receiver.seen) == 2
