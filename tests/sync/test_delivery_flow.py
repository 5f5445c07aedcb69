"""E-mail delivery through the sync flow against a real SMTP server (aiosmtpd on 127.0.0.1).

Issuing queues an `email` outbox row; the run sends it after commit with the stored hybrid PDF
(and the XRechnung XML for public buyers), the invoice becomes `sent`, failures stay visible.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select
from sync_fixtures import ADDRESSES, SELLER, Sidecar, closed_ticket, make_settings

from addon.cli import main
from addon.customers import import_customers
from addon.db import transaction
from addon.invoicing.cancel import REBILL, cancel_invoice
from addon.invoicing.einvoice import extract_xml
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.validate import validate_xrechnung
from addon.models import AuditLog, Invoice, Outbox
from addon.sync import writeback

REMOTE = 1


@dataclass
class Mailbox:
    """aiosmtpd handler that keeps what arrives, or refuses recipients when told to."""

    messages: list[Any] = field(default_factory=list)
    rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[Any]:
    started: list[Controller] = []

    def start(mailbox: Mailbox, port: int | None = None) -> int:
        controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port())
        controller.start()
        started.append(controller)
        return int(controller.port)

    yield start
    for controller in started:
        controller.stop()


def with_smtp(sidecar: Sidecar, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar.settings = make_settings(
        sidecar.sandbox, sidecar.settings.database_url, sidecar.settings.data_dir,
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_SECURITY="plain",
        SMTP_SENDER="rechnung@nordlicht-it.example", SELLER_EMAIL="buchhaltung@nordlicht-it.example",
        SELLER_PHONE="+49 40 1234567-0",
    )
    monkeypatch.setattr(writeback, "MAIL_BACKOFF", 0.01)


def import_customers_with(sidecar: Sidecar, tmp_path: Path, extra: dict[int, dict[str, Any]]) -> None:
    path = tmp_path / "customers.json"
    document = {"default_rate": "95.00", "internal_activities": ["Intern"],
                "customers": [{"remote_id": str(org), **ADDRESSES[org], **values} for org, values in extra.items()]}
    path.write_text(json.dumps(document), encoding="utf-8")
    with transaction(sidecar.factory) as session:
        import_customers(session, "zammad", path)


def test_issued_invoices_are_mailed_after_commit(
    sidecar: Sidecar, tmp_path: Path, smtp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = Mailbox()
    with_smtp(sidecar, smtp(mailbox), monkeypatch)
    import_customers_with(sidecar, tmp_path, {
        1: {"email": "buchhaltung@hansen.example"},
        2: {"email": "rechnung@mueller.example", "xrechnung": True, "buyer_reference": "04011000-12345-67"},
        3: {},
    })
    sb = sidecar.sandbox
    closed_ticket(sb, "Drucker", 1, [(30, 3, REMOTE)])
    closed_ticket(sb, "Backup", 2, [(45, 3, REMOTE)])
    closed_ticket(sb, "Firewall", 3, [(15, 3, REMOTE)])

    result = sidecar.run()

    assert result.ok, result.error
    assert (result.counts["invoiced"], result.counts["mailed"]) == (3, 2)
    by_recipient = {message["To"]: message for message in mailbox.messages}
    assert set(by_recipient) == {"buchhaltung@hansen.example", "rechnung@mueller.example"}
    with sidecar.factory() as session:
        invoices = {i.customer.remote_id: i for i in session.execute(select(Invoice)).scalars()}
        for org, address in (("1", "buchhaltung@hansen.example"), ("2", "rechnung@mueller.example")):
            invoice = invoices[org]
            assert (invoice.state, invoice.delivery_status, invoice.delivery_error) == ("sent", "sent", None)
            message = by_recipient[address]
            assert invoice.number in message["Subject"]
            parts = {part.get_filename(): part for part in message.iter_attachments()}
            pdf_name = Path(invoice.pdf_path or "").name
            assert parts[pdf_name].get_content() == Path(invoice.pdf_path or "").read_bytes()
            assert extract_xml(parts[pdf_name].get_content()) == Path(invoice.xml_path or "").read_bytes()
        xrechnung = by_recipient["rechnung@mueller.example"]
        names = sorted(p.get_filename() for p in xrechnung.iter_attachments())
        assert names == sorted([Path(invoices["2"].pdf_path or "").name, f"{invoices['2'].number}-xrechnung.xml"])
        public_xml = next(p for p in xrechnung.iter_attachments() if p.get_filename().endswith(".xml"))
        assert validate_xrechnung(public_xml.get_payload(decode=True)) == []
        assert b"04011000-12345-67" in public_xml.get_payload(decode=True)
        assert len(list(by_recipient["buchhaltung@hansen.example"].iter_attachments())) == 1
        # a customer without address: visible, not silently skipped
        assert (invoices["3"].state, invoices["3"].delivery_status) == ("issued", "failed")
        assert "no e-mail address" in (invoices["3"].delivery_error or "")
        sends = session.execute(select(AuditLog.action).where(AuditLog.action == "send")).scalars().all()
        assert len(sends) == 2

    sb.advance(3600)
    again = sidecar.run()
    assert again.counts["mailed"] == 0 and len(mailbox.messages) == 2

    # a cancellation is a document of its own and is mailed too
    with transaction(sidecar.factory) as session:
        number = str(invoices["1"].number)
        cancel_invoice(session, sidecar.settings, number, "Testlauf", render_pdf, datetime.now(UTC), "test",
                       decision=REBILL)
    after_cancel = sidecar.run()
    assert after_cancel.counts["mailed"] == 2  # the cancellation and the invoice that re-bills the time
    storno, rebilled = mailbox.messages[-2:]
    assert rebilled["Subject"].startswith("Rechnung RE-2026-00004")
    assert storno["To"] == "buchhaltung@hansen.example"
    assert storno["Subject"].startswith("Stornorechnung ST-2026-00001")
    assert number in storno.get_body(preferencelist=("plain",)).get_content()
    with sidecar.factory() as session:
        cancelled = session.execute(select(Invoice).where(Invoice.number == number)).scalar_one()
        document = session.execute(select(Invoice).where(Invoice.number == "ST-2026-00001")).scalar_one()
        assert (cancelled.state, document.state, document.delivery_status) == ("cancelled", "sent", "sent")


def test_refused_recipient_fails_visibly_and_transient_errors_are_retried(
    sidecar: Sidecar, tmp_path: Path, smtp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens yet: connection refused is transient
    with_smtp(sidecar, port, monkeypatch)
    import_customers_with(sidecar, tmp_path, {1: {"email": "buchhaltung@hansen.example"},
                                              2: {"email": "unknown@mueller.example"}})
    sb = sidecar.sandbox
    closed_ticket(sb, "Drucker", 1, [(30, 3, REMOTE)])

    first = sidecar.run()

    assert first.counts["mail_failed"] == 1
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert (invoice.state, invoice.delivery_status) == ("issued", "pending")
        assert "Connection refused" in (invoice.delivery_error or "") or "Errno" in (invoice.delivery_error or "")
        row = session.execute(select(Outbox).where(Outbox.kind == "email")).scalar_one()
        assert (row.status, row.attempts) == ("pending", 1)

    mailbox = Mailbox()
    smtp(mailbox, port)
    second = sidecar.run()

    assert second.counts["mailed"] == 1 and len(mailbox.messages) == 1
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert (invoice.state, invoice.delivery_status, invoice.delivery_error) == ("sent", "sent", None)

    mailbox.rcpt_reply = "550 5.1.1 mailbox unknown"
    closed_ticket(sb, "Backup", 2, [(45, 3, REMOTE)])
    third = sidecar.run()

    assert third.counts["mail_failed"] == 1
    with sidecar.factory() as session:
        refused = session.execute(select(Invoice).where(Invoice.number == "RE-2026-00002")).scalar_one()
        assert (refused.state, refused.delivery_status) == ("issued", "failed")
        assert "550" in (refused.delivery_error or "")
        row = session.execute(select(Outbox).where(Outbox.marker == "email:RE-2026-00002")).scalar_one()
        assert (row.status, row.attempts) == ("failed", 1)  # permanent: not retried
    env_file = tmp_path / "cli.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in {
        "HELPDESK_KIND": "zammad", "HELPDESK_URL": sb.url, "HELPDESK_TOKEN": sb.admin_token,
        "DATABASE_URL": sidecar.settings.database_url, "DATA_DIR": str(sidecar.settings.data_dir), **SELLER,
    }.items()), encoding="utf-8")
    listing = CliRunner().invoke(main, ["--env-file", str(env_file), "invoices", "list"], catch_exceptions=False)
    assert listing.exit_code == 0, listing.output
    [line] = [line for line in listing.output.splitlines() if "RE-2026-00002" in line]
    assert "mail failed" in line and "550" in line
