"""Issue 11, defect 4 for OTRS/Znuny: `TicketMerge` moves the merged ticket's articles and
time rows to the surviving ticket, so its time is billed there, once; the merged ticket says
where its time went. Against the OTRS sandbox on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from verified import assert_verified

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.demo import DEMO_SELLER
from addon.demo.otrs import CUSTOMERS
from addon.invoicing.render_pdf import render_pdf
from addon.models import Invoice, Ticket
from addon.settings import Settings, load_settings
from addon.sync.jobs import run_sync
from connectors import get_connector
from connectors.sandbox.otrs import OTRSSandbox

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def otrs(database_url: str, tmp_path: Path) -> Iterator[tuple[OTRSSandbox, Settings, sessionmaker[Session]]]:
    with OTRSSandbox.running(seed=False) as sandbox:
        sandbox.set_now(NOW)
        settings = load_settings({
            "HELPDESK_KIND": "otrs", "HELPDESK_URL": f"{sandbox.url}/otrs", "HELPDESK_USER": sandbox.api_login,
            "HELPDESK_PASSWORD": sandbox.api_password, "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / "data"), "PUBLIC_URL": "http://billing.test", **DEMO_SELLER,
        })
        engine = make_engine(settings.database_url)
        upgrade(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            import_customers(session, "otrs", CUSTOMERS)  # ACME pays 110.00 per hour
        yield sandbox, settings, factory
        engine.dispose()


def sync(settings: Settings, factory: sessionmaker[Session]) -> None:
    result = run_sync(factory, get_connector(settings), settings, render_pdf, now=lambda: NOW + timedelta(hours=1))
    assert result.ok, result.error


def test_merged_time_is_billed_with_the_surviving_ticket(
        otrs: tuple[OTRSSandbox, Settings, sessionmaker[Session]]) -> None:
    sandbox, settings, factory = otrs
    duplicate = sandbox.create_ticket("Drucker (Duplikat)", at=NOW)
    sandbox.add_article(duplicate, time_unit=50, activity="Remote", at=NOW + timedelta(minutes=5))
    original = sandbox.create_ticket("Drucker", at=NOW)
    sandbox.add_article(original, time_unit=20, activity="Remote", at=NOW + timedelta(minutes=10))
    sync(settings, factory)  # both open: their time is shown, not billed
    with factory() as session:
        assert {t.billing_status for t in session.execute(select(Ticket)).scalars()} == {"billable"}

    sandbox.merge_ticket(duplicate, original, at=NOW + timedelta(minutes=20))
    sandbox.set_state(original, "closed successful", at=NOW + timedelta(minutes=30))
    sandbox.set_now(NOW + timedelta(minutes=40))
    sync(settings, factory)

    with factory() as session:
        [invoice] = session.execute(select(Invoice)).scalars().all()
        assert invoice.net == Decimal("165.00")  # (50 → 60) + (20 → 30) min × 110.00, each entry once
        merged = session.execute(select(Ticket).where(Ticket.remote_id == str(duplicate.ticket_id))).scalar_one()
        assert (merged.merged_into, merged.billing_status) == ("", "not_billable")
        assert merged.attention_reason == "merged into another ticket; its time moved there"
        assert not merged.entries  # the entries moved with the articles
    assert_verified(factory, settings)
