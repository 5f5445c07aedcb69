"""VAT treatment through the whole flow: EU reverse charge and the § 19 small business."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket

from addon.customers import import_customers
from addon.db import transaction
from addon.invoicing.einvoice import extract_xml
from addon.invoicing.snapshot import InvoiceSnapshot
from addon.invoicing.validate import validate_cii
from addon.models import Invoice

REMOTE = 1


def import_customer(sidecar: Sidecar, tmp_path: Path, **fields: str) -> None:
    customer = {"remote_id": "2", "legal_name": "Wiener Logistik GmbH", "street": "Praterstraße 31",
                "postcode": "1020", "city": "Wien", "hourly_rate": "100.00", **fields}
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"customers": [customer]}), encoding="utf-8")
    with transaction(sidecar.factory) as session:
        import_customers(session, "zammad", path)


def issued(sidecar: Sidecar) -> tuple[Invoice, InvoiceSnapshot, str, bytes]:
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
    pdf = Path(invoice.pdf_path).read_bytes()
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return invoice, InvoiceSnapshot.from_json(invoice.snapshot), text, extract_xml(pdf)


def test_eu_business_customer_gets_a_reverse_charge_invoice(sidecar: Sidecar, tmp_path: Path) -> None:
    import_customer(sidecar, tmp_path, country="AT", vat_id="ATU13585627")
    closed_ticket(sidecar.sandbox, "Server-Migration", 2, [(60, 3, REMOTE)])

    assert sidecar.run().ok

    invoice, snapshot, text, xml = issued(sidecar)
    assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("100.00"), Decimal("0.00"), Decimal("100.00"))
    assert [(g.category, g.rate, g.amount) for g in snapshot.vat_groups] == [("AE", Decimal(0), Decimal("0.00"))]
    assert "Steuerschuldnerschaft des Leistungsempfängers" in text
    assert "ATU13585627" in text and "DE136695976" in text
    assert validate_cii(xml) == []
    assert b"VATEX-EU-AE" in xml


def test_eu_customer_without_vat_id_pays_german_vat(sidecar: Sidecar, tmp_path: Path) -> None:
    import_customer(sidecar, tmp_path, country="AT")
    closed_ticket(sidecar.sandbox, "Drucker", 2, [(60, 3, REMOTE)])
    assert sidecar.run().ok
    invoice, _snapshot, _text, _xml = issued(sidecar)
    assert (invoice.vat, invoice.gross) == (Decimal("19.00"), Decimal("119.00"))


def test_small_business_invoices_carry_no_vat(sidecar: Sidecar, tmp_path: Path) -> None:
    sidecar.settings = dataclasses.replace(sidecar.settings, small_business=True)
    import_customer(sidecar, tmp_path, country="DE", city="Hamburg", postcode="20457")
    closed_ticket(sidecar.sandbox, "Drucker", 2, [(60, 3, REMOTE)])

    assert sidecar.run().ok

    invoice, snapshot, text, xml = issued(sidecar)
    assert (invoice.vat, invoice.gross) == (Decimal("0.00"), Decimal("100.00"))
    assert snapshot.vat_groups[0].category == "E"
    assert "§ 19 UStG" in text
    assert validate_cii(xml) == []
