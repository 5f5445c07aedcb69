"""Write-backs never give up, and an uncertain one is read back before it is repeated (issue 12).

Before: outbox rows went `failed` after 8 attempts and were never tried again (the tickets
showed nothing, later runs exited 0); a PUT that the helpdesk completed after the client's
timeout, followed by a retry, left two notes for one invoice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sync_fixtures import SELLER, Sidecar, closed_ticket

from addon.cli import main
from addon.health import OUTBOX_MAX_AGE, readiness
from addon.models import Outbox
from addon.sync.writeback import WRITE_BACK, perform_pending
from addon.verify import verify
from connectors.zammad import ZammadConnector


def invoice_row(sidecar: Sidecar) -> Outbox:
    with sidecar.factory() as session:
        return session.execute(select(Outbox).where(Outbox.kind == WRITE_BACK,
                                                    Outbox.invoice_id.is_not(None))).scalar_one()


def invoice_notes(sidecar: Sidecar, ticket_id: int, marker: str) -> int:
    return sum(marker in note["body"] for note in sidecar.notes(ticket_id))


def test_a_failing_write_back_is_retried_with_backoff_forever(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Schreibschutz", 1, [(30, 3, 1)])
    sb.fail_next(count=1000, status=422, method="PUT", path=f"/tickets/{ticket}")

    first = sidecar.run()
    assert not first.ok, first.error
    row = invoice_row(sidecar)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at is not None
    assert perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC))["write_failed"] == 0  # not due

    moment = datetime.now(UTC)
    for _ in range(12):  # more than the 8 attempts after which the old outbox gave up
        moment += timedelta(hours=1, minutes=1)
        assert perform_pending(sidecar.factory, sidecar.connector, moment)["write_failed"] == 1
    row = invoice_row(sidecar)
    assert (row.status, row.attempts) == ("pending", 13)
    assert row.next_attempt_at is not None and row.next_attempt_at - moment <= timedelta(hours=1)
    report = verify(sidecar.factory, sidecar.settings)
    assert report.ok, report.lines()  # retrying is not a violation ...
    assert any("retrying (13 attempt(s)" in notice for notice in report.notices)  # ... but reported

    sb.clear_faults()
    assert perform_pending(sidecar.factory, sidecar.connector, moment + timedelta(hours=1))["written"] == 1
    row = invoice_row(sidecar)
    assert row.status == "done"
    assert invoice_notes(sidecar, ticket, row.marker) == 1


def test_a_slow_write_is_read_back_and_not_repeated(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Langsam", 1, [(30, 3, 1)])
    impatient = ZammadConnector(sb.url, token=sb.admin_token, read_timeout=0.5)
    sidecar.connector = impatient
    sb.delay_next(count=1, seconds=1.5, method="PUT", path=f"/tickets/{ticket}")  # lands after the timeout

    first = sidecar.run()
    assert first.counts["write_failed"] == 1
    row = invoice_row(sidecar)
    assert row.in_doubt and row.status == "pending"

    soon = datetime.now(UTC) + timedelta(seconds=1)
    perform_pending(sidecar.factory, impatient, soon)  # the old outbox wrote again here, while Zammad still worked
    time.sleep(2)  # the slow PUT completes
    later = datetime.now(UTC) + timedelta(hours=1)
    counts = perform_pending(sidecar.factory, impatient, later)

    assert counts["already_present"] == 1 and counts["written"] == 0
    row = invoice_row(sidecar)
    assert (row.status, row.in_doubt) == ("done", False)
    assert invoice_notes(sidecar, ticket, row.marker) == 1


def test_a_reset_after_the_write_landed_is_read_back(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Zurückgesetzt", 1, [(30, 3, 1)])
    sb.reset_next(count=1, method="PUT", path=f"/tickets/{ticket}", after=True)

    assert sidecar.run().counts["write_failed"] == 1
    assert invoice_row(sidecar).in_doubt
    counts = perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC) + timedelta(hours=1))

    assert counts["already_present"] == 1
    assert invoice_notes(sidecar, ticket, invoice_row(sidecar).marker) == 1


def test_outbox_command_and_readiness_show_the_backlog(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Rückstau", 1, [(30, 3, 1)])
    sb.fail_next(count=1000, status=422, method="PUT", path=f"/tickets/{ticket}")
    sidecar.run()
    env_file = tmp_path / "cli.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in {
        "HELPDESK_KIND": "zammad", "HELPDESK_URL": sb.url, "HELPDESK_TOKEN": sb.admin_token,
        "DATABASE_URL": sidecar.settings.database_url, "DATA_DIR": str(sidecar.settings.data_dir), **SELLER,
    }.items()), encoding="utf-8")

    shown = CliRunner().invoke(main, ["--env-file", str(env_file), "outbox"], catch_exceptions=False)
    assert shown.exit_code == 1, shown.output
    assert "1 pending" in shown.output and "oldest pending:" in shown.output and "HTTP 422" in shown.output

    engine = sidecar.factory.kw["bind"]
    fresh = readiness(sidecar.settings, engine, sidecar.factory, None, datetime.now(UTC))
    assert fresh.checks["outbox"] == "ok"
    old = readiness(sidecar.settings, engine, sidecar.factory, None, datetime.now(UTC) + OUTBOX_MAX_AGE * 2)
    assert "1 write-back(s)/e-mail(s) pending" in old.checks["outbox"]
    assert not old.ready

    again = CliRunner().invoke(main, ["--env-file", str(env_file), "outbox", "--retry-now"], catch_exceptions=False)
    assert "1 row(s) due at the next run" in again.output
    sb.clear_faults()
    assert perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC))["written"] == 1
    done = CliRunner().invoke(main, ["--env-file", str(env_file), "outbox"], catch_exceptions=False)
    assert done.exit_code == 0 and "done" in done.output


def test_a_write_back_to_a_deleted_ticket_ends_gone_and_verify_says_so(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Gelöscht", 1, [(30, 3, 1)])
    sb.fail_next(count=1000, status=422, method="PUT", path=f"/tickets/{ticket}")
    sidecar.run()
    sb.clear_faults()
    sb.fail_next(count=1, status=404, method="PUT", path=f"/tickets/{ticket}")  # a passing 404: retried

    counts = perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC) + timedelta(hours=1))
    assert counts["write_failed"] == 1 and invoice_row(sidecar).status == "pending"

    sb.delete_ticket(ticket)
    counts = perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC) + timedelta(hours=3))

    assert counts["write_gone"] == 1
    row = invoice_row(sidecar)
    assert row.status == "gone" and "no longer exists" in (row.last_error or "")
    report = verify(sidecar.factory, sidecar.settings)
    assert report.ok, report.lines()
    assert any("not written" in notice for notice in report.notices)


def test_a_ticket_waits_as_a_whole_while_one_of_its_rows_backs_off(sidecar: Sidecar, tmp_path: Path) -> None:
    """A newer status queued while an older write of the same ticket waits for its retry must
    not land first (the older one would then overwrite it): both go out together, in one PUT,
    with the newest status and both notes, once the backoff has passed."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket = closed_ticket(sb, "Reihenfolge", 1, [(30, 3, 1)])
    sb.fail_next(count=1, status=422, method="PUT", path=f"/tickets/{ticket}")
    assert sidecar.run().counts["write_failed"] == 1
    invoice = invoice_row(sidecar)
    later = "needs_attention:9:ordertest"
    with sidecar.factory() as session, session.begin():
        session.add(Outbox(kind=WRITE_BACK, ticket_id=invoice.ticket_id, marker=later, created_at=datetime.now(UTC),
                           payload={"billing_status": "needs_attention",
                                    "note_html": f"<p>Bitte prüfen</p><p><small>ticketbill ref {later}</small></p>"}))
    puts = lambda: sum(1 for m, p in list(sb.requests_seen) if m == "PUT" and p.endswith(f"/tickets/{ticket}"))  # noqa: E731
    before = puts()

    assert perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC))["written"] == 0  # not due yet
    assert puts() == before

    counts = perform_pending(sidecar.factory, sidecar.connector, datetime.now(UTC) + timedelta(hours=2))

    assert counts["written"] == 1 and puts() == before + 1
    assert sb.ticket(ticket)["billing_status"] == "needs_attention"
    assert invoice_notes(sidecar, ticket, invoice.marker) == 1 and invoice_notes(sidecar, ticket, later) == 1
    with sidecar.factory() as session:
        assert set(session.execute(select(Outbox.status).where(Outbox.kind == WRITE_BACK)).scalars()) == {"done"}
