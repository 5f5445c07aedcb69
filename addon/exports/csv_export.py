"""Plain CSV of issued invoices and their lines, for a period.

This is the machine-readable data access a tax auditor may ask for (§ 147 Abs. 6 AO, Z3) and
what a spreadsheet user expects: UTF-8, one header row, ISO dates and decimal points so every tool
parses the figures identically. Two files, because an invoice has a variable number of lines
and a flat join would repeat the totals on every line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot

INVOICE_COLUMNS = (
    "number", "type_code", "issue_date", "due_date", "service_start", "service_end",
    "preceding_number", "preceding_date", "customer_number", "buyer_name", "buyer_country",
    "buyer_vat_id", "buyer_reference", "language", "currency", "net", "vat", "gross",
    "vat_breakdown",
)
LINE_COLUMNS = (
    "invoice_number", "issue_date", "position", "description", "ticket_number", "quantity",
    "unit", "unit_price", "net", "vat_category", "vat_rate", "service_start", "service_end",
)


def invoices_in_period(
    invoices: Sequence[InvoiceSnapshot], start: date, end: date
) -> list[InvoiceSnapshot]:
    """The invoices issued from `start` to `end` (both inclusive), by date and number."""
    if start > end:
        raise ValueError(f"period start {start} is after its end {end}")
    chosen = [snapshot for snapshot in invoices if start <= snapshot.issue_date <= end]
    return sorted(chosen, key=lambda snapshot: (snapshot.issue_date, snapshot.number))


def invoices_csv(invoices: Sequence[InvoiceSnapshot], start: date, end: date) -> bytes:
    """One row per invoice issued in the period (UTF-8, header row)."""
    rows = [
        (
            s.number, s.type_code, s.issue_date, s.due_date, s.service_start, s.service_end,
            s.preceding_number, s.preceding_date, s.buyer.customer_number, s.buyer.name,
            s.buyer.country, s.buyer.vat_id, s.buyer_reference,
            s.language, s.currency, s.net, s.vat, s.gross,
            " | ".join(
                f"{g.category} {_cell(g.rate)}%: {_cell(g.base)} + {_cell(g.amount)}"
                for g in s.vat_groups
            ),
        )
        for s in invoices_in_period(invoices, start, end)
    ]
    return _write(INVOICE_COLUMNS, rows)


def lines_csv(invoices: Sequence[InvoiceSnapshot], start: date, end: date) -> bytes:
    """One row per invoice line of the invoices issued in the period (UTF-8, header row)."""
    rows = [
        (
            s.number, s.issue_date, line.position, line.description, line.ticket_number,
            line.quantity, line.unit, line.unit_price, line.net, line.vat_category,
            line.vat_rate, line.service_start, line.service_end,
        )
        for s in invoices_in_period(invoices, start, end)
        for line in s.lines
    ]
    return _write(LINE_COLUMNS, rows)


def csv_files(
    invoices: Sequence[InvoiceSnapshot], start: date, end: date
) -> tuple[RenderedFile, RenderedFile]:
    """Both CSV files for the period, named after it, ready to download or zip."""
    suffix = f"{start:%Y%m%d}-{end:%Y%m%d}"
    return (
        RenderedFile(f"invoices_{suffix}.csv", "text/csv", invoices_csv(invoices, start, end)),
        RenderedFile(f"invoice_lines_{suffix}.csv", "text/csv", lines_csv(invoices, start, end)),
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _write(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return out.getvalue().encode("utf-8")
