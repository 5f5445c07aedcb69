"""Customer import: a valid file upserts; any bad entry refuses the whole file, naming it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from addon.customers import CustomerImportError, import_customers
from addon.db import make_session_factory, transaction
from addon.models import Customer, GlobalRate

GOOD = {
    "remote_id": "2",
    "legal_name": "Beispiel GmbH",
    "street": "Hauptstraße 1",
    "postcode": "60311",
    "city": "Frankfurt am Main",
    "country": "de",
    "vat_id": "de 136695976",
    "hourly_rate": "110.00",
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_import_creates_then_updates(engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(engine)
    path = write(tmp_path, {"default_rate": "95.00", "customers": [GOOD]})
    with transaction(factory) as session:
        result = import_customers(session, "zammad", path)
    assert (result.created, result.updated) == (1, 0)
    path = write(tmp_path, {"customers": [{**GOOD, "hourly_rate": "120.50"}]})
    with transaction(factory) as session:
        result = import_customers(session, "zammad", path)
    assert (result.created, result.updated) == (0, 1)
    with factory() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert customer.configured
        assert customer.vat_id == "DE136695976"
        assert customer.country == "DE"
        assert customer.hourly_rate == Decimal("120.50")
        assert session.get(GlobalRate, "").hourly_rate == Decimal("95.00")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"customers": [{**GOOD, "vat_id": "DE000"}]}, "customers[0].vat_id: 'DE000' is not a valid EU VAT ID"),
        ({"customers": [GOOD, {**GOOD, "street": ""}]}, "customers[1].street: missing"),
        ({"customers": [{**GOOD, "hourly_rate": "-5"}]}, "customers[0].hourly_rate"),
        ({"customers": [{**GOOD, "rate": "5"}]}, "customers[0]: unknown key(s) rate"),
        ({"customers": [{**GOOD, "remote_id": ""}]}, "customers[0].remote_id: missing"),
        ({"clients": []}, "expected an object with a \"customers\" list"),
    ],
)
def test_bad_file_writes_nothing(engine: Engine, tmp_path: Path, document: object, message: str) -> None:
    factory = make_session_factory(engine)
    path = write(tmp_path, document)
    with pytest.raises(CustomerImportError) as info, transaction(factory) as session:
        import_customers(session, "zammad", path)
    assert message in str(info.value)
    with factory() as session:
        assert session.execute(select(Customer)).first() is None


def test_malformed_json_is_reported(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CustomerImportError, match=r"customers\.json"), transaction(make_session_factory(engine)) as s:
        import_customers(s, "zammad", path)


def _logo(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "logo.png"
    Image.new("RGB", (300, 100), (29, 92, 77)).save(path)
    return path


def test_customer_layout_and_discounts_are_stored(engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(engine)
    logo = _logo(tmp_path)
    entry = {**GOOD, "invoice_template": "modern", "letterhead": str(logo), "language": "en",
             "discounts": [{"label": "Stammkundenrabatt", "percent": "5", "on": ["time"]}]}
    with transaction(factory) as session:
        import_customers(session, "zammad", write(tmp_path, {"customers": [entry]}))
    with factory() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.invoice_template, customer.letterhead, customer.language) == ("modern", str(logo), "en")
        assert json.loads(customer.discounts or "[]") == [
            {"label": "Stammkundenrabatt", "percent": "5", "on": ["time"], "as": "line"}]


@pytest.mark.parametrize(
    "template_text, message",
    [
        ("{% extends 'invoice/invoice.html' %}{% block letterhead %}{{ inv.nope }}{% endblock %}", "nope"),
        ("{% extends 'invoice/invoice.html' %}{% block letterhead %}{% if %}{% endblock %}", "TemplateSyntaxError"),
        (None, "TemplateNotFound"),
    ],
    ids=["unknown-variable", "syntax-error", "missing"],
)
def test_a_broken_customer_template_is_refused_at_import(
    engine: Engine, tmp_path: Path, template_text: str | None, message: str
) -> None:
    """A template error shows when the customer is imported, not when an invoice is issued."""
    templates = tmp_path / "templates"
    (templates / "invoice").mkdir(parents=True)
    if template_text is not None:
        (templates / "invoice" / "kunde.html").write_text(template_text, encoding="utf-8")
    factory = make_session_factory(engine)
    path = write(tmp_path, {"customers": [{**GOOD, "invoice_template": "kunde"}]})
    with pytest.raises(CustomerImportError, match=message), transaction(factory) as session:
        import_customers(session, "zammad", path, template_dir=templates)
    with factory() as session:
        assert session.execute(select(Customer)).first() is None  # nothing written


def test_an_own_template_that_works_is_accepted(engine: Engine, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "invoice").mkdir(parents=True)
    (templates / "invoice" / "kunde.html").write_text(
        "{% extends 'invoice/invoice.html' %}{% block style_extra %}h1 { color: #7a1f1f; }{% endblock %}",
        encoding="utf-8")
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        import_customers(session, "zammad", write(tmp_path, {"customers": [{**GOOD, "invoice_template": "kunde"}]}),
                         template_dir=templates)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"letterhead": "/nonexistent/logo.png"}, "letterhead"),
        ({"invoice_template": "Kunde Eins"}, "not valid"),
        ({"discounts": [{"label": "Rabatt"}]}, "percent or amount"),
        ({"discounts": [{"label": "Rabatt", "percent": "120"}]}, "more than 100"),
        ({"discounts": [{"label": "Rabatt", "amount": "10", "as": "credit"}]}, "line, allowance"),
    ],
)
def test_bad_layout_or_discount_is_refused(engine: Engine, tmp_path: Path, extra: dict, message: str) -> None:
    factory = make_session_factory(engine)
    with pytest.raises(CustomerImportError, match=message), transaction(factory) as session:
        import_customers(session, "zammad", write(tmp_path, {"customers": [{**GOOD, **extra}]}))


def test_an_entry_without_address_sets_only_its_other_keys(engine: Engine, tmp_path: Path) -> None:
    """For a helpdesk that keeps the address (Zammad's organization fields): rates and flags."""
    factory = make_session_factory(engine)
    path = write(tmp_path, {"customers": [{"remote_id": "7", "hourly_rate": "100.00",
                                           "approval_required": True}]})
    with transaction(factory) as session:
        assert import_customers(session, "zammad", path).created == 1
    with factory() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.name, customer.street, customer.imported_fields) == ("7", None, None)
        assert customer.approval_required and not customer.configured


def test_customers_list_names_the_company_once_imported(engine: Engine, database_url: str,
                                                        tmp_path: Path) -> None:
    """An OTRS customer is a CustomerID until the export of its company is imported."""
    from test_cli_exports import env, run

    factory = make_session_factory(engine)
    with transaction(factory) as session:
        session.add(Customer(helpdesk="otrs", remote_id="ACME", name="ACME"))
    path = write(tmp_path, {"customers": [{**GOOD, "remote_id": "ACME",
                                           "legal_name": "ACME Maschinenbau GmbH"}]})
    with transaction(factory) as session:
        import_customers(session, "otrs", path)
    listed = run(tmp_path, env(database_url, tmp_path / "data", HELPDESK_KIND="otrs",
                               HELPDESK_USER="billing", HELPDESK_PASSWORD="x"), "customers", "list")
    assert listed.exit_code == 0, listed.output
    assert "ACME Maschinenbau GmbH" in listed.output and "ok" in listed.output
