"""Exports for the tax adviser and the tax office: DATEV Buchungsstapel, CSV and the GDPdU
archive of a period, as downloads."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.exports.period import ExportError, csv_export, datev_export, gdpdu_export
from addon.invoicing.rendered import RenderedFile
from addon.models import AuditLog
from addon.reports import day_in
from addon.web.ui.access import actor, requires
from addon.web.ui.common import now, reading, settings, writing

bp = Blueprint("exports", __name__, url_prefix="/exports")


def _last_month() -> tuple[date, date]:
    today = day_in(settings().timezone, now())
    last = date.fromordinal(today.replace(day=1).toordinal() - 1)
    return last.replace(day=1), last


@bp.get("")
@requires("exports")
def index() -> ResponseReturnValue:
    """The export form (last month preset) and the recent exports from the audit log."""
    first, last = _last_month()
    with reading() as db:
        recent = db.execute(select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id.desc())
                            .limit(15)).scalars().all()
        return render_template("web/exports.html", first=first, last=last, recent=recent,
                               datev_ready=settings().datev_consultant_number is not None
                               and settings().datev_client_number is not None)


def _period() -> tuple[date, date] | None:
    try:
        return date.fromisoformat(request.form.get("from", "")), date.fromisoformat(request.form.get("to", ""))
    except ValueError:
        return None


def _download(make: Callable[[Session, date, date], RenderedFile], mimetype: str | None = None) -> ResponseReturnValue:
    """Run one period export for the form's period and send its file; a refusal (missing setting,
    empty period) comes back as a message on the form."""
    period = _period()
    if period is None:
        flash(_("Choose the first and the last day."), "error")
        return redirect(url_for("exports.index"))
    try:
        with writing() as db:
            rendered = make(db, *period)
    except (ExportError, ValueError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("exports.index"))
    return send_file(io.BytesIO(rendered.content), mimetype=mimetype or rendered.mimetype, as_attachment=True,
                     download_name=rendered.filename)


@bp.post("/datev")
@requires("exports")
def datev() -> ResponseReturnValue:
    """Download the DATEV EXTF file of the documents issued in the period."""
    return _download(lambda db, first, last: datev_export(db, settings(), first, last, actor(), now(),
                                                          {"via": "web"})[0],
                     "text/csv; charset=windows-1252")


@bp.post("/csv")
@requires("exports")
def csv() -> ResponseReturnValue:
    """Download both CSV files (invoices, lines) of the period as one ZIP."""
    def zipped(db: Session, first: date, last: date) -> RenderedFile:
        files, _numbers = csv_export(db, first, last, actor(), now(), {"via": "web"})
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for rendered in files:
                archive.writestr(rendered.filename, rendered.content)
        return RenderedFile(f"ticketbill_{first:%Y%m%d}-{last:%Y%m%d}.zip", "application/zip", buffer.getvalue())

    return _download(zipped)


@bp.post("/gdpdu")
@requires("exports")
def gdpdu() -> ResponseReturnValue:
    """Download the GDPdU archive (index.xml, tables, documents) of the period."""
    return _download(lambda db, first, last: gdpdu_export(db, settings(), first, last, actor(), now(),
                                                          {"via": "web"})[0])
