"""Overview speed and page weight: the demo data, and a seeded 100,000 tickets / 600,000 entries
on SQLite and PostgreSQL. Prints `name value unit` lines.

    .venv/bin/python bench/bench_ui.py                       # demo + 100k on SQLite and PostgreSQL
    .venv/bin/python bench/bench_ui.py --tickets 20000 --skip-demo --skip-postgresql

Server time is the time the app takes for `GET /` and for the chart series the page fetches
after it is shown (`GET /overview/charts.json`), in process (Flask test client, signed in,
median of --repeat requests after one warm-up), as wall time and as the process's CPU time
(on a shared machine the wall time also counts waiting for a core; on SQLite the CPU time
includes the database's work, on PostgreSQL the server's work is in wall time only); page
weight is the HTML plus every stylesheet and script the page loads, raw and gzip-compressed.
PostgreSQL is the machine's test server (TICKETBILL_TEST_PG_URL), in a schema of its own that
is dropped afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import bindparam, create_engine, insert, text, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from addon import create_app
from addon.db import make_engine, upgrade
from addon.models import (
    AppUser,
    BilledEntry,
    ContingentLedger,
    Contract,
    Customer,
    Invoice,
    InvoiceLine,
    SyncRun,
    Ticket,
    TimeEntry,
)
from addon.settings import load_settings
from addon.users import hash_password

PG_URL = os.environ.get("TICKETBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SELLER = {"SELLER_NAME": "Bench GmbH", "SELLER_STREET": "Weg 1", "SELLER_POSTCODE": "20095", "SELLER_CITY": "Hamburg",
          "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000"}
PASSWORD = "bench password 1"
CHUNK = 10_000


def report(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.1f} {unit}", flush=True)


def _chunks(rows: list[dict[str, object]]) -> Iterator[list[dict[str, object]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


def seed(database_url: str, tickets: int, entries_per_ticket: int, now: datetime, seed_value: int = 4711) -> None:
    """A plausible history: 24 months of closed tickets, most invoiced (one invoice per ticket),
    a few unbilled, flagged, drafted, cancelled or without time; retainer ledgers."""
    rng = random.Random(seed_value)
    engine = make_engine(database_url)
    upgrade(engine)
    customers = [{"id": i, "helpdesk": "zammad", "remote_id": str(i), "name": f"Kunde {i:03d} GmbH",
                  "legal_name": f"Kunde {i:03d} GmbH", "street": "Hauptstraße 1", "postcode": "20095",
                  "city": "Hamburg", "country": "DE", "approval_required": i % 10 == 0, "xrechnung": False}
                 for i in range(1, 201)]
    agents = [f"agent{i:02d}@example.com" for i in range(25)]
    ticket_rows, entry_rows, invoice_rows, line_rows, billed_rows = [], [], [], [], []
    entry_id = 0
    for ticket_id in range(1, tickets + 1):
        closed = now - timedelta(minutes=rng.randrange(0, 730 * 24 * 60))
        roll = rng.random()
        status = ("unbilled" if roll < 0.01 else "needs_attention" if roll < 0.015 else "cancelled" if roll < 0.02
                  else "not_billable" if roll < 0.03 else "draft" if roll < 0.035 else "invoiced")
        customer = rng.randrange(1, 201)
        count = 0 if status == "not_billable" and rng.random() < 0.5 else max(1, int(rng.gauss(entries_per_ticket, 2)))
        ticket_rows.append({
            "id": ticket_id, "helpdesk": "zammad", "remote_id": str(ticket_id), "number": str(100000 + ticket_id),
            "title": f"Ticket {ticket_id}", "customer_id": customer, "state": "closed", "closed_at": closed,
            "remote_updated_at": closed, "tags": [], "billing_status": status, "status_version": 1, "seen_at": closed,
            "attention_reason": ("closed without booked time" if status == "not_billable" and count == 0
                                 else "customer has no billing address" if status == "needs_attention" else None)})
        if status in ("invoiced", "draft"):
            invoice_rows.append({
                "id": ticket_id, "series": "invoice", "number": None if status == "draft" else f"RE-{ticket_id:07d}",
                "type_code": "380", "state": "draft",  # lines first, then issued (the GoBD triggers)
                "final": status if status == "draft" else rng.choice(("issued", "sent", "paid")),
                "customer_id": customer, "ticket_id": ticket_id,
                "issued_at": None if status == "draft" else closed + timedelta(hours=1), "net": Decimal("0"),
                "vat": Decimal("0"), "gross": Decimal("0"), "access_key": secrets.token_urlsafe(16),
                "created_at": closed + timedelta(hours=1)})
            line_rows.append({"id": ticket_id, "invoice_id": ticket_id, "position": 1, "description": "Arbeitszeit",
                              "quantity": Decimal("1"), "unit": "HUR", "unit_price": Decimal("95"),
                              "net": Decimal("0"), "explanation": {}})
        net = Decimal(0)
        for index in range(count):
            entry_id += 1
            minutes = Decimal(rng.choice((10, 15, 20, 30, 45, 60, 90)))
            booked = closed - timedelta(minutes=rng.randrange(30, 7 * 24 * 60))
            internal = rng.random() < 0.03
            entry_rows.append({
                "id": entry_id, "helpdesk": "zammad", "remote_id": f"{ticket_id}-{index}", "ticket_id": ticket_id,
                "agent": rng.choice(agents), "activity": rng.choice(("Remote", "Vor-Ort", "Notfall")),
                "minutes": minutes, "booked_at": booked, "content_hash": "0" * 64,
                "not_billed_reason": "internal activity" if internal else None})
            if status in ("invoiced", "draft") and not internal:
                billed_rows.append({"entry_id": entry_id, "invoice_id": ticket_id, "line_id": ticket_id,
                                    "raw_minutes": minutes, "billed_minutes": minutes})
                net += minutes / 60 * 95
        if status in ("invoiced", "draft"):
            net = net.quantize(Decimal("0.01"))
            invoice_rows[-1].update(net=net, vat=(net * Decimal("0.19")).quantize(Decimal("0.01")))
            invoice_rows[-1]["gross"] = net + invoice_rows[-1]["vat"]
            line_rows[-1]["net"] = net
    contracts = [{"id": i, "code": f"FLAT-{i:02d}", "customer_id": i, "kind": "retainer", "trigger": "monthly",
                  "rounding_scope": "entry", "rounding_mode": "up", "rounding_increment": 15, "rounding_minimum": 0,
                  "minimum_by_activity": {}, "surcharge_policy": "highest", "travel_activities": [],
                  "material_markup": {}} for i in range(1, 21)]
    periods = sorted({f"{(now - timedelta(days=30 * k)):%Y-%m}" for k in range(6)})
    ledgers = [{"contract_id": c["id"], "period": p, "bucket": "allowance", "granted": 600,
                "consumed": rng.randrange(200, 700), "rolled_over": 0, "expired": 0, "overage": 0, "updated_at": now}
               for c in contracts for p in periods]
    finals = [{"key": row["id"], "final": row.pop("final")} for row in invoice_rows]
    started = time.perf_counter()
    with engine.begin() as connection:
        for table, rows in ((Customer, customers), (Ticket, ticket_rows), (TimeEntry, entry_rows),
                            (Invoice, invoice_rows), (InvoiceLine, line_rows), (BilledEntry, billed_rows),
                            (Contract, contracts), (ContingentLedger, ledgers)):
            for chunk in _chunks(rows):
                connection.execute(insert(table), chunk)
        issue = update(Invoice).where(Invoice.id == bindparam("key")).values(state=bindparam("final"))
        for chunk in _chunks([f for f in finals if f["final"] != "draft"]):
            connection.execute(issue, chunk)
        connection.execute(insert(SyncRun), [{"helpdesk": "zammad", "started_at": now, "finished_at": now,
                                              "status": "succeeded", "counts": {"tickets_seen": 1}}])
        connection.execute(insert(AppUser), [{"login": "lead", "name": "Lead", "role": "team_lead", "source": "local",
                                              "password_hash": hash_password(PASSWORD), "active": True,
                                              "created_at": now}])
        if connection.dialect.name == "postgresql":
            for table in ("customer", "ticket", "time_entry", "invoice", "invoice_line", "contract"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            connection.execute(text("ANALYZE"))
        else:
            connection.execute(text("ANALYZE"))
    report(f"seed_{engine.dialect.name}_rows", len(ticket_rows) + len(entry_rows) + len(billed_rows), "rows")
    report(f"seed_{engine.dialect.name}_seconds", time.perf_counter() - started, "s")
    engine.dispose()


def measure(name: str, database_url: str, data_dir: Path, repeat: int, login: str = "lead",
            password: str = PASSWORD) -> None:
    """Median server time of the signed-in overview, its HTML size and the whole page weight."""
    settings = load_settings({"HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://127.0.0.1:9", "HELPDESK_TOKEN": "x",
                              "DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "SECRET_KEY": "b" * 40,
                              "UI_LOGIN_RATE_LIMIT": "1000 per minute", **SELLER})
    app = create_app(settings)
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"csrf_token": token, "login": login, "password": password}).status_code == 302
    html = client.get("/", headers={"Accept-Language": "de"}).get_data()  # warm-up
    timings: dict[str, tuple[list[float], list[float]]] = {"overview": ([], []), "charts": ([], [])}
    for _ in range(repeat):
        for what, path in (("overview", "/"), ("charts", "/overview/charts.json")):
            started, used = time.perf_counter(), time.process_time()
            answer = client.get(path, headers={"Accept-Language": "de"})
            timings[what][0].append((time.perf_counter() - started) * 1000)
            timings[what][1].append((time.process_time() - used) * 1000)
            assert answer.status_code == 200
    assets = [*re.findall(rb'(?:href|src)="(/static/[^"]+)"', html), b"/overview/charts.json"]
    raw, packed = len(html), len(gzip.compress(html))
    for asset in assets:
        body = client.get(asset.decode()).get_data()
        raw, packed = raw + len(body), packed + len(gzip.compress(body))
    for what, (wall, cpu) in timings.items():
        report(f"{name}_{what}_server_ms_median", statistics.median(wall), "ms")
        report(f"{name}_{what}_server_cpu_ms_median", statistics.median(cpu), "ms")
        report(f"{name}_{what}_server_ms_max", max(wall), "ms")
    report(f"{name}_overview_html_kb", len(html) / 1024, "KB")
    report(f"{name}_page_weight_kb", raw / 1024, "KB")
    report(f"{name}_page_weight_gzip_kb", packed / 1024, "KB")
    app.extensions["ticketbill"].engine.dispose()


@contextmanager
def postgres_schema() -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def demo(repeat: int, workdir: Path) -> None:
    """The demo data (`ticketbill demo` against the Zammad sandbox), with a team lead added."""
    import contextlib
    import io

    from addon.db import make_session_factory, transaction
    from addon.demo import run_demo
    from addon.users import create_user

    with contextlib.redirect_stdout(io.StringIO()):
        run_demo("zammad", workdir, keep_running=False, port=0)
    url = f"sqlite:///{workdir / 'ticketbill.sqlite'}"
    engine = make_engine(url)
    with transaction(make_session_factory(engine)) as session:
        create_user(session, "lead", "Lead", "team_lead", PASSWORD, datetime.now(UTC))
    engine.dispose()
    measure("demo", url, workdir, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--entries-per-ticket", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgresql", action="store_true")
    args = parser.parse_args()
    now = datetime.now(UTC)
    size = f"{args.tickets // 1000}k"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_demo:
            demo(args.repeat, work / "demo")
        if not args.skip_sqlite:
            url = f"sqlite:///{work / 'bench.sqlite'}"
            seed(url, args.tickets, args.entries_per_ticket, now)
            measure(f"sqlite_{size}", url, work, args.repeat)
        if not args.skip_postgresql:
            with postgres_schema() as url:
                seed(url, args.tickets, args.entries_per_ticket, now)
                measure(f"postgresql_{size}", url, work, args.repeat)


if __name__ == "__main__":
    main()
