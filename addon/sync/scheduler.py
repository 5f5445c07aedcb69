"""Running the sync: once, on a schedule, or beside the web server.

APScheduler runs in exactly one process (the `serve` or `sync` process), never per web
worker; `max_instances=1` and `coalesce` skip a run that would overlap its predecessor, and
the database job lock (addon.sync.runs) keeps a second sidecar process from running too.
A failing run is logged and recorded; the scheduler keeps going.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from addon.db import migrate, migrated
from addon.invoicing.issue import pdf_renderer
from addon.settings import Settings
from addon.sync.jobs import RunResult, run_sync

log = logging.getLogger(__name__)


def sync_once(settings: Settings) -> RunResult:
    """Migrate if needed, then one run; helpdesk trouble ends up in the result, not raised."""
    from connectors import get_connector

    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    with migrated(settings.database_url) as factory:
        return run_sync(factory, get_connector(settings), settings, pdf_renderer(settings))


def _scheduled_run(settings: Settings) -> None:
    try:
        result = sync_once(settings)
    except Exception:  # the scheduler must survive anything a run throws
        log.exception("sync run crashed")
        return
    if result.skipped:
        log.info("sync skipped: %s", result.error)
    elif result.error:
        log.error("sync run %s failed: %s", result.run_id, result.error)
    else:
        log.info("sync run %s done: %s", result.run_id, result.counts)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        _scheduled_run,
        "interval",
        seconds=settings.poll_interval_seconds,
        args=[settings],
        id="sync",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler


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
        scheduler.shutdown()


def serve(settings: Settings, host: str, port: int) -> None:
    """The web app under waitress plus the one scheduler of this deployment."""
    from waitress import serve as waitress_serve

    from addon import create_app

    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    app = create_app(settings)
    scheduler = start_scheduler(settings)
    # a close announced through the push API starts the next run now instead of at the interval
    app.config["TICKETBILL_REQUEST_SYNC"] = lambda: scheduler.modify_job("sync", next_run_time=datetime.now(UTC))
    try:
        waitress_serve(app, host=host, port=port, threads=4)
    finally:
        scheduler.shutdown()
