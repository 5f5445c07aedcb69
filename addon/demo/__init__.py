"""`ticketbill demo`: the whole flow against the built-in Zammad sandbox, on SQLite.

The sandbox keeps its state in the demo's data directory, so a second demo run sees the
tickets as the first one left them (status, reference, note) and creates nothing new.
"""

from __future__ import annotations

import json
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
from addon.models import BilledEntry, Invoice, Ticket
from addon.settings import Settings, load_settings
from addon.sync.jobs import run_sync
from connectors import get_connector
from connectors.sandbox.zammad import ZammadSandbox

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


def demo_settings(sandbox_url: str, token: str, data_dir: Path) -> Settings:
    return load_settings(
        {
            "HELPDESK_KIND": "zammad",
            "HELPDESK_URL": sandbox_url,
            "HELPDESK_TOKEN": token,
            "DATA_DIR": str(data_dir),
            "PUBLIC_URL": f"http://127.0.0.1:{SIDECAR_PORT}",
            # the web UI: the sandbox's admin and agents sign in with their helpdesk accounts
            "UI_HELPDESK_ROLES": "role:Admin=admin, role:Agent=team_lead",
            **DEMO_SELLER,
        }
    )


def demo_customers(sandbox_url: str, token: str, target: Path) -> Path:
    """Billing data for the sandbox's organizations, matched by name from `customers.json`.

    Organizations without an entry there stay unconfigured on purpose: their tickets show
    how ticketbill flags `needs_attention` instead of billing an incomplete address.
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
        {"remote_id": str(org["id"]), "name": org["name"], **addresses["by_name"][org["name"]]}
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
        print(f"{len(invoices)} invoices, net total {total} EUR")
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


def run_demo(helpdesk: str, data_dir: Path, keep_running: bool, port: int = DEMO_PORT) -> int:
    """Sandbox up → register → customers → sync → report. Returns the exit code."""
    if helpdesk == "otrs":
        return run_otrs_demo(data_dir, keep_running)
    if helpdesk != "zammad":
        raise ValueError(f"no sandbox for {helpdesk!r}")
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sandbox_state = data_dir / "zammad-sandbox.json"
    with ZammadSandbox.running(state_file=sandbox_state, port=port, seed_reference_date=date.today()) as sandbox:
        settings = demo_settings(sandbox.url, sandbox.admin_token, data_dir)
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
        login = demo_login(factory) if keep_running else None
        engine.dispose()
        print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
        if result.error:
            print(f"sync reported: {result.error}")
        if login is not None:
            print(f"\nweb UI: {settings.public_url}/  sign in as {login[0]} / {login[1]} "
                  "(admin, a new password each run)")
            print(f"  or with a helpdesk account: anna.becker@nordlicht-it.example / {sandbox.agent_password} "
                  f"(team lead), {sandbox.admin_login} / {sandbox.admin_password} (admin)")
            _serve_until_interrupted(settings)
        else:
            print("\nopen the web UI on this data: .venv/bin/ticketbill demo --serve (prints a sign-in)")
        return 0 if result.ok else 1


def run_otrs_demo(data_dir: Path, keep_running: bool) -> int:
    """The same flow against the OTRS/Znuny sandbox (in memory, so no --keep-running)."""
    from addon.demo.otrs import run_otrs_sync

    settings, connector, result, seconds = run_otrs_sync(
        data_dir, dict(DEMO_SELLER), f"http://127.0.0.1:{SIDECAR_PORT}"
    )
    print("sync:", ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    with migrated(settings.database_url) as factory:
        print_report(factory, "sandbox tickets (the OTRS sandbox lives in memory during the demo):",
                     connector.ticket_url)
    print(f"\ndemo finished in {seconds:.1f} s")
    if keep_running:
        print("--keep-running needs the Zammad sandbox (it keeps its state in a file); ignored for otrs")
    if result.error:
        print(f"sync reported: {result.error}")
    return 0 if result.ok else 1


DEMO_USER = "demo"


def demo_login(factory: sessionmaker[Session]) -> tuple[str, str]:
    """The demo's admin account with a fresh random password (never a fixed default)."""
    import secrets

    from addon.models import AppUser
    from addon.users import create_user, update_user

    password = secrets.token_urlsafe(12)
    with transaction(factory) as session:
        user = session.execute(select(AppUser).where(AppUser.login == DEMO_USER)).scalar_one_or_none()
        if user is None:
            create_user(session, DEMO_USER, "Demo Admin", "admin", password, datetime.now(UTC))
        else:
            update_user(session, user, role="admin", active=True, password=password)
    return DEMO_USER, password


def _serve_until_interrupted(settings: Settings) -> None:
    from waitress import create_server

    from addon import create_app

    server: Any = create_server(create_app(settings), host="127.0.0.1", port=SIDECAR_PORT)
    threading.Thread(target=server.run, daemon=True).start()
    print(f"sidecar at {settings.public_url} — Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()
