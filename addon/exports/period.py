"""Exports of one period, as the CLI and the web UI make them: DATEV Buchungsstapel, CSV and
the GDPdU archive for the tax office.

One place builds the files from the stored snapshots and records the export in the audit
log (who, when, which documents, the file's SHA-256), so both surfaces export the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from addon.exports.csv_export import csv_files
from addon.exports.datev import DatevExport, datev_filename
from addon.exports.datev import datev_export as datev_file
from addon.exports.gdpdu import AuditRow, Document, gdpdu_archive, gdpdu_filename
from addon.invoicing.audit import record
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.store import IssuedDocument, debtor_accounts, fiscal_year_start, issued_documents, revenue_accounts
from addon.models import AuditLog, Invoice
from addon.settings import Settings


class ExportError(ValueError):
    """The export cannot be made (missing setting, empty period); the message says why."""


def datev_export(session: Session, settings: Settings, first: date, last: date, actor: str, now: datetime,
                 where: dict[str, Any] | None = None) -> tuple[RenderedFile, DatevExport]:
    """The DATEV EXTF file of the documents issued from `first` to `last`, and what it holds
    (the documents booked, the rows, and the documents not booked with the reason)."""
    if first > last:
        raise ExportError(f"the period starts ({first}) after it ends ({last})")
    for key, value in (("DATEV_CONSULTANT_NUMBER", settings.datev_consultant_number),
                       ("DATEV_CLIENT_NUMBER", settings.datev_client_number)):
        if value is None:
            raise ExportError(f"configuration error: {key}: is missing (needed for the DATEV export)")
    documents = issued_documents(session, first, last)
    if not documents:
        raise ExportError(f"no invoices issued from {first} to {last}; nothing written")
    accounts = debtor_accounts(settings, documents)
    export = datev_file(
        [d.snapshot for d in documents],
        consultant_number=settings.datev_consultant_number or 0,
        client_number=settings.datev_client_number or 0,
        fiscal_year_start=fiscal_year_start(settings, first),
        account_length=settings.datev_account_length,
        revenue_accounts=revenue_accounts(settings),
        debtor_account=lambda snapshot: accounts[snapshot.number],
        period_start=first,
        period_end=last,
        chart="04" if settings.datev_chart == "SKR04" else "03",
    )
    record(session, "export", actor, now, None, {
        "kind": "datev", "from": str(first), "to": str(last), **(where or {}),
        "sha256": hashlib.sha256(export.content).hexdigest(), "numbers": list(export.booked),
        "not_booked": [number for number, _why in export.not_booked],
    })
    return RenderedFile(datev_filename(first, last), "text/csv", export.content), export


def csv_export(session: Session, first: date, last: date, actor: str, now: datetime,
               where: dict[str, Any] | None = None) -> tuple[list[RenderedFile], list[str]]:
    """The two CSV files (invoices, lines) of the period, and the documents' numbers."""
    if first > last:
        raise ExportError(f"the period starts ({first}) after it ends ({last})")
    documents = issued_documents(session, first, last)
    files = csv_files([d.snapshot for d in documents], first, last)
    numbers = [d.snapshot.number for d in documents]
    record(session, "export", actor, now, None, {
        "kind": "csv", "from": str(first), "to": str(last), **(where or {}),
        "files": {f.filename: f.sha256 for f in files}, "numbers": numbers,
    })
    return files, numbers


def _sent_files(document: IssuedDocument) -> tuple[tuple[str, bytes], ...]:
    """The PDF and XML of a document as stored, each checked against the SHA-256 recorded when
    it was issued: an archive for the tax office must never carry a changed document."""
    files = []
    invoice = document.invoice
    for path, digest in ((invoice.pdf_path, invoice.pdf_sha256), (invoice.xml_path, invoice.xml_sha256)):
        if not path:
            continue
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise ExportError(f"{document.snapshot.number}: its stored file {path} cannot be read "
                              f"({exc.strerror}); restore it from a backup first") from exc
        if digest and hashlib.sha256(content).hexdigest() != digest:
            raise ExportError(f"{document.snapshot.number}: {path} no longer has the SHA-256 recorded at "
                              "issue; restore it from a backup (`ticketbill verify` lists every such file)")
        files.append((f"belege/{Path(path).name}", content))
    return tuple(files)


def gdpdu_export(session: Session, settings: Settings, first: date, last: date, actor: str, now: datetime,
                 where: dict[str, Any] | None = None) -> tuple[RenderedFile, list[str]]:
    """The GDPdU archive (index.xml, tables, documents) of the documents issued from `first` to
    `last`, with the audit log of those documents and of everything else logged in the period;
    and the documents' numbers."""
    if first > last:
        raise ExportError(f"the period starts ({first}) after it ends ({last})")
    documents = issued_documents(session, first, last)
    if not documents:
        raise ExportError(f"no invoices issued from {first} to {last}; nothing written")
    numbers = {d.invoice.id: d.snapshot.number for d in documents}
    low = datetime.combine(first, time.min, UTC)
    high = datetime.combine(last + timedelta(days=1), time.min, UTC)
    rows = session.execute(select(AuditLog).where(or_(
        AuditLog.invoice_id.in_(list(numbers)),
        and_(AuditLog.invoice_id.is_(None), AuditLog.at >= low, AuditLog.at < high),
    )).order_by(AuditLog.id)).scalars().all()
    others = {i.id: i.number for i in session.execute(select(Invoice).where(
        Invoice.id.in_({r.invoice_id for r in rows} - set(numbers)))).scalars()}
    audit = [AuditRow(r.id, r.at, r.actor, r.action, numbers.get(r.invoice_id or 0) or others.get(r.invoice_id or 0),
                      json.dumps(r.details, ensure_ascii=False, sort_keys=True)) for r in rows]
    seller = settings.seller
    supplier = (seller.name, f"{seller.street}, {seller.postcode} {seller.city}",
                f"ticketbill {version('ticketbill')}: Ausgangsrechnungen {first:%d.%m.%Y} bis {last:%d.%m.%Y}, "
                f"erstellt {now:%d.%m.%Y %H:%M} UTC")
    archive = gdpdu_archive([Document(d.snapshot, _sent_files(d), (d.invoice.pdf_sha256, d.invoice.xml_sha256))
                             for d in documents], audit, supplier, first, last, now)
    record(session, "export", actor, now, None, {
        "kind": "gdpdu", "from": str(first), "to": str(last), **(where or {}),
        "sha256": hashlib.sha256(archive).hexdigest(), "numbers": list(numbers.values()),
    })
    return RenderedFile(gdpdu_filename(first, last), "application/zip", archive), list(numbers.values())
