"""The monthly pass renders its invoices' documents ahead in a process pool (issue 15), and an
invoice only ever gets the files of its own snapshot: a prediction that came out different
is rendered again in the issuing transaction."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket
from test_contracts_helpers import ANNA, REMOTE, import_contracts, run_at
from verified import assert_verified

from addon.contracts import periods
from addon.invoicing import prerender
from addon.models import Invoice

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


def test_the_pass_takes_the_documents_rendered_ahead(three_monthly_customers: Sidecar) -> None:
    sidecar = three_monthly_customers
    before = prerender.totals["used"]

    result = run_at(sidecar, NOVEMBER)

    assert result.ok, result.error
    assert result.counts["period_invoiced"] == 3
    assert prerender.totals["used"] - before == 3  # all three from the pool's workers
    invoices = issued(sidecar)
    assert [i.number for i in invoices] == ["RE-2026-00001", "RE-2026-00002", "RE-2026-00003"]
    for invoice in invoices:
        assert invoice.pdf_path and invoice.number in first_page(invoice.pdf_path)
    assert_verified(sidecar.factory, sidecar.settings)  # stored hashes, XML and snapshots agree


def test_a_prediction_that_came_out_different_is_rendered_in_the_transaction(
        three_monthly_customers: Sidecar, monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert_verified(sidecar.factory, sidecar.settings)


def test_take_hands_out_an_equal_snapshots_files_once() -> None:
    from addon.invoicing.render_pdf import render_pdf
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


def test_files_from_a_worker_are_validated_by_the_issuer(three_monthly_customers: Sidecar,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers build, the issuer validates: an invalid XML from the pool stores nothing. The
    next customers' predicted numbers are then one too high, so they render in their own
    transactions, and the numbers stay gapless."""
    sidecar = three_monthly_customers
    take = prerender.take

    def broken_xml(snapshot, xrechnung):  # type: ignore[no-untyped-def]
        files = take(snapshot, xrechnung)
        return files and [files[0], dataclasses.replace(files[1], content=b"<rsm:CrossIndustryInvoice/>")]

    monkeypatch.setattr(prerender, "take", broken_xml)

    result = run_at(sidecar, NOVEMBER)

    assert result.counts["period_failed"] == 1 and result.counts["period_invoiced"] == 2
    assert "RE-2026-00001" in (result.error or "")
    assert [i.number for i in issued(sidecar)] == ["RE-2026-00001", "RE-2026-00002"]


def test_a_lost_worker_means_rendering_inline() -> None:
    """A worker killed (out of memory, by an admin) is infrastructure, not the invoice: the
    issuer renders that invoice itself instead of failing the customer."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from addon.invoicing.render_pdf import render_pdf
    from bench.bench_pdf import sample_invoice

    snapshot = sample_invoice(8, 3, 3)
    ahead = prerender.Prerendered(render_pdf, workers=1)
    try:
        lost: Future[tuple[list[object], float, int]] = Future()
        lost.set_exception(BrokenProcessPool("a worker died"))
        ahead.pending[snapshot.number] = (snapshot, False, lost)  # type: ignore[assignment]
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
