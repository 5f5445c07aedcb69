"""End to end in a real headless Chromium: what a team lead and an accountant do in a day.

Sign in → fix the ticket that needs attention (its customer's billing address) → approve and
issue a draft → download its PDF → cancel it → export DATEV. Every step leaves a screenshot.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from browser import shot
from sqlalchemy import select
from web_fixtures import PASSWORD, UI

from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Invoice


def sign_in(page, login: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    assert page.url.endswith("/login?next=/")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/")


def test_a_day_in_the_browser(ui: UI, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    shot(page, "01-sign-in")
    sign_in(page, "admin")
    page.wait_for_selector("#chart-revenue canvas")
    shot(page, "02-overview")

    # the ticket of the customer without billing data: fix the customer from the overview
    page.click("text=Kunde vervollständigen")
    page.wait_for_selector("#legal_name")
    shot(page, "03-customer-form-empty")
    page.click("button.primary")  # nothing filled in: field-level errors, nothing saved
    assert page.locator(".field-error").count() >= 1
    shot(page, "04-customer-form-errors")
    page.fill("#legal_name", "Kanzlei Richter & Partner mbB")
    page.fill("#street", "Jungfernstieg 30")
    page.fill("#postcode", "20354")
    page.fill("#city", "Hamburg")
    page.click("button.primary")
    page.wait_for_selector(".flash.ok")
    page.goto(f"/tickets/{ui.tickets['attention']}")
    page.click("text=Jetzt erneut prüfen")
    page.wait_for_selector(".flash.ok")
    shot(page, "05-ticket-fixed")
    assert "abgerechnet" in page.inner_text("h1") or "invoiced" in page.inner_text("h1")

    # approve and issue the waiting draft
    page.goto("/drafts")
    shot(page, "06-drafts")
    page.click("table a:has-text('Entwurf')")
    page.wait_for_selector("iframe.pdf")
    shot(page, "07-draft")
    page.click("text=Freigeben und ausstellen")
    page.wait_for_selector(".flash.ok")
    number = page.inner_text("h1").split()[1]
    assert number.startswith("RE-")
    shot(page, "08-invoice-issued")

    # download its PDF
    with page.expect_download() as download:
        page.click("dd a:has-text('PDF')")
    pdf = tmp_path / "invoice.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    # cancel it (the browser asks first)
    page.once("dialog", lambda dialog: dialog.accept())
    page.fill("#reason", "Falscher Leistungszeitraum")
    page.click("text=Rechnung stornieren")
    page.wait_for_selector(".flash.ok")
    assert page.inner_text("h1").startswith("Storno")
    shot(page, "09-cancelled")
    with ui.sidecar.factory() as session:
        original = session.execute(select(Invoice).where(Invoice.number == number)).scalar_one()
        assert original.state == "cancelled"

    # the invoice list, filtered by the htmx search
    page.goto("/invoices")
    page.fill("#f-number", "ST-")
    page.wait_for_function("document.querySelectorAll('#invoice-rows tbody tr').length === 1")
    shot(page, "10-invoices-filtered")

    # export DATEV for the days the documents were issued
    with ui.sidecar.factory() as session:
        # the printed (local) issue dates: from 23:00 UTC on, Berlin's date is already the next day
        days = [InvoiceSnapshot.from_json(i.snapshot).issue_date
                for i in session.execute(select(Invoice).where(Invoice.number.is_not(None)))
                .scalars()]
    page.goto("/exports")
    page.fill("#d-from", min(days).replace(day=1).isoformat())
    page.fill("#d-to", max(days).isoformat())
    shot(page, "11-exports")
    with page.expect_download() as download:
        page.click("text=DATEV exportieren")
    datev = tmp_path / "datev.csv"
    download.value.save_as(datev)
    assert datev.read_bytes().startswith(b'"EXTF"')
    assert number.encode() in datev.read_bytes()
    page.fill("#g-from", min(days).replace(day=1).isoformat())
    page.fill("#g-to", max(days).isoformat())
    with page.expect_download() as download:
        page.click("text=GDPdU exportieren")
    gdpdu = tmp_path / "gdpdu.zip"
    download.value.save_as(gdpdu)
    with zipfile.ZipFile(gdpdu) as archive:
        assert "index.xml" in archive.namelist()
        assert number.encode() in archive.read("rechnungen.txt")

    # run now, with live progress until it is done
    page.goto("/runs")
    page.click("text=Jetzt ausführen")
    page.wait_for_selector("#live:has-text('Lauf 2')")
    page.wait_for_selector("#live .badge.succeeded", timeout=60_000)
    shot(page, "12-runs")
    page.goto("/admin/contracts/new")
    shot(page, "13-contract-form")

