"""The statements whose cost would grow with all the time ever booked use an index (issue 15).

At 5,000 tickets the first run spent most of its database time in three statements that read
whole tables for every ticket or customer: storing a ticket's entries (`helpdesk = ? AND
(ticket_id = ? OR remote_id IN ...)` searched the helpdesk's every entry) and the month's
entries and bookings of a customer (`coalesce(billing_customer_id, customer_id) = ?`, which no
index serves). SQLite's plan says so before the data does: no statement here may SCAN a
table or search time_entry by helpdesk alone. (PostgreSQL's planner rightly scans the tiny
tables of a test, so the plans are read on SQLite.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from addon.db import make_engine, make_session_factory, upgrade
from addon.invoicing.rating import _customer_entries, _customer_extras
from addon.models import Customer, Ticket
from addon.sync.store import upsert_entries
from connectors.base import RemoteTimeEntry

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(engine)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def plans_of(session: Session, action: Any, marker: str) -> list[list[str]]:
    """EXPLAIN QUERY PLAN of every statement containing `marker` that `action` sends."""
    statements: list[tuple[str, Any]] = []

    def grab(_conn: object, _cursor: object, statement: str, parameters: Any, *_rest: object) -> None:
        if marker in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", grab)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    assert statements, f"no statement with {marker!r} was sent"
    return [[row[-1] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + text, parameters)]
            for text, parameters in statements]


def assert_indexed(plans: list[list[str]]) -> None:
    for plan in plans:
        scans = [step for step in plan if step.startswith("SCAN ") and "CONSTANT ROW" not in step
                 and "subquery" not in step]
        assert not scans, plan
        assert not any("(helpdesk=?)" in step for step in plan), plan


def stored(session: Session) -> tuple[Customer, Ticket]:
    customer = Customer(helpdesk="zammad", remote_id="7", name="Müller GmbH")
    session.add(customer)
    session.flush()
    ticket = Ticket(helpdesk="zammad", remote_id="31001", number="31001", title="Drucker", customer_id=customer.id,
                    state="closed", closed_at=NOW, billing_status="unbilled", remote_updated_at=NOW, seen_at=NOW)
    session.add(ticket)
    session.flush()
    return customer, ticket


def test_storing_a_tickets_entries_reads_them_by_index(session: Session) -> None:
    _customer, ticket = stored(session)
    entry = RemoteTimeEntry(remote_id="900", ticket_remote_id="31001", agent="anna", minutes=Decimal(30), booked_at=NOW,
                            activity="Remote")

    plans = plans_of(session, lambda: upsert_entries(session, "zammad", ticket, [entry], NOW), "FROM time_entry")

    assert_indexed(plans)


@pytest.mark.parametrize("scope", ["month", "ticket"])
def test_rating_reads_a_customers_entries_and_bookings_by_index(session: Session, scope: str) -> None:
    customer, ticket = stored(session)
    one = ticket if scope == "ticket" else None

    assert_indexed(plans_of(session, lambda: _customer_entries(session, customer, one), "FROM time_entry JOIN ticket"))
    assert_indexed(plans_of(session, lambda: _customer_extras(session, customer, one), "FROM booked_extra JOIN ticket"))
