"""Running the sync: once, on a schedule, or beside the web server.

APScheduler runs in exactly one process (the `serve` or `sync` process), never per web
worker; `max_instances=1` and `coalesce` skip a run that would overlap its predecessor, and
the run lock (addon.sync.runs, dying with its holder) keeps a second sidecar process from
running too.
A failing run is logged and recorded; the scheduler keeps going.

Beside the sync job the scheduler beats: every `HEARTBEAT_SECONDS` it rewrites its heartbeat
row (so `/readyz` of any web process can tell that it runs) and picks up a sync request a
web process left there (a close pushed to `serve --no-scheduler`). While the database is
down the beat fails with one log line and tries again; the first beat that reaches the
database migrates it, so a scheduler started before its database catches up by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from addon import health
from addon.db import make_engine, make_session_factory, migrate, migrated, upgrade
from addon.errors import describe
from addon.invoicing.issue import pdf_renderer
from addon.settings import Settings
from addon.sync import runs
from addon.sync.jobs import RunResult, run_sync

log = logging.getLogger(__name__)


def sync_once(settings: Settings) -> RunResult:
    """Migrate if needed, then one run; helpdesk trouble ends up in the result, not raised."""
    from connectors import get_connector

    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    with migrated(settings.database_url) as factory:
        return run_sync(factory, get_connector(settings), settings, pdf_renderer(settings))


def _scheduled_run(settings: Settings, heartbeat: Heartbeat | None = None) -> None:
    if heartbeat is not None and not heartbeat.ensure_migrated():
        log.error("sync run not started: the database is not reachable or not migrated yet")
        return
    try:
        result = sync_once(settings)
    except Exception as exc:  # the scheduler must survive anything a run throws
        expected = describe(exc, settings.database_url)
        if expected is None:
            log.exception("sync run crashed")
        else:
            log.error("sync run not started: %s", expected)
        return
    if result.skipped:
        log.info("sync skipped: %s", result.error)
    elif result.error:
        log.error("sync run %s failed: %s", result.run_id, result.error)
    else:
        log.info("sync run %s done: %s", result.run_id, result.counts)


class Heartbeat:
    """The scheduler's beat job: migrate once the database answers, then beat.

    The migration runs under a lock that the sync job takes too (`ensure_migrated`), so the
    beat and the first run never migrate at the same time (PostgreSQL would let both try).
    """

    def __init__(self, settings: Settings, scheduler: BackgroundScheduler) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.engine: Engine = make_engine(settings.database_url)
        self.factory = make_session_factory(self.engine)
        self.started_at = datetime.now(UTC)
        self.migrated = False
        self.failing = False
        self._migration = threading.Lock()

    def _migrate(self) -> None:
        with self._migration:
            if not self.migrated:
                upgrade(self.engine)
                self.migrated = True

    def ensure_migrated(self) -> bool:
        """Migrate once; False while the database cannot be reached (the beat logs why)."""
        try:
            self._migrate()
        except Exception as exc:
            if describe(exc, self.settings.database_url) is None:
                raise
            return False
        return True

    def __call__(self) -> None:
        now = datetime.now(UTC)
        try:
            self._migrate()
            requested = health.beat(self.factory, now, self.started_at)
        except Exception as exc:  # a beat that fails is retried at the next one
            expected = describe(exc, self.settings.database_url)
            if expected is None:
                log.exception("scheduler heartbeat crashed")
            elif not self.failing:  # one line when it starts failing, not one per beat
                log.error("scheduler heartbeat not written (retrying every %d s): %s",
                          health.HEARTBEAT_SECONDS, expected)
            self.failing = True
            return
        if self.failing:
            log.warning("scheduler heartbeat written again")
            self.failing = False
        if requested is not None:
            log.info("sync requested at %s by a web process; starting it now", requested)
            self.scheduler.modify_job("sync", next_run_time=now)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    heartbeat = Heartbeat(settings, scheduler)
    scheduler.add_job(
        heartbeat,
        "interval",
        seconds=health.HEARTBEAT_SECONDS,
        id="heartbeat",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        _scheduled_run,
        "interval",
        seconds=settings.poll_interval_seconds,
        args=[settings, heartbeat],
        id="sync",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Let a running job finish, then close the heartbeat's connections."""
    heartbeat = scheduler.get_job("heartbeat")
    scheduler.shutdown()
    if heartbeat is not None:
        heartbeat.func.engine.dispose()


def run_forever(settings: Settings) -> None:
    """`ticketbill sync` without --once: the scheduler alone, until SIGINT/SIGTERM."""
    scheduler = start_scheduler(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_scheduler(scheduler)


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM to `serve`: a run in progress is marked `aborted` and its lock released at once,
    then the process ends (everything the run committed stays; the next run continues).
    Without a run in progress the signal does what it always did."""
    aborted = runs.abort_active("stopped by SIGTERM (the service was stopped or restarted)", datetime.now(UTC))
    if aborted:
        log.warning("SIGTERM during sync run %s: marked aborted, lock released", ", ".join(map(str, aborted)))
        logging.shutdown()
        os._exit(128 + signum)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def serve(settings: Settings, host: str, port: int, with_scheduler: bool = True) -> None:
    """The web app under waitress, plus (unless `with_scheduler` is False) the one scheduler.

    Neither a database that is down nor a data directory that is not writable stops it: the
    web process answers, `/readyz` reports the reason, and the scheduler catches up once the
    cause is fixed. Without the scheduler the web process never migrates (the scheduler's
    process or `ticketbill init` does), so two processes never race on a schema change.
    """
    from waitress import serve as waitress_serve

    from addon import create_app

    app = create_app(settings)
    if with_scheduler:
        try:  # ready before the first request when database and data directory are fine
            settings.invoice_dir.mkdir(parents=True, exist_ok=True)
            migrate(settings.database_url)
        except Exception as exc:
            expected = describe(exc, settings.database_url)
            if expected is None:
                raise
            log.error("%s; serving anyway, /readyz reports it", expected)
        scheduler = start_scheduler(settings)
        # a close announced through the push API starts the next run now instead of at the interval
        app.config["TICKETBILL_REQUEST_SYNC"] = lambda: scheduler.modify_job("sync", next_run_time=datetime.now(UTC))
    else:
        factory = app.extensions["ticketbill"].sessions
        app.config["TICKETBILL_REQUEST_SYNC"] = lambda: health.request_sync(factory, datetime.now(UTC))
    log.warning("serving on http://%s:%d (public URL %s)%s", host, port, settings.public_url,
                "" if with_scheduler else " without the scheduler")
    if with_scheduler:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        waitress_serve(app, host=host, port=port, threads=4)
    finally:
        if with_scheduler:
            stop_scheduler(scheduler)
        app.extensions["ticketbill"].engine.dispose()
