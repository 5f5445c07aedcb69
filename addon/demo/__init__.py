"""`ticketbill demo`: the whole flow against the built-in Zammad sandbox, on SQLite.

The sandbox keeps its state in the demo's data directory, so a second demo run sees the
tickets as the first one left them (status, reference, note) and creates nothing new.

Ports: the sandbox prefers 8401 and the sidecar's links 8400; a port that is taken is
replaced by a free one and the demo says which. The sidecar's port is reserved (bound) for
the whole demo, because the invoice links written into the tickets name it. The demo writes
its settings to `DATA_DIR/ticketbill.env`, so the CLI can look at the demo instance with
`ticketbill --env-file instance/demo/ticketbill.env invoices list`.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.contracts import import_document
from addon.contracts.ledger import contingent_report
from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, migrated, transaction, upgrade
from addon.invoicing.issue import pdf_renderer
from addon.invoicing.snapshot import ACTIVITY_REPORT
from addon.models import BilledEntry, Invoice, Ticket
from addon.settings import Settings, load_settings
from addon.sync.jobs import run_sync
from connectors import get_connector
from connectors.sandbox.zammad import ZammadSandbox
from connectors.sandbox.zammad_seed import add_public_sector

DEMO_SELLER: Mapping[str, str] = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH",
    "SELLER_STREET": "Hafenstraße 12",
    "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg",
    "SELLER_COUNTRY": "DE",
    "SELLER_VAT_ID": "DE136695976",
    "SELLER_TAX_NUMBER": "22/123/45678",
    "SELLER_IBAN": "DE89370400440532013000",
    "SELLER_BIC": "COBADEFFXXX",
    "SELLER_BANK": "Commerzbank Hamburg",
    "SELLER_EMAIL": "buchhaltung@nordlicht-it.example",
    "SELLER_PHONE": "+49 40 1234567-0",
}

DEMO_ADDRESSES = Path(__file__).with_name("customers.json")
DEMO_CONTRACTS = Path(__file__).with_name("contracts.json")
DEMO_PORT = 8401
SIDECAR_PORT = 8400
ENV_FILE = "ticketbill.env"


class PortTaken(RuntimeError):
    """The port asked for with --port is in use; the message says which and what to do."""


def _bind(port: int) -> socket.socket | None:
    """A socket bound to 127.0.0.1:`port`, or None when another program holds the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        return None
    return sock


def reserve_port(preferred: int, explicit: bool) -> socket.socket:
    """A listening socket on 127.0.0.1: `preferred` if free, else (unless the user asked for
    exactly that port) a free one."""
    sock = _bind(preferred)
    if sock is None:
        if explicit:
            raise PortTaken(f"port {preferred} on 127.0.0.1 is taken; choose another with --port")
        sock = _bind(0)
        assert sock is not None  # port 0 is never taken
    sock.listen(64)
    return sock


def start_sandbox(state_file: Path, preferred: int) -> ZammadSandbox:
    """The Zammad sandbox on `preferred` if that is free, else on a free port.

    Checked with a socket of our own first: werkzeug's server ends the process (SystemExit)
    on a taken port instead of raising.
    """
    probe = _bind(preferred)
    if probe is not None:
        probe.close()
    sandbox = ZammadSandbox(state_file=state_file, port=preferred if probe else 0, seed_reference_date=date.today())
    sandbox.start()
    return sandbox


def demo_environment(kind: str, helpdesk: Mapping[str, str], data_dir: Path, public_url: str) -> dict[str, str]:
    """The demo instance's settings as `.env` keys (also written to `DATA_DIR/ticketbill.env`)."""
    return {"HELPDESK_KIND": kind, **helpdesk, "DATA_DIR": str(data_dir), "PUBLIC_URL": public_url, **DEMO_SELLER}


def write_env_file(data_dir: Path, environment: Mapping[str, str]) -> Path:
    """Write the demo's settings for the CLI; every value quoted (names with spaces, ß, &)."""
    target = data_dir / ENV_FILE
    lines = [
        "# Written by `ticketbill demo` on every run: the demo instance's settings for the CLI, e.g.",
        f"#   .venv/bin/ticketbill --env-file {target} invoices list",
        "# The sandbox helpdesk answers only while the demo runs (or with --keep-running).",
    ]
    for key, value in environment.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"')
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def demo_settings(sandbox_url: str, token: str, data_dir: Path) -> Settings:
    return load_settings(demo_environment("zammad", {"HELPDESK_URL": sandbox_url, "HELPDESK_TOKEN": token},
                                          data_dir, f"http://127.0.0.1:{SIDECAR_PORT}"))


def demo_customers(sandbox_url: str, token: str, target: Path) -> Path:
    """Billing data for the sandbox's organizations, matched by name from `customers.json`.

    Organizations without an entry there stay unconfigured on purpose: their tickets show
    how ticketbill flags `needs_attention` instead of billing an incomplete address. The file
    also shows what accountants ask about: a discount (Müller), a customer layout with its own
    letterhead (Richter: template "modern") and a public buyer with a Leitweg-ID (XRechnung).
    """
    addresses = json.loads(DEMO_ADDRESSES.read_text(encoding="utf-8"))
    response = requests.get(
        f"{sandbox_url}/api/v1/organizations",
        headers={"Authorization": f"Token token={token}"},
        params={"per_page": 100},
        timeout=10,
    )
    response.raise_for_status()
    customers = [
        {"remote_id": str(org["id"]), "name": org["name"], **_located(addresses["by_name"][org["name"]])}
        for org in response.json()
        if org["name"] in addresses["by_name"]
    ]
    document = {
        "default_rate": addresses["default_rate"],
        "internal_activities": addresses["internal_activities"],
        "customers": customers,
    }
    target.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return target


def _located(entry: dict[str, Any]) -> dict[str, Any]:
    """A customer entry with its letterhead file name made a path next to this module."""
    if "letterhead" in entry:
        return {**entry, "letterhead": str(Path(__file__).with_name(entry["letterhead"]))}
    return entry


def demo_contracts(customers_file: Path, today: date) -> dict[str, Any]:
    """The demo retainer (`contracts.json`), its customer named by organization and its first
    period last month, so the first demo run issues last month's collective invoice."""
    ids = {c["name"]: c["remote_id"] for c in json.loads(customers_file.read_text(encoding="utf-8"))["customers"]}
    document = json.loads(DEMO_CONTRACTS.read_text(encoding="utf-8"))
    start = f"{today.year - (today.month == 1)}-{(today.month - 2) % 12 + 1:02d}"
    for contract in document["contracts"]:
        contract["customer"] = ids[contract["customer"]]
        contract["retainer"]["start_period"] = start
    return document


DEMO_CATEGORIES = {1: "warranty", 2: "goodwill"}  # organization id → category of its last closed ticket


def demo_categories(sandbox_url: str, admin_token: str, agent_token: str) -> list[str]:
    """Set a billing category as the team lead would in the ticket sidebar: the last closed
    ticket of Bäckerei Hansen becomes warranty, Müller's goodwill.

    Done after `register` over the REST API (with the agent's own token), because the field
    only exists once registration created it — exactly as in a real Zammad. A ticket that
    already has a category is left alone, so a second demo run changes nothing.
    """
    api = f"{sandbox_url}/api/v1"
    tickets: list[dict[str, Any]] = []
    page = 1
    while True:
        response = requests.get(f"{api}/tickets", params={"page": page, "per_page": 50}, timeout=10,
                                headers={"Authorization": f"Token token={admin_token}"})
        response.raise_for_status()
        rows = response.json()
        if not rows:
            break
        tickets += rows
        page += 1
    done = []
    for org_id, category in DEMO_CATEGORIES.items():
        closed = [t for t in tickets if t.get("organization_id") == org_id and t.get("state_id") == 4]
        if not closed:
            continue
        ticket = max(closed, key=lambda t: int(t["id"]))
        if not ticket.get("billing_category"):
            response = requests.put(f"{api}/tickets/{ticket['id']}", json={"billing_category": category},
                                    headers={"Authorization": f"Token token={agent_token}"}, timeout=10)
            response.raise_for_status()
        done.append(f"#{ticket['number']} {category}")
    return done


def _hours(minutes: Decimal) -> str:
    return f"{minutes / 60:.2f}"


def print_report(factory: sessionmaker[Session], links_title: str, link: Callable[[str], str]) -> None:
    """The table the admin sees: one row per invoice, then tickets that are not invoiced, then
    where the helpdesk shows the result (`link` maps a ticket's helpdesk id to a URL)."""
    with factory() as session:
        invoices = session.execute(
            select(Invoice).where(Invoice.number.is_not(None)).order_by(Invoice.id)
        ).scalars().all()
        print(f"\n{'ticket':8} {'customer':34} {'hours':>6} {'net':>10}  {'invoice':15} pdf")
        for inv in invoices:
            billed = session.execute(
                select(BilledEntry.billed_minutes).where(BilledEntry.invoice_id == inv.id)
            ).scalars().all()
            ticket = inv.ticket.number if inv.ticket else "-"
            print(
                f"{ticket:8} {inv.customer.name[:34]:34} {_hours(sum(billed, Decimal(0))):>6} "
                f"{inv.net:>10}  {inv.number:15} {inv.pdf_path}"
            )
        total = sum((inv.net for inv in invoices), Decimal(0))
        reports = sum(1 for inv in invoices if inv.type_code == ACTIVITY_REPORT)
        print(f"{len(invoices) - reports} invoices and {reports} activity report(s) of no-charge work, "
              f"net total {total} EUR")
        flagged = session.execute(
            select(Ticket).where(Ticket.billing_status != "invoiced").order_by(Ticket.number)
        ).scalars().all()
        if flagged:
            print("\nnot invoiced:")
            for ticket in flagged:
                print(f"  {ticket.number:8} {ticket.billing_status:16} {ticket.attention_reason or ''}")
        print(f"\n{links_title}")
        shown = [inv for inv in invoices if inv.ticket][:5]
        for inv in shown:
            print(f"  {link(inv.ticket.remote_id)}")  # type: ignore[union-attr]
        if len(invoices) > len(shown):
            print(f"  … and {len(invoices) - len(shown)} more")


def run_demo(
    helpdesk: str, data_dir: Path, keep_running: bool, port: int = DEMO_PORT, sidecar_port: int | None = None
) -> int:
    """Sandbox up → register → customers → sync → report. Returns the exit code.

    `port` is the sandbox's preferred port (0: any free one), `sidecar_port` the one the user
    asked for with --port (taken: an error) or None (8400 if free, else any free one).
    """
    if helpdesk not in ("zammad", "otrs"):
        raise ValueError(f"no sandbox for {helpdesk!r}")
    try:
        listener = reserve_port(SIDECAR_PORT if sidecar_port is None else sidecar_port, sidecar_port is not None)
    except PortTaken as exc:
        print(f"demo: {exc}")
        return 1
    public_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        if helpdesk == "otrs":
            return run_otrs_demo(data_dir, keep_running, public_url)
        return _run_zammad_demo(data_dir, keep_running, port, public_url, listener)
    finally:
        listener.close()


def _run_zammad_demo(data_dir: Path, keep_running: bool, port: int, public_url: str, listener: socket.socket) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sandbox = start_sandbox(data_dir / "zammad-sandbox.json", port)
    try:
        with sandbox.lock:  # the public buyer (XRechnung), once; a second run finds it in the state file
            if add_public_sector(sandbox.state, date.today()):
                sandbox.persist()
        environment = demo_environment(
            "zammad", {"HELPDESK_URL": sandbox.url, "HELPDESK_TOKEN": sandbox.admin_token}, data_dir, public_url)
        settings = load_settings(environment)
        env_file = write_env_file(data_dir, environment)
        print(f"Zammad sandbox at {sandbox.url}; invoice links point to the sidecar at {public_url}")
        engine = make_engine(settings.database_url)
        upgrade(engine)
        factory = make_session_factory(engine)
        customers_file = demo_customers(sandbox.url, sandbox.admin_token, data_dir / "customers.json")
        with transaction(factory) as session:
            import_customers(session, "zammad", customers_file)
            import_document(session, "zammad", demo_contracts(customers_file, date.today()))
        connector = get_connector(settings)
        report = connector.register()
        print(f"register: created {list(report.created) or 'nothing'}, present {list(report.present)}")
        categories = demo_categories(sandbox.url, sandbox.admin_token, sandbox.agent_user_token)
        print(f"billing categories set by the agent: {', '.join(categories) or 'none'}")
        result = run_sync(factory, connector, settings, pdf_renderer(settings))
        print("sync:", ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
        print_report(
            factory,
            "sandbox tickets now carrying status, reference and note (Authorization: Token token=…;\n"
            "the sandbox runs during the demo only — `ticketbill demo --keep-running` keeps it up):",
            lambda remote_id: f"{sandbox.url}/api/v1/tickets/{remote_id}",
        )
        with transaction(factory) as session:
            print("\ncontingents:", *contingent_report(session, settings, datetime.now(UTC)), sep="\n  ")
        engine.dispose()
        print(f"\ninvoices (PDF with embedded XML): {settings.invoice_dir}")
        print(f"look at the demo instance with: .venv/bin/ticketbill --env-file {_shown(env_file)} invoices list")
        print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
        if result.error:
            print(f"sync reported: {result.error}")
        if keep_running:
            _serve_until_interrupted(settings, listener)
        return 0 if result.ok else 1
    finally:
        sandbox.stop()


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it is below it (shorter to copy)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def run_otrs_demo(data_dir: Path, keep_running: bool, public_url: str) -> int:
    """The same flow against the OTRS/Znuny sandbox (in memory, so no --keep-running)."""
    from addon.demo.otrs import run_otrs_sync

    settings, connector, result, seconds = run_otrs_sync(data_dir, dict(DEMO_SELLER), public_url)
    print("sync:", ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    with migrated(settings.database_url) as factory:
        print_report(factory, "sandbox tickets (the OTRS sandbox lives in memory during the demo):",
                     connector.ticket_url)
    print(f"\ninvoices (PDF with embedded XML): {settings.invoice_dir}")
    print(f"look at the demo instance with: .venv/bin/ticketbill --env-file {_shown(data_dir / ENV_FILE)} "
          "invoices list")
    print(f"\ndemo finished in {seconds:.1f} s")
    if keep_running:
        print("--keep-running needs the Zammad sandbox (it keeps its state in a file); ignored for otrs")
    if result.error:
        print(f"sync reported: {result.error}")
    return 0 if result.ok else 1


def _serve_until_interrupted(settings: Settings, listener: socket.socket) -> None:
    from waitress import create_server

    from addon import create_app

    server: Any = create_server(create_app(settings), sockets=[listener])
    threading.Thread(target=server.run, daemon=True).start()
    print(f"sidecar at {settings.public_url} — Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()
