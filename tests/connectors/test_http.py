"""HttpClient against a scripted HTTP server on 127.0.0.1: retries, errors, paging, masking."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.base import AuthError, NotFound, RateLimited, RemoteError
from connectors.http import MASKING, HttpClient, MaskingFormatter, parse_retry_after

TOKEN = "s3cr3t-token-value-42"
NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


class ScriptedServer:
    """Answers each path from a queue of (status, headers, body); the last answer repeats."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict[str, str], str | bytes]]] = {}
        self.requests: list[Request] = []
        self.delay = 0.0
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def on(self, path: str, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.script[path] = [
            (s, h, b if isinstance(b, str | bytes) else json.dumps(b)) for s, h, b in answers
        ]

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data()
        self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        queue = self.script.get(request.path) or [(404, {}, json.dumps({"error": "no route"}))]
        status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        response = Response(body, status=status, headers=headers,
                            content_type="application/json; charset=utf-8")
        return response(environ, start_response)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.thread.start()
    yield scripted
    scripted.server.shutdown()
    scripted.thread.join(timeout=5)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client_for(url: str, sleeps: list[float], **kwargs: Any) -> HttpClient:
    kwargs.setdefault("max_attempts", 4)
    return HttpClient(
        url,
        headers={"Authorization": f"Token token={TOKEN}"},
        secrets=[TOKEN],
        sleep=sleeps.append,
        now=lambda: NOW,
        connect_timeout=2,
        read_timeout=2,
        **kwargs,
    )


def test_retries_503_then_succeeds_with_backoff(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (503, {}, {"error": "busy"}), (503, {}, "busy"), (200, {}, {"ok": 1}))
    client = client_for(server.url, sleeps)
    assert client.get_json("/x") == {"ok": 1}
    assert client.request_count == 3
    assert sleeps == [0.5, 1.0]
    assert server.requests[0].headers["Authorization"] == f"Token token={TOKEN}"


def test_backoff_is_capped(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (502, {}, "bad gateway"))
    client = client_for(server.url, sleeps, max_attempts=6, backoff_base=1, backoff_cap=3)
    with pytest.raises(RemoteError) as caught:
        client.get_json("/x")
    assert sleeps == [1, 2, 3, 3, 3]
    assert caught.value.status == 502
    assert "after 6 attempt(s)" in str(caught.value)


def test_retry_after_seconds_is_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (429, {"Retry-After": "7"}, {"error": "slow down"}), (200, {}, [1, 2]))
    client = client_for(server.url, sleeps)
    assert client.get_json("/x") == [1, 2]
    assert sleeps == [7.0]


def test_a_429_holds_back_the_other_threads_too(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (429, {"Retry-After": "7"}, {"error": "slow down"}), (200, {}, [1]))
    server.on("/y", (200, {}, [2]))
    client = client_for(server.url, sleeps)
    assert client.get_json("/x") == [1]  # this thread slept its Retry-After in the retry loop

    other: list[Any] = []
    worker = threading.Thread(target=lambda: other.append(client.get_json("/y")))
    worker.start()
    worker.join(timeout=10)

    assert other == [[2]]
    assert len(sleeps) == 2 and sleeps[0] == 7.0
    assert 0 < sleeps[1] <= 7.0, "another thread waits for the rest of the pause before sending"


def test_retry_after_http_date_is_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    server.on("/x", (503, {"Retry-After": later}, "maintenance"), (200, {}, {}))
    client = client_for(server.url, sleeps)
    assert client.get_json("/x") == {}
    assert sleeps == [30.0]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("12", lambda: NOW) == 12.0
    assert parse_retry_after("Mon, 02 Jun 2025 11:00:00 GMT", lambda: NOW) == 0.0
    assert parse_retry_after("soon", lambda: NOW) is None
    assert parse_retry_after(None, lambda: NOW) is None


def test_429_exhausted_raises_rate_limited(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (429, {"Retry-After": "2"}, {"error": "Too many requests"}))
    client = client_for(server.url, sleeps, max_attempts=3)
    with pytest.raises(RateLimited) as caught:
        client.get_json("/x")
    assert caught.value.retry_after == 2.0
    assert "Too many requests" in str(caught.value)
    assert client.request_count == 3
    assert sleeps == [2.0, 2.0]


def test_too_long_retry_after_gives_up_at_once(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (429, {"Retry-After": "3600"}, {"error": "quota"}))
    client = client_for(server.url, sleeps)
    with pytest.raises(RateLimited) as caught:
        client.get_json("/x")
    assert caught.value.retry_after == 3600.0
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, "Can't find User for Token"), (403, "Authentication required")],
)
def test_auth_errors_carry_helpdesk_text(
    server: ScriptedServer, sleeps: list[float], status: int, error: str
) -> None:
    server.on("/api/v1/users/me", (status, {"X-Failure": error}, {"error": error, "error_human": error}))
    client = client_for(server.url, sleeps)
    with pytest.raises(AuthError) as caught:
        client.get_json("/api/v1/users/me")
    assert error in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert client.request_count == 1


def test_404_is_not_found(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/t/9", (404, {}, {"error": "Couldn't find Ticket with 'id'=9"}))
    with pytest.raises(NotFound, match="Couldn't find Ticket"):
        client_for(server.url, sleeps).get_json("/t/9")


def test_422_is_remote_error_with_body_and_no_retry(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.on("/t", (422, {}, {"error": "already exists", "error_human": "already exists"}))
    client = client_for(server.url, sleeps)
    with pytest.raises(RemoteError) as caught:
        client.post_json("/t", {"a": 1})
    assert caught.value.status == 422
    assert "already exists" in caught.value.body
    assert client.request_count == 1
    assert sleeps == []


def test_malformed_json_is_remote_error(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (200, {}, '{"tickets": [1, 2'))
    with pytest.raises(RemoteError, match="malformed JSON") as caught:
        client_for(server.url, sleeps).get_json("/x")
    assert caught.value.status == 200


def test_empty_body_is_none(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/x", (200, {}, ""))
    assert client_for(server.url, sleeps).get_json("/x") is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_unreachable_after_retries(sleeps: list[float]) -> None:
    client = client_for(f"http://127.0.0.1:{_free_port()}", sleeps, max_attempts=3)
    with pytest.raises(RemoteError, match="unreachable") as caught:
        client.get_json(f"/otrs/Ticket?Password={TOKEN}")
    assert caught.value.status == 0
    assert TOKEN not in str(caught.value)
    assert client.request_count == 3
    assert sleeps == [0.5, 1.0]


def test_connection_refused_is_retried_even_for_a_post(sleeps: list[float]) -> None:
    client = client_for(f"http://127.0.0.1:{_free_port()}", sleeps, max_attempts=2)
    with pytest.raises(RemoteError, match="unreachable"):
        client.post_json("/x", {})
    assert client.request_count == 2


def test_read_timeout_is_unreachable(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/slow", (200, {}, {}))
    server.delay = 0.5
    client = HttpClient(server.url, read_timeout=0.1, max_attempts=2, sleep=sleeps.append)
    with pytest.raises(RemoteError, match="unreachable") as caught:
        client.get_json("/slow")
    assert caught.value.status == 0
    assert client.request_count == 2


def test_non_idempotent_write_is_not_retried_after_possible_landing(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.on("/t/1", (504, {}, "gateway timeout"), (200, {}, {"id": 1}))
    client = client_for(server.url, sleeps)
    with pytest.raises(RemoteError) as caught:
        client.put_json("/t/1", {"article": {}}, idempotent=False)
    assert caught.value.status == 504
    assert client.request_count == 1


def test_non_idempotent_write_is_retried_on_503(server: ScriptedServer, sleeps: list[float]) -> None:
    server.on("/t/1", (503, {}, "restarting"), (200, {}, {"id": 1}))
    client = client_for(server.url, sleeps)
    assert client.put_json("/t/1", {"article": {}}, idempotent=False) == {"id": 1}
    assert client.request_count == 2


def _pages(pages: list[list[dict[str, int]]]) -> Any:
    calls: list[int] = []

    def fetch(page: int) -> list[dict[str, int]]:
        calls.append(page)
        return pages[page - 1] if page <= len(pages) else []

    return fetch, calls


def test_paginate_stops_at_short_page() -> None:
    fetch, calls = _pages([[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}], [{"id": 5}]])
    items = list(HttpClient("http://127.0.0.1:9").paginate(fetch, per_page=2))
    assert [item["id"] for item in items] == [1, 2, 3, 4, 5]
    assert calls == [1, 2, 3]


def test_paginate_stops_at_empty_page() -> None:
    fetch, calls = _pages([[{"id": 1}, {"id": 2}]])
    assert len(list(HttpClient("http://127.0.0.1:9").paginate(fetch, per_page=2))) == 2
    assert calls == [1, 2]


def test_paginate_detects_a_repeated_page_over_http(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    # A server that ignores `page` returns the first page forever.
    server.on("/items", (200, {}, [{"id": 1}, {"id": 2}]))
    client = client_for(server.url, sleeps)
    items = client.paginate(lambda page: client.get_json("/items", {"page": page}), per_page=2)
    with pytest.raises(RemoteError, match="loop detected in pagination"):
        list(items)
    assert [r.args["page"] for r in server.requests] == ["1", "2"]


def test_paginate_max_pages_guard() -> None:
    client = HttpClient("http://127.0.0.1:9")
    endless = client.paginate(lambda page: [{"id": page}], per_page=1, max_pages=5)
    with pytest.raises(RemoteError, match="exceeded 5 pages"):
        list(endless)


def test_token_is_masked_in_errors_and_logs(
    server: ScriptedServer, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"error": f"bad token {TOKEN}"}
    server.on(f"/echo/{TOKEN}", (503, {}, echo), (500, {}, echo))
    client = client_for(server.url, sleeps)
    with caplog.at_level(logging.DEBUG), pytest.raises(RemoteError) as caught:
        client.get_json(f"/echo/{TOKEN}")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.body
    assert "***" in str(caught.value)
    assert caplog.records, "the retry and urllib3 debug lines should have been logged"
    client_side = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any("/echo/***" in r.getMessage() for r in client_side)
    assert all(TOKEN not in r.getMessage() for r in client_side)


def test_masking_formatter_masks_any_logger() -> None:
    MASKING.add(TOKEN)
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "token is %s", (TOKEN,), None)
    assert MaskingFormatter("%(message)s").format(record) == "token is ***"


def test_basic_auth_password_is_masked(server: ScriptedServer, sleeps: list[float]) -> None:
    password = "hunter2-basic-pass"
    server.on("/x", (401, {}, {"error": f"Invalid BasicAuth credentials for {password}"}))
    client = HttpClient(server.url, auth=("agent", password), sleep=sleeps.append)
    with pytest.raises(AuthError) as caught:
        client.get_json("/x")
    assert "Invalid BasicAuth credentials" in str(caught.value)
    assert password not in str(caught.value)
    assert server.requests[0].authorization.password == password
