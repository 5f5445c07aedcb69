"""The change log lets an idle run skip the monthly pass (issue 15) — and never skip one that
would decide differently: a change by anyone else, a failed customer, a new day or period."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sync_fixtures import Sidecar
from test_contracts_helpers import run_at
from test_monthly_flow import NOVEMBER, invoices, october_retainer

from addon import change_log
from addon.contracts import periods
from addon.db import transaction
from addon.models import BillingChange, Customer, Outbox, SyncRun, Ticket, TimeEntry


@pytest.fixture
def ratings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The customers the monthly pass rated, in order."""
    rated: list[str] = []
    original = periods.rate_customer

    def spy(session, settings, customer, **kwargs):  # type: ignore[no-untyped-def]
        rated.append(customer.name)
        return original(session, settings, customer, **kwargs)

    monkeypatch.setattr(periods, "rate_customer", spy)
    monkeypatch.setattr(periods, "predicted_snapshots", lambda *_args: iter(()))  # the pass's ratings only
    yield rated


def log_rows(sidecar: Sidecar) -> int:
    with sidecar.factory() as session:
        return session.execute(select(func.count(BillingChange.id))).scalar_one()


def test_idle_run_after_the_monthly_invoice_rates_nobody(sidecar: Sidecar, tmp_path: Path,
                                                         ratings: list[str]) -> None:
    october_retainer(sidecar, tmp_path)
    assert run_at(sidecar, NOVEMBER).counts["period_invoiced"] == 1
    assert len(ratings) == 1

    idle = run_at(sidecar, NOVEMBER + timedelta(minutes=5))

    assert idle.ok, idle.error
    assert idle.counts["period_unchanged"] == 1 and "period_nothing_due" not in idle.counts
    assert len(ratings) == 1  # on the code before issue 15's change log: rated again
    assert len(invoices(sidecar)) == 1


def test_a_change_by_someone_else_rates_again(sidecar: Sidecar, tmp_path: Path, ratings: list[str]) -> None:
    october_retainer(sidecar, tmp_path)
    run_at(sidecar, NOVEMBER)
    run_at(sidecar, NOVEMBER + timedelta(minutes=5))
    assert len(ratings) == 1
    with transaction(sidecar.factory) as session:  # an admin, in the web UI's process
        customer = session.execute(select(Customer)).scalars().first()
        assert customer is not None
        customer.name = customer.name + " (neu)"

    again = run_at(sidecar, NOVEMBER + timedelta(minutes=10))

    assert again.counts["period_nothing_due"] == 1 and len(ratings) == 2
    assert run_at(sidecar, NOVEMBER + timedelta(minutes=15)).counts["period_unchanged"] == 1
    assert len(ratings) == 2


def test_a_new_day_or_new_settings_rate_again(sidecar: Sidecar, tmp_path: Path, ratings: list[str]) -> None:
    october_retainer(sidecar, tmp_path)
    run_at(sidecar, NOVEMBER)
    run_at(sidecar, datetime(2026, 11, 2, 22, 59, tzinfo=UTC))  # 23:59 in Berlin: the same day
    assert len(ratings) == 1
    run_at(sidecar, datetime(2026, 11, 2, 23, 1, tzinfo=UTC))  # 00:01 on 3 November in Berlin
    assert len(ratings) == 2
    sidecar.settings = type(sidecar.settings)(**{**vars(sidecar.settings), "invoice_language": "en"})
    run_at(sidecar, datetime(2026, 11, 2, 23, 6, tzinfo=UTC))
    assert len(ratings) == 3


def test_a_change_committed_during_the_pass_is_not_skipped_later(
        sidecar: Sidecar, tmp_path: Path, ratings: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    october_retainer(sidecar, tmp_path)
    original = periods.invoice_period

    def with_a_concurrent_change(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcomes = original(*args, **kwargs)

        def team_lead() -> None:  # another thread: not the pass's writer
            with transaction(sidecar.factory) as session:
                session.execute(update(TimeEntry).values(not_billed_reason="kulanz"))

        worker = threading.Thread(target=team_lead)
        worker.start()
        worker.join()
        return outcomes

    monkeypatch.setattr(periods, "invoice_period", with_a_concurrent_change)
    run_at(sidecar, NOVEMBER)
    monkeypatch.setattr(periods, "invoice_period", original)

    assert "period_unchanged" not in run_at(sidecar, NOVEMBER + timedelta(minutes=5)).counts
    assert len(ratings) == 2


def test_a_failed_customer_is_tried_again(sidecar: Sidecar, tmp_path: Path, ratings: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    october_retainer(sidecar, tmp_path)
    original_issue = periods.issue_invoice

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(periods, "issue_invoice", broken)
    assert run_at(sidecar, NOVEMBER).counts["period_failed"] == 1
    monkeypatch.setattr(periods, "issue_invoice", original_issue)

    again = run_at(sidecar, NOVEMBER + timedelta(minutes=5))

    assert again.counts["period_invoiced"] == 1 and len(invoices(sidecar)) == 1
    assert len(ratings) == 2


def test_what_the_log_counts(sidecar: Sidecar) -> None:
    """One row per committed transaction that writes a billing input; nothing for bookkeeping,
    a ticket's own-write version, a rollback or a value set to what it was."""
    factory = sidecar.factory
    start = log_rows(sidecar)
    with transaction(factory) as session:
        session.add(SyncRun(helpdesk="zammad", started_at=datetime.now(UTC)))
    assert log_rows(sidecar) == start
    with transaction(factory) as session:
        session.add(Ticket(helpdesk="zammad", remote_id="900", number="900", title="T", state="open",
                           remote_updated_at=datetime.now(UTC), seen_at=datetime.now(UTC)))
        session.flush()
        session.add(TimeEntry(helpdesk="zammad", ticket_id=session.execute(select(Ticket.id)).scalar_one(),
                              remote_id="1", agent="anna", minutes=30, booked_at=datetime.now(UTC),
                              content_hash="x"))
    assert log_rows(sidecar) == start + 1  # two flushes, one transaction, one row
    with transaction(factory) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        ticket.written_updated_at = datetime.now(UTC)
        ticket.remote_updated_at = datetime.now(UTC)
        ticket.title = "T"  # unchanged value
    assert log_rows(sidecar) == start + 1
    with pytest.raises(RuntimeError), transaction(factory) as session:
        session.execute(select(Ticket)).scalar_one().category = "warranty"
        session.flush()
        raise RuntimeError("rolled back")
    assert log_rows(sidecar) == start + 1
    with transaction(factory) as session:
        session.execute(delete(Outbox))
    assert log_rows(sidecar) == start + 1
    with change_log.writing_as("pass:test"), transaction(factory) as session:
        session.execute(update(TimeEntry).values(minutes=45))
    with factory() as session:
        assert log_rows(sidecar) == start + 2
        assert session.execute(select(BillingChange.writer).order_by(BillingChange.id.desc())).scalars().first() \
            == "pass:test"
        assert change_log.log_state(session, excluding="pass:test") != change_log.log_state(session)


def test_a_savepoint_rolled_back_does_not_take_the_row_with_it(sidecar: Sidecar, tmp_path: Path) -> None:
    """store.py inserts keyed rows in a savepoint and takes over a concurrent duplicate: the
    transaction's other changes must still be logged."""
    sidecar.import_customers(tmp_path, [1])
    start = log_rows(sidecar)
    with transaction(sidecar.factory) as session:
        customer = session.execute(select(Customer)).scalars().first()
        assert customer is not None
        savepoint = session.begin_nested()  # a duplicate taken over: rolled back
        customer.name = customer.name + " (doppelt)"
        session.flush()
        savepoint.rollback()
        customer.name = customer.name + " (neu)"  # the change that stays
    assert log_rows(sidecar) == start + 1
