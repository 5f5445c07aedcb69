"""Measure invoice PDF rendering: time per invoice and peak memory.

Usage: .venv/bin/python bench/bench_pdf.py [--count 20] [--lines 10] [--entries 30]

Renders `count` invoices of `lines` lines and `entries` activity-report entries each (2-3 pages)
and prints the first (cold) render, mean / median / max of the warm renders, and peak memory:
Python allocations in one render (tracemalloc, measured in a separate pass because tracing slows
rendering down) and the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal

from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.snapshot import (
    INVOICE,
    AnnexEntry,
    InvoiceSnapshot,
    Line,
    Party,
    TicketRef,
    VatGroup,
)

SELLER = Party(
    "Nordlicht IT-Service GmbH", "Hafenstraße 12", "20457", "Hamburg", "DE",
    vat_id="DE123456789", tax_number="27/123/45678", email="rechnung@nordlicht-it.de",
    phone="+49 40 1234567", iban="DE89370400440532013000", bic="COBADEFFXXX",
    bank="Commerzbank Hamburg",
)
BUYER = Party(
    "Müller & Söhne Maschinenbau KG", "Industriestraße 7", "80331", "München", "DE",
    vat_id="DE987654321", customer_number="K-10042",
)


def sample_invoice(serial: int, lines: int, entries: int) -> InvoiceSnapshot:
    """A realistic monthly invoice: one line per ticket, hourly rate, 19 % VAT."""
    start = date(2026, 11, 1)
    tickets = tuple(
        TicketRef(f"2026110{n:04d}", f"Störung Arbeitsplatz {n}: Drucker und VPN",
                  f"https://helpdesk.example.com/#ticket/zoom/{4700 + n}")
        for n in range(1, lines + 1)
    )
    invoice_lines = tuple(
        Line(n, f"Support-Leistung zu Ticket {ticket.number}", Decimal("1.75"), "HUR",
             Decimal("95.00"), Decimal("166.25"), Decimal("19"), ticket_number=ticket.number)
        for n, ticket in enumerate(tickets, start=1)
    )
    annex = tuple(
        AnnexEntry(tickets[i % lines].number, start + timedelta(days=i % 28), "Anna Schmidt",
                   "Analyse, Telefonat mit Anwender, Lösung dokumentiert", Decimal("37"),
                   Decimal("45"))
        for i in range(entries)
    )
    net = sum((line.net for line in invoice_lines), start=Decimal(0))
    vat = (net * Decimal("0.19")).quantize(Decimal("0.01"))
    return InvoiceSnapshot(
        type_code=INVOICE, number=f"RE-2026-{serial:05d}", issue_date=date(2026, 11, 30),
        due_date=date(2026, 12, 14), service_start=start, service_end=date(2026, 11, 30),
        currency="EUR", language="de", seller=SELLER, buyer=BUYER, lines=invoice_lines,
        vat_groups=(VatGroup("S", Decimal("19"), net, vat),), net=net, vat=vat,
        gross=net + vat, tickets=tickets, annex=annex,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--entries", type=int, default=30)
    args = parser.parse_args()
    snapshots = [sample_invoice(n, args.lines, args.entries) for n in range(1, args.count + 1)]

    started = time.perf_counter()
    first = render_pdf(snapshots[0])
    cold_ms = (time.perf_counter() - started) * 1000

    warm: list[float] = []
    sizes: list[int] = []
    for snapshot in snapshots:
        started = time.perf_counter()
        rendered = render_pdf(snapshot)
        warm.append((time.perf_counter() - started) * 1000)
        sizes.append(len(rendered.content))

    tracemalloc.start()
    render_pdf(snapshots[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(f"invoices: {args.count} x ({args.lines} lines, {args.entries} annex entries), "
          f"{len(first.content) // 1024} KiB, mean size {statistics.mean(sizes) / 1024:.0f} KiB")
    print(f"cold first render:   {cold_ms:8.1f} ms (includes template compile, font loading)")
    print(f"warm mean:           {statistics.mean(warm):8.1f} ms per invoice")
    print(f"warm median:         {statistics.median(warm):8.1f} ms per invoice")
    print(f"warm max:            {max(warm):8.1f} ms")
    print(f"peak traced Python memory per render: {peak / 1024 / 1024:6.1f} MiB")
    print(f"process max RSS:                      {max_rss_kib / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
