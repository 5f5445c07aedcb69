"""Measure the whole sidecar flow on the demo data: wall time, HTTP requests, PDF time.

Usage: .venv/bin/python bench/bench_sync.py

Runs what `ticketbill demo` runs (Zammad sandbox on loopback, SQLite in a temporary
directory): register, one sync run that bills every closed ticket, and a second run that must
find nothing to do. Prints the wall time of each phase, the HTTP requests the connector sent
per billed ticket (from the shared HTTP client's counter), and the PDF render time per
invoice (the renderer is timed where the sync calls it).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.demo import demo_customers, demo_settings
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.sync.jobs import run_sync
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector


def main() -> None:
    render_times: list[float] = []

    def timed_render(snapshot: InvoiceSnapshot) -> RenderedFile:
        started = time.perf_counter()
        try:
            return render_pdf(snapshot)
        finally:
            render_times.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp, ZammadSandbox.running(
        restart_seconds=0, seed_reference_date=date.today()
    ) as sandbox:
        data_dir = Path(tmp)
        started = time.perf_counter()
        settings = demo_settings(sandbox.url, sandbox.admin_token, data_dir)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            import_customers(session, "zammad", demo_customers(sandbox.url, sandbox.admin_token, data_dir / "c.json"))
        connector = ZammadConnector.from_settings(settings)
        connector.register()
        setup = time.perf_counter() - started
        requests_before = connector.http.request_count

        started = time.perf_counter()
        first = run_sync(factory, connector, settings, timed_render)
        first_wall = time.perf_counter() - started
        first_requests = connector.http.request_count - requests_before

        requests_before = connector.http.request_count
        started = time.perf_counter()
        second = run_sync(factory, connector, settings, timed_render)
        second_wall = time.perf_counter() - started
        second_requests = connector.http.request_count - requests_before
        engine.dispose()

    invoiced = first.counts.get("invoiced", 0)
    print(f"set-up (migrate, customers, register): {setup:6.2f} s")
    print(f"first run:  {first_wall:6.2f} s  {first.counts.get('tickets_seen', 0)} tickets, {invoiced} invoices")
    print(f"            {first_requests} HTTP requests = {first_requests / max(invoiced, 1):.2f} per billed ticket")
    print(f"second run: {second_wall:6.2f} s  {second.counts.get('invoiced', 0)} invoices, "
          f"{second_requests} HTTP requests, {second.counts.get('written', 0)} writes")
    if render_times:
        print(f"PDF render per invoice: mean {statistics.mean(render_times) * 1000:.0f} ms, "
              f"median {statistics.median(render_times) * 1000:.0f} ms, max {max(render_times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
