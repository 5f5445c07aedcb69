"""Drafts: review in the page with the PDF preview, edit texts, credit and discount lines, move
an entry to a later invoice, approve (issue + send) or reject (discard), one by one or in bulk."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from addon.invoicing.audit import record
from addon.invoicing.drafts import add_manual_line, defer_entry, preview_pdf, remove_manual_line
from addon.invoicing.issue import draft_from_json
from addon.invoicing.lifecycle import LifecycleError, approve_draft, discard_draft, edit_draft
from addon.models import Invoice, Ticket, TimeEntry
from addon.reports import day_in
from addon.web.ui.access import actor, requires
from addon.web.ui.common import deliver, now, reading, renderer, settings, writing

bp = Blueprint("drafts", __name__, url_prefix="/drafts")


@bp.get("")
@requires("view")
def index() -> ResponseReturnValue:
    """Every draft waiting for approval, oldest first, with bulk approve / reject."""
    with reading() as db:
        rows = db.execute(select(Invoice).where(Invoice.state == "draft", Invoice.type_code == "380")
                          .order_by(Invoice.created_at, Invoice.id)).scalars().all()
        return render_template("web/drafts.html", rows=rows)


@bp.get("/<int:draft_id>")
@requires("view")
def show(draft_id: int) -> ResponseReturnValue:
    """One draft: its lines with their entries, notes, actions; the PDF preview beside it."""
    with reading() as db:
        invoice = db.get(Invoice, draft_id)
        if invoice is None or invoice.state != "draft" or invoice.draft_data is None:
            flash(_("Draft %(id)s is no longer a draft.", id=draft_id), "info")
            return redirect(url_for("drafts.index"))
        draft, ticket_ids = draft_from_json(invoice.draft_data)
        entry_ids = [link.entry_id for line in draft.lines for link in line.entries]
        entries = {e.id: e for e in db.execute(select(TimeEntry).where(TimeEntry.id.in_(entry_ids))).scalars()}
        tickets = db.execute(select(Ticket).where(Ticket.id.in_(ticket_ids))).scalars().all()
        today = day_in(invoice.customer.timezone or settings().timezone, now())
        return render_template("web/draft.html", invoice=invoice, draft=draft, entries=entries, tickets=tickets,
                               later=date.fromordinal(today.toordinal() + 31).replace(day=1), today=today)


@bp.get("/<int:draft_id>/preview.pdf")
@requires("view")
def preview(draft_id: int) -> ResponseReturnValue:
    """The draft as a PDF, numbered ENTWURF, exactly as the invoice would look (not stored)."""
    with reading() as db:
        try:
            pdf = preview_pdf(db, settings(), draft_id, renderer(), day_in(settings().timezone, now()))
        except LifecycleError:
            abort(404)
    return pdf.content, 200, {"Content-Type": "application/pdf", "Cache-Control": "no-store",
                              "Content-Disposition": f'inline; filename="draft-{draft_id}.pdf"'}


def _done(draft_id: int, message: str | None = None, exc: Exception | None = None) -> ResponseReturnValue:
    if exc is not None:
        flash(str(exc), "error")
    elif message:
        flash(message, "ok")
    return redirect(url_for("drafts.show", draft_id=draft_id))


@bp.post("/<int:draft_id>/texts")
@requires("drafts")
def texts(draft_id: int) -> ResponseReturnValue:
    """Save line descriptions and notes (amounts stay rule-derived)."""
    descriptions = {int(k[5:]): v for k, v in request.form.items() if k.startswith("line-") and k[5:].isdigit()}
    notes = [n for n in request.form.get("notes", "").splitlines() if n.strip()]
    try:
        with writing() as db:
            edit_draft(db, draft_id, now(), actor(), descriptions, notes)
    except LifecycleError as exc:
        return _done(draft_id, exc=exc)
    return _done(draft_id, _("Texts saved."))


def _amount(raw: str) -> Decimal | None:
    """An amount as a German or English user types it: 1.234,50 / 1234.50 / 12,5."""
    text = raw.strip().replace(" ", "").replace("€", "")
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


@bp.post("/<int:draft_id>/lines")
@requires("drafts")
def add_line(draft_id: int) -> ResponseReturnValue:
    """Add a credit (amount) or a discount (percent) line."""
    kind = request.form.get("kind", "credit")
    value = _amount(request.form.get("value", ""))
    if value is None:
        return _done(draft_id, exc=LifecycleError(_("Enter an amount or a percentage.")))
    try:
        with writing() as db:
            add_manual_line(db, draft_id, kind, request.form.get("description", ""), now(), actor(),
                            amount=value if kind == "credit" else None, percent=value if kind == "discount" else None)
    except LifecycleError as exc:
        return _done(draft_id, exc=exc)
    return _done(draft_id, _("Line added."))


@bp.post("/<int:draft_id>/lines/<int:position>/remove")
@requires("drafts")
def remove_line(draft_id: int, position: int) -> ResponseReturnValue:
    """Take a credit or discount line off again."""
    try:
        with writing() as db:
            remove_manual_line(db, draft_id, position, now(), actor())
    except LifecycleError as exc:
        return _done(draft_id, exc=exc)
    return _done(draft_id, _("Line removed."))


@bp.post("/<int:draft_id>/entries/<int:entry_id>/defer")
@requires("drafts")
def defer(draft_id: int, entry_id: int) -> ResponseReturnValue:
    """Move one entry to a later invoice; the ticket is rated again without it."""
    try:
        until = date.fromisoformat(request.form.get("until", ""))
    except ValueError:
        return _done(draft_id, exc=LifecycleError(_("Choose the day from which the entry may be billed.")))
    try:
        with writing() as db:
            drafts = defer_entry(db, settings(), draft_id, entry_id, until, request.form.get("reason"), renderer(),
                                 now(), actor())
            target = drafts[0].id if drafts else None
    except LifecycleError as exc:
        return _done(draft_id, exc=exc)
    flash(_("Entry moved to a later invoice."), "ok")
    return redirect(url_for("drafts.show", draft_id=target) if target else url_for("drafts.index"))


def _approve(draft_id: int) -> str:
    with writing() as db:
        invoice = approve_draft(db, settings(), draft_id, renderer(), now(), actor())
        return str(invoice.number)


def _reject(draft_id: int, reason: str) -> None:
    with writing() as db:
        if reason.strip():
            record(db, "reject", actor(), now(), None, {"draft_id": draft_id, "reason": reason.strip()})
        discard_draft(db, draft_id, now(), actor())


@bp.post("/<int:draft_id>/approve")
@requires("drafts")
def approve(draft_id: int) -> ResponseReturnValue:
    """Approve: the invoice is issued now (number, PDF, XML) and sent when e-mail is configured."""
    try:
        number = _approve(draft_id)
    except (LifecycleError, ValueError) as exc:
        return _done(draft_id, exc=exc)
    sent = deliver(actor())
    with reading() as db:
        invoice_id = db.execute(select(Invoice.id).where(Invoice.number == number)).scalar_one()
    flash(_("Issued as %(number)s.", number=number) + (" " + _("E-mail sent.") if sent.get("mailed") else ""), "ok")
    return redirect(url_for("invoices.show", invoice_id=invoice_id))


@bp.post("/<int:draft_id>/reject")
@requires("drafts")
def reject(draft_id: int) -> ResponseReturnValue:
    """Reject: the draft is discarded, its time is billed again by the next run."""
    try:
        _reject(draft_id, request.form.get("reason", ""))
    except LifecycleError as exc:
        return _done(draft_id, exc=exc)
    flash(_("Draft %(id)s rejected; its time is billed again by the next run.", id=draft_id), "ok")
    return redirect(url_for("drafts.index"))


@bp.post("/bulk")
@requires("drafts")
def bulk() -> ResponseReturnValue:
    """Approve or reject the selected drafts; each in its own transaction, failures are listed."""
    action = request.form.get("action")
    ids = [int(i) for i in request.form.getlist("draft") if i.isdigit()]
    done, failed = [], []
    for draft_id in ids:
        try:
            if action == "approve":
                done.append(_approve(draft_id))
            elif action == "reject":
                _reject(draft_id, "")
                done.append(str(draft_id))
        except (LifecycleError, ValueError) as exc:
            failed.append(f"{draft_id}: {exc}")
    if action == "approve" and done:
        deliver(actor())
    if done:
        flash((_("Issued: %(list)s", list=", ".join(done)) if action == "approve"
               else _("Rejected: %(list)s", list=", ".join(done))), "ok")
    for line in failed:
        flash(line, "error")
    if not ids:
        flash(_("Select at least one draft."), "info")
    return redirect(url_for("drafts.index"))

