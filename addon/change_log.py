"""Which transactions changed what billing reads, so an idle run can skip the monthly pass.

Every run rates each monthly customer's last month again before it knows that nothing is due
(about 18 statements and 40 ms a customer; 12 s at 300 customers for a poll that found
nothing). Whether the inputs changed cannot be read off the data: most tables have no version
column, and a check in code per write path would miss the next path someone adds. So the
session does it: a listener on every ORM session notes a transaction that flushes a change to
a billing input (any mapped table except the bookkeeping ones below, and for a ticket any
column except the write-back's versions) or runs a bulk INSERT/UPDATE/DELETE on one, and adds
one `BillingChange` row to that transaction just before it commits. A rolled-back transaction adds
nothing, a committed one always adds its row (same transaction), so `(count, max id)` of the
log changes whenever an input may have.

The fingerprint also holds the period, the settings, the schema revision and the local day:
any of them changing makes the pass run again. A pass names itself as the writer of its own
rows (`writing_as`): its own invoices are what it decided, so they do not invalidate it, while
anything another process committed meanwhile does. Writes outside the ORM (raw SQL) are not
seen; only the backup restore does that, and it restores the log with the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, func, inspect, select, text
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from addon.models import BillingChange, BillingPassMark, Customer, Ticket

#: Tables nothing in billing reads: runs, cursors, write-backs, logs, users, the log itself.
BOOKKEEPING = frozenset({
    "sync_cursor", "sync_run", "outbox", "audit_log", "scheduler_heartbeat", "app_user", "api_token",
    BillingChange.__tablename__, BillingPassMark.__tablename__,
})
#: Ticket columns only the poll's own-write recognition uses (i15).
TICKET_VERSIONS = frozenset({"written_updated_at", "remote_updated_at"})

_PENDING = "billing_change_pending"
_writer: ContextVar[str | None] = ContextVar("billing_change_writer", default=None)


def _changes_input(obj: object) -> bool:
    table = getattr(obj, "__tablename__", None)
    if table is None or table in BOOKKEEPING:
        return False
    if isinstance(obj, Ticket):
        state = inspect(obj)
        if state.persistent:  # a changed row: only the versions changed → not an input
            return any(attr.history.has_changes() for attr in state.attrs if attr.key not in TICKET_VERSIONS)
    return True


def _note_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if not session.info.get(_PENDING) and (
            any(_changes_input(obj) for obj in (*session.new, *session.deleted))
            or any(_changes_input(obj) for obj in session.dirty if session.is_modified(obj))):
        session.info[_PENDING] = True


def _note_bulk(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) not in BOOKKEEPING:
            state.session.info[_PENDING] = True


def _log_before_commit(session: Session) -> None:
    """The transaction's one row, added last: a savepoint rolled back inside the transaction
    (a duplicate insert taken over) can then never take the row with it. The flag outlives
    such a savepoint, which at worst logs a transaction that changed nothing."""
    session.flush()  # what is still unflushed may change an input too
    if session.info.pop(_PENDING, False):
        session.add(BillingChange(writer=_writer.get()))


def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended (not a savepoint)
        session.info.pop(_PENDING, None)


event.listen(Session, "before_flush", _note_flush)
event.listen(Session, "do_orm_execute", _note_bulk)
event.listen(Session, "before_commit", _log_before_commit)
event.listen(Session, "after_transaction_end", _forget)


@contextmanager
def writing_as(writer: str) -> Iterator[None]:
    """Log the changes committed inside this block as `writer`'s own."""
    token = _writer.set(writer)
    try:
        yield
    finally:
        _writer.reset(token)


def log_state(session: Session, *, excluding: str | None = None) -> str:
    """`count:max id` of the change log, leaving out the rows `excluding` wrote."""
    query = select(func.count(), func.max(BillingChange.id))
    if excluding is not None:
        query = query.where(BillingChange.writer.is_(None) | (BillingChange.writer != excluding))
    count, newest = session.execute(query).one()
    return f"{count}:{newest or 0}"


def prune(session: Session) -> None:
    """Keep only the newest row: the fingerprint needs the count to move, not the history."""
    newest = session.execute(select(func.max(BillingChange.id))).scalar_one_or_none()
    if newest is not None:
        session.execute(delete(BillingChange).where(BillingChange.id < newest))


def context_digest(session: Session, settings: object, period: str, now: datetime, timezone: str) -> str:
    """Everything besides the data that a pass's decisions depend on: the period, the settings,
    the code and schema, and the local day in every time zone a customer bills in."""
    zones = sorted({timezone, *(z for z in session.execute(select(Customer.timezone).distinct()).scalars() if z)})
    days = ",".join(f"{zone}={now.astimezone(ZoneInfo(zone)).date()}" for zone in zones)
    revision = ",".join(sorted(session.execute(text("SELECT version_num FROM alembic_version")).scalars()))
    return hashlib.sha256(f"{period}|{settings!r}|{revision}|{code_digest()}|{days}".encode()).hexdigest()


@cache
def code_digest() -> str:
    """The sidecar's own source: an upgrade may bill differently, so its first pass runs."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def marked(session: Session, name: str) -> str | None:
    mark = session.get(BillingPassMark, name)
    return mark.fingerprint if mark is not None else None


def mark(session: Session, name: str, fingerprint: str | None) -> None:
    """Remember what a complete pass saw (None: forget it, the next run passes again)."""
    row = session.get(BillingPassMark, name)
    if fingerprint is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(BillingPassMark(name=name, fingerprint=fingerprint))
    else:
        row.fingerprint = fingerprint
