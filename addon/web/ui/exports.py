"""Exports for the tax adviser and the tax office: DATEV Buchungsstapel, CSV and the GDPdU
archive of a period, as downloads."""

from __future__ import annotations

import io
import zipfile
from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from addon.exports.period import ExportError, csv_export, datev_export, gdpdu_export
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


@bp.post("/datev")
@requires("exports")
def datev() -> ResponseReturnValue:
    """Download the DATEV EXTF file of the documents issued in the period."""
    period = _period()
    if period is None:
        flash(_("Choose the first and the last day."), "error")
        return redirect(url_for("exports.index"))
    try:
        with writing() as db:
            rendered, _numbers = datev_export(db, settings(), *period, actor(), now(), {"via": "web"})
    except (ExportError, ValueError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("exports.index"))
    return send_file(io.BytesIO(rendered.content), mimetype="text/csv; charset=windows-1252", as_attachment=True,
                     download_name=rendered.filename)


@bp.post("/csv")
@requires("exports")
def csv() -> ResponseReturnValue:
    """Download both CSV files (invoices, lines) of the period as one ZIP."""
    period = _period()
    if period is None:
        flash(_("Choose the first and the last day."), "error")
        return redirect(url_for("exports.index"))
    try:
        with writing() as db:
            files, _numbers = csv_export(db, *period, actor(), now(), {"via": "web"})
    except ExportError as exc:
        flash(str(exc), "error")
        return redirect(url_for("exports.index"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rendered in files:
            archive.writestr(rendered.filename, rendered.content)
    buffer.seek(0)
    return send_file(buffer, mimetype="application/zip", as_attachment=True,
                     download_name=f"ticketbill_{period[0]:%Y%m%d}-{period[1]:%Y%m%d}.zip")


@bp.post("/gdpdu")
@requires("exports")
def gdpdu() -> ResponseReturnValue:
    """Download the GDPdU archive (index.xml, tables, documents) of the period."""
    period = _period()
    if period is None:
        flash(_("Choose the first and the last day."), "error")
        return redirect(url_for("exports.index"))
    try:
        with writing() as db:
            rendered, _numbers = gdpdu_export(db, settings(), *period, actor(), now(), {"via": "web"})
    except ExportError as exc:
        flash(str(exc), "error")
        return redirect(url_for("exports.index"))
    return send_file(io.BytesIO(rendered.content), mimetype=rendered.mimetype, as_attachment=True,
                     download_name=rendered.filename)
