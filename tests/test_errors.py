"""Exception texts that reach people (run records, /runs, helpdesk notes, needs-attention
reasons) name the cause, never the SQL with its parameters (issue 12)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from addon.db import make_session_factory, transaction
from addon.errors import describe_error
from addon.models import Outbox, Ticket
from addon.settings import load_settings
from addon.sync import jobs
from connectors.base import ConnectorError

NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
SECRET_VALUE = "title-parameter-4711"


def _ticket(**values: Any) -> dict[str, Any]:
    return {"helpdesk": "api", "remote_id": "1", "number": "T-1", "title": "Drucker", "state": "closed",
            "closed_at": NOW, "remote_updated_at": NOW, "seen_at": NOW, "billing_status": "unbilled",
            "status_version": 0, "tags": [], **values}


def _integrity_error(engine: Engine) -> IntegrityError:
    """A real one from the backend: the second ticket with the same helpdesk id."""
    with transaction(make_session_factory(engine)) as session:
        session.execute(insert(Ticket).values(**_ticket()))
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(insert(Ticket).values(**_ticket(title=SECRET_VALUE)))
    return caught.value


def test_a_database_error_is_described_by_its_kind_and_table(engine: Engine) -> None:
    exc = _integrity_error(engine)
    assert SECRET_VALUE in str(exc) and "INSERT INTO ticket" in str(exc)  # what used to be shown
    line = describe_error(exc)
    assert line.startswith("database error (IntegrityError on ticket")
    assert SECRET_VALUE not in line and "INSERT" not in line and "\n" not in line


def test_other_errors_keep_their_first_line_without_secrets() -> None:
    assert describe_error(ConnectorError("Zammad answered HTTP 503")) == "Zammad answered HTTP 503"
    line = describe_error(ValueError("cannot reach postgresql://billing:pw-secret@db.example.com/x\nmore"))
    assert line == "ValueError: cannot reach postgresql://billing:***@db.example.com/x"


def test_a_database_error_while_billing_leaves_no_sql_in_the_note_or_the_run(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: notes in the helpdesk and /runs quoted raw SQL with its parameters."""
    exc = _integrity_error(engine)
    factory = make_session_factory(engine)
    settings = load_settings({
        "HELPDESK_KIND": "api", "PUSH_API_TOKEN": "push-token-0123456789abcdef", "DATA_DIR": str(tmp_path),
        "SELLER_NAME": "N", "SELLER_STREET": "S", "SELLER_POSTCODE": "1", "SELLER_CITY": "C",
        "SELLER_TAX_NUMBER": "1", "SELLER_IBAN": "DE89370400440532013000",
    })

    def failing(*_args: Any) -> str:
        raise exc

    monkeypatch.setattr(jobs, "bill_ticket", failing)
    errors: list[str] = []
    counts: Counter[str] = Counter()
    jobs.bill_pending(factory, settings, lambda *_a: b"", set(), lambda: NOW, counts, errors)

    assert counts["billing_failed"] == 1
    with factory() as session:
        reason = session.execute(select(Ticket.attention_reason)).scalar_one()
        notes = [str(row.payload) for row in session.execute(select(Outbox)).scalars()]
    shown = [reason, *errors, *notes]
    assert reason == "billing failed: " + describe_error(exc)
    assert any("billing failed: database error (IntegrityError on ticket" in text for text in notes)
    for text in shown:
        assert SECRET_VALUE not in text and "INSERT" not in text and "[SQL" not in text
