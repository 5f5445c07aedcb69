"""Webhooks and triggers of the Zammad sandbox: the REST rules and the delivery.

What it imitates (shared/reference/zammad-api.md §6, checked in Zammad's source):
- `POST/GET/PUT/DELETE /webhooks` (admin.webhook) and `/triggers` (admin.trigger) with
  Zammad's validation texts: an endpoint must be http(s) with a host; a trigger name is
  unique (case-insensitive); `activator` is action|time, `execution_condition_mode`
  selective|always; `notification.webhook` needs a `webhook_id`; a webhook a trigger uses
  cannot be deleted.
- Triggers run on every ticket change (API or helper). In `selective` mode a trigger fires
  only when an attribute its condition names changed in that update (Selector::Base
  #check_changes), so a ticket's close fires "state is closed" once, a later note does not.
- Delivery as `TriggerWebhookJob` does it, after the change and outside the request: POST
  of the default payload (`{"ticket": {...}, "article": {}}`, keys sorted, owner, customer,
  organization, group, priority nested), headers `User-Agent: Zammad User Agent`,
  `X-Zammad-Trigger`, `X-Zammad-Delivery` (the job id, kept by every retry) and, with a
  `signature_token`, `X-Hub-Signature: sha1=<HMAC-SHA1 hex of the raw body>`. Anything but a
  2xx is retried, 5 attempts in all (`retry_waits`, Zammad's 10/20/30/40 s by default;
  tests pass zeros). `deliveries` records each attempt: (delivery id, status or error).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import requests

from connectors.sandbox.zammad_values import ApiError

ENDPOINT = re.compile(r"^https?://[^/\s]+")
DEFAULT_WAITS = (10.0, 20.0, 30.0, 40.0)


def check_webhook(params: dict[str, Any]) -> None:
    if not str(params.get("name") or "").strip():
        raise ApiError(422, "Name can't be blank")
    if not ENDPOINT.match(str(params.get("endpoint") or "")):
        raise ApiError(422, "The provided endpoint is invalid, no http or https protocol was "
                            "specified.")


def check_trigger(params: dict[str, Any], others: Sequence[dict[str, Any]]) -> None:
    name = str(params.get("name") or "").strip()
    if not name:
        raise ApiError(422, "Name can't be blank")
    if any(str(t["name"]).lower() == name.lower() for t in others):
        raise ApiError(422, "Name has already been taken")
    if params.get("activator", "action") not in ("action", "time"):
        raise ApiError(422, "Activator is not included in the list")
    if params.get("execution_condition_mode", "selective") not in ("selective", "always"):
        raise ApiError(422, "Execution condition mode is not included in the list")
    perform = params.get("perform") or {}
    hook = perform.get("notification.webhook") if isinstance(perform, dict) else None
    if isinstance(hook, dict) and not str(hook.get("webhook_id") or "").strip():
        raise ApiError(422, "The required 'perform' value for notification.webhook, webhook_id "
                            "is missing!")
    if not isinstance(params.get("condition"), dict) or not params["condition"]:
        raise ApiError(422, "Condition can't be blank")


def signature(token: str, body: bytes) -> str:
    """Zammad's `OpenSSL::HMAC.hexdigest('sha1', signature_token, body)` as the header value."""
    return "sha1=" + hmac.new(token.encode(), body, hashlib.sha1).hexdigest()


def changed_attributes(condition: dict[str, Any]) -> set[str]:
    """The `ticket.*` attributes a (flat or nested) condition names."""
    if "conditions" in condition and "operator" in condition:
        names: set[str] = set()
        for item in condition.get("conditions") or []:
            names |= changed_attributes(item) if "conditions" in item else {item.get("name", "")}
        return names
    return set(condition)


class Dispatcher:
    """Delivers webhook requests in a worker thread, with Zammad's retries."""

    def __init__(self, retry_waits: Sequence[float] = DEFAULT_WAITS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.retry_waits = tuple(retry_waits)
        self.sleep = sleep
        self.deliveries: list[tuple[str, int | str]] = []
        self._queue: queue.Queue[tuple[dict[str, Any], str, bytes]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def enqueue(self, webhook: dict[str, Any], trigger_name: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        with self._start:  # a worker while there is work; it ends when the queue stays empty
            self._queue.put((webhook, trigger_name, body))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="zammad-webhooks",
                                                daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every queued delivery has finished (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _work(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=0.5)
            except queue.Empty:
                with self._start:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._deliver(*job)
            finally:
                self._queue.task_done()

    def _deliver(self, webhook: dict[str, Any], trigger_name: str, body: bytes) -> None:
        delivery = str(uuid.uuid4())  # an ActiveJob job id; every retry keeps it
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Zammad User Agent", "X-Zammad-Trigger": trigger_name,
                   "X-Zammad-Delivery": delivery}
        if webhook.get("signature_token"):
            headers["X-Hub-Signature"] = signature(str(webhook["signature_token"]), body)
        auth = None
        if webhook.get("basic_auth_username"):
            auth = (str(webhook["basic_auth_username"]), str(webhook.get("basic_auth_password")))
        for attempt in range(len(self.retry_waits) + 1):
            if attempt:
                self.sleep(self.retry_waits[attempt - 1])
            try:
                answer = requests.post(str(webhook["endpoint"]), data=body, headers=headers,
                                       auth=auth, timeout=(4, 30), allow_redirects=False,
                                       verify=bool(webhook.get("ssl_verify", True)))
                self.deliveries.append((delivery, answer.status_code))
                if 200 <= answer.status_code < 300:
                    return
            except requests.RequestException as exc:
                self.deliveries.append((delivery, type(exc).__name__))
