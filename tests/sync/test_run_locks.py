"""Run locks die with their holder (issue 12): a killed run never stops billing.

The old lease row stayed held for 30 minutes after `kill -9` or a SIGTERM to `serve`, and the
killed run stayed `running` in /runs forever.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sync_fixtures import SELLER, Sidecar, closed_ticket

from addon.db import make_engine, make_session_factory
from addon.models import SyncRun
from addon.sync import runs
from addon.sync.jobs import LOCK

ROOT = Path(__file__).resolve().parents[2]


def env_file(sidecar: Sidecar, tmp_path: Path, **extra: str) -> Path:
    values = {"HELPDESK_KIND": "zammad", "HELPDESK_URL": sidecar.sandbox.url,
              "HELPDESK_TOKEN": sidecar.sandbox.admin_token, "DATABASE_URL": sidecar.settings.database_url,
              "DATA_DIR": str(sidecar.settings.data_dir), "PUBLIC_URL": "http://billing.test", **SELLER, **extra}
    path = tmp_path / "ticketbill.env"
    path.write_text("\n".join(f"{k}={v}" for k, v in values.items()), encoding="utf-8")
    return path


def ticketbill(env: Path, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "addon.cli", "--env-file", str(env), *command], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def running_run(sidecar: Sidecar, process: subprocess.Popen[str], seconds: float = 60) -> int:
    """Wait until the subprocess's run is recorded as running; its id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        with sidecar.factory() as session:
            found = session.execute(select(SyncRun.id).where(SyncRun.status == "running")).scalar()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError("the run never started")


def run_status(sidecar: Sidecar, run_id: int) -> tuple[str, str | None]:
    with sidecar.factory() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        return run.status, run.error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_killed_with_sigkill_releases_its_lock(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    closed_ticket(sb, "Nach dem Absturz", 1, [(30, 3, 1)])
    sb.delay_next(count=1, seconds=30, path="/tickets/search")  # the run hangs in its poll
    process = ticketbill(env_file(sidecar, tmp_path), "sync", "--once")
    killed = running_run(sidecar, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    sb.clear_faults()

    result = sidecar.run()  # at once, not 30 minutes later

    assert not result.skipped, result.error
    assert result.ok, result.error
    assert result.counts["invoiced"] == 1
    status, error = run_status(sidecar, killed)
    assert status == "aborted"
    assert "ended before it finished" in (error or "")


def test_the_lock_excludes_a_second_holder_and_is_free_after_release(sidecar: Sidecar) -> None:
    first = runs.acquire_lock(sidecar.factory, LOCK)
    assert first is not None
    try:
        assert runs.acquire_lock(sidecar.factory, LOCK) is None
        assert sidecar.run().skipped
    finally:
        first.release()
    again = runs.acquire_lock(sidecar.factory, LOCK)
    assert again is not None
    again.release()


def test_sigterm_to_serve_mid_run_aborts_the_run_and_frees_the_lock(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    closed_ticket(sb, "Beim Neustart", 1, [(30, 3, 1)])
    sb.delay_next(count=1, seconds=30, path="/tickets/search")
    process = ticketbill(env_file(sidecar, tmp_path), "serve", "--port", str(free_port()))
    stopped = running_run(sidecar, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    sb.clear_faults()

    status, error = run_status(sidecar, stopped)
    assert status == "aborted"
    assert "SIGTERM" in (error or "")
    result = sidecar.run()
    assert not result.skipped and result.ok, result.error
    assert result.counts["invoiced"] == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_advisory_locks_of_two_schemas_do_not_collide(database_url: str) -> None:
    """Two installations (or test schemas) on one PostgreSQL server each hold their own lock."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    other = make_engine(database_url.rsplit("%3D", 1)[0] + f"%3D{schema}")
    with other.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    mine = make_engine(database_url)
    try:
        held = runs.acquire_lock(make_session_factory(mine), LOCK)
        beside = runs.acquire_lock(make_session_factory(other), LOCK)
        assert held is not None and beside is not None
        assert runs.acquire_lock(make_session_factory(mine), LOCK) is None
        held.release()
        beside.release()
    finally:
        mine.dispose()
        with other.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        other.dispose()
