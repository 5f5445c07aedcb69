"""One command for issue 15's targets: a large MSP's month, first run and idle second run.

Usage: .venv/bin/python -m bench.perf [--tickets 5000 --entries 30000 --customers 300]
                                      [--latency-ms 20] [--database-url postgresql://...] [--quick]

Generates the month (`bench/workload.py`, seeded) into a Zammad sandbox state file, serves it
from a separate process (so the sandbox's own CPU is not counted as ticketbill's) with
`latency_ms` of simulated round trip per request, then runs what the scheduler runs: set-up
(migrate, customers, contracts, register), a first sync run that bills everything (one monthly
invoice with activity report per customer) and a second run with nothing new. Prints
`name value unit` lines: wall and CPU time, helpdesk requests (in total, per billed ticket,
of the idle run), SQL statements per ticket (SQLAlchemy event counter), PDF render CPU, the
lower bound `requests × latency ÷ concurrency + render CPU ÷ cores` and the ratio to it, peak
RSS, then rating throughput (the pure core at `--entries` entries) and a 20-page invoice's
render time. `--quick` is a small size for trying the command out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import requests
from sqlalchemy import event, func, select

from addon import gc_tuning
from addon.contracts import import_document
from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.demo import demo_settings
from addon.invoicing import prerender
from addon.invoicing.issue import Renderer, pdf_renderer
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice
from addon.sync.jobs import run_sync
from bench import workload
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector


def emit(name: str, value: float | int, unit: str) -> None:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"{name} {text} {unit}", flush=True)


@contextlib.contextmanager
def sandbox_process(state_file: Path, latency_ms: float) -> Iterator[str]:
    """The sandbox serving `state_file` from its own process; yields its base URL."""
    with socket_port() as port:
        pass
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.perf", "--serve-sandbox", str(state_file), "--port", str(port),
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(f"{url}/api/v1/users/me", timeout=1,
                             headers={"Authorization": f"Token token={ZammadSandbox.admin_token}"})
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class SqlCounter:
    """Counts statements sent to the database (every `execute`, including executemany); with
    `--sql-top N` also by statement text with the time each text took in all (from sending it
    to its cursor returning), to print the N costliest: a statement that scans grows with the
    data and shows here long before it shows in the count."""

    def __init__(self, by_text: bool = False) -> None:
        self.count = 0
        self.texts: Counter[str] | None = Counter() if by_text else None
        self.seconds: Counter[str] = Counter()
        self._started: tuple[str, float] | None = None

    def __call__(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.count += 1
        if self.texts is not None:
            text = " ".join(statement.split())[:160]
            self.texts[text] += 1
            self._started = (text, time.perf_counter())

    def after(self, *_args: object) -> None:
        if self._started is not None:
            text, started = self._started
            self.seconds[text] += time.perf_counter() - started
            self._started = None


class TimedRenderer:
    """The deployment's renderer, counting the CPU it spends in this process; picklable, so
    the monthly pass may still hand it to its render pool (whose CPU the pool reports)."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.cpu = 0.0

    def __call__(self, snapshot: InvoiceSnapshot) -> RenderedFile:
        cpu = time.process_time()
        try:
            return self.renderer(snapshot)
        finally:
            self.cpu += time.process_time() - cpu


def measure_run(factory, connector: ZammadConnector, settings, render, sql: SqlCounter) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One sync run: wall, CPU, requests and statements it cost."""
    requests_before, sql_before = connector.http.request_count, sql.count
    started, started_cpu = time.perf_counter(), time.process_time()
    result = run_sync(factory, connector, settings, render)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    if result.error:
        print(f"# run error: {result.error[:500]}", file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "requests": connector.http.request_count - requests_before,
            "sql": sql.count - sql_before, **{f"count_{k}": v for k, v in result.counts.items()}}


def flow(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        state_file = data_dir / "zammad.json"
        started = time.perf_counter()
        # built in a child process: the generated helpdesk's records must not count in the
        # sidecar's peak RSS
        subprocess.run([sys.executable, "-m", "bench.perf", "--build-workload", str(state_file),
                        "--tickets", str(args.tickets), "--entries", str(args.entries),
                        "--customers", str(args.customers)], check=True)
        generated = json.loads(state_file.with_suffix(".workload.json").read_text())
        month = workload.Workload(**{**generated, "organizations": tuple(generated["organizations"])})
        emit("workload_seconds", time.perf_counter() - started, "s")
        emit("workload_tickets", month.tickets, "tickets")
        emit("workload_entries", month.entries, "entries")
        with sandbox_process(state_file, args.latency_ms) as url:
            settings = demo_settings(url, ZammadSandbox.admin_token, data_dir)
            if args.database_url:
                settings = dataclasses.replace(settings, database_url=args.database_url)
            engine = make_engine(settings.database_url)
            upgrade(engine)
            sql = SqlCounter(by_text=bool(args.sql_top))
            event.listen(engine, "before_cursor_execute", sql)
            event.listen(engine, "after_cursor_execute", sql.after)
            factory = make_session_factory(engine)
            with transaction(factory) as session:
                import_customers(session, "zammad", workload.customer_file(month, data_dir / "customers.json"))
                import_document(session, "zammad", workload.contract_document(month))
            connector = ZammadConnector.from_settings(settings)
            connector.register()
            render = TimedRenderer(pdf_renderer(settings))

            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            first = measure_run(factory, connector, settings, render, sql)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            # documents rendered in this process, and ahead in the pool's workers (PDF + XML)
            first_render = render.cpu + prerender.totals["worker_cpu"]
            emit("documents_rendered_ahead", prerender.totals["used"], "invoices")
            # 0 when every invoice was rendered and validated ahead: Saxon (~185 MiB) then
            # lives in the workers only
            emit("sidecar_loaded_saxon", int("saxonche" in sys.modules), "bool")
            if sql.texts is not None:
                print("#   count  total ms  statement (the costliest first)", file=sys.stderr)
                for text, seconds in sql.seconds.most_common(args.sql_top):
                    print(f"# {sql.texts[text]:7d} {seconds * 1000:9.0f}  {text}", file=sys.stderr)
            second = measure_run(factory, connector, settings, render, sql)
            with factory() as session:
                invoices = session.execute(select(func.count(Invoice.id))).scalar_one()
            engine.dispose()
    billed = max(1, first.get("count_written", 0))
    concurrency = getattr(settings, "helpdesk_concurrency", 1)
    cores = os.cpu_count() or 1
    bound = first["requests"] * args.latency_ms / 1000 / concurrency + first_render / cores
    emit("first_run_seconds", first["wall"], "s")
    emit("first_run_cpu_seconds", first["cpu"], "s")
    emit("first_run_requests", first["requests"], "requests")
    emit("first_run_invoices", invoices, "invoices")
    emit("first_run_tickets_written", first.get("count_written", 0), "tickets")
    emit("requests_per_billed_ticket", first["requests"] / billed, "requests")
    emit("sql_statements_per_ticket", first["sql"] / max(1, args.tickets), "statements")
    emit("render_cpu_seconds", first_render, "s")
    emit("lower_bound_seconds", bound, "s")
    emit("first_run_over_lower_bound", first["wall"] / bound if bound else 0.0, "x")
    emit("idle_run_requests", second["requests"], "requests")
    emit("idle_run_seconds", second["wall"], "s")
    emit("idle_run_sql_statements", second["sql"], "statements")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit("peak_rss", peak, "MiB")
    emit("peak_rss_render_worker", prerender.totals["worker_rss"] / 1024, "MiB")
    emit("peak_rss_whole_run", peak + prerender.totals["workers"] * prerender.totals["worker_rss"] / 1024, "MiB")


def rating(entries: int, pause: bool) -> None:
    """The pure rating core over `entries` entries of one customer (bench_billing's contract),
    called as the sidecar calls it: with the collector paused unless `--default-gc`."""
    from addon.billing import BillingRequest, bill
    from bench.bench_billing import contract
    from bench.bench_billing import entries as make_entries

    items, agents = make_entries(entries)
    request = BillingRequest(contract=contract(), agents=agents, entries=items, period="2026-12")
    cpu = time.process_time()
    with gc_tuning.paused() if pause else contextlib.nullcontext():
        bill(request)
    emit("rating_entries_per_second", entries / max(time.process_time() - cpu, 1e-9), "entries/s")


def pdf_20_pages() -> None:
    from addon.invoicing.render_pdf import render_pdf
    from bench.bench_pdf import RECIPES, sample_invoice

    render_pdf(sample_invoice(0, 3, 3))  # warm-up: fonts, template
    cpu = time.process_time()
    render_pdf(sample_invoice(20, *RECIPES[20]))
    emit("pdf_20_pages_cpu_seconds", time.process_time() - cpu, "s")


def build_workload(state_file: Path, args: argparse.Namespace) -> None:
    """Generate the month into a sandbox state file, and what was generated next to it."""
    sandbox = ZammadSandbox(state_file=state_file, seed_reference_date=date.today(), restart_seconds=0)
    month = workload.build(sandbox, tickets=args.tickets, entries=args.entries, customers=args.customers,
                           today=date.today())
    sandbox.save()
    state_file.with_suffix(".workload.json").write_text(json.dumps(dataclasses.asdict(month)))


def serve_sandbox(state_file: Path, port: int, latency_ms: float) -> None:
    """Serve a generated state without writing it back: the sandbox CLI saves the whole state
    after every write request, which at 5,000 tickets costs more than the request itself."""
    sandbox = ZammadSandbox(state_file=state_file, port=port, latency_ms=latency_ms, restart_seconds=0)
    sandbox.state_file = None
    sandbox.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--entries", type=int, default=30000)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument("--quick", action="store_true", help="500 tickets, 3,000 entries, 30 customers")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the first run to this file")
    parser.add_argument("--sql-top", type=int, default=0, help="print the N statements that took the most time")
    parser.add_argument("--skip-flow", action="store_true", help="only rating and the 20-page render")
    parser.add_argument("--serve-sandbox", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-workload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's collector settings (the sidecar tunes them: addon/gc_tuning.py)")
    args = parser.parse_args()
    if args.build_workload:
        build_workload(args.build_workload, args)
        return
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox, args.port, args.latency_ms)
        return
    if args.quick:
        args.tickets, args.entries, args.customers = 500, 3000, 30
    if not args.default_gc:  # as the sidecar's processes run (the CLI and the scheduler call it)
        gc_tuning.tune()
    emit("machine_cores", os.cpu_count() or 1, "cores")
    emit("machine_load_1min", os.getloadavg()[0], "load")
    if not args.skip_flow:
        flow(args)
    rating(args.entries, not args.default_gc)
    pdf_20_pages()


if __name__ == "__main__":
    main()
