"""Run records and the deployment-wide run lock.

A `SyncRun` row records each run (started, finished, counts, error). The run lock is not an
in-process lock: two sidecar processes (or a `sync --once` beside `serve`) must never bill at
the same time. Nor is it a lease in a table: a lease outlives a holder killed by `kill -9`
(issue 12: billing stopped for 30 minutes). Both locks here die with their holder:

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection kept open for
  the run; the server drops it when the connection ends, however the process ended. The key
  is derived from the lock name *and* the current database and schema, so installations (and
  concurrently running test schemas) sharing one server never block each other.
- SQLite: an exclusive `flock` on a file beside the database; the kernel releases it when the
  process dies.

A run still `running` while nobody holds the lock belongs to a process that died: the next
run to take the lock marks it `aborted` with the reason.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from addon.db import transaction
from addon.models import SyncRun

log = logging.getLogger(__name__)

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
ABORTED = "aborted"


@dataclass
class RunLock:
    """A held run lock; `release()` gives it back (the OS or the server does it on death)."""

    name: str
    connection: Connection | None = None
    handle: IO[bytes] | None = None
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.connection is not None:
            try:
                self.connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                        {"key": _pg_key(self.connection, self.name)})
                self.connection.commit()
            except SQLAlchemyError as exc:  # a lost connection took the lock with it
                log.warning("releasing the %s lock: %s", self.name, exc)
            finally:
                self.connection.close()  # ending the session frees the lock even if the unlock failed
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def _engine(factory: sessionmaker[Session]) -> Engine:
    bind = factory.kw.get("bind")
    assert isinstance(bind, Engine), "the session factory must be bound to an engine"
    return bind


def _pg_key(connection: Connection, name: str) -> int:
    """A signed 64-bit advisory key from the lock name, database and schema."""
    database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.sha256(f"ticketbill\x1f{database}\x1f{schema}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_path(engine: Engine, name: str) -> Path | None:
    """The SQLite lock file beside the database; None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.{name}.lock")


_memory_locks: dict[str, threading.Lock] = {}


def acquire_lock(factory: sessionmaker[Session], name: str) -> RunLock | None:
    """Take the named lock without waiting; None when another holder has it."""
    engine = _engine(factory)
    if engine.dialect.name == "postgresql":
        connection = engine.connect()
        try:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                       {"key": _pg_key(connection, name)}).scalar_one()
            connection.commit()  # the session keeps the lock; no transaction stays open
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return None
        return RunLock(name, connection=connection)
    path = lock_path(engine, name)
    if path is None:  # only this process sees an in-memory database
        lock = _memory_locks.setdefault(name, threading.Lock())
        return RunLock(name) if lock.acquire(blocking=False) else None
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return RunLock(name, handle=handle)


def mark_orphans(factory: sessionmaker[Session], now: datetime) -> list[int]:
    """Mark runs left `running` by a dead process `aborted`; call only while holding the lock.

    Holding the deployment-wide lock proves that no other run is alive, so every `running`
    row is an orphan (killed, crashed, power lost). Returns their ids.
    """
    with transaction(factory) as session:
        orphans = session.execute(select(SyncRun).where(SyncRun.status == "running")).scalars().all()
        for run in orphans:
            run.status = ABORTED
            run.finished_at = now
            run.error = ("aborted: the process running it ended before it finished (killed or crashed); "
                         "everything it committed stays, the next run continues")
        return [run.id for run in orphans]


def start_run(factory: sessionmaker[Session], helpdesk: str, now: datetime) -> int:
    with transaction(factory) as session:
        run = SyncRun(helpdesk=helpdesk, started_at=now, status="running", counts={})
        session.add(run)
        session.flush()
        return run.id


def finish_run(
    factory: sessionmaker[Session], run_id: int, now: datetime, counts: dict[str, int], error: str | None
) -> SyncRun:
    """Close the run: `failed` with the first error line, else `succeeded`. Never both."""
    with transaction(factory) as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        run.finished_at = now
        run.counts = dict(counts)
        run.error = error
        run.status = "failed" if error else "succeeded"
        return run


@dataclass
class _Active:
    factory: sessionmaker[Session]
    lock: RunLock


#: the runs of this process in progress, for `abort_active` (a SIGTERM to `serve`)
_active: dict[int, _Active] = {}
_active_guard = threading.Lock()


def enter(run_id: int, factory: sessionmaker[Session], lock: RunLock) -> None:
    with _active_guard:
        _active[run_id] = _Active(factory, lock)


def leave(run_id: int) -> None:
    with _active_guard:
        _active.pop(run_id, None)


def running_here() -> bool:
    with _active_guard:
        return bool(_active)


def abort_active(reason: str, now: datetime) -> list[int]:
    """Mark this process's runs `aborted` with `reason` and release their locks.

    For a process about to end mid-run (SIGTERM): the run says why it stopped at once, and
    the next run need not wait for anything. Returns the aborted run ids.
    """
    with _active_guard:
        active = dict(_active)
        _active.clear()
    for run_id, each in active.items():
        with transaction(each.factory) as session:
            run = session.get(SyncRun, run_id)
            if run is not None and run.status == "running":
                run.status, run.finished_at, run.error = ABORTED, now, f"aborted: {reason}"
        each.lock.release()
    return list(active)
