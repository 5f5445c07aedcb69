"""Measure invoice PDF rendering: seconds per invoice and per page, from 1 to 40 pages.

Usage: .venv/bin/python bench/bench_pdf.py [--repeat 3]

Renders realistic monthly invoices (three lines per ticket with agents and dates, an activity
report of about 30 bookings per page) sized to about 1, 5, 10, 20 and 40 pages, each `repeat`
times after one warm-up render, and prints `name value unit` lines: the page count reached, the
median seconds per invoice (wall clock and this process's CPU time: on a shared machine the CPU
figure is the stable one) and per page. The cost should be linear in pages (seconds per page
about constant) and a 20-page invoice under 1 s (issue 15). Peak memory of one render is
printed last (tracemalloc, a separate pass, since tracing slows rendering down).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal

from pypdf import PdfReader

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
    vat_id="DE136695976", tax_number="27/123/45678", email="buchhaltung@nordlicht-it.example",
    phone="+49 40 1234567-0", iban="DE89370400440532013000", bic="COBADEFFXXX",
    bank="Commerzbank Hamburg",
)
BUYER = Party(
    "Müller & Söhne Maschinenbau KG", "Industriestraße 7", "21079", "Hamburg", "DE",
    vat_id="DE811907980", customer_number="K-10002",
)
ACTIVITIES = ("Remote", "Vor-Ort", "Notfall")
AGENTS = ("Anna Becker", "Jonas Schulz", "Lena Hoffmann", "Tobias Wagner")
#: target pages → (invoice lines, activity report bookings); the page count reached is printed.
RECIPES = {1: (1, 2), 5: (12, 90), 10: (24, 210), 20: (48, 450), 40: (96, 930)}


def sample_invoice(serial: int, lines: int, entries: int) -> InvoiceSnapshot:
    """A monthly invoice: three lines per ticket (activity, agents, dates), 19 % VAT, and an
    activity report with one booking per row."""
    start = date(2026, 11, 1)
    tickets = tuple(TicketRef(f"{31000 + n}", f"Störung Arbeitsplatz {n}: Drucker und VPN")
                    for n in range(1, max(1, lines // 3) + 1))
    invoice_lines = tuple(
        Line(n, f"{ACTIVITIES[n % 3]} ({AGENTS[n % 4]}, {AGENTS[(n + 1) % 4]})", Decimal("1.75"), "HUR",
             Decimal("95.00"), Decimal("166.25"), Decimal("19"), ticket_number=tickets[(n - 1) // 3].number,
             service_start=start + timedelta(days=n % 20), service_end=start + timedelta(days=n % 20 + 2))
        for n in range(1, lines + 1)
    )
    annex = tuple(
        AnnexEntry(tickets[i % len(tickets)].number, start + timedelta(days=i % 28), AGENTS[i % 4],
                   ACTIVITIES[i % 3], Decimal(37 + i % 20), Decimal(45 + i % 20 // 15 * 15))
        for i in range(entries)
    )
    net = sum((line.net for line in invoice_lines), start=Decimal(0))
    vat = (net * Decimal("0.19")).quantize(Decimal("0.01"))
    return InvoiceSnapshot(
        type_code=INVOICE, number=f"RE-2026-{serial:05d}", issue_date=date(2026, 12, 1),
        due_date=date(2026, 12, 15), service_start=start, service_end=date(2026, 11, 30),
        currency="EUR", language="de", seller=SELLER, buyer=BUYER, lines=invoice_lines,
        vat_groups=(VatGroup("S", Decimal("19"), net, vat),), net=net, vat=vat,
        gross=net + vat, tickets=tickets, annex=annex, billing_month="2026-11",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    render_pdf(sample_invoice(0, 3, 3))  # warm-up: template compile, font loading
    for target, (lines, entries) in RECIPES.items():
        snapshot = sample_invoice(target, lines, entries)
        times, cpu = [], []
        for _ in range(args.repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            rendered = render_pdf(snapshot)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        pages = len(PdfReader(io.BytesIO(rendered.content)).pages)
        seconds = statistics.median(times)
        print(f"pdf_pages_{target} {pages} pages")
        print(f"pdf_seconds_{target} {seconds:.3f} s")
        print(f"pdf_cpu_seconds_{target} {statistics.median(cpu):.3f} s")
        print(f"pdf_seconds_per_page_{target} {seconds / pages:.4f} s/page")
    tracemalloc.start()
    render_pdf(sample_invoice(20, *RECIPES[20]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"pdf_peak_traced_memory_20 {peak / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
