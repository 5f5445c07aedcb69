"""Bad input and a failing helpdesk: one clear message, nothing half-written, the next run recovers."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sync_fixtures import SELLER, Sidecar, closed_ticket, make_settings

from addon.models import Invoice, SyncCursor, SyncRun, Ticket
from addon.sync.jobs import STREAM
from addon.sync.scheduler import _scheduled_run
from connectors.zammad import ZammadConnector

REMOTE = 1


def invoices(sidecar: Sidecar) -> int:
    with sidecar.factory() as session:
        return session.execute(select(func.count()).select_from(Invoice)).scalar_one()


def cursor(sidecar: Sidecar) -> object:
    with sidecar.factory() as session:
        row = session.get(SyncCursor, ("zammad", STREAM))
        return row.value if row else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_errors_fail_the_run_and_the_next_run_recovers(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    closed_ticket(sb, "Drucker", 1, [(30, 3, REMOTE)])
    sb.fail_next(count=20, status=503, path="/tickets/search")

    failed = sidecar.run()

    assert not failed.ok
    assert "polling zammad failed" in (failed.error or "")
    assert "503" in (failed.error or "")
    assert invoices(sidecar) == 0
    assert cursor(sidecar) is None
    with sidecar.factory() as session:
        run = session.get(SyncRun, failed.run_id)
        assert run is not None and run.status == "failed" and run.finished_at is not None

    sb.clear_faults()
    recovered = sidecar.run()
    assert recovered.ok, recovered.error
    assert invoices(sidecar) == 1


def test_malformed_entries_keep_the_cursor_before_that_ticket(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    first = closed_ticket(sb, "Erstes", 1, [(30, 3, REMOTE)])
    closed_ticket(sb, "Zweites", 1, [(30, 3, REMOTE)])
    sb.malformed_next(count=10, path=f"/tickets/{first}/time_accountings")

    result = sidecar.run()

    assert not result.ok
    assert "malformed JSON" in (result.error or "")
    assert invoices(sidecar) == 1  # the other ticket is billed; the run went on
    assert cursor(sidecar) is None  # but the cursor did not pass the unread ticket

    sb.clear_faults()
    assert sidecar.run().ok
    assert invoices(sidecar) == 2


def test_ticket_deleted_between_search_and_fetch(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    gone = closed_ticket(sb, "Weg", 1, [(30, 3, REMOTE)])
    closed_ticket(sb, "Da", 1, [(30, 3, REMOTE)])
    sb.vanish_next(gone, path=f"/tickets/{gone}/time_accountings")

    result = sidecar.run()

    assert result.ok, result.error
    assert result.counts["tickets_vanished"] == 1
    assert invoices(sidecar) == 1


def test_one_404_on_the_time_entries_does_not_lose_the_ticket(sidecar: Sidecar, tmp_path: Path) -> None:
    """Issue 12: a 404 on one ticket's time entries counted it "vanished", the cursor passed it
    and its minutes were never stored. The ticket exists, so it is flagged and read again."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    flaky = closed_ticket(sb, "Einmal 404", 1, [(115, 3, REMOTE)])
    closed_ticket(sb, "Danach", 1, [(30, 3, REMOTE)])
    sb.fail_next(count=1, status=404, path=f"/tickets/{flaky}/time_accountings")

    first = sidecar.run()

    assert first.counts.get("tickets_vanished", 0) == 0
    assert invoices(sidecar) == 1
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(flaky))).scalar_one()
        assert ticket.billing_status == "needs_attention"
        assert "read again on the next run" in (ticket.attention_reason or "")

    second = sidecar.run()

    assert second.ok, second.error
    assert invoices(sidecar) == 2
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(flaky))).scalar_one()
        assert ticket.billing_status == "invoiced"
        assert sum(e.minutes for e in ticket.entries) == 115


def test_a_ticket_dated_in_the_future_does_not_hide_later_tickets(sidecar: Sidecar, tmp_path: Path) -> None:
    """Issue 12: one `updated_at` three days ahead moved the cursor there, and tickets closed
    afterwards were never polled. The cursor stops at the helpdesk's own time (its Date)."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    present = sb.now()
    sb.set_now(present + timedelta(days=3))
    closed_ticket(sb, "Aus der Zukunft", 1, [(30, 3, REMOTE)])
    sb.set_now(present)

    assert sidecar.run().ok
    stored = cursor(sidecar)
    assert isinstance(stored, datetime) and stored <= present

    closed_ticket(sb, "Später geschlossen", 1, [(45, 3, REMOTE)])
    assert sidecar.run().ok
    assert invoices(sidecar) == 2


def test_a_cursor_in_the_future_is_rewound(sidecar: Sidecar, tmp_path: Path) -> None:
    """A cursor stored in the future by an older version is moved back to now, not trusted."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    with sidecar.factory.begin() as session:
        session.add(SyncCursor(helpdesk="zammad", stream=STREAM, value=datetime.now(UTC) + timedelta(days=3)))
    sb.set_now(datetime.now(UTC))
    closed_ticket(sb, "Nach dem Fehler", 1, [(30, 3, REMOTE)])
    assert sidecar.run().ok
    assert invoices(sidecar) == 1
    stored = cursor(sidecar)
    assert isinstance(stored, datetime) and stored <= sb.now()


def test_bad_token_gives_one_clear_error(sidecar: Sidecar) -> None:
    bad = ZammadConnector(sidecar.sandbox.url, token="wrong-token-123")
    sidecar.connector = bad
    result = sidecar.run()
    assert not result.ok
    assert "Can't find User for Token" in (result.error or "")
    assert "wrong-token-123" not in (result.error or "")


def test_unreachable_helpdesk_and_the_scheduler_keeps_going(
    sidecar: Sidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(sidecar.sandbox, sidecar.settings.database_url, tmp_path / "data")
    down = settings.__class__(**{**settings.__dict__, "helpdesk_url": f"http://127.0.0.1:{free_port()}"})
    with caplog.at_level(logging.ERROR):
        _scheduled_run(down)
        _scheduled_run(down)
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2
    assert "unreachable" in failures[0].getMessage()
    with sidecar.factory() as session:
        statuses = session.execute(select(SyncRun.status)).scalars().all()
        assert statuses == ["failed", "failed"]
        assert session.execute(select(func.count()).select_from(Ticket)).scalar_one() == 0


def test_cli_sync_once_exits_nonzero_when_the_helpdesk_is_down(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    port = free_port()
    values = {
        "HELPDESK_KIND": "zammad",
        "HELPDESK_URL": f"http://127.0.0.1:{port}",
        "HELPDESK_TOKEN": "t0ken-value",
        "DATA_DIR": str(tmp_path / "data"),
        **SELLER,
    }
    env_file.write_text("\n".join(f"{k}={v}" for k, v in values.items()), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "addon.cli", "--env-file", str(env_file), "sync", "--once"],
        capture_output=True, text=True, timeout=120, check=False, env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"helpdesk unreachable: connection refused at 127.0.0.1:{port} (HELPDESK_URL=http://127.0.0.1:{port})"
    ]
