"""The monthly pass renders and validates its invoices' documents ahead in a process pool
(issue 15), and an invoice only ever gets the files of its own snapshot: a prediction that came
out different is rendered and validated again in the issuing transaction. On a pooled pass the
issuing process validates nothing (the workers do, and send the verdict), so it never loads
Saxon; an invalid verdict fails the invoice there exactly as inline validation would."""

from __future__ import annotations

import dataclasses
import io
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import snapshot_samples as samples
from pypdf import PdfReader
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_contracts_helpers import ANNA, REMOTE, import_contracts, run_at
from verified import assert_verified

from addon.contracts import periods
from addon.db import transaction
from addon.invoicing import prerender, validate
from addon.invoicing.documents import valid_files
from addon.invoicing.render_pdf import render_pdf
from addon.invoicing.validate import InvalidEInvoice
from addon.models import Customer, Invoice

OCTOBER = datetime(2026, 10, 14, 8, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def monthly(code: str, org: int) -> dict[str, object]:
    return {"code": code, "customer": str(org), "kind": "time_and_material", "trigger": "monthly",
            "rounding": {"scope": "entry", "mode": "up", "increment": 15}}


@pytest.fixture
def three_monthly_customers(sidecar: Sidecar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sidecar:
    monkeypatch.setattr(prerender, "MIN_INVOICES", 2)  # a pool for three invoices
    sidecar.import_customers(tmp_path, [1, 2, 3])
    import_contracts(sidecar, {"contracts": [monthly(f"M-{org}", org) for org in (1, 2, 3)]})
    sidecar.sandbox.set_now(OCTOBER)
    for org in (1, 2, 3):
        closed_ticket(sidecar.sandbox, f"Drucker {org}", org, [(30 * org, ANNA, REMOTE)])
    return sidecar


def issued(sidecar: Sidecar) -> list[Invoice]:
    with sidecar.factory() as session:
        return list(session.execute(select(Invoice).where(Invoice.number.is_not(None))
                                    .order_by(Invoice.id)).scalars())


def first_page(path: str) -> str:
    return PdfReader(io.BytesIO(Path(path).read_bytes())).pages[0].extract_text()


@pytest.fixture
def validations_here(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The XMLs validated in this (the issuing) process: every validation, CII or XRechnung,
    goes through `check_cii`."""
    seen: list[bytes] = []
    check = validate.check_cii

    def counted(xml_bytes: bytes) -> list[validate.Finding]:
        seen.append(xml_bytes)
        return check(xml_bytes)

    monkeypatch.setattr(validate, "check_cii", counted)
    return seen


def test_the_pass_takes_the_documents_rendered_ahead(three_monthly_customers: Sidecar, validations_here: list[bytes],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The issuer takes the workers' validated files: it validates nothing itself, and could not
    even import saxonche (the spawned workers start from a fresh interpreter, so they can)."""
    sidecar = three_monthly_customers
    before = prerender.totals["used"]

    with monkeypatch.context() as issuing:
        issuing.setitem(sys.modules, "saxonche", None)  # an import of it here raises ImportError
        result = run_at(sidecar, NOVEMBER)

    assert result.ok, result.error
    assert result.counts["period_invoiced"] == 3
    assert prerender.totals["used"] - before == 3  # all three from the pool's workers
    assert validations_here == []
    invoices = issued(sidecar)
    assert [i.number for i in invoices] == ["RE-2026-00001", "RE-2026-00002", "RE-2026-00003"]
    for invoice in invoices:
        assert invoice.pdf_path and invoice.number in first_page(invoice.pdf_path)
    assert_verified(sidecar.factory, sidecar.settings)  # stored hashes, XML and snapshots agree


def test_a_prediction_that_came_out_different_is_rendered_in_the_transaction(
        three_monthly_customers: Sidecar, validations_here: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar = three_monthly_customers
    predict = periods.predicted_snapshots

    def off_by_one_cent(*args, **kwargs):  # type: ignore[no-untyped-def]
        for snapshot, xrechnung in predict(*args, **kwargs):  # as if the data changed meanwhile
            yield dataclasses.replace(snapshot, net=snapshot.net + 1), xrechnung

    monkeypatch.setattr(periods, "predicted_snapshots", off_by_one_cent)
    before = prerender.totals["used"]

    result = run_at(sidecar, NOVEMBER)

    assert result.ok, result.error
    assert result.counts["period_invoiced"] == 3
    assert prerender.totals["used"] == before  # none taken: each rendered its own snapshot
    assert len(validations_here) == 3  # ... and validated it in the issuing transaction
    assert_verified(sidecar.factory, sidecar.settings)


def test_take_hands_out_an_equal_snapshots_files_once() -> None:
    from bench.bench_pdf import sample_invoice

    snapshot = sample_invoice(7, 3, 3)
    ahead = prerender.Prerendered(render_pdf, workers=1)
    try:
        ahead.submit(snapshot, False)
        assert ahead.take(dataclasses.replace(snapshot, net=snapshot.net + 1), False) is None
        ahead.submit(snapshot, False)
        assert ahead.take(snapshot, True) is None  # an XRechnung is another set of files
        ahead.submit(snapshot, False)
        files = ahead.take(snapshot, False)
        assert files is not None and [f.filename for f in files][1].endswith(".xml")
        assert ahead.take(snapshot, False) is None  # once
    finally:
        ahead.close()


def test_a_worker_validates_what_it_renders_as_the_issuer_would() -> None:
    """`render_valid` (what a worker runs) gives the verdict inline validation gives, with the
    XRechnung flag: the XRechnung rules run only on the XRechnung XML a public buyer gets."""
    valid = prerender.render_valid(samples.invoice(), render_pdf, True)
    assert valid.errors == [] and [f.filename.endswith(".xml") for f in valid.files] == [False, True, True]

    first, *others = samples.invoice().lines  # a line period starting before the invoice's:
    early = samples.invoice(lines=(dataclasses.replace(first, service_start=date(2026, 10, 25)), *others))
    assert prerender.render_valid(early, render_pdf, False).errors == []  # fine for EN 16931,
    verdict = prerender.render_valid(early, render_pdf, True)  # not for Peppol / XRechnung
    with pytest.raises(InvalidEInvoice) as inline:
        valid_files(early, render_pdf, xrechnung=True)
    assert verdict.files == [] and verdict.errors == inline.value.errors
    assert [error.split()[0] for error in verdict.errors] == ["PEPPOL-EN16931-R110"]


def test_an_invalid_verdict_raises_in_the_issuer_as_inline_validation_would() -> None:
    from concurrent.futures import Future

    snapshot = samples.invoice(seller=dataclasses.replace(samples.SELLER, vat_id=None, tax_number=None))
    with pytest.raises(InvalidEInvoice) as inline:
        valid_files(snapshot, render_pdf)
    ahead = prerender.Prerendered(render_pdf, workers=1)
    try:
        judged: Future[prerender.Rendered] = Future()
        judged.set_result(prerender.render_valid(snapshot, render_pdf, False))
        ahead.pending[snapshot.number] = (snapshot, False, judged)
        with pytest.raises(InvalidEInvoice) as taken:
            ahead.take(snapshot, False)
        assert str(taken.value) == str(inline.value) and taken.value.errors == inline.value.errors
        assert "BR-S-02" in str(taken.value) and ahead.used == 0
    finally:
        ahead.close()


def test_an_invalid_document_rendered_ahead_fails_its_customer_and_stores_nothing(
        three_monthly_customers: Sidecar, validations_here: list[bytes]) -> None:
    """The third customer's address has no ISO 3166 country: its predicted snapshot (equal to
    the one issued) is rendered and found invalid in a worker, and the verdict fails that
    customer in the issuer; the issuing process validated nothing, so the verdict came back."""
    sidecar = three_monthly_customers
    with transaction(sidecar.factory) as session:
        richter = session.execute(select(Customer).where(Customer.remote_id == "3")).scalar_one()
        richter.country = "XX"  # passes the import's shape check, but is no country
        richter_id = richter.id

    result = run_at(sidecar, NOVEMBER)

    assert result.counts["period_failed"] == 1 and result.counts["period_invoiced"] == 2
    assert "RE-2026-00003 is invalid" in (result.error or "") and "CountryID" in (result.error or "")
    assert validations_here == []
    assert [i.number for i in issued(sidecar)] == ["RE-2026-00001", "RE-2026-00002"]
    with sidecar.factory() as session:
        assert session.execute(select(Invoice).where(Invoice.customer_id == richter_id)).first() is None
    assert not list(sidecar.settings.invoice_dir.glob("RE-2026-00003*"))


def test_a_lost_worker_means_rendering_inline() -> None:
    """A worker killed (out of memory, by an admin) is infrastructure, not the invoice: the
    issuer renders that invoice itself instead of failing the customer."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from bench.bench_pdf import sample_invoice

    snapshot = sample_invoice(8, 3, 3)
    ahead = prerender.Prerendered(render_pdf, workers=1)
    try:
        lost: Future[prerender.Rendered] = Future()
        lost.set_exception(BrokenProcessPool("a worker died"))
        ahead.pending[snapshot.number] = (snapshot, False, lost)
        assert ahead.take(snapshot, False) is None
    finally:
        ahead.close()


def test_only_customers_without_the_periods_invoice_are_predicted(
        three_monthly_customers: Sidecar, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predicting rates a customer a second time: worth it only where an invoice is likely due."""
    sidecar = three_monthly_customers
    run_at(sidecar, NOVEMBER)
    predict = periods.predicted_snapshots
    asked: list[list[int]] = []

    def recorded(factory, settings, customer_ids, period, now):  # type: ignore[no-untyped-def]
        asked.append(list(customer_ids))
        return predict(factory, settings, customer_ids, period, now)

    monkeypatch.setattr(periods, "predicted_snapshots", recorded)
    sidecar.sandbox.set_now(datetime(2026, 10, 30, 10, 0, tzinfo=UTC))
    closed_ticket(sidecar.sandbox, "Nachtrag", 2, [(45, ANNA, REMOTE)])  # reaches us after October was billed

    result = run_at(sidecar, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))

    assert result.counts["period_invoiced"] == 1  # the late booking, rendered inline
    assert asked == [[]]
