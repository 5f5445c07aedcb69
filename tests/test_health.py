"""/healthz and /readyz: alive without a database; ready, or 503 with every reason that holds.

One test per reason (database down, schema behind, data directory unusable, scheduler never
started or gone quiet, last run failed, helpdesk unreachable), on SQLite and PostgreSQL where
the database is involved, plus the cache that keeps probes from hammering the helpdesk.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from addon import create_app
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.health import HEARTBEAT_MAX_AGE, HelpdeskProbe, beat, request_sync
from addon.models import SchedulerHeartbeat, SyncRun
from addon.settings import Settings, load_settings

SELLER = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on: the 'helpdesk' of these tests (reachability only)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(database_url: str, data_dir: Path, helpdesk_port: int) -> Settings:
    return load_settings({"HELPDESK_KIND": "zammad", "HELPDESK_URL": f"http://127.0.0.1:{helpdesk_port}",
                          "HELPDESK_TOKEN": "t0ken-value", "DATABASE_URL": database_url,
                          "DATA_DIR": str(data_dir), **SELLER})


class Deployment:
    """A migrated database, a web app on it and the helpers to age or fail its state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.factory = make_session_factory(self.engine)
        self.app = create_app(settings)
        self.client: FlaskClient = self.app.test_client()

    def ready(self) -> tuple[int, dict[str, Any]]:
        response = self.client.get("/readyz")
        return response.status_code, response.get_json()

    def beat(self, at: datetime) -> None:
        beat(self.factory, at, at)

    def run(self, status: str, error: str | None = None) -> None:
        now = datetime.now(UTC)
        with transaction(self.factory) as session:
            session.add(SyncRun(helpdesk="zammad", started_at=now, finished_at=now, status=status,
                                counts={}, error=error))

    def close(self) -> None:
        self.app.extensions["ticketbill"].engine.dispose()
        self.engine.dispose()


@pytest.fixture
def deployment(database_url: str, tmp_path: Path, listening: int) -> Iterator[Deployment]:
    settings = settings_for(database_url, tmp_path / "data", listening)
    settings.invoice_dir.mkdir(parents=True)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    deployed = Deployment(settings)
    yield deployed
    deployed.close()


def test_ready_when_everything_holds(deployment: Deployment) -> None:
    deployment.beat(datetime.now(UTC))
    deployment.run("succeeded")
    assert deployment.ready() == (200, {"status": "ok", "checks": {
        "data_dir": "ok", "database": "ok", "schema": "ok", "scheduler": "ok", "last_run": "ok", "outbox": "ok",
        "helpdesk": "ok"}})
    assert deployment.client.get("/healthz").get_json() == {"status": "ok"}


def test_scheduler_that_never_beat_and_one_that_went_quiet(deployment: Deployment) -> None:
    status, body = deployment.ready()
    assert status == 503 and body["status"] == "degraded"
    assert body["reasons"] == ["scheduler: no heartbeat yet: start the scheduler (`ticketbill sync`, "
                               "or `ticketbill serve` without --no-scheduler)"]
    deployment.beat(datetime.now(UTC) - HEARTBEAT_MAX_AGE - timedelta(seconds=30))
    status, body = deployment.ready()
    assert status == 503
    [reason] = body["reasons"]
    assert re.fullmatch(r"scheduler: not running: last heartbeat (9\d|1\d\d) s ago from \S+:\d+ "
                        rf"\(at most {int(HEARTBEAT_MAX_AGE.total_seconds())} s expected\)", reason), reason
    deployment.beat(datetime.now(UTC))
    assert deployment.ready()[0] == 200


def test_last_run_failed_shows_its_error(deployment: Deployment) -> None:
    deployment.beat(datetime.now(UTC))
    deployment.run("failed", "polling zammad failed: helpdesk refused access (HTTP 401)")
    status, body = deployment.ready()
    assert status == 503
    [reason] = body["reasons"]
    assert reason.startswith("last_run: run ") and reason.endswith(
        "UTC: polling zammad failed: helpdesk refused access (HTTP 401)")
    deployment.run("succeeded")
    assert deployment.ready()[0] == 200


def test_helpdesk_unreachable(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    deployed = Deployment(settings_for(database_url, tmp_path / "data", port))
    try:
        deployed.beat(datetime.now(UTC))
        status, body = deployed.ready()
        assert status == 503
        assert body["reasons"] == [f"helpdesk: unreachable: connection refused at 127.0.0.1:{port}"]
    finally:
        deployed.close()


def test_helpdesk_probe_is_cached() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        clock = [1000.0]
        probe = HelpdeskProbe(f"http://127.0.0.1:{server.getsockname()[1]}", ttl=30, clock=lambda: clock[0])
        assert [probe() for _ in range(20)] == [None] * 20
        assert probe.probes == 1
        server.close()
        clock[0] += 29
        assert probe() is None and probe.probes == 1  # still cached
        clock[0] += 1
        assert probe() is not None and "connection refused" in (probe() or "")
        assert probe.probes == 2


def test_database_down(tmp_path: Path, listening: int) -> None:
    port = free_port()
    deployed = Deployment(settings_for(f"postgresql+psycopg://billing:s3cret-pw@127.0.0.1:{port}/x",
                                       tmp_path / "data", listening))
    try:
        assert deployed.client.get("/healthz").status_code == 200  # alive without a database
        status, body = deployed.ready()
        assert status == 503
        assert body["checks"]["helpdesk"] == "ok"
        [reason] = [r for r in body["reasons"] if r.startswith("database: ")]
        assert f"port {port} failed: Connection refused" in reason
        assert "s3cret-pw" not in str(body)
        assert "scheduler" not in body["checks"]  # unknown while the database is down
    finally:
        deployed.app.extensions["ticketbill"].engine.dispose()


def test_schema_behind_the_code(database_url: str, tmp_path: Path, listening: int) -> None:
    deployed = Deployment(settings_for(database_url, tmp_path / "data", listening))
    try:
        status, body = deployed.ready()
        assert status == 503
        [reason] = body["reasons"]
        assert reason.startswith("schema: ") and "migration(s) pending (0001, 0002, " in reason
        assert reason.endswith("): run `ticketbill init`")
    finally:
        deployed.close()


def test_data_directory_that_cannot_hold_invoices(tmp_path: Path, listening: int) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    database = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    deployed = Deployment(settings_for(f"sqlite:///{database}", blocker / "data", listening))
    try:
        deployed.beat(datetime.now(UTC))
        status, body = deployed.ready()
        assert status == 503
        assert body["reasons"] == [f"data_dir: not a directory: {blocker} (DATA_DIR; invoices cannot be stored)"]
    finally:
        deployed.close()


def test_a_pushed_close_reaches_a_scheduler_in_another_process(deployment: Deployment) -> None:
    """`serve --no-scheduler` leaves the request in the heartbeat row; the next beat takes it."""
    now = datetime.now(UTC)
    assert request_sync(deployment.factory, now) is False  # no scheduler ever beat: nobody to ask
    started = now - timedelta(hours=1)
    assert beat(deployment.factory, now, started) is None
    assert request_sync(deployment.factory, now + timedelta(seconds=1)) is True
    assert beat(deployment.factory, now + timedelta(seconds=15), started) == now + timedelta(seconds=1)
    assert beat(deployment.factory, now + timedelta(seconds=30), started) is None  # taken once
    with deployment.factory() as session:
        row = session.get(SchedulerHeartbeat, "sync")
        assert row is not None and row.started_at == started and row.beat_at == now + timedelta(seconds=30)
