"""OTRSConnector against a real Znuny 6.5 (started by `bash .ci/znuny-up.sh`).

Znuny keeps its database between runs, so every ticket carries a random run tag and every
search starts at this module's own start time (read from Znuny's clock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from znuny_fixtures import *  # noqa: F403  (the Znuny fixtures, used by name)
from znuny_fixtures import ZnunyDesk, ZnunyEnv

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from connectors.base import (
    AuthError,
    BookingReader,
    HelpdeskConnector,
    NotFound,
    RemoteError,
    WriteBack,
)
from connectors.otrs import OTRSConnector

pytestmark = pytest.mark.integration

FIELDS = {"BillingStatus", "InvoiceNumber", "InvoiceURL", "BillingCategory", "BillingActivity"}


@pytest.fixture(scope="module")
def scenario(znuny_desk: ZnunyDesk) -> dict[str, Any]:
    """Two closed tickets with time by two agents, for two customers; one still open.

    The closes lie more than a second apart so a search limit of 1 can still split them.
    """
    # A quiet second first: a run right after another one must not share a second with it
    # (the search-limit test reads with no overlap and a limit of 1).
    time.sleep(1.1)
    started = znuny_desk.znuny_now()
    acme = znuny_desk.create_billable_ticket(
        "Drucker defekt",
        customer_user="cust1",
        bookings=[("alice", 30, None), ("bob", 45, "Vor-Ort")],
    )
    time.sleep(1.2)
    globex = znuny_desk.create_billable_ticket(
        "VPN down", customer_user="cust3", bookings=[("bob", "1,5", "Remote")]
    )
    still_open = znuny_desk.create_billable_ticket(
        "Still open", customer_user="cust2", bookings=[("alice", 15, None)], close=False
    )
    return {"acme": acme, "globex": globex, "open": still_open, "started": started}


def test_connector_satisfies_protocol_and_checks(
    znuny_connector: OTRSConnector, znuny_env: ZnunyEnv
) -> None:
    assert isinstance(znuny_connector, HelpdeskConnector)
    assert isinstance(znuny_connector, BookingReader)
    assert znuny_connector.check().startswith(f"{znuny_env.user} at {znuny_env.service_url}")


def test_the_api_agent_holds_only_rw_on_the_billed_queues_group(znuny_env: ZnunyEnv) -> None:
    """Every test here runs as the README's least-privileged agent: no admin group."""
    import psycopg

    with psycopg.connect(znuny_env.dsn) as connection:
        grants = connection.execute(
            "SELECT g.name, gu.permission_key FROM group_user gu JOIN users u ON u.id = gu.user_id "
            "JOIN permission_groups g ON g.id = gu.group_id WHERE u.login = %s",
            (znuny_env.user,),
        ).fetchall()
    assert grants == [("users", "rw")]


@pytest.mark.parametrize("auth", ["session", "header"])
def test_wrong_password_is_an_auth_error(
    make_znuny_connector: Callable[..., OTRSConnector], auth: str
) -> None:
    with pytest.raises(AuthError) as failure:
        make_znuny_connector(password="Not-The-Password-7", auth=auth).check()
    assert "Not-The-Password-7" not in str(failure.value)


def test_register_verifies_the_imported_fields(
    znuny_connector: OTRSConnector, scenario: dict[str, Any], tmp_path: Any
) -> None:
    report = znuny_connector.register()
    assert report.ok, report.problems
    assert set(report.present) == FIELDS


def test_register_names_the_console_commands_for_a_missing_field(
    make_znuny_connector: Callable[..., OTRSConnector], scenario: dict[str, Any], tmp_path: Any
) -> None:
    connector = make_znuny_connector(reference_field="TicketbillNoSuchField", data_dir=tmp_path)
    report = connector.register()
    assert not report.ok
    assert "TicketbillNoSuchField" in report.problems[0]
    assert "Admin::DynamicField::Import" in report.problems[0]
    assert "Admin::DynamicField::ScreenConfig" in report.problems[0]
    assert (tmp_path / "otrs-dynamic-fields.yml").exists()


def test_closed_tickets_since_finds_the_closed_ones(
    znuny_connector: OTRSConnector, scenario: dict[str, Any]
) -> None:
    tickets = list(znuny_connector.closed_tickets_since(scenario["started"]))
    ours = {t.remote_id: t for t in tickets}
    assert str(scenario["acme"]) in ours and str(scenario["globex"]) in ours
    assert str(scenario["open"]) not in ours
    assert [t.updated_at for t in tickets] == sorted(t.updated_at for t in tickets)
    acme, globex = ours[str(scenario["acme"])], ours[str(scenario["globex"])]
    assert (
        acme.customer and acme.customer.remote_id,
        globex.customer and globex.customer.remote_id,
    ) == ("ACME", "GLOBEX")
    assert acme.state == "closed successful" and acme.closed_at is not None
    assert acme.closed_at >= scenario["started"]


def test_search_limit_one_walks_the_window(
    make_znuny_connector: Callable[..., OTRSConnector], scenario: dict[str, Any]
) -> None:
    # No overlap: earlier runs' tickets may share a second, which a limit of 1 cannot split.
    connector = make_znuny_connector(search_limit=1, overlap_seconds=0)
    tickets = connector.closed_tickets_since(scenario["started"])
    assert {str(scenario["acme"]), str(scenario["globex"])} <= {t.remote_id for t in tickets}


def test_classic_route_set_reads_the_same(
    make_znuny_connector: Callable[..., OTRSConnector],
    znuny_env: ZnunyEnv,
    scenario: dict[str, Any],
) -> None:
    classic = make_znuny_connector(webservice=znuny_env.classic_webservice, routes="classic")
    ids = {t.remote_id for t in classic.closed_tickets_since(scenario["started"])}
    assert {str(scenario["acme"]), str(scenario["globex"])} <= ids
    assert str(scenario["open"]) not in ids
    assert sum(e.minutes for e in classic.time_entries(str(scenario["acme"]))) == Decimal(75)


def test_default_routes_detect_the_classic_web_service_on_first_contact(
    make_znuny_connector: Callable[..., OTRSConnector],
    znuny_env: ZnunyEnv,
    scenario: dict[str, Any],
) -> None:
    """The classic YAML (what OTRS 6 ships) answers POST /Ticket/Search with HTTP 500."""
    detected = make_znuny_connector(webservice=znuny_env.classic_webservice)
    assert detected.check().endswith("classic routes)")
    ids = {t.remote_id for t in detected.closed_tickets_since(scenario["started"])}
    assert {str(scenario["acme"]), str(scenario["globex"])} <= ids


def test_a_route_the_web_service_lacks_is_named(
    make_znuny_connector: Callable[..., OTRSConnector], scenario: dict[str, Any]
) -> None:
    connector = make_znuny_connector(routes="classic")  # GET /Ticket is not in the examples YAML
    with pytest.raises(RemoteError) as failure:
        list(connector.closed_tickets_since(scenario["started"]))
    assert failure.value.status == 500 and "has no route GET /Ticket" in str(failure.value)


def test_time_entries_per_agent_with_activity(
    znuny_connector: OTRSConnector, znuny_desk: ZnunyDesk, scenario: dict[str, Any]
) -> None:
    entries = znuny_connector.time_entries(str(scenario["acme"]))
    assert sorted((e.agent, e.minutes, e.activity) for e in entries) == [
        ("alice", Decimal(30), None),
        ("bob", Decimal(45), "Vor-Ort"),
    ]
    assert all(e.booked_at >= scenario["started"] for e in entries)
    # The database agrees: one time_accounting row per note, by the same agents.
    rows = znuny_desk.accounted(scenario["acme"])
    assert sorted((login, units) for _, units, login in rows) == [("alice", 30), ("bob", 45)]
    assert {f"article-{article}" for article, _, _ in rows} == {e.remote_id for e in entries}
    globex = znuny_connector.time_entries(str(scenario["globex"]))
    assert [(e.agent, e.minutes, e.activity) for e in globex] == [("bob", Decimal("1.5"), "Remote")]
    # Invoices name agents in full: Znuny writes the author's full name into a note's From.
    assert sorted((e.agent, e.agent_name) for e in entries) == [
        ("alice", "Alice Agent"), ("bob", "Bob Agent")]


def test_seconds_mode_reads_the_same_booking(
    make_znuny_connector: Callable[..., OTRSConnector], znuny_desk: ZnunyDesk
) -> None:
    ticket = znuny_desk.create_billable_ticket(
        "Sekunden", customer_user="cust1", bookings=[("alice", 5400, None)]
    )
    entries = make_znuny_connector(time_unit="second").time_entries(str(ticket))
    assert [e.minutes for e in entries] == [Decimal(90)]


def test_extras_from_internal_notes(
    znuny_connector: OTRSConnector, znuny_desk: ZnunyDesk, scenario: dict[str, Any]
) -> None:
    ticket_id = scenario["globex"]
    note = znuny_desk.note(
        ticket_id,
        "bob",
        "<p>Material: Switch 8-Port à 89,90 € [Hardware]</p>"
        "<p>Fahrt: 2 × 38 km</p><p>Material: Kabel</p>",
        html=True,
    )
    znuny_desk.note(ticket_id, "alice", "Material: Toner à 50 €", visible=1)  # seen by the customer
    extras, problems = znuny_connector.extras(str(ticket_id))
    assert [(e.kind, e.quantity, e.unit_cost, e.agent) for e in extras] == [
        ("material", Decimal(1), Decimal("89.90"), "bob"),
        ("travel", Decimal(76), None, "bob"),
    ]
    assert {e.remote_id.rsplit(":", 1)[0] for e in extras} == {f"article:{note}"}
    assert [p.line for p in problems] == ["Material: Kabel"]


def test_missing_ticket_is_not_found(znuny_connector: OTRSConnector) -> None:
    with pytest.raises(NotFound):
        znuny_connector.time_entries("987654321")
    with pytest.raises(NotFound):
        znuny_connector.ticket("987654321")
    with pytest.raises(NotFound):
        znuny_connector.extras("987654321")


def test_write_back_once_with_internal_note(
    znuny_connector: OTRSConnector, znuny_desk: ZnunyDesk, scenario: dict[str, Any]
) -> None:
    ticket_id = scenario["acme"]
    number = f"RE-IT-{znuny_desk.run_tag}"
    change = WriteBack(
        billing_status="invoiced",
        marker=number,
        invoice_reference=number,
        invoice_url=f"https://billing.example/invoices/{number}.pdf",
        note_subject=f"Rechnung {number} erstellt",
        note_html=f"<p>Rechnung <b>{number}</b> über 1,25 h erstellt.</p>",
    )
    before = len(znuny_desk.get(ticket_id)["Article"])
    assert znuny_connector.write_back(str(ticket_id), change) is True

    ticket = znuny_desk.get(ticket_id)
    assert ZnunyDesk.fields(ticket) == {
        "BillingStatus": "invoiced",
        "InvoiceNumber": number,
        "InvoiceURL": f"https://billing.example/invoices/{number}.pdf",
    }
    notes = [a for a in ticket["Article"] if number in a["Subject"]]
    assert len(ticket["Article"]) == before + 1 and len(notes) == 1
    assert notes[0]["IsVisibleForCustomer"] == 0 and notes[0]["CommunicationChannel"] == "Internal"
    assert "über 1,25 h" in notes[0]["Body"]
    customer_view = znuny_desk.get(ticket_id, customer="cust1")
    assert "Error" not in customer_view, customer_view
    assert not any(number in a["Subject"] for a in customer_view.get("Article", []))
    remote = znuny_connector.ticket(str(ticket_id))
    assert (remote.billing_status, remote.invoice_reference) == ("invoiced", number)

    assert znuny_connector.write_back(str(ticket_id), change) is False
    assert len(znuny_desk.get(ticket_id)["Article"]) == before + 1


O6_FIELDS = {
    "status_field": "O6BillingStatus", "reference_field": "O6InvoiceNumber",
    "url_field": "O6InvoiceURL", "category_field": "O6BillingCategory",
    "activity_field": "O6BillingActivity",
}


def test_fields_made_by_the_otrs6_script_work_like_imported_ones(
    make_znuny_connector: Callable[..., OTRSConnector],
    znuny_desk: ZnunyDesk,
    znuny_env: ZnunyEnv,
    scenario: dict[str, Any],
) -> None:
    """znuny-up.sh ran the Perl script `register` writes for OTRS 6.0 (fields prefixed O6)."""
    connector = make_znuny_connector(**O6_FIELDS)
    ticket = znuny_desk.create_billable_ticket(
        "O6 Felder", customer_user="cust1", bookings=[("alice", 20, None)])
    number = f"RE-O6-{znuny_desk.run_tag}"
    change = WriteBack(billing_status="invoiced", marker=number, invoice_reference=number,
                       invoice_url=f"https://billing.example/{number}.pdf",
                       note_subject=f"Rechnung {number}", note_html=f"<p>{number}</p>")
    assert connector.write_back(str(ticket), change) is True
    assert ZnunyDesk.fields(znuny_desk.get(ticket)) == {
        "O6BillingStatus": "invoiced", "O6InvoiceNumber": number,
        "O6InvoiceURL": f"https://billing.example/{number}.pdf"}
    report = connector.register()
    assert report.ok, report.problems
    assert set(report.present) == set(O6_FIELDS.values())
    # ... and shown to agents: the deployed zoom and note screen settings name them.
    deployed = (Path(znuny_env.home) / "Kernel/Config/Files/ZZZAAuto.pm").read_text("utf-8")
    zoom = deployed[deployed.index("'Ticket::Frontend::AgentTicketZoom'}->{'DynamicField'}"):]
    zoom = zoom[: zoom.index(";")]
    assert all(f"'{name}' => '1'" in zoom for name in list(O6_FIELDS.values())[:4])
    note = deployed[deployed.index("'Ticket::Frontend::AgentTicketNote'}->{'DynamicField'}"):]
    assert "'O6BillingActivity' => '1'" in note[: note.index(";")]


def test_the_customer_company_export_gives_an_importable_file(
    znuny_connector: OTRSConnector, znuny_desk: ZnunyDesk, tmp_path: Path,
    database_url: str,
) -> None:
    """register writes otrs-customer-companies.pl; its output is `customers import` input."""
    znuny_connector.data_dir = tmp_path / "data"
    znuny_connector.register()
    script = (tmp_path / "data" / "otrs-customer-companies.pl").read_text(encoding="utf-8")
    done = znuny_desk.run_perl_as_otrs(script)
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)["customers"]
    by_id = {c["remote_id"]: c for c in exported}
    assert by_id["ACME"] == {
        "remote_id": "ACME", "legal_name": "ACME Maschinenbau GmbH",
        "street": "Werkstraße 5", "postcode": "10115", "city": "Berlin", "country": "DE"}
    assert by_id["GLOBEX"]["legal_name"] == "Globex Logistik AG"
    assert "INITECH" not in by_id and "skipped INITECH: no street, postcode" in done.stderr
    path = tmp_path / "customers.json"
    path.write_text(done.stdout, encoding="utf-8")
    engine = make_engine(database_url)
    upgrade(engine)
    with transaction(make_session_factory(engine)) as session:
        result = import_customers(session, "otrs", path)
    assert result.created == len(exported)
    engine.dispose()


def test_billing_category_is_read_from_its_field(
    znuny_connector: OTRSConnector, znuny_desk: ZnunyDesk, scenario: dict[str, Any]
) -> None:
    assert znuny_connector.ticket(str(scenario["globex"])).category is None
    znuny_desk.set_field(scenario["globex"], "BillingCategory", "warranty")
    assert znuny_connector.ticket(str(scenario["globex"])).category == "warranty"
