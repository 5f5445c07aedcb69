"""Reading issued documents back for exports: from the frozen snapshots only, never live data.

Exports (DATEV, CSV) must show what the customer received, so they work on the stored snapshot
JSON, not on today's customer or settings rows. The one exception is the DATEV debtor account,
which is bookkeeping configuration rather than invoice content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.exports.datev import SKR03_REVENUE_ACCOUNTS, SKR04_REVENUE_ACCOUNTS
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice
from addon.settings import Settings


@dataclass(frozen=True)
class IssuedDocument:
    """An issued invoice or cancellation with its snapshot."""

    invoice: Invoice
    snapshot: InvoiceSnapshot


def issued_documents(session: Session, start: date, end: date) -> list[IssuedDocument]:
    """Every issued document (invoices, cancellations, cancelled originals) whose issue date
    (in the customer's time zone, as printed) lies in start..end, by date and number."""
    if start > end:
        raise ValueError(f"period start {start} is after its end {end}")
    # issued_at is UTC; the printed date may be a day off, so read one day more on each side.
    low = datetime.combine(start - timedelta(days=1), time.min, UTC)
    high = datetime.combine(end + timedelta(days=2), time.min, UTC)
    rows = session.execute(
        select(Invoice).where(Invoice.state != "draft", Invoice.issued_at >= low, Invoice.issued_at < high)
    ).scalars().all()
    documents = [
        IssuedDocument(row, InvoiceSnapshot.from_json(row.snapshot)) for row in rows if row.snapshot is not None
    ]
    chosen = [d for d in documents if start <= d.snapshot.issue_date <= end]
    return sorted(chosen, key=lambda d: (d.snapshot.issue_date, d.snapshot.number))


def revenue_accounts(settings: Settings) -> Mapping[str, int]:
    """The automatic revenue accounts of the configured chart (DATEV_CHART)."""
    return SKR04_REVENUE_ACCOUNTS if settings.datev_chart == "SKR04" else SKR03_REVENUE_ACCOUNTS


def debtor_accounts(settings: Settings, documents: list[IssuedDocument]) -> dict[str, str]:
    """Invoice number → debtor account: the customer's own, else DATEV_DEFAULT_DEBTOR.

    Raises ValueError naming every customer without one, so the admin fixes all at once.
    """
    accounts: dict[str, str] = {}
    missing: set[str] = set()
    for document in documents:
        account = document.invoice.customer.debtor_account or settings.datev_default_debtor
        if account is None:
            missing.add(document.invoice.customer.name)
        else:
            accounts[document.snapshot.number] = account
    if missing:
        raise ValueError(
            f"no DATEV debtor account for {', '.join(sorted(missing))}: set `debtor_account` with "
            "`ticketbill customers import` or DATEV_DEFAULT_DEBTOR"
        )
    return accounts


def fiscal_year_start(settings: Settings, day: date) -> date:
    """The start of the fiscal year containing `day` (DATEV_FISCAL_YEAR_START, MM-DD)."""
    month, dom = (int(part) for part in settings.datev_fiscal_year_start.split("-"))
    start = date(day.year, month, dom)
    return start if start <= day else date(day.year - 1, month, dom)
