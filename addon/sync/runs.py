"""Run records and the deployment-wide job lock.

A `SyncRun` row records each run (started, finished, counts, error). The job lock is a row
with a lease in the database, not an in-process lock: two sidecar processes (or a `sync
--once` beside `serve`) must never bill at the same time.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from addon.db import transaction
from addon.models import JobLock, SyncRun

HOLDER = f"{socket.gethostname()}:{os.getpid()}"


def acquire_lock(factory: sessionmaker[Session], name: str, now: datetime, lease: timedelta) -> bool:
    """Take the named lock unless another holder's lease is still running."""
    with transaction(factory) as session:
        taken = session.execute(
            update(JobLock)
            .where(JobLock.name == name, JobLock.expires_at < now)
            .values(holder=HOLDER, expires_at=now + lease)
        ).rowcount
        if taken:
            return True
    try:
        with transaction(factory) as session:
            session.execute(insert(JobLock).values(name=name, holder=HOLDER, expires_at=now + lease))
        return True
    except IntegrityError:
        return False


def release_lock(factory: sessionmaker[Session], name: str) -> None:
    with transaction(factory) as session:
        session.execute(delete(JobLock).where(JobLock.name == name, JobLock.holder == HOLDER))


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
