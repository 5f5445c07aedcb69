"""Runs: the last runs with counts, duration and errors; "run now" with live progress (htmx)."""

from __future__ import annotations

import threading

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, select

from addon.models import Invoice, Outbox, SyncRun, Ticket
from addon.web.ui.access import requires
from addon.web.ui.common import now, reading, settings

bp = Blueprint("runs", __name__, url_prefix="/runs")


def runs_page() -> ResponseReturnValue:
    """The Runs page (served at /runs for browsers; /runs stays JSON for scripts)."""
    with reading() as db:
        rows = db.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(50)).scalars().all()
        return render_template("web/runs.html", rows=rows, live=_live(db))


def _live(db) -> dict[str, object] | None:  # type: ignore[no-untyped-def]
    """The newest run with what it has done so far (read from the rows it writes)."""
    run = db.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).scalar_one_or_none()
    if run is None:
        return None
    since = run.started_at
    progress = {
        "tickets": db.execute(select(func.count()).select_from(Ticket).where(Ticket.seen_at >= since)).scalar_one(),
        "documents": db.execute(select(func.count()).select_from(Invoice)
                                .where(Invoice.created_at >= since)).scalar_one(),
        "written": db.execute(select(func.count()).select_from(Outbox).where(Outbox.done_at >= since)).scalar_one(),
    }
    end = run.finished_at or now()
    return {"run": run, "progress": progress, "seconds": (end - run.started_at).total_seconds()}


@bp.get("/live")
@requires("view")
def live() -> ResponseReturnValue:
    """The live progress fragment the Runs page polls while a run is going."""
    with reading() as db:
        return render_template("web/_run_live.html", live=_live(db))


def _start_in_background() -> None:
    """Start one sync run beside the web server (when no scheduler runs in this process)."""
    from addon.invoicing.issue import pdf_renderer
    from addon.sync.jobs import run_sync
    from connectors import get_connector

    config = settings()
    factory = current_app.extensions["ticketbill"].sessions

    def work() -> None:
        run_sync(factory, get_connector(config), config, pdf_renderer(config))

    threading.Thread(target=work, name="ticketbill-run-now", daemon=True).start()


def start() -> None:
    """Start a run now: the scheduler's next run is moved to now (`serve`), else a run starts
    in the background. The database job lock still keeps two runs from overlapping."""
    request_sync = current_app.config.get("TICKETBILL_REQUEST_SYNC")
    if request_sync is not None:
        request_sync()
    else:
        _start_in_background()


@bp.post("/now")
@requires("runs.start")
def run_now() -> ResponseReturnValue:
    """The Runs page's "run now" button."""
    start()
    flash(_("Run started."), "ok")
    return redirect(url_for("web.list_runs"))
