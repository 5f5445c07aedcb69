"""End to end over HTTP: cancel from the CLI, re-bill on the next sync, drafts with approval.

The Zammad sandbox runs on loopback, the sidecar on SQLite and PostgreSQL; the CLI is driven
through click's CliRunner with an env file pointing at the same database and sandbox.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sync_fixtures import ADDRESSES, SELLER, Sidecar, closed_ticket

from addon.cli import main
from addon.customers import import_customers
from addon.db import transaction
from addon.invoicing.einvoice import extract_xml
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.invoicing.validate import validate_cii
from addon.models import BilledEntry, BillingHistory, Invoice, InvoiceLine, Ticket

REMOTE, ONSITE = 1, 2


def cli(sidecar: Sidecar, tmp_path: Path, *args: str, input: str | None = None) -> Result:
    """Run `ticketbill ARGS` against the sidecar's database and data directory."""
    env_file = tmp_path / "cli.env"
    values = {
        "HELPDESK_KIND": "zammad",
        "HELPDESK_URL": sidecar.sandbox.url,
        "HELPDESK_TOKEN": sidecar.sandbox.admin_token,
        "DATABASE_URL": sidecar.settings.database_url,
        "DATA_DIR": str(sidecar.settings.data_dir),
        "PUBLIC_URL": sidecar.settings.public_url,
        **SELLER,
    }
    env_file.write_text("".join(f"{key}='{value}'\n" for key, value in values.items()), encoding="utf-8")
    return CliRunner().invoke(main, ["--env-file", str(env_file), *args], input=input, catch_exceptions=False)


def import_with(sidecar: Sidecar, tmp_path: Path, org: int, **extra: object) -> None:
    path = tmp_path / f"customers-{org}.json"
    document = {"default_rate": "95.00", "internal_activities": ["Intern"],
                "customers": [{"remote_id": str(org), **ADDRESSES[org], **extra}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    with transaction(sidecar.factory) as session:
        import_customers(session, "zammad", path)


def test_cancellation_round_trip_rebills_each_entry_exactly_once(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sb, "Drucker druckt nicht", 1, [(50, 3, REMOTE), (20, 4, ONSITE)])
    assert sidecar.run().ok
    assert sb.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00001"

    result = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--reason", "falscher Stundensatz",
                 "--then", "rebill")

    assert result.exit_code == 0, result.output
    assert "RE-2026-00001 cancelled by ST-2026-00001" in result.output
    with sidecar.factory() as session:
        original = session.execute(select(Invoice).where(Invoice.number == "RE-2026-00001")).scalar_one()
        storno = session.execute(select(Invoice).where(Invoice.number == "ST-2026-00001")).scalar_one()
        assert (original.state, original.cancelled_by_id) == ("cancelled", storno.id)
        assert (storno.type_code, storno.state, storno.cancels_id) == ("381", "issued", original.id)
        assert (storno.net, storno.vat, storno.gross) == (-original.net, -original.vat, -original.gross)
        first = InvoiceSnapshot.from_json(original.snapshot or "")
        cancel = InvoiceSnapshot.from_json(storno.snapshot or "")
        assert (cancel.preceding_number, cancel.preceding_date) == ("RE-2026-00001", first.issue_date)
        assert len(cancel.lines) == len(first.lines)
        for mine, theirs in zip(cancel.lines, first.lines, strict=True):
            assert (mine.quantity, mine.net, mine.unit_price) == (-theirs.quantity, -theirs.net, theirs.unit_price)
        assert any("falscher Stundensatz" in note for note in cancel.notes)
        storno_lines = session.execute(select(InvoiceLine).where(InvoiceLine.invoice_id == storno.id)).scalars().all()
        assert sum(line.net for line in storno_lines) == -original.net
        assert session.execute(select(BilledEntry)).scalars().all() == []
        pdf = Path(storno.pdf_path or "").read_bytes()
        xml = Path(storno.xml_path or "").read_bytes()
        assert extract_xml(pdf) == xml and validate_cii(xml) == []
        assert b"<rsm:TypeCode>381</rsm:TypeCode>" in xml or b">381<" in xml
        assert b"RE-2026-00001" in xml

    rerun = sidecar.run()

    assert rerun.ok, rerun.error
    assert rerun.counts["invoiced"] == 1
    remote = sb.ticket(ticket_id)
    assert remote["billing_status"] == "invoiced"
    assert remote["billing_invoice_ref"] == "RE-2026-00002"
    bodies = [note["body"] for note in sidecar.notes(ticket_id)]
    # the cancellation and the new invoice are written in one run: one write, one note with both
    assert len(bodies) == 2
    assert "RE-2026-00001 storniert durch" in bodies[1] and "ST-2026-00001" in bodies[1]
    assert "RE-2026-00001 cancelled by ST-2026-00001 → RE-2026-00002" in bodies[1]

    with sidecar.factory() as session:
        documents = session.execute(select(Invoice).order_by(Invoice.id)).scalars().all()
        assert [(d.number, d.state) for d in documents] == [
            ("RE-2026-00001", "cancelled"), ("ST-2026-00001", "issued"), ("RE-2026-00002", "issued")]
        assert documents[2].net == documents[0].net
        # billed exactly once: per entry, the minutes net-billed over all documents equal its
        # billed minutes once, and the current link points at the new invoice
        net_billed: dict[int, Decimal] = defaultdict(Decimal)
        for row in session.execute(select(BillingHistory)).scalars():
            net_billed[row.entry_id] += row.billed_minutes
        links = {b.entry_id: b for b in session.execute(select(BilledEntry)).scalars()}
        assert set(links) == set(net_billed) and len(links) == 2
        for entry_id, link in links.items():
            assert link.invoice_id == documents[2].id
            assert net_billed[entry_id] == link.billed_minutes > 0
        events = session.execute(select(BillingHistory.event, BillingHistory.invoice_id)).all()
        assert sorted(events) == sorted([("billed", documents[0].id)] * 2 + [("released", documents[1].id)] * 2
                                        + [("billed", documents[2].id)] * 2)
        # and in money: the three documents add up to the new invoice alone
        assert sum(d.net for d in documents) == documents[2].net

    log = cli(sidecar, tmp_path, "invoices", "log", "RE-2026-00001")
    assert log.exit_code == 0, log.output
    actions = [line.split()[4] for line in log.output.splitlines()]
    assert actions == ["issue", "cancel"]
    assert "falscher Stundensatz" in log.output and "cli:" in log.output

    again = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--then", "rebill")
    assert again.exit_code == 1 and "is cancelled" in again.output
    sb.advance(3600)
    quiet = sidecar.run()
    assert quiet.ok and quiet.counts.get("invoiced", 0) == 0 and quiet.counts["written"] == 0


def test_customer_with_approval_gets_a_draft_until_approved(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    import_with(sidecar, tmp_path, 1, approval_required=True)
    ticket_id = closed_ticket(sb, "Server-Update", 1, [(30, 3, REMOTE)])

    first = sidecar.run()

    assert first.ok, first.error
    assert first.counts["drafted"] == 1
    assert sb.ticket(ticket_id)["billing_status"] == "draft"
    with sidecar.factory() as session:
        draft = session.execute(select(Invoice)).scalar_one()
        assert (draft.state, draft.number, draft.pdf_path, draft.net) == ("draft", None, None, Decimal("44.50"))
        draft_id = draft.id
    listing = cli(sidecar, tmp_path, "invoices", "list", "--state", "draft")
    assert f"draft {draft_id}" in listing.output   # the gross is shown
    assert "52.96" in listing.output

    sb.advance(3600)
    assert sidecar.run().counts.get("drafted", 0) == 0  # the draft's entries stay reserved

    discarded = cli(sidecar, tmp_path, "invoices", "discard", str(draft_id))
    assert discarded.exit_code == 0, discarded.output
    assert "1 time entries are free again" in discarded.output
    second = sidecar.run()
    assert second.counts["drafted"] == 1
    with sidecar.factory() as session:
        draft_id = session.execute(select(Invoice.id).where(Invoice.state == "draft")).scalar_one()

    approved = cli(sidecar, tmp_path, "invoices", "approve", str(draft_id))

    assert approved.exit_code == 0, approved.output
    assert f"draft {draft_id} issued as RE-2026-00001" in approved.output
    assert sidecar.run().ok
    assert sb.ticket(ticket_id)["billing_status"] == "invoiced"
    assert sb.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00001"
    paid = cli(sidecar, tmp_path, "invoices", "mark-paid", "RE-2026-00001")
    assert paid.exit_code == 0, paid.output
    listing = cli(sidecar, tmp_path, "invoices", "list")
    assert "RE-2026-00001" in listing.output and " paid " in listing.output
    log = cli(sidecar, tmp_path, "invoices", "log", "RE-2026-00001")
    assert [line.split()[4] for line in log.output.splitlines()] == ["approve", "issue", "mark_paid"]


def test_invalid_e_invoice_flags_the_ticket_and_issues_nothing(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    import_with(sidecar, tmp_path, 1, country="XX")
    ticket_id = closed_ticket(sb, "VPN", 1, [(30, 3, REMOTE)])

    result = sidecar.run()

    assert result.counts["billing_failed"] == 1
    assert "e-invoice RE-2026-00001 is invalid" in (result.error or "")
    assert sb.ticket(ticket_id)["billing_status"] == "needs_attention"
    with sidecar.factory() as session:
        assert session.execute(select(Invoice)).scalars().all() == []
        ticket = session.execute(select(Ticket)).scalar_one()
        assert "CountryID" in (ticket.attention_reason or "")
    import_with(sidecar, tmp_path, 1, country="DE")
    assert sidecar.run().ok
    assert sb.ticket(ticket_id)["billing_invoice_ref"] == "RE-2026-00001"  # no number was lost


def test_cancellation_of_an_xrechnung_customers_invoice_is_an_xrechnung_too(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    """An e-invoice is corrected in e-invoice form: a public buyer's cancellation used to come
    as hybrid PDF only, without the XRechnung the buyer's system processes."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from addon.invoicing.cancel import REBILL, cancel_invoice
    from addon.invoicing.render_pdf import render_pdf
    from addon.invoicing.validate import validate_xrechnung

    seller = replace(sidecar.settings.seller, email="buchhaltung@nordlicht-it.example", phone="+49 40 1234567-0")
    sidecar.settings = replace(sidecar.settings, seller=seller)
    import_with(sidecar, tmp_path, 1, xrechnung=True, buyer_reference="02000000-12345-67",
                email="e-rechnung@baeckerei-hansen.example")
    closed_ticket(sidecar.sandbox, "Kasse offline", 1, [(50, 3, REMOTE)])
    assert sidecar.run().ok
    directory = sidecar.settings.invoice_dir
    assert (directory / "RE-2026-00001-xrechnung.xml").is_file()
    with transaction(sidecar.factory) as session:
        cancellation = cancel_invoice(session, sidecar.settings, "RE-2026-00001", "Leitweg-ID falsch", render_pdf,
                                      datetime.now(UTC), "test", decision=REBILL)
        number = cancellation.number
    public = directory / f"{number}-xrechnung.xml"
    assert public.is_file(), sorted(p.name for p in directory.iterdir())
    assert validate_xrechnung(public.read_bytes()) == []
    assert b"<ram:TypeCode>381</ram:TypeCode>" in public.read_bytes()
