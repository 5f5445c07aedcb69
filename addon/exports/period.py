"""Exports of one period, as the CLI and the web UI make them: DATEV Buchungsstapel and CSV.

One place builds the files from the stored snapshots and records the export in the audit
log (who, when, which documents, the file's SHA-256), so both surfaces export the same bytes.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from addon.exports.csv_export import csv_files
from addon.exports.datev import DatevExport, datev_filename
from addon.exports.datev import datev_export as datev_file
from addon.invoicing.audit import record
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.store import debtor_accounts, fiscal_year_start, issued_documents, revenue_accounts
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
