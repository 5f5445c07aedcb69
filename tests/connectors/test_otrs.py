"""OTRSConnector against the OTRS/Znuny sandbox, plus the sandbox's own fidelity rules.

The sandbox imitates the GenericInterface quirks the connector must survive (HTTP-200 errors,
`{}` for an empty search, string ids, routes per web service YAML); the same tests' expectations
were checked against a real Znuny 6.5 (tests/integration/test_znuny.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from addon.settings import load_settings
from connectors.base import (
    AuthError,
    ConnectorError,
    HelpdeskConnector,
    NotFound,
    RemoteError,
    WriteBack,
)
from connectors.otrs import OTRSConnector, split_helpdesk_url
from connectors.sandbox.otrs import BILLING_FIELDS, OTRSSandbox

REFERENCE = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
CLASSIC = "GenericTicketConnectorRESTClassic"


@pytest.fixture
def sandbox() -> Iterator[OTRSSandbox]:
    with OTRSSandbox.running(seed_reference=REFERENCE) as sb:
        sb.set_now(REFERENCE)
        yield sb


@pytest.fixture
def make(sandbox: OTRSSandbox) -> Callable[..., OTRSConnector]:
    def build(**options: Any) -> OTRSConnector:
        options.setdefault("user", sandbox.api_login)
        options.setdefault("password", sandbox.api_password)
        options.setdefault("now", sandbox.now)
        options.setdefault("sleep", lambda _seconds: None)
        url = options.pop("url", sandbox.url)
        return OTRSConnector(url, **options)

    return build


@pytest.fixture
def connector(make: Callable[..., OTRSConnector]) -> OTRSConnector:
    return make()


def invoice(number: str = "RE-2025-00007", status: str = "invoiced") -> WriteBack:
    return WriteBack(
        billing_status=status,
        marker=number,
        invoice_reference=number,
        invoice_url=f"https://billing.example/invoices/{number}.pdf",
        note_subject=f"Rechnung {number} erstellt",
        note_html=f"<p>Rechnung <b>{number}</b>: 2,5 h</p>",
    )


def raw(
    sandbox: OTRSSandbox,
    method: str,
    route: str,
    *,
    webservice: str = "GenericTicketConnectorREST",
    body: Any = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    auth = {
        "X-OTRS-Header-UserLogin": sandbox.api_login,
        "X-OTRS-Header-Password": sandbox.api_password,
    }
    return requests.request(
        method,
        sandbox.service_url(webservice) + route,
        params=params,
        json=body,
        headers={**auth, **(headers or {})},
        timeout=10,
    )


# -- identity, auth, routes --------------------------------------------------------------


def test_connector_satisfies_protocol(connector: OTRSConnector) -> None:
    assert isinstance(connector, HelpdeskConnector)
    assert connector.kind == "otrs"


def test_check_logs_in_once_and_names_the_web_service(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    identity = connector.check()
    assert "billing at" in identity and "GenericTicketConnectorREST" in identity
    assert (
        sandbox.requests.count(
            ("POST", "/otrs/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST/Session")
        )
        == 1
    )


@pytest.mark.parametrize("auth", ["session", "header"])
def test_wrong_password_is_an_auth_error_without_the_password(
    make: Callable[..., OTRSConnector], auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make(password="Wrong-Password-42", auth=auth)
    with pytest.raises(AuthError) as failure:
        connector.check()
    assert "AuthFail" in str(failure.value)
    assert "Wrong-Password-42" not in str(failure.value)
    assert "Wrong-Password-42" not in caplog.text


def test_header_auth_sends_no_session(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox
) -> None:
    connector = make(auth="header")
    assert list(connector.closed_tickets_since(REFERENCE - timedelta(days=3))) is not None
    assert not any(path.endswith("/Session") for _, path in sandbox.requests)


def test_expired_session_is_renewed_transparently(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    connector.check()
    sandbox.advance(timedelta(hours=3))  # beyond the 2 h idle limit
    assert connector.ticket("1").remote_id == "1"
    logins = [p for m, p in sandbox.requests if m == "POST" and p.endswith("/Session")]
    assert len(logins) == 2


def test_classic_route_set_and_the_znuny_alias(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox
) -> None:
    classic = make(webservice=CLASSIC, routes="classic")
    znuny = make(
        url=f"{sandbox.url}/znuny/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST"
    )
    assert znuny.gi_path == "/znuny/nph-genericinterface.pl"
    assert [t.remote_id for t in classic.closed_tickets_since(None)] == [
        t.remote_id for t in znuny.closed_tickets_since(None)
    ]
    assert ("GET", f"/otrs/nph-genericinterface.pl/Webservice/{CLASSIC}/Ticket") in sandbox.requests
    assert znuny.ticket_url("7").endswith("/znuny/index.pl?Action=AgentTicketZoom;TicketID=7")


def test_wrong_route_set_names_the_missing_route(make: Callable[..., OTRSConnector]) -> None:
    connector = make(routes="classic")  # GET /Ticket does not exist in the examples YAML
    with pytest.raises(RemoteError) as failure:
        list(connector.closed_tickets_since(None))
    assert failure.value.status == 500
    assert "has no route GET /Ticket" in str(failure.value)


@pytest.fixture
def otrs6() -> Iterator[OTRSSandbox]:
    """The sandbox as OTRS CE 6.0: only the classic web service it ships, no header logins."""
    with OTRSSandbox.running(seed_reference=REFERENCE, product="otrs-6.0") as sb:
        sb.set_now(REFERENCE)
        yield sb


def otrs6_connector(sandbox: OTRSSandbox, **options: Any) -> OTRSConnector:
    return OTRSConnector(sandbox.url, user=sandbox.api_login, password=sandbox.api_password,
                         now=sandbox.now, sleep=lambda _seconds: None, **options)


def test_otrs6_sandbox_answers_the_example_search_route_with_http_500(
    otrs6: OTRSSandbox,
) -> None:
    answer = raw(otrs6, "POST", "/Ticket/Search", body={
        "UserLogin": otrs6.api_login, "Password": otrs6.api_password})
    assert answer.status_code == 500
    assert answer.text == "HTTP::REST Error while determine Operation for request URI '/Ticket/Search'."
    headers_only = raw(otrs6, "GET", "/Ticket/1")  # X-OTRS-Header login only: OTRS 6 ignores it
    assert headers_only.json()["Error"]["ErrorCode"] == "TicketGet.MissingParameter"


def test_default_routes_detect_the_classic_set_of_otrs6_on_first_contact(
    otrs6: OTRSSandbox,
) -> None:
    connector = otrs6_connector(otrs6)  # the defaults, as an admin leaves them
    assert connector.check().endswith("(session auth, classic routes)")
    closed = [t.remote_id for t in connector.closed_tickets_since(None)]
    assert len(closed) == 22
    searches = [(m, p.rsplit("/", 2)[-2:]) for m, p in otrs6.requests if "/Ticket" in p]
    assert searches[0] == ("POST", ["Ticket", "Search"])  # tried once, then never again
    assert ("POST", ["Ticket", "Search"]) not in searches[1:]


def test_detection_on_znuny_keeps_the_example_routes(make: Callable[..., OTRSConnector]) -> None:
    connector = make()
    assert connector.check().endswith("(session auth, examples routes)")
    assert connector.route_set == "examples"


def test_a_web_service_with_neither_search_route_names_the_setting(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox
) -> None:
    sandbox.webservices["Bare"] = "examples"
    connector = make(webservice="Bare", routes={"TicketSearch": ("PUT", "/Nowhere")})
    connector.route_set = None  # as with "auto": detection finds no search route either
    with pytest.raises(RemoteError) as failure:
        connector.check()
    assert "has neither" in str(failure.value) and "HELPDESK_OTRS_WEBSERVICE" in str(failure.value)


def test_header_auth_on_otrs6_says_it_needs_sessions(otrs6: OTRSSandbox) -> None:
    with pytest.raises(AuthError, match="HELPDESK_OTRS_AUTH=session"):
        otrs6_connector(otrs6, auth="header").ticket("1")


def test_unknown_web_service_is_a_remote_error(make: Callable[..., OTRSConnector]) -> None:
    with pytest.raises(RemoteError) as failure:
        make(webservice="NoSuchService").check()
    assert failure.value.status == 500


def test_split_helpdesk_url_accepts_host_alias_and_full_url() -> None:
    assert split_helpdesk_url("https://otrs.example/") == (
        "https://otrs.example",
        "/otrs/nph-genericinterface.pl",
        None,
    )
    assert split_helpdesk_url("https://h.example/znuny") == (
        "https://h.example",
        "/znuny/nph-genericinterface.pl",
        None,
    )
    assert split_helpdesk_url("http://h:8080/otrs/nph-genericinterface.pl/Webservice/Billing/") == (
        "http://h:8080",
        "/otrs/nph-genericinterface.pl",
        "Billing",
    )


def test_constructor_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="time_unit"):
        OTRSConnector("http://h", user="u", password="p", time_unit="fortnight")
    with pytest.raises(ValueError, match="routes"):
        OTRSConnector("http://h", user="u", password="p", routes="modern")
    with pytest.raises(ValueError, match="auth"):
        OTRSConnector("http://h", user="u", password="p", auth="basic")


def seller_env(**extra: str) -> dict[str, str]:
    return {
        "HELPDESK_KIND": "otrs",
        "HELPDESK_URL": "https://desk.example/znuny/",
        "SELLER_NAME": "Nordlicht IT GmbH",
        "SELLER_STREET": "Hafenstraße 1",
        "SELLER_POSTCODE": "20095",
        "SELLER_CITY": "Hamburg",
        "SELLER_TAX_NUMBER": "22/815/08151",
        "SELLER_IBAN": "DE89370400440532013000",
        **extra,
    }


def test_from_settings_reads_helpdesk_keys_and_optional_otrs_options(tmp_path: Path) -> None:
    settings = load_settings(
        seller_env(
            HELPDESK_USER="billing",
            HELPDESK_PASSWORD="pw-123456",
            HELPDESK_TIME_UNIT="second",
            DATA_DIR=str(tmp_path),
        )
    )
    connector = OTRSConnector.from_settings(settings)
    assert connector.gi_path == "/znuny/nph-genericinterface.pl"
    assert connector.time_unit == "second"
    assert connector._minutes(Decimal(5400)) == Decimal(90)
    assert connector.data_dir == tmp_path

    configured = OTRSConnector.from_settings(
        load_settings(
            seller_env(
                HELPDESK_USER="billing",
                HELPDESK_PASSWORD="pw-123456",
                HELPDESK_OTRS_WEBSERVICE="Billing",
                HELPDESK_OTRS_ROUTES="classic",
                HELPDESK_OTRS_AUTH="header",
                HELPDESK_OTRS_AGENT_LOGINS="2=billing, 4=bob",
                DATA_DIR=str(tmp_path),
            )
        )
    )
    assert configured._logins == {2: "billing", 4: "bob"}
    assert (configured.webservice, configured.routes["TicketSearch"], configured.auth) == (
        "Billing",
        ("GET", "/Ticket"),
        "header",
    )


def test_from_settings_without_login_says_what_is_needed() -> None:
    settings = load_settings(seller_env(HELPDESK_TOKEN="token-only"))
    with pytest.raises(ConnectorError, match="HELPDESK_USER and HELPDESK_PASSWORD"):
        OTRSConnector.from_settings(settings)


# -- closed tickets ------------------------------------------------------------------------


def test_closed_tickets_since_start_returns_every_closed_ticket_ascending(
    connector: OTRSConnector,
) -> None:
    tickets = list(connector.closed_tickets_since(None))
    assert len(tickets) == 22  # the seed closes 22 of 30 (one of them twice)
    assert len({t.remote_id for t in tickets}) == 22
    assert [t.updated_at for t in tickets] == sorted(t.updated_at for t in tickets)
    assert all(t.state == "closed successful" and t.closed_at is not None for t in tickets)
    assert {t.customer.remote_id for t in tickets if t.customer} == {"ACME", "GLOBEX", "INITECH"}
    first = tickets[0]
    assert first.remote_id.isdigit() and first.number.startswith("2025")
    assert first.web_url == connector.ticket_url(first.remote_id)


def test_billing_category_comes_from_its_dropdown_field(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    assert connector.ticket("2").category is None  # unset: billing applies its default
    sandbox.set_field(sandbox.tickets[2], "BillingCategory", "goodwill")
    assert connector.ticket("2").category == "goodwill"


def test_cursor_and_overlap_bound_the_search(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    all_tickets = list(connector.closed_tickets_since(None))
    cursor = all_tickets[-3].updated_at
    recent = list(connector.closed_tickets_since(cursor))
    assert [t.remote_id for t in recent] == [t.remote_id for t in all_tickets[-3:]]
    assert list(connector.closed_tickets_since(sandbox.now() + timedelta(hours=1))) == []


def test_a_reopened_ticket_drops_out_and_a_reclosed_one_returns(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.tickets[1]
    sandbox.set_state(ticket, "open", at=REFERENCE)
    assert "1" not in {
        t.remote_id for t in connector.closed_tickets_since(REFERENCE - timedelta(minutes=5))
    }
    sandbox.set_now(REFERENCE + timedelta(minutes=10))
    sandbox.set_state(ticket, "closed successful")
    found = [t for t in connector.closed_tickets_since(REFERENCE) if t.remote_id == "1"]
    assert found and found[0].closed_at == REFERENCE + timedelta(minutes=10)


def test_search_limit_is_walked_by_splitting_the_window(
    sandbox: OTRSSandbox, make: Callable[..., OTRSConnector]
) -> None:
    sandbox.search_limit = 4  # as if SysConfig SearchLimit were 4
    connector = make(search_limit=4)
    tickets = list(connector.closed_tickets_since(None))
    assert len(tickets) == 22
    searches = [p for m, p in sandbox.requests if p.endswith("/Ticket/Search")]
    assert len(searches) > 6


@pytest.mark.parametrize(("burst", "fits"), [(3, True), (4, False), (5, False)])
def test_a_full_second_is_read_from_both_ends_else_it_is_an_error(
    sandbox: OTRSSandbox, make: Callable[..., OTRSConnector], burst: int, fits: bool
) -> None:
    moment = REFERENCE + timedelta(hours=1)
    sandbox.set_now(moment + timedelta(minutes=1))
    created = {str(sandbox.create_ticket(f"burst {n}", at=moment).ticket_id) for n in range(burst)}
    for ticket_id in created:
        sandbox.set_state(sandbox.tickets[int(ticket_id)], "closed successful", at=moment)
    connector = make(search_limit=2)  # fewer than 2 x 2 tickets in one second can be read
    if fits:
        assert {t.remote_id for t in connector.closed_tickets_since(moment)} == created
    else:
        with pytest.raises(RemoteError, match="within the second"):
            list(connector.closed_tickets_since(moment))


def test_a_ticket_deleted_between_search_and_fetch_is_skipped(
    connector: OTRSConnector, sandbox: OTRSSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_search = connector._search

    def search_then_delete(criteria: Any) -> list[int]:
        ids = real_search(criteria)
        sandbox.delete_ticket(3)
        return ids

    monkeypatch.setattr(connector, "_search", search_then_delete)
    ids = [t.remote_id for t in connector.closed_tickets_since(None)]
    assert "3" not in ids and len(ids) == 21


# -- time ----------------------------------------------------------------------------------


def test_time_entries_per_article_with_login_time_and_activity(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.create_ticket("Time test", agent="alice", at=REFERENCE)
    sandbox.add_article(
        ticket, agent="bob", time_unit=25, activity="Vor-Ort", at=REFERENCE + timedelta(minutes=5)
    )
    sandbox.add_article(ticket, agent="alice", time_unit="0.5", at=REFERENCE + timedelta(minutes=9))
    sandbox.add_article(ticket, agent="bob", time_unit=0, at=REFERENCE + timedelta(minutes=10))
    entries = connector.time_entries(str(ticket.ticket_id))
    assert [(e.agent, e.minutes, e.booked_at, e.activity) for e in entries] == [
        ("bob", Decimal(25), REFERENCE + timedelta(minutes=5), "Vor-Ort"),
        ("alice", Decimal("0.5"), REFERENCE + timedelta(minutes=9), None),
    ]
    assert len({e.remote_id for e in entries}) == 2
    assert all(e.ticket_remote_id == str(ticket.ticket_id) for e in entries)


def test_agent_login_is_found_through_a_ticket_the_agent_owns(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    owned = sandbox.create_ticket("carol owns this", agent="carol")
    other = sandbox.create_ticket("alice owns this", agent="alice")
    sandbox.add_article(other, agent="carol", time_unit=10)
    assert connector.time_entries(str(other.ticket_id))[0].agent == "carol"
    assert owned.owner_id == sandbox.agents["carol"].user_id


def test_agent_who_owns_nothing_falls_back_to_id_or_configured_login(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.create_ticket("billing notes", agent="alice")
    sandbox.add_article(ticket, agent="billing", time_unit=10)
    billing_id = sandbox.agents["billing"].user_id
    assert make().time_entries(str(ticket.ticket_id))[0].agent == f"user {billing_id}"
    configured = make(agent_logins={billing_id: "billing"})
    assert configured.time_entries(str(ticket.ticket_id))[0].agent == "billing"


def test_agents_are_named_by_the_full_name_their_internal_notes_carry(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    """An agent who owns no ticket has no known login ("user N"), but a full name all the same."""
    ticket = sandbox.create_ticket("names", agent="alice")
    sandbox.add_article(ticket, agent="alice", sender_type="customer", channel="Email", visible=1,
                        sender='"Cust One" <cust1@acme.test>')  # the customer's request
    sandbox.add_article(ticket, agent="billing", time_unit=10)  # GI note: From "Billing Agent"
    sandbox.add_article(ticket, agent="alice", time_unit=5,
                        sender='"Alice Agent" <alice@example.test>')  # the web UI's note
    sandbox.add_article(ticket, agent="bob", time_unit=15, channel="Email", visible=1,
                        sender='"Raw via Znuny" <znuny@localhost>')  # a reply: system address
    entries = connector.time_entries(str(ticket.ticket_id))
    billing_id = sandbox.agents["billing"].user_id
    assert [(e.agent, e.agent_name) for e in entries] == [
        (f"user {billing_id}", "Billing Agent"), ("alice", "Alice Agent"), ("bob", None)]
    # A ticket made through the API: its first article is the agent's, its From the customer's.
    created = raw(sandbox, "POST", "/Ticket", body={
        "Ticket": {"Title": "via API", "Queue": "Raw", "State": "open", "Priority": "3 normal",
                   "CustomerUser": "cust1"},
        "Article": {"Subject": "Anruf", "Body": "20 min", "ContentType": "text/plain",
                    "TimeUnit": 20}}).json()
    first = connector.time_entries(created["TicketID"])
    assert [e.agent_name for e in first] == ["Billing Agent"]  # learned above, not "Cust1 ACME"


def test_time_without_article_is_kept_on_the_owner(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.create_ticket("console time", agent="alice")
    sandbox.add_article(ticket, agent="alice", time_unit=30)
    sandbox.account_time(ticket, Decimal(15), agent="bob")  # no article: only in the total
    entries = connector.time_entries(str(ticket.ticket_id))
    assert sum(e.minutes for e in entries) == Decimal(45)
    rest = [e for e in entries if e.remote_id.endswith("without-article")]
    assert rest and rest[0].agent == "alice" and rest[0].minutes == Decimal(15)


def test_activity_falls_back_to_a_ticket_field(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    sandbox.dynamic_fields["BillingActivity"]["ObjectType"] = "Ticket"
    ticket = sandbox.create_ticket("ticket activity")
    sandbox.add_article(ticket, time_unit=5)
    sandbox.set_field(ticket, "BillingActivity", "Fernwartung")
    assert connector.time_entries(str(ticket.ticket_id))[0].activity == "Fernwartung"


@pytest.mark.parametrize(
    ("unit", "booked"), [("second", "5400"), ("hour", "1.5"), ("quarter", "6")]
)
def test_time_unit_is_configurable_including_znuny_seconds(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox, unit: str, booked: str
) -> None:
    ticket = sandbox.create_ticket(f"{unit} mode")
    sandbox.add_article(ticket, time_unit=booked)  # 90 minutes in that unit
    entries = make(time_unit=unit).time_entries(str(ticket.ticket_id))
    assert entries[0].minutes == Decimal(90)


def test_seeded_seconds_mode_gives_the_same_minutes() -> None:
    with (
        OTRSSandbox.running(seed_reference=REFERENCE, time_unit="second") as seconds,
        OTRSSandbox.running(seed_reference=REFERENCE) as minutes,
    ):

        def total(sb: OTRSSandbox, unit: str) -> Decimal:
            connector = OTRSConnector(
                sb.url,
                user=sb.api_login,
                password=sb.api_password,
                time_unit=unit,
                now=lambda: REFERENCE,
            )
            return sum((e.minutes for e in connector.time_entries("6")), Decimal(0))

        assert total(seconds, "second") == total(minutes, "minute") > 0


@pytest.mark.parametrize("ticket_id", ["999", "abc"])
def test_missing_ticket_is_not_found(connector: OTRSConnector, ticket_id: str) -> None:
    with pytest.raises(NotFound):
        connector.time_entries(ticket_id)
    with pytest.raises(NotFound):
        connector.ticket(ticket_id)


# -- write-back ----------------------------------------------------------------------------


def test_write_back_sets_fields_and_one_internal_note(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.tickets[2]
    articles_before = len(ticket.articles)
    assert connector.write_back("2", invoice()) is True
    assert ticket.dynamic_fields == {
        "BillingStatus": "invoiced",
        "InvoiceNumber": "RE-2025-00007",
        "InvoiceURL": "https://billing.example/invoices/RE-2025-00007.pdf",
    }
    note = ticket.articles[-1]
    assert len(ticket.articles) == articles_before + 1
    assert (note.visible, note.channel, note.sender_type) == (0, "Internal", "agent")
    assert "RE-2025-00007" in note.subject
    remote = connector.ticket("2")
    assert (remote.billing_status, remote.invoice_reference) == ("invoiced", "RE-2025-00007")

    assert connector.write_back("2", invoice()) is False
    assert len(ticket.articles) == articles_before + 1


def test_a_customer_quoting_the_invoice_number_does_not_suppress_the_note(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.tickets[7]
    sandbox.add_article(
        ticket,
        agent="alice",
        sender_type="customer",
        channel="Email",
        visible=1,
        subject="Frage zu RE-2025-00007",
        body="RE-2025-00007?",
    )
    sandbox.add_article(ticket, agent="bob", subject="intern: RE-2025-00007 kommt")  # not ours
    count = len(ticket.articles)
    assert connector.write_back("7", invoice()) is True
    assert len(ticket.articles) == count + 1 and ticket.articles[-1].visible == 0


def test_the_customer_does_not_see_the_note(connector: OTRSConnector, sandbox: OTRSSandbox) -> None:
    connector.write_back("1", invoice())  # ticket 1 belongs to cust1 (ACME)
    answer = requests.get(
        sandbox.service_url() + "/Ticket/1",
        timeout=10,
        params={"CustomerUserLogin": "cust1", "Password": "cust1-Secret1", "AllArticles": 1},
    ).json()
    subjects = [a["Subject"] for a in answer["Ticket"][0]["Article"]]
    assert not any("RE-2025-00007" in s for s in subjects)


def test_write_back_after_a_lost_field_update_completes_without_a_second_note(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    connector.write_back("4", invoice())
    sandbox.set_field(sandbox.tickets[4], "BillingStatus", "draft")  # someone changed it
    count = len(sandbox.tickets[4].articles)
    assert connector.write_back("4", invoice()) is True
    assert sandbox.tickets[4].dynamic_fields["BillingStatus"] == "invoiced"
    assert len(sandbox.tickets[4].articles) == count


def test_status_only_write_back_without_note(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    change = WriteBack(billing_status="needs_attention", marker="needs_attention")
    count = len(sandbox.tickets[5].articles)
    assert connector.write_back("5", change) is True
    assert connector.write_back("5", change) is False
    assert len(sandbox.tickets[5].articles) == count
    assert sandbox.tickets[5].dynamic_fields["BillingStatus"] == "needs_attention"


def test_write_back_with_an_unknown_status_value_is_a_clear_error(connector: OTRSConnector) -> None:
    with pytest.raises(RemoteError, match="InvalidParameter"):
        connector.write_back("2", invoice(status="paid-in-gold"))


def test_write_back_to_a_missing_ticket_is_not_found(connector: OTRSConnector) -> None:
    with pytest.raises(NotFound):
        connector.write_back("9999", invoice())


# -- extras (materials, travel, visits) ------------------------------------------------------

BOOKINGS = (
    "<p>Material: 2 × SSD 1 TB à 87,40 € [Hardware]</p><p>Fahrt: 38 km</p>"
    "<p>Vor-Ort: ja</p><p>Material: Kabel ohne Preis</p><p>Sonst alles gut.</p>"
)


def test_extras_come_from_internal_notes_only(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    ticket = sandbox.create_ticket("Extras", agent="alice")
    note = sandbox.add_article(
        ticket,
        agent="bob",
        body=BOOKINGS,
        content_type="text/html; charset=utf-8",
        at=REFERENCE + timedelta(minutes=3),
    )
    sandbox.add_article(ticket, agent="alice", body="Material: Toner à 50 €", visible=1)  # a reply
    connector.write_back(
        str(ticket.ticket_id),
        WriteBack(
            billing_status="invoiced",
            marker="RE-9",
            note_subject="RE-9",
            note_html="<p>Material: 2 × SSD 1 TB à 87,40 € [Hardware]</p>",
        ),
    )  # our own note
    extras, problems = connector.extras(str(ticket.ticket_id))
    assert [(e.kind, e.quantity, e.unit_cost, e.category, e.agent) for e in extras] == [
        ("material", Decimal(2), Decimal("87.40"), "Hardware", "bob"),
        ("travel", Decimal(38), None, None, "bob"),
        ("visit", Decimal(1), None, None, "bob"),
    ]
    assert all(e.booked_at == REFERENCE + timedelta(minutes=3) for e in extras)
    assert all(e.remote_id.startswith(f"article:{note.article_id}:") for e in extras)
    assert len({e.remote_id for e in extras}) == 3
    assert [(p.source_id, p.line) for p in problems] == [
        (f"article:{note.article_id}", "Material: Kabel ohne Preis")
    ]


def test_extras_of_a_missing_ticket_is_not_found(connector: OTRSConnector) -> None:
    with pytest.raises(NotFound):
        connector.extras("4242")


# -- registration --------------------------------------------------------------------------


def test_register_reports_missing_fields_with_the_console_commands(tmp_path: Path) -> None:
    with OTRSSandbox.running(seed_reference=REFERENCE, billing_fields=False) as sb:
        connector = OTRSConnector(
            sb.url,
            user=sb.api_login,
            password=sb.api_password,
            data_dir=tmp_path,
            now=lambda: REFERENCE,
        )
        report = connector.register()
    assert not report.ok and report.created == () and report.present == ()
    problem = report.problems[0]
    yaml_file = tmp_path / "otrs-dynamic-fields.yml"
    assert f"Admin::DynamicField::Import {yaml_file}" in problem
    assert "Admin::DynamicField::ScreenConfig --dynamic-field BillingStatus" in problem
    body = "".join(
        line for line in yaml_file.read_text().splitlines(keepends=True) if not line.startswith("#")
    )
    fields = json.loads(body)["DynamicFields"]  # JSON is YAML; Znuny's YAML::XS reads it
    assert fields["BillingStatus"]["FieldType"] == "Dropdown"
    assert "invoiced" in fields["BillingStatus"]["Config"]["PossibleValues"]
    assert fields["BillingActivity"]["ObjectType"] == "Article"


def test_register_writes_the_otrs6_script_and_the_company_export(tmp_path: Path) -> None:
    """OTRS 6.0 has no Admin::DynamicField::Import: the problem names the generated script."""
    with OTRSSandbox.running(seed_reference=REFERENCE, billing_fields=False,
                             product="otrs-6.0") as sb:
        connector = otrs6_connector(sb, data_dir=tmp_path)
        missing = connector.register()
        for name, spec in BILLING_FIELDS.items():
            sb.add_dynamic_field(name, **spec)
        present = otrs6_connector(sb, data_dir=tmp_path).register()
    script = tmp_path / "otrs-dynamic-fields.pl"
    assert f"(OTRS 6.0, which lacks Admin::DynamicField::Import: perl {script})" in (
        missing.problems[0])
    text = script.read_text(encoding="utf-8")
    assert f"su -s /bin/sh otrs -c 'perl {script}'" in text
    definition = json.loads(text[text.index("<<'JSON' );\n") + 12: text.index("\nJSON\n")])
    assert [f["Name"] for f in definition["Fields"]] == list(BILLING_FIELDS)
    assert definition["Screens"]["Ticket::Frontend::AgentTicketNote###DynamicField"] == [
        "BillingActivity"]
    assert "CustomerCompanyList" in (tmp_path / "otrs-customer-companies.pl").read_text()
    # OTRS 6 lists every ticket field (null when empty): register verifies them all.
    assert present.ok, present.problems


def test_register_finds_fields_even_when_no_ticket_has_a_value(connector: OTRSConnector) -> None:
    report = connector.register()
    assert report.ok
    assert set(report.present) == {
        "BillingStatus",
        "InvoiceNumber",
        "InvoiceURL",
        "BillingCategory",
        "BillingActivity",
    }


def test_register_finds_a_missing_article_field_by_its_absence_on_articles(
    connector: OTRSConnector, sandbox: OTRSSandbox
) -> None:
    del sandbox.dynamic_fields["BillingActivity"]  # TicketSearch ignores article fields anyway
    report = connector.register()
    assert "BillingActivity" not in report.present and len(report.problems) == 1
    assert (
        "dynamic fields missing in GenericTicketConnectorREST: BillingActivity"
        in (report.problems[0])
    )
    assert "--dynamic-field BillingActivity" in report.problems[0]


def test_register_on_the_classic_route_cannot_verify_unset_fields(
    make: Callable[..., OTRSConnector], sandbox: OTRSSandbox
) -> None:
    connector = make(webservice=CLASSIC, routes="classic")
    report = connector.register()
    assert not report.ok and "classic GET search route" in report.problems[0]
    connector.write_back("2", invoice())
    sandbox.set_field(sandbox.tickets[2], "BillingCategory", "warranty")  # an agent's choice
    report = connector.register()
    # Ticket fields now hold values, the article activity field is listed with null anyway.
    assert report.ok, report.problems


# -- sandbox fidelity (what the real Znuny does) -------------------------------------------


def test_sandbox_errors_are_http_200_with_error_objects(sandbox: OTRSSandbox) -> None:
    response = requests.post(
        sandbox.service_url() + "/Session",
        timeout=10,
        json={"UserLogin": "billing", "Password": "nope"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "Error": {
            "ErrorCode": "SessionCreate.AuthFail",
            "ErrorMessage": "SessionCreate: Authorization failing!",
        }
    }
    missing = raw(sandbox, "GET", "/Ticket/999").json()
    assert missing["Error"]["ErrorCode"] == "TicketGet.AccessDenied"


def test_sandbox_transport_errors_are_500_text(sandbox: OTRSSandbox) -> None:
    unknown = raw(sandbox, "GET", "/Foo")
    assert unknown.status_code == 500 and unknown.headers["Content-Type"].startswith("text/plain")
    assert unknown.text == "HTTP::REST Error while determine Operation for request URI '/Foo'."
    form = requests.post(
        sandbox.service_url() + "/Ticket/Search", data={"UserLogin": "billing"}, timeout=10
    )
    assert (form.status_code, form.text) == (500, "Could not read input data")


def test_sandbox_search_shapes(sandbox: OTRSSandbox) -> None:
    hits = raw(sandbox, "POST", "/Ticket/Search", body={"StateType": "closed", "Limit": 2}).json()
    assert all(isinstance(i, str) for i in hits["TicketID"]) and len(hits["TicketID"]) == 2
    assert raw(sandbox, "POST", "/Ticket/Search", body={"StateType": "Closed"}).json() == {}
    future = (REFERENCE + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert (
        raw(sandbox, "POST", "/Ticket/Search", body={"TicketChangeTimeNewerDate": future}).json()
        == {}
    )
    # On the classic GET route a dynamic-field operator cannot be expressed: it is ignored.
    ignored = raw(
        sandbox,
        "GET",
        "/Ticket",
        webservice=CLASSIC,
        params={"DynamicField_BillingStatus": "invoiced", "Limit": 3},
    ).json()
    assert len(ignored["TicketID"]) == 3


def test_sandbox_ticket_get_numbers_and_visibility_default(sandbox: OTRSSandbox) -> None:
    ticket = raw(sandbox, "GET", "/Ticket/2", params={"AllArticles": 1}).json()["Ticket"][0]
    assert isinstance(ticket["TicketID"], int) and isinstance(ticket["TimeUnit"], int)
    assert "DynamicField" not in ticket and "Closed" not in ticket
    update = raw(
        sandbox,
        "PATCH",
        "/Ticket/2",
        body={"Article": {"Subject": "s", "Body": "b", "ContentType": "text/plain; charset=utf-8"}},
    ).json()
    assert isinstance(update["TicketID"], str) and isinstance(update["ArticleID"], int)
    assert sandbox.tickets[2].articles[-1].visible == 1  # omitted flag means visible
    negative = raw(
        sandbox,
        "PATCH",
        "/Ticket/2",
        body={
            "Article": {"Subject": "s", "Body": "b", "ContentType": "text/plain", "TimeUnit": "-5"}
        },
    ).json()
    assert negative["Error"]["ErrorCode"] == "TicketUpdate.InvalidParameter"


def test_sandbox_invalid_session_fails_even_with_a_valid_login(sandbox: OTRSSandbox) -> None:
    answer = raw(sandbox, "GET", "/Ticket/1", params={"SessionID": "x" * 32}).json()
    assert answer["Error"]["ErrorCode"] == "TicketGet.AuthFail"
