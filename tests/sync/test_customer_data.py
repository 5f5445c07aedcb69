"""Customer billing data kept in Zammad: `register` adds the organization fields, the sync
takes address, VAT ID, customer number, e-mail and Leitweg-ID from there, and the JSON import
overrides what it sets (null hands a key back to Zammad).

The admin fills the fields as in Zammad's UI, here over `PUT /organizations/{id}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket

from addon.customers import import_customers
from addon.db import transaction
from addon.models import Customer, Invoice
from connectors.zammad import ORGANIZATION_FIELDS

REMOTE = 1
HANSEN = {"billing_street": "Große Bergstraße 143", "billing_postcode": "22767",
          "billing_city": "Hamburg", "billing_country": "de", "billing_vat": "DE 342 366 712",
          "billing_customer_number": "K-10001", "billing_email": "buchhaltung@hansen.example",
          "billing_leitweg": None}


def fill_in(sidecar: Sidecar, org_id: int, fields: dict[str, Any]) -> None:
    answer = requests.put(f"{sidecar.sandbox.api_url}/organizations/{org_id}", json=fields,
                          headers={"Authorization": f"Token token={sidecar.sandbox.admin_token}"},
                          timeout=10)
    assert answer.status_code == 200, answer.text


def buyer(sidecar: Sidecar) -> dict[str, Any]:
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice).order_by(Invoice.id.desc())).scalars().first()
        assert invoice is not None and invoice.snapshot is not None
        return dict(json.loads(invoice.snapshot)["buyer"])


def import_file(sidecar: Sidecar, tmp_path: Path, customers: list[dict[str, Any]]) -> None:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"default_rate": "90.00", "customers": customers}), encoding="utf-8")
    with transaction(sidecar.factory) as session:
        import_customers(session, "zammad", path)


def test_register_adds_the_organization_fields(sidecar: Sidecar) -> None:
    report = sidecar.connector.register()  # the sidecar fixture registered once already
    assert report.ok, report.problems
    assert {f"organization.{name}" for name in ORGANIZATION_FIELDS} <= set(report.present)
    with sidecar.sandbox.lock:
        rows = [a for a in sidecar.sandbox.state.data["object_attributes"].values()
                if a["object"] == "Organization" and a["name"] in ORGANIZATION_FIELDS]
    assert len(rows) == len(ORGANIZATION_FIELDS) and all(not a["to_create"] for a in rows)


def test_a_customer_kept_in_zammad_is_billed_without_a_customer_entry(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    import_file(sidecar, tmp_path, [])  # the rate: a default_rate (or contracts), no customers
    fill_in(sidecar, 1, HANSEN)
    closed_ticket(sidecar.sandbox, "Drucker", 1, [(60, 3, REMOTE)])
    result = sidecar.run()
    assert result.ok and result.counts.get("invoiced") == 1, result
    party = buyer(sidecar)
    assert (party["name"], party["street"], party["postcode"], party["city"], party["country"]) == (
        "Bäckerei Hansen GmbH", "Große Bergstraße 143", "22767", "Hamburg", "DE")
    assert (party["vat_id"], party["customer_number"], party["email"]) == (
        "DE342366712", "K-10001", "buchhaltung@hansen.example")


def test_the_import_overrides_zammad_and_null_hands_a_key_back(sidecar: Sidecar, tmp_path: Path) -> None:
    fill_in(sidecar, 1, HANSEN)
    import_file(sidecar, tmp_path, [{"remote_id": "1", "legal_name": "Bäckerei Hansen GmbH & Co. KG",
                                     "street": "Postfach 1234", "postcode": "22001", "city": "Hamburg",
                                     "hourly_rate": "80.00"}])
    closed_ticket(sidecar.sandbox, "Drucker", 1, [(60, 3, REMOTE)])
    assert sidecar.run().ok
    party = buyer(sidecar)
    assert (party["name"], party["street"], party["postcode"]) == (
        "Bäckerei Hansen GmbH & Co. KG", "Postfach 1234", "22001")
    assert party["vat_id"] == "DE342366712"  # not in the import: still Zammad's

    # Settings only (no address) keeps the override; null hands the street back to Zammad.
    import_file(sidecar, tmp_path, [{"remote_id": "1", "street": None, "postcode": None,
                                     "legal_name": None}])
    fill_in(sidecar, 1, {"billing_street": "Große Bergstraße 145"})
    closed_ticket(sidecar.sandbox, "Scanner", 1, [(30, 3, REMOTE)])
    assert sidecar.run().ok
    party = buyer(sidecar)
    assert (party["name"], party["street"], party["postcode"]) == (
        "Bäckerei Hansen GmbH", "Große Bergstraße 145", "22767")
    with sidecar.factory() as session:
        customer = session.execute(select(Customer).where(Customer.remote_id == "1")).scalar_one()
        assert customer.imported_fields == "city,country" and customer.hourly_rate is not None


def test_invalid_billing_data_in_zammad_holds_the_ticket_with_the_reason(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    import_file(sidecar, tmp_path, [])
    fill_in(sidecar, 2, {"billing_street": "Industriestraße 7", "billing_postcode": "21079",
                         "billing_city": "Hamburg", "billing_vat": "DE123456789"})
    ticket = closed_ticket(sidecar.sandbox, "Fräse", 2, [(60, 3, REMOTE)])
    result = sidecar.run()
    assert result.ok and result.counts["needs_attention"] == 1
    [note] = sidecar.notes(ticket)
    assert "billing data in the helpdesk is invalid" in note["body"]
    assert "vat_id" in note["body"] and "DE123456789" in note["body"]
    fill_in(sidecar, 2, {"billing_vat": "DE676122202"})
    again = sidecar.run()
    assert again.ok and again.counts["invoiced"] == 1
    assert buyer(sidecar)["vat_id"] == "DE676122202"
