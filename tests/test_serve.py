"""`ticketbill serve` as a real process: it survives its database, and web and scheduler can
run as two processes (the two systemd units).

The database is the machine's PostgreSQL behind a TCP forwarder the test opens and closes, so
"down at start", "back", and "down later" are real connection failures, not mocks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import make_url

from addon.db import make_engine
from addon.health import HEARTBEAT_SECONDS
from addon.models import SyncRun

ROOT = Path(__file__).resolve().parents[1]
PUSH_TOKEN = "push-token-0123456789abcdef-xyz"
SELLER = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forwarder:
    """127.0.0.1:<port> → PostgreSQL, switchable: `open()` accepts, `close()` drops everything."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self._server is not server:  # closed while accept() was waking up
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the other thread
            server.close()
        with self._lock:
            for sock in self._connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._connections.clear()


def through(database_url: str, port: int) -> str:
    """The PostgreSQL URL of the conftest fixture, but connecting to `port` (the forwarder)."""
    return make_url(database_url).set(port=port).render_as_string(hide_password=False)


def start(tmp_path: Path, name: str, url: str, *command: str) -> subprocess.Popen[str]:
    env_file = tmp_path / f"{name}.env"
    values = {"HELPDESK_KIND": "api", "PUSH_API_TOKEN": PUSH_TOKEN, "DATABASE_URL": url,
              "DATA_DIR": str(tmp_path / "data"), "POLL_INTERVAL_SECONDS": "3600", **SELLER}
    env_file.write_text("\n".join(f"{k}={v}" for k, v in values.items()), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "addon.cli", "--env-file", str(env_file), *command],
                            cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = condition()
        except requests.ConnectionError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def ready(port: int) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=15)
    return response.status_code, response.json()


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return output


POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@POSTGRESQL
def test_serve_survives_its_database_down_at_start_and_later(tmp_path: Path, database_url: str) -> None:
    target = make_url(database_url)
    forwarder = Forwarder((target.host or "127.0.0.1", target.port or 5432))
    port = free_port()
    serve = start(tmp_path, "serve", through(database_url, forwarder.port), "serve", "--port", str(port))
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok, 30, "serve answers")
        status, body = ready(port)
        assert status == 503
        assert any(r.startswith("database: connection failed: ") for r in body["reasons"]), body

        forwarder.open()  # the database comes up: the next beat migrates and beats
        wait_for(lambda: ready(port)[0] == 200, 3 * HEARTBEAT_SECONDS + 10, "ready once the database is up")

        forwarder.close()  # and goes away again
        status, body = wait_for(lambda: (r := ready(port))[0] == 503 and r, 30, "unready without the database")
        assert any(r.startswith("database: ") for r in body["reasons"]), body
        assert serve.poll() is None, "serve must keep running"
    finally:
        forwarder.close()
        output = stop(serve)
    assert "Traceback" not in output, output
    assert "sync run not started: " in output or "scheduler heartbeat not written" in output, output


@POSTGRESQL
def test_web_and_scheduler_as_two_processes(tmp_path: Path, database_url: str) -> None:
    url = database_url
    port = free_port()
    web = start(tmp_path, "web", url, "serve", "--no-scheduler", "--port", str(port))
    scheduler: subprocess.Popen[str] | None = None
    engine = make_engine(url)
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok, 30, "web answers")
        status, body = ready(port)
        assert status == 503
        assert body["reasons"][0].startswith("schema: "), body  # the web process never migrates

        scheduler = start(tmp_path, "sync", url, "-v", "sync")
        wait_for(lambda: ready(port)[0] == 200, 30, "ready once the scheduler beats")

        def finished_runs() -> list[str]:  # read from the database: /runs needs a signed-in user
            with engine.connect() as connection:
                statuses = list(connection.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars())
            return [] if "running" in statuses else statuses

        assert wait_for(finished_runs, 30, "the first run") == ["succeeded"]

        # a close pushed to the web process starts a run in the scheduler process (next beat)
        closed = requests.post(f"http://127.0.0.1:{port}/api/push/v1/events/ticket-closed?source=api",
                               json={"TicketID": "100"}, timeout=10,
                               headers={"Authorization": f"Bearer {PUSH_TOKEN}"})
        assert closed.status_code < 300, closed.text
        assert wait_for(lambda: len(finished_runs()) == 2 and finished_runs(), 2 * HEARTBEAT_SECONDS + 15,
                        "the requested run (the poll interval is an hour)") == ["succeeded", "succeeded"]
    finally:
        output = stop(scheduler) if scheduler is not None else ""
        web_output = stop(web)
        engine.dispose()
    assert "sync requested at" in output, output
    assert "Traceback" not in output + web_output


@POSTGRESQL
def test_serve_keeps_running_with_an_unwritable_data_directory(database_url: str) -> None:
    """Issue 12: a data directory serve cannot write is one line at start and a reason on
    /readyz, never a traceback or an exit; sync runs are not started meanwhile."""
    with tempfile.TemporaryDirectory() as name:  # pytest's tmp_path is private to root
        base = Path(name)
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        env_file = base / "serve.env"
        values = {"HELPDESK_KIND": "api", "PUSH_API_TOKEN": PUSH_TOKEN, "DATABASE_URL": database_url,
                  "DATA_DIR": str(locked / "data"), "POLL_INTERVAL_SECONDS": "3600", **SELLER}
        env_file.write_text("\n".join(f"{k}={v}" for k, v in values.items()), encoding="utf-8")
        env_file.chmod(0o644)
        port = free_port()
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        serve = subprocess.Popen([*nobody, sys.executable, "-m", "addon.cli", "--env-file", str(env_file), "serve",
                                  "--port", str(port)], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok, 30, "serve answers")
            status, body = wait_for(lambda: (r := ready(port))[1]["checks"].get("scheduler") == "ok" and r,
                                    3 * HEARTBEAT_SECONDS, "the scheduler beats (the database is fine)")
            assert status == 503
            assert body["checks"]["data_dir"] == f"not writable: {locked} (DATA_DIR; invoices cannot be stored)"
            assert body["checks"]["database"] == "ok"
            assert serve.poll() is None, "serve must keep running"
        finally:
            output = stop(serve)
    assert "Traceback" not in output, output
    assert f"not writable: {locked / 'data'} (Permission denied" in output, output
