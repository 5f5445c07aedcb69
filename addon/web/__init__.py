"""HTTP surface of the sidecar: invoice PDFs at stable links, run status (health: `web.health`)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, send_file
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from addon.models import Invoice, SyncRun

bp = Blueprint("web", __name__)


def _sidecar():  # type: ignore[no-untyped-def]
    return current_app.extensions["ticketbill"]


@bp.get("/invoices/<key>/<path:number>.pdf")
def invoice_pdf(key: str, number: str) -> ResponseReturnValue:
    """The invoice PDF. The key is random per invoice, so links cannot be guessed.

    :raise 404: unknown key/number pair, or the stored file is missing.
    """
    with _sidecar().sessions() as session:
        invoice = session.execute(
            select(Invoice).where(Invoice.access_key == key, Invoice.number == number)
        ).scalar_one_or_none()
    if invoice is None or invoice.pdf_path is None or not Path(invoice.pdf_path).is_file():
        abort(404)
    return send_file(invoice.pdf_path, mimetype="application/pdf", download_name=f"{number}.pdf")


def _run_json(run: SyncRun) -> dict[str, object]:
    return {
        "id": run.id,
        "helpdesk": run.helpdesk,
        "status": run.status,
        "ready": run.finished_at is not None,
        "successful": run.status == "succeeded",
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "counts": run.counts,
        "error": run.error,
    }


@bp.get("/runs")
def list_runs() -> ResponseReturnValue:
    """The last 50 runs, newest first."""
    with _sidecar().sessions() as session:
        rows = session.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(50)).scalars().all()
    return jsonify([_run_json(run) for run in rows])


@bp.get("/runs/<int:run_id>")
def show_run(run_id: int) -> ResponseReturnValue:
    """One run: ready / successful / counts / error.

    :raise 404: no such run.
    """
    with _sidecar().sessions() as session:
        run = session.get(SyncRun, run_id)
    if run is None:
        abort(404)
    return jsonify(_run_json(run))

