"""`ticketbill demo` (the README's first command) on both sandboxes: invoices, then nothing new;
its settings file lets the CLI look at the demo instance; a taken port is replaced by a free one."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from addon.cli import main
from addon.db import migrated
from addon.demo import PortTaken, reserve_port, run_demo, start_sandbox
from addon.models import Invoice, Outbox


def invoices_and_writes(data_dir: Path) -> tuple[int, int]:
    with migrated(f"sqlite:///{data_dir / 'ticketbill.sqlite'}") as factory, factory() as session:
        invoices = session.execute(select(func.count()).select_from(Invoice)).scalar_one()
        writes = session.execute(select(func.count()).select_from(Outbox)).scalar_one()
    return invoices, writes


@pytest.mark.parametrize("helpdesk", ["zammad", "otrs"])
def test_demo_issues_invoices_and_a_second_run_creates_nothing(helpdesk: str, tmp_path: Path) -> None:
    assert run_demo(helpdesk, tmp_path, keep_running=False, port=0, sidecar_port=0) == 0
    first = invoices_and_writes(tmp_path)
    assert first[0] >= 15
    assert len(list((tmp_path / "invoices").glob("*.pdf"))) >= first[0]

    listed = CliRunner().invoke(main, ["--env-file", str(tmp_path / "ticketbill.env"), "invoices", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count(" issued ") == first[0]
    assert str(tmp_path / "invoices") in listed.output

    assert run_demo(helpdesk, tmp_path, keep_running=False, port=0, sidecar_port=0) == 0
    assert invoices_and_writes(tmp_path) == first


def test_zammad_demo_documents_answer_the_accountants_questions(tmp_path: Path) -> None:
    """What issue 13 found on the demo documents, checked on a fresh demo run: no PDF link
    annotation without the print flag, no agent-only URL, no 0,00 € payment request, the buyer's
    VAT ID never the seller's, XRechnung files for the public buyer, a discount and a customer
    layout in use."""
    import io

    from pypdf import PdfReader

    from addon.demo import DEMO_SELLER
    from addon.invoicing.snapshot import InvoiceSnapshot

    assert run_demo("zammad", tmp_path, keep_running=False, port=0) == 0
    with migrated(f"sqlite:///{tmp_path / 'ticketbill.sqlite'}") as factory, factory() as session:
        snapshots = [InvoiceSnapshot.from_json(row.snapshot)
                     for row in session.execute(select(Invoice).order_by(Invoice.id)).scalars() if row.snapshot]
    invoices = [s for s in snapshots if s.type_code == "380"]
    assert all(s.gross > 0 for s in invoices)  # a goodwill-only ticket is an activity report
    assert [s.number for s in snapshots if s.type_code == "LN"] == [f"LN-{date.today().year}-00001"]
    assert all(s.buyer.vat_id != DEMO_SELLER["SELLER_VAT_ID"] for s in snapshots)
    assert any(s.template == "modern" and s.letterhead for s in snapshots)
    assert any(s.allowances for s in snapshots)  # the retainer's document-level discount
    assert any(line.explanation.get("kind") == "discount" for s in snapshots for line in s.lines)
    public = [s.number for s in invoices if s.buyer_reference]
    assert public and all((tmp_path / "invoices" / f"{n}-xrechnung.xml").is_file() for n in public)
    for snapshot in invoices:  # BT-73/74 covers every line (PEPPOL-EN16931-R110/R111)
        assert all(snapshot.service_start <= line.service_start and line.service_end <= snapshot.service_end
                   for line in snapshot.lines if line.service_start and line.service_end)
    for pdf in (tmp_path / "invoices").glob("*.pdf"):
        content = pdf.read_bytes()
        assert b"#ticket/zoom" not in content, pdf.name
        for page in PdfReader(io.BytesIO(content)).pages:
            for annotation in page.get("/Annots") or ():
                assert int(annotation.get_object()["/F"]) & 4, pdf.name
@pytest.fixture
def taken_port() -> object:
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen(1)
        yield other_program.getsockname()[1]


def test_a_taken_port_is_replaced_unless_asked_for(taken_port: int, tmp_path: Path) -> None:
    with reserve_port(taken_port, explicit=False) as listener:
        assert listener.getsockname()[1] not in (taken_port, 0)
    with pytest.raises(PortTaken, match=f"port {taken_port} on 127.0.0.1 is taken; choose another with --port"):
        reserve_port(taken_port, explicit=True)
    sandbox = start_sandbox(tmp_path / "sandbox.json", taken_port)
    try:
        assert sandbox.port != taken_port
    finally:
        sandbox.stop()
    assert run_demo("zammad", tmp_path, keep_running=False, port=0, sidecar_port=taken_port) == 1
