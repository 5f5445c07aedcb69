"""A store that stays right when two runs overlap anyway (issue 12, forced overlap).

With locks that die with their holder two runs cannot overlap through the lock, but a lease
that expired mid-run left 24 invoiced tickets `not_billable` "closed without booked time",
notes quoting raw SQL, and a run crashed on `ticket_helpdesk_remote_id_key`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sync_fixtures import Sidecar, closed_ticket

from addon.invoicing.render_pdf import render_pdf
from addon.models import Outbox, Ticket
from addon.sync import jobs
from addon.sync.store import upsert_ticket
from connectors.base import RemoteCustomer, RemoteTicket

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@POSTGRESQL
def test_a_stale_copy_never_turns_an_invoiced_ticket_not_billable(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    remote = closed_ticket(sb, "Doppelt gesehen", 1, [(30, 3, 1)])
    jobs.collect(sidecar.factory, sidecar.connector, lambda: datetime.now(UTC), Counter(), [])  # stored, unbilled
    with sidecar.factory() as late:  # the overlapping run read the ticket before the other billed it
        stale = late.execute(select(Ticket).where(Ticket.remote_id == str(remote))).scalar_one()
        assert stale.billing_status == "unbilled"
        late.commit()
        assert sidecar.run().counts["invoiced"] == 1  # the other run invoices it meanwhile
        outcome = jobs.bill_ticket(late, sidecar.settings, render_pdf, stale, datetime.now(UTC))
        late.commit()
    assert outcome == "already_invoiced"
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(remote))).scalar_one()
        assert ticket.billing_status == "invoiced"


@POSTGRESQL
def test_two_transactions_storing_one_new_ticket_do_not_crash(sidecar: Sidecar) -> None:
    remote = RemoteTicket(remote_id="777", number="31777", title="Zweimal", state="closed",
                          customer=RemoteCustomer("1", "Bäckerei Hansen"), closed_at=datetime.now(UTC),
                          updated_at=datetime.now(UTC))
    now = datetime.now(UTC)
    found: list[int] = []
    with sidecar.factory() as first:
        mine = upsert_ticket(first, "zammad", remote, now)  # inserted, not yet committed

        def second() -> None:
            with sidecar.factory() as other:
                found.append(upsert_ticket(other, "zammad", remote, now).id)  # waits on the key, then collides
                other.commit()

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        first.commit()
        thread.join(timeout=30)
        assert found == [mine.id]


def test_a_database_error_never_reaches_the_helpdesk_note(
    sidecar: Sidecar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    remote = closed_ticket(sb, "Kaputt", 1, [(30, 3, 1)])

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise IntegrityError("INSERT INTO invoice (number, customer_id) VALUES (%(number)s, %(customer_id)s)",
                             {"number": "RE-2026-00001", "customer_id": 1},
                             Exception('duplicate key value violates unique constraint "invoice_series_number_key"'))

    monkeypatch.setattr(jobs, "issue_invoice", refuse)
    result = sidecar.run()

    assert result.counts["billing_failed"] == 1
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(remote))).scalar_one()
        notes = [row.payload.get("note_html", "") for row in session.execute(
            select(Outbox).where(Outbox.ticket_id == ticket.id)).scalars()]
    assert ticket.billing_status == "needs_attention"
    assert "database error (IntegrityError" in (ticket.attention_reason or "")
    for text in [ticket.attention_reason or "", *notes, *[n["body"] for n in sidecar.notes(remote)]]:
        assert "INSERT" not in text and "RE-2026-00001" not in text and "SQL" not in text
    assert "INSERT" not in (result.error or "")
