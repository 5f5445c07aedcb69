"""The service functions behind the web UI's draft and invoice actions, on SQLite and PostgreSQL:
credit and discount lines, moving an entry to a later invoice, payments with date and amount,
resending, and the period exports shared with the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sync_fixtures import ADDRESSES, Sidecar, closed_ticket

from addon.customers import import_customers
from addon.db import transaction
from addon.exports.period import ExportError, csv_export, datev_export
from addon.invoicing.drafts import add_manual_line, defer_entry, preview_pdf, remove_manual_line
from addon.invoicing.issue import draft_from_json
from addon.invoicing.lifecycle import LifecycleError, approve_draft
from addon.invoicing.payments import payment_state, record_payment, resend
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import AuditLog, BilledEntry, DeferredEntry, Invoice, Outbox, TimeEntry
from addon.settings import Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def drafted(sidecar: Sidecar, tmp_path: Path, bookings: list[tuple[int, int, int]]) -> int:
    """One closed ticket of an approval customer, billed by a run into a draft; its id."""
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"default_rate": "100.00", "customers": [
        {"remote_id": "1", **ADDRESSES[1], "hourly_rate": "100.00", "approval_required": True}]}), encoding="utf-8")
    with transaction(sidecar.factory) as session:
        import_customers(session, "zammad", path)
    closed_ticket(sidecar.sandbox, "Server", 1, bookings)
    assert sidecar.run().ok
    with sidecar.factory() as session:
        return session.execute(select(Invoice.id).where(Invoice.state == "draft")).scalar_one()


def test_credit_and_discount_lines_change_the_totals_and_are_issued(sidecar: Sidecar, tmp_path: Path) -> None:
    draft_id = drafted(sidecar, tmp_path, [(60, 3, 1), (60, 4, 1)])  # 2 h at 100.00 → 200.00 net
    with transaction(sidecar.factory) as session:
        add_manual_line(session, draft_id, "discount", "Treuerabatt 10 %", NOW, "web:lead", percent=Decimal("10"))
        add_manual_line(session, draft_id, "credit", "Gutschrift Ausfall", NOW, "web:lead", amount=Decimal("15.50"))
    with sidecar.factory() as session:
        invoice = session.get(Invoice, draft_id)
        draft, _tickets = draft_from_json(invoice.draft_data)
        assert [line.net for line in draft.lines][-2:] == [Decimal("-20.00"), Decimal("-15.50")]
        assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("164.50"), Decimal("31.26"), Decimal("195.76"))
        assert [line.position for line in invoice.lines] == list(range(1, len(draft.lines) + 1))
    with transaction(sidecar.factory) as session:
        remove_manual_line(session, draft_id, len(draft.lines) - 1, NOW, "web:lead")  # the discount goes
    with transaction(sidecar.factory) as session:
        issued = approve_draft(session, sidecar.settings, draft_id, render_pdf, NOW, "web:lead")
        assert issued.net == Decimal("184.50")
        assert issued.gross == Decimal("219.56")
        assert [line.description for line in issued.lines][-1] == "Gutschrift Ausfall"
        assert issued.lines[-1].quantity == Decimal(-1) and issued.lines[-1].unit_price == Decimal("15.50")


def test_manual_lines_are_refused_when_they_make_no_sense(sidecar: Sidecar, tmp_path: Path) -> None:
    draft_id = drafted(sidecar, tmp_path, [(30, 3, 1)])  # 50.00 net
    with transaction(sidecar.factory) as session:
        with pytest.raises(LifecycleError, match="negative"):
            add_manual_line(session, draft_id, "credit", "zu viel", NOW, "web:x", amount=Decimal("80"))
        with pytest.raises(LifecycleError, match="percentage"):
            add_manual_line(session, draft_id, "discount", "x", NOW, "web:x", percent=Decimal("0"))
        with pytest.raises(LifecycleError, match="not a credit"):
            remove_manual_line(session, draft_id, 1, NOW, "web:x")


def test_the_preview_is_the_draft_as_pdf_without_a_number(sidecar: Sidecar, tmp_path: Path) -> None:
    draft_id = drafted(sidecar, tmp_path, [(30, 3, 1)])
    with sidecar.factory() as session:
        pdf = preview_pdf(session, sidecar.settings, draft_id, render_pdf, date(2026, 11, 20))
        assert pdf.content.startswith(b"%PDF")
        assert session.get(Invoice, draft_id).number is None


def test_an_entry_moved_to_a_later_invoice_is_billed_from_that_day_on(sidecar: Sidecar, tmp_path: Path) -> None:
    draft_id = drafted(sidecar, tmp_path, [(60, 3, 1), (30, 4, 1)])
    with sidecar.factory() as session:
        entries = session.execute(select(TimeEntry).order_by(TimeEntry.booked_at)).scalars().all()
        late = entries[1].id
    later = NOW.date() + timedelta(days=20)
    with transaction(sidecar.factory) as session:
        drafts = defer_entry(session, sidecar.settings, draft_id, late, later, "next month", render_pdf, NOW,
                             "web:lead")
        assert len(drafts) == 1  # the draft was discarded and the ticket rated again
        assert drafts[0].net == Decimal("100.00")  # the 60 minutes only
        assert session.get(BilledEntry, late) is None
        assert session.get(DeferredEntry, late).until == later
    with transaction(sidecar.factory) as session:
        approve_draft(session, sidecar.settings, drafts[0].id, render_pdf, NOW, "web:lead")
    # runs before the day leave it alone; the first run on it bills it on a new draft
    before = sidecar.settings
    assert run_at(sidecar, before, NOW + timedelta(days=1)).ok
    with sidecar.factory() as session:
        assert session.get(BilledEntry, late) is None
    assert run_at(sidecar, before, datetime.combine(later, datetime.min.time(), UTC) + timedelta(hours=12)).ok
    with sidecar.factory() as session:
        link = session.get(BilledEntry, late)
        assert link is not None
        assert session.get(Invoice, link.invoice_id).state == "draft"
        assert session.execute(select(func.count()).select_from(AuditLog).where(AuditLog.action == "defer")
                               ).scalar_one() == 1


def run_at(sidecar: Sidecar, settings: Settings, moment: datetime):  # type: ignore[no-untyped-def]
    from addon.sync.jobs import run_sync

    return run_sync(sidecar.factory, sidecar.connector, settings, render_pdf, now=lambda: moment)


def test_moving_an_entry_needs_a_later_day_and_an_entry_of_the_draft(sidecar: Sidecar, tmp_path: Path) -> None:
    draft_id = drafted(sidecar, tmp_path, [(60, 3, 1)])
    with transaction(sidecar.factory) as session:
        entry = session.execute(select(TimeEntry.id)).scalar_one()
        with pytest.raises(LifecycleError, match="after today"):
            defer_entry(session, sidecar.settings, draft_id, entry, NOW.date(), None, render_pdf, NOW, "web:x")
        with pytest.raises(LifecycleError, match="not on draft"):
            defer_entry(session, sidecar.settings, draft_id, entry + 999, NOW.date() + timedelta(days=3), None,
                        render_pdf, NOW, "web:x")


def issued_invoice(sidecar: Sidecar, tmp_path: Path) -> Invoice:
    sidecar.import_customers(tmp_path, [2])
    closed_ticket(sidecar.sandbox, "Drucker", 2, [(60, 3, 1)])
    assert sidecar.run().ok
    with sidecar.factory() as session:
        return session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalar_one()


def test_part_payments_add_up_until_the_invoice_is_paid(sidecar: Sidecar, tmp_path: Path) -> None:
    invoice = issued_invoice(sidecar, tmp_path)  # 95.00 net, 113.05 gross
    with transaction(sidecar.factory) as session:
        record_payment(session, invoice.id, Decimal("100.00"), date(2026, 11, 10), "Auszug 7", NOW, "web:acc",
                       timezone="Europe/Berlin")
        state = payment_state(session, session.get(Invoice, invoice.id))
        assert (state.status, state.open) == ("partly_paid", Decimal("13.05"))
        with pytest.raises(LifecycleError, match="more than the open amount"):
            record_payment(session, invoice.id, Decimal("20.00"), date(2026, 11, 11), None, NOW, "web:acc",
                           timezone="Europe/Berlin")
        with pytest.raises(LifecycleError, match="future"):
            record_payment(session, invoice.id, Decimal("1.00"), date(2026, 12, 24), None, NOW, "web:acc",
                           timezone="Europe/Berlin")
        record_payment(session, invoice.id, Decimal("13.05"), date(2026, 11, 12), None, NOW, "web:acc",
                       timezone="Europe/Berlin")
    with sidecar.factory() as session:
        paid = session.get(Invoice, invoice.id)
        assert paid.state == "paid" and paid.paid_at.date() == date(2026, 11, 12)
        assert payment_state(session, paid).status == "paid"


def test_a_payment_dated_today_in_berlin_is_not_in_the_future_at_utc_midnight(sidecar: Sidecar,
                                                                               tmp_path: Path) -> None:
    """00:30 in Berlin on 1 December is still 30 November in UTC: the accountant's "today" is
    the deployment's local day (TIMEZONE), not UTC's."""
    invoice = issued_invoice(sidecar, tmp_path)
    late_evening_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    with transaction(sidecar.factory) as session:
        with pytest.raises(LifecycleError, match="future"):  # Berlin's tomorrow is still refused
            record_payment(session, invoice.id, Decimal("1.00"), date(2026, 12, 2), None, late_evening_utc,
                           "web:acc", timezone="Europe/Berlin")
        record_payment(session, invoice.id, Decimal("113.05"), date(2026, 12, 1), None, late_evening_utc, "web:acc",
                       timezone="Europe/Berlin")
    with sidecar.factory() as session:
        assert session.get(Invoice, invoice.id).state == "paid"


def test_resend_needs_mail_and_queues_one_more_email(sidecar: Sidecar, tmp_path: Path) -> None:
    invoice = issued_invoice(sidecar, tmp_path)
    with transaction(sidecar.factory) as session, pytest.raises(LifecycleError, match="SMTP_HOST"):
        resend(session, sidecar.settings, invoice.id, "a@b.example", NOW, "web:acc")
    mail = sidecar.settings.__class__(**{**sidecar.settings.__dict__, "smtp_host": "127.0.0.1",
                                         "smtp_sender": "billing@nordlicht-it.example"})
    with transaction(sidecar.factory) as session:
        resend(session, mail, invoice.id, "buchhaltung@kunde.example", NOW, "web:acc")
        resend(session, mail, invoice.id, "buchhaltung@kunde.example", NOW, "web:acc")
    with sidecar.factory() as session:
        rows = session.execute(select(Outbox).where(Outbox.kind == "email")).scalars().all()
        assert [r.marker for r in rows] == [f"email:{invoice.number}:resend:1", f"email:{invoice.number}:resend:2"]


def test_period_exports_record_what_they_exported(sidecar: Sidecar, tmp_path: Path) -> None:
    invoice = issued_invoice(sidecar, tmp_path)
    day = InvoiceSnapshot.from_json(invoice.snapshot).issue_date  # the printed (local) date, not UTC's
    with transaction(sidecar.factory) as session, pytest.raises(ExportError, match="DATEV_CONSULTANT_NUMBER"):
        datev_export(session, sidecar.settings, day, day, "web:acc", NOW)
    datev = sidecar.settings.__class__(**{**sidecar.settings.__dict__, "datev_consultant_number": 1001,
                                          "datev_client_number": 1, "datev_default_debtor": "10000"})
    with transaction(sidecar.factory) as session:
        rendered, export = datev_export(session, datev, day, day, "web:acc", NOW)
        files, _numbers = csv_export(session, day, day, "web:acc", NOW)
    assert rendered.content.startswith(b'"EXTF"') and export.booked == (invoice.number,) and export.rows == 1
    assert files[0].filename.startswith("invoices_")
    with sidecar.factory() as session:
        kinds = session.execute(select(AuditLog.details).where(AuditLog.action == "export")).scalars().all()
        assert [k["kind"] for k in kinds] == ["datev", "csv"]
