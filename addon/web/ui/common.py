"""What every page blueprint shares: the database session, settings, the clock, htmx helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import current_app, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from addon.db import transaction
from addon.settings import Settings


def settings() -> Settings:
    return current_app.extensions["ticketbill"].settings  # type: ignore[no-any-return]


@contextmanager
def reading() -> Iterator[Session]:
    """A session for reading; nothing is committed.

    On PostgreSQL the page's transaction runs without JIT: the overview's aggregates have cost
    estimates above `jit_above_cost`, and compiling them takes longer than running them.
    """
    with current_app.extensions["ticketbill"].sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL jit = off"))
        yield session


@contextmanager
def writing() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with transaction(current_app.extensions["ticketbill"].sessions) as session:
        yield session


def now() -> datetime:
    return datetime.now(UTC)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def renderer():  # type: ignore[no-untyped-def]
    """The deployment's PDF renderer (the same one the CLI and the sync use)."""
    from addon.invoicing.issue import pdf_renderer

    return pdf_renderer(settings())


def deliver(actor: str) -> dict[str, int]:
    """Send the e-mails queued by an issue/cancel/resend, after its commit (as the CLI does)."""
    from addon.sync.writeback import perform_deliveries

    return perform_deliveries(current_app.extensions["ticketbill"].sessions, settings(), now(), actor=actor)
