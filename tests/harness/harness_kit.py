"""Shared parts of the reliability harnesses: a Zammad sandbox with billable work, a sidecar
database, a fast launcher of real `ticketbill` processes, and the end-of-harness checks.

Every harness ends the same way: the fault stops, a clean run follows, and then
`ticketbill verify` must pass, every booked minute must be on exactly one issued invoice, and
no ticket may carry the same ticketbill note twice (`assert_money_and_notes`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from empty_sandbox import empty_sandbox
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.models import BilledEntry, Invoice, TimeEntry
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

ROOT = Path(__file__).resolve().parents[2]
SELLER = {
    "SELLER_NAME": "Nordlicht IT-Service GmbH",
    "SELLER_STREET": "Hafenstraße 12",
    "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg",
    "SELLER_VAT_ID": "DE136695976",
    "SELLER_IBAN": "DE89370400440532013000",
}
CUSTOMERS = [
    {"remote_id": "1", "legal_name": "Bäckerei Hansen GmbH", "street": "Große Bergstraße 143", "postcode": "22767",
     "city": "Hamburg", "hourly_rate": "89.00"},
    {"remote_id": "2", "legal_name": "Müller & Söhne Maschinenbau KG", "street": "Industriestraße 7",
     "postcode": "21079", "city": "Hamburg"},
]
NOTE_REF = re.compile(r"ticketbill (?:ref )?([^<\s]+)")


@pytest.fixture
def sandbox() -> Iterator[ZammadSandbox]:
    with empty_sandbox() as emptied:
        yield emptied


def book_closed(sandbox: ZammadSandbox, title: str, org: int, minutes: list[int]) -> int:
    """A ticket with bookings (Remote, agent 3), closed; the sandbox clock moves 10 min per step."""
    ticket = sandbox.create_ticket(title, organization_id=org)
    for each in minutes:
        sandbox.advance(600)
        sandbox.book_time(ticket["id"], each, agent_id=3, type_id=1)
    sandbox.advance(600)
    sandbox.close_ticket(ticket["id"])
    return int(ticket["id"])


class Deployment:
    """One sidecar installation: its `.env`, its migrated database, customers imported."""

    def __init__(self, sandbox: ZammadSandbox, database_url: str, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.data_dir = tmp_path / "data"
        self.env_file = tmp_path / "ticketbill.env"
        values = {"HELPDESK_KIND": "zammad", "HELPDESK_URL": sandbox.url, "HELPDESK_TOKEN": sandbox.admin_token,
                  "DATABASE_URL": database_url, "DATA_DIR": str(self.data_dir), "PUBLIC_URL": "http://billing.test",
                  **SELLER}
        self.env_file.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()), encoding="utf-8")
        self.engine = make_engine(database_url)
        upgrade(self.engine)
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)
        customers = tmp_path / "customers.json"
        customers.write_text(json.dumps({"default_rate": "95.00", "internal_activities": ["Intern"],
                                         "customers": CUSTOMERS}), encoding="utf-8")
        with transaction(self.factory) as session:
            import_customers(session, "zammad", customers)
        connector = ZammadConnector(sandbox.url, token=sandbox.admin_token, booking_fields=True, customer_fields=True)
        assert connector.register().ok

    def cli(self, *command: str) -> list[str]:
        return ["--env-file", str(self.env_file), *command]

    def close(self) -> None:
        self.engine.dispose()


class Zygote:
    """Client of tests/harness/zygote.py: launches real `ticketbill` processes in ~50 ms."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("zygote.py")), str(log_dir)],
                                        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        self._launched: list[int] = []
        self.exits: dict[int, int] = {}
        self._changed = threading.Condition()
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, pid, *rest = line.split()
            with self._changed:
                if kind == "pid":
                    self._launched.append(int(pid))
                else:
                    self.exits[int(pid)] = int(rest[0])
                self._changed.notify_all()

    def launch(self, args: list[str]) -> int:
        """Start `ticketbill <args>`; its pid."""
        with self._changed:
            known = len(self._launched)
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(args) + "\n")
            self.process.stdin.flush()
            self._changed.wait_for(lambda: len(self._launched) > known, timeout=30)
            return self._launched[known]

    def wait(self, pid: int, timeout: float = 120) -> int:
        """The exit code of `pid` (negative: killed by that signal)."""
        with self._changed:
            assert self._changed.wait_for(lambda: pid in self.exits, timeout=timeout), f"{pid} did not end"
            return self.exits[pid]

    def run(self, args: list[str], timeout: float = 120) -> tuple[int, str]:
        """Run `ticketbill <args>` to its end: (exit code, output)."""
        return self.run_output(self.launch(args), timeout)

    def run_output(self, pid: int, timeout: float = 120) -> tuple[int, str]:
        """Wait for a launched process: (exit code, output)."""
        code = self.wait(pid, timeout)
        return code, (self.log_dir / f"{pid}.log").read_text(encoding="utf-8")

    def ended(self, pid: int) -> bool:
        with self._changed:
            return pid in self.exits

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    launcher = Zygote(tmp_path / "runs")
    try:
        yield launcher
    finally:
        launcher.close()


def wait_until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)


def booked_minutes(sandbox: ZammadSandbox) -> Decimal:
    """All minutes booked on closed (or merged: billed with the survivor) existing tickets."""
    with sandbox.lock:
        closed = {sid for sid in sandbox.state.data["states"] if sandbox.state.state_type(sid) in ("closed", "merged")}
        tickets = {t["id"] for t in sandbox.state.data["tickets"].values() if t["state_id"] in closed}
        rows = [r for r in sandbox.state.data["time_accountings"].values() if r["ticket_id"] in tickets]
    return sum((Decimal(str(r["time_unit"])) for r in rows), Decimal(0))


def assert_money_and_notes(deployment: Deployment, zygote: Zygote) -> dict[str, int]:
    """The end of every harness: verify passes, each booked minute is billed exactly once on an
    issued invoice, and no ticket carries one ticketbill note twice. Returns what was counted."""
    code, output = zygote.run(deployment.cli("verify"))
    assert code == 0, output
    with deployment.factory() as session:
        links = session.execute(select(BilledEntry.entry_id, BilledEntry.billed_minutes, Invoice.state)
                                .join(Invoice, Invoice.id == BilledEntry.invoice_id)).all()
        entries = session.execute(select(TimeEntry).where(TimeEntry.removed_at.is_(None))).scalars().all()
        invoices = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().all()
    assert {state for _, _, state in links} <= {"issued", "sent", "paid"}
    assert len({entry_id for entry_id, _, _ in links}) == len(links), "an entry is linked twice"
    linked = {entry_id for entry_id, _, _ in links}
    billed = sum((e.minutes for e in entries if e.id in linked), Decimal(0))  # as booked, before rounding
    booked = booked_minutes(deployment.sandbox)
    assert billed == booked, f"{booked} min booked on closed tickets, {billed} min on invoices"
    assert {e.id for e in entries if e.minutes} <= {entry_id for entry_id, _, _ in links} | {
        e.id for e in entries if e.not_billed_reason or e.written_off}
    with deployment.sandbox.lock:
        articles = [a for a in deployment.sandbox.state.data["articles"].values()
                    if a.get("internal") and "ticketbill" in str(a.get("body"))]
    refs = Counter((a["ticket_id"], m.group(1)) for a in articles for m in [NOTE_REF.search(str(a["body"]))] if m)
    twice = {key: n for key, n in refs.items() if n > 1}
    assert not twice, f"notes written twice: {twice}"
    return {"invoices": len(invoices), "entries": len(links), "notes": len(articles)}
