"""Liveness, readiness and the scheduler heartbeat.

`/healthz` only says the web process answers. `/readyz` says whether the deployment does its
job, and if not, why — each reason one line an admin can act on:

- the database is unreachable, or its schema is behind the code (`ticketbill init` migrates);
- the data directory is not writable (invoices could not be stored);
- the scheduler is not running: it rewrites a heartbeat row every `HEARTBEAT_SECONDS`, and a
  web process in another unit (or on another host) sees the row grow old;
- the last finished run failed (with its error);
- the outbox has owed a write-back or an e-mail for longer than `OUTBOX_MAX_AGE`;
- the helpdesk is unreachable: a TCP connect with a short timeout, cached for
  `HELPDESK_PROBE_TTL` seconds, so a probe every few seconds never becomes a helpdesk call
  every few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from addon.db import pending_migrations, transaction
from addon.errors import database_reason, is_connection_error, probe_tcp
from addon.models import SchedulerHeartbeat, SyncRun
from addon.settings import Settings
from addon.sync.runs import HOLDER
from addon.sync.writeback import backlog

SCHEDULER = "sync"
HEARTBEAT_SECONDS = 10
#: Six missed beats: long enough for a busy SQLite writer, short enough for a pager.
HEARTBEAT_MAX_AGE = timedelta(seconds=6 * HEARTBEAT_SECONDS)
#: A pending outbox row older than this degrades readiness: past the backoff cap twice over,
#: so one failed attempt never pages anyone, a helpdesk refusing writes for hours does.
OUTBOX_MAX_AGE = timedelta(hours=2)
HELPDESK_PROBE_TTL = 30.0
HELPDESK_PROBE_TIMEOUT = 2.0
OK = "ok"


def beat(factory: sessionmaker[Session], now: datetime, started_at: datetime) -> datetime | None:
    """Write the scheduler's heartbeat. Returns (and clears) a sync request a web process left."""
    with transaction(factory) as session:
        row = session.get(SchedulerHeartbeat, SCHEDULER)
        if row is None:
            session.add(SchedulerHeartbeat(name=SCHEDULER, holder=HOLDER, started_at=started_at, beat_at=now))
            return None
        row.holder, row.started_at, row.beat_at = HOLDER, started_at, now
        requested, row.sync_requested_at = row.sync_requested_at, None
        return requested


def request_sync(factory: sessionmaker[Session], now: datetime) -> bool:
    """Ask the scheduler (maybe another process) to start the next run at its next beat.

    False when no scheduler has ever beaten: nobody would pick the request up.
    """
    with transaction(factory) as session:
        changed = session.execute(
            update(SchedulerHeartbeat).where(SchedulerHeartbeat.name == SCHEDULER).values(sync_requested_at=now)
        ).rowcount
    return bool(changed)


class HelpdeskProbe:
    """Is anything listening at HELPDESK_URL? Asked at most once per `ttl` seconds.

    Thread-safe: waitress answers probes from several threads; only one of them connects.
    """

    def __init__(
        self,
        url: str,
        ttl: float = HELPDESK_PROBE_TTL,
        timeout: float = HELPDESK_PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.ttl, self.timeout, self.clock = url, ttl, timeout, clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._result: str | None = None
        self.probes = 0

    def __call__(self) -> str | None:
        """None when reachable, else the reason (cached)."""
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.ttl:
                self.probes += 1
                self._result = probe_tcp(self.url, self.timeout)
                self._checked_at = now
            return self._result


@dataclass(frozen=True)
class Readiness:
    """Each check's result: "ok" or the reason it is not."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {result}" for name, result in self.checks.items() if result != OK]

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "ok" if self.ready else "degraded", "checks": self.checks}
        if not self.ready:
            body["reasons"] = self.reasons
        return body


def readiness(
    settings: Settings,
    engine: Engine,
    factory: sessionmaker[Session],
    helpdesk: Callable[[], str | None] | None,
    now: datetime,
) -> Readiness:
    """Run every check; the database ones only while the database answers with a current schema."""
    checks: dict[str, str] = {"data_dir": _data_dir(settings)}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        pending = pending_migrations(engine)[::-1]  # oldest first
    except SQLAlchemyError as exc:
        if not is_connection_error(exc):
            raise
        checks["database"] = database_reason(exc, settings.database_url)  # type: ignore[arg-type]
    else:
        checks["database"] = OK
        if pending:
            checks["schema"] = f"{len(pending)} migration(s) pending ({', '.join(pending)}): run `ticketbill init`"
        else:
            checks["schema"] = OK
            with factory() as session:
                checks["scheduler"] = _scheduler(session, now)
                checks["last_run"] = _last_run(session)
                checks["outbox"] = _outbox(session, now)
    if helpdesk is not None:
        reason = helpdesk()
        checks["helpdesk"] = OK if reason is None else f"unreachable: {reason}"
    return Readiness(checks)


def _data_dir(settings: Settings) -> str:
    """The invoice directory, or the nearest existing directory it would be created in."""
    existing = next(p for p in (settings.invoice_dir, settings.data_dir, *settings.data_dir.parents) if p.exists())
    if not existing.is_dir():
        return f"not a directory: {existing} (DATA_DIR; invoices cannot be stored)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"not writable: {existing} (DATA_DIR; invoices cannot be stored)"
    return OK


def _scheduler(session: Session, now: datetime) -> str:
    row = session.get(SchedulerHeartbeat, SCHEDULER)
    if row is None:
        return "no heartbeat yet: start the scheduler (`ticketbill sync`, or `ticketbill serve` without --no-scheduler)"
    age = now - row.beat_at
    if age > HEARTBEAT_MAX_AGE:
        return (f"not running: last heartbeat {int(age.total_seconds())} s ago from {row.holder} "
                f"(at most {int(HEARTBEAT_MAX_AGE.total_seconds())} s expected)")
    return OK


def _outbox(session: Session, now: datetime) -> str:
    """Degraded while a write-back or e-mail has waited longer than `OUTBOX_MAX_AGE`."""
    state = backlog(session)
    if state.oldest_pending is None or now - state.oldest_pending <= OUTBOX_MAX_AGE:
        return OK
    minutes = int((now - state.oldest_pending).total_seconds() // 60)
    return (f"{state.pending} write-back(s)/e-mail(s) pending, the oldest for {minutes} min "
            f"(last error: {state.last_error or 'none'}); `ticketbill outbox` shows them")


def _last_run(session: Session) -> str:
    run = session.execute(
        select(SyncRun).where(SyncRun.finished_at.is_not(None)).order_by(SyncRun.id.desc()).limit(1)
    ).scalar_one_or_none()
    if run is not None and run.status == "failed":
        return f"run {run.id} failed at {run.finished_at:%Y-%m-%d %H:%M:%S} UTC: {run.error}"
    return OK
