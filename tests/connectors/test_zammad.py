"""ZammadConnector end to end over HTTP against the Zammad sandbox on 127.0.0.1.

Nothing below `requests` is mocked: every call goes through `HttpClient` to the sandbox,
which imitates Zammad's paths, auth errors, page clamps, both search shapes, string decimals,
unmigrated custom fields and the restart after `execute_migrations`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import AuthError, NotFound, RateLimited, RemoteError, WriteBack
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import (
    ATTRIBUTES,
    FIELD_REFERENCE,
    FIELD_STATUS,
    FIELD_URL,
    ZammadConnector,
    parse_time,
)

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
FIELDS = (FIELD_STATUS, FIELD_REFERENCE, FIELD_URL)


@pytest.fixture
def sandbox() -> Iterator[ZammadSandbox]:
    with ZammadSandbox.running(restart_seconds=0) as sb:
        sb.set_now(NOW)
        yield sb


@pytest.fixture
def sleeps() -> list[float]:
    return []


def connect(sb: ZammadSandbox, sleeps: list[float] | None = None, **kwargs: Any) -> ZammadConnector:
    kwargs.setdefault("token", sb.admin_token)
    recorded: list[float] = [] if sleeps is None else sleeps
    return ZammadConnector(sb.url, sleep=recorded.append, registration_poll_seconds=0.01,
                           **kwargs)


@pytest.fixture
def zammad(sandbox: ZammadSandbox, sleeps: list[float]) -> ZammadConnector:
    return connect(sandbox, sleeps)


@pytest.fixture
def registered(zammad: ZammadConnector) -> ZammadConnector:
    assert zammad.register().ok
    return zammad


def closed_ids(sb: ZammadSandbox) -> set[str]:
    closed = set(sb.closed_state_ids())
    with sb.lock:
        return {str(t["id"]) for t in sb.state.data["tickets"].values() if t["state_id"] in closed}


def internal_notes_with(sb: ZammadSandbox, ticket_id: int, text: str) -> list[dict[str, Any]]:
    with sb.lock:
        return [a for a in sb.state.data["articles"].values()
                if a["ticket_id"] == ticket_id and a["internal"] and text in a["body"]]


def writes(sb: ZammadSandbox) -> list[tuple[str, str]]:
    return [(m, p) for m, p in sb.requests_seen if m in ("POST", "PUT", "DELETE")]


# -- identity and errors --------------------------------------------------------------------


def test_check_names_the_token_owner(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    assert zammad.check() == f"{sandbox.admin_login} (Zammad user 2) at {sandbox.url}"
    assert ("GET", "/api/v1/users/me") in sandbox.requests_seen


def test_check_with_basic_auth(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, token=None, user=sandbox.admin_login,
                        password=sandbox.admin_password)
    assert connector.check().startswith(sandbox.admin_login)


def test_bad_token_is_auth_error_401(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, token="not-a-real-token")
    with pytest.raises(AuthError, match=r"HTTP 401.*Can't find User for Token") as caught:
        connector.check()
    assert "not-a-real-token" not in str(caught.value)
    assert connector.http.request_count == 1


def test_wrong_password_is_auth_error_and_masked(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, token=None, user=sandbox.admin_login, password="wrong-pass")
    with pytest.raises(AuthError, match="Invalid BasicAuth credentials") as caught:
        connector.check()
    assert "wrong-pass" not in str(caught.value)


def test_no_credentials_is_auth_error_403(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, token=None)
    with pytest.raises(AuthError, match=r"HTTP 403.*Authentication required"):
        connector.check()


def test_5xx_storm_is_remote_error_after_retries(
    zammad: ZammadConnector, sandbox: ZammadSandbox, sleeps: list[float]
) -> None:
    sandbox.fail_next(count=20, status=502, path="/users/me")
    with pytest.raises(RemoteError) as caught:
        zammad.check()
    assert caught.value.status == 502
    assert zammad.http.request_count == zammad.http.max_attempts == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_masked_500_is_not_retried(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    sandbox.fail_next(count=1, status=500, path="/users/me")
    with pytest.raises(RemoteError, match="Please contact your administrator") as caught:
        zammad.check()
    assert caught.value.status == 500
    assert zammad.http.request_count == 1


def test_rate_limit_honours_retry_after_then_succeeds(
    zammad: ZammadConnector, sandbox: ZammadSandbox, sleeps: list[float]
) -> None:
    sandbox.rate_limit_next(count=2, retry_after=3, path="/users/me")
    assert zammad.check().startswith(sandbox.admin_login)
    assert sleeps == [3.0, 3.0]


def test_rate_limit_exhausted(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    sandbox.rate_limit_next(count=10, retry_after=1, path="/users/me")
    with pytest.raises(RateLimited) as caught:
        zammad.check()
    assert caught.value.retry_after == 1.0


def test_malformed_json_is_remote_error(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    sandbox.malformed_next(path="/ticket_states")
    with pytest.raises(RemoteError, match="malformed JSON"):
        list(zammad.closed_tickets_since(None))


# -- registration ---------------------------------------------------------------------------


def test_register_creates_migrates_and_is_idempotent(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    first = zammad.register()
    assert first.ok, first.problems
    assert first.created == FIELDS
    assert first.present == ()
    assert ("POST", "/api/v1/object_manager_attributes_execute_migrations") in writes(sandbox)
    assert set(FIELDS) <= set(sandbox.ticket(1))
    with sandbox.lock:
        attrs = {a["name"]: a for a in sandbox.state.data["object_attributes"].values()}
    status = attrs[FIELD_STATUS]
    assert status["data_type"] == "select"
    assert {"unbilled", "needs_attention", "invoiced", "cancelled"} <= set(
        status["data_option"]["options"])
    assert status["screens"]["edit"]["ticket.agent"] == {"shown": True, "required": False}
    assert attrs[FIELD_URL]["data_option"]["type"] == "url"
    assert not any(attrs[name][flag] for name in FIELDS
                   for flag in ("to_create", "to_migrate", "to_config", "to_delete"))

    before = len(writes(sandbox))
    second = zammad.register()
    assert second.ok
    assert second.created == ()
    assert second.present == FIELDS
    assert len(writes(sandbox)) == before, "a second registration must change nothing"


def test_register_waits_through_the_restart(sandbox: ZammadSandbox) -> None:
    sandbox.restart_seconds = 0.4
    naps: list[float] = []

    def short_sleep(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(min(seconds, 0.05))

    connector = ZammadConnector(sandbox.url, token=sandbox.admin_token, sleep=short_sleep,
                                registration_poll_seconds=0.05, registration_wait_seconds=10)
    report = connector.register()
    assert report.ok, report.problems
    assert naps, "the restart window should have been waited out"
    assert set(FIELDS) <= set(sandbox.ticket(1))


def test_register_reports_a_restart_that_never_ends(sandbox: ZammadSandbox) -> None:
    sandbox.restart_seconds = 3600
    connector = ZammadConnector(sandbox.url, token=sandbox.admin_token, sleep=lambda s: None,
                                registration_poll_seconds=1, registration_wait_seconds=3)
    report = connector.register()
    assert not report.ok
    assert "not visible on tickets" in report.problems[0]
    assert report.created == FIELDS
    sandbox.clear_faults()


def test_register_says_to_restart_a_zammad_that_will_not_restart_itself(
    sandbox: ZammadSandbox, sleeps: list[float]
) -> None:
    """auto_shutdown off (Zammad 6.5+): no restart follows the migration; waiting 180 s for
    one would be in vain, and writes to the new fields are dropped until the admin restarts."""
    sandbox.set_setting("auto_shutdown", False)
    connector = connect(sandbox, sleeps, registration_wait_seconds=180)
    report = connector.register()
    assert sleeps == [], "nothing to wait for"
    assert report.created == FIELDS and len(report.problems) == 1
    assert "auto_shutdown is off" in report.problems[0]
    assert "restart Zammad now" in report.problems[0]
    assert not set(FIELDS) & set(sandbox.ticket(1))  # the old processes do not know them
    again = connect(sandbox, sleeps).register()  # before the restart: the same advice
    assert not again.ok and "auto_shutdown is off" in again.problems[0]

    sandbox.restart()
    sandbox.clear_faults()  # the restart window is over
    after = connect(sandbox, sleeps).register()
    assert after.ok, after.problems
    assert set(FIELDS) <= set(sandbox.ticket(1))


def test_register_migrates_pending_fields_created_earlier(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    # An earlier run created the attribute but crashed before executing the migrations.
    zammad.http.post_json("/api/v1/object_manager_attributes", dict(ATTRIBUTES[1]))
    assert FIELD_REFERENCE not in sandbox.ticket(1)
    report = zammad.register()
    assert report.ok
    assert FIELD_REFERENCE in report.present
    assert FIELD_REFERENCE in sandbox.ticket(1)


def test_register_repairs_missing_options_and_required(
    registered: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    with sandbox.lock:
        attr = next(a for a in sandbox.state.data["object_attributes"].values()
                    if a["name"] == FIELD_STATUS)
        del attr["data_option"]["options"]["cancelled"]
        attr["screens"]["edit"]["ticket.agent"]["required"] = True
    report = registered.register()
    assert report.ok
    assert report.created[0].startswith(f"{FIELD_STATUS} (updated: added options cancelled")
    with sandbox.lock:
        assert "cancelled" in attr["data_option"]["options"]
        assert attr["screens"]["edit"]["ticket.agent"]["required"] is False
        assert not attr["to_config"]


def test_register_needs_admin_object(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, token=sandbox.agent_token)
    with pytest.raises(AuthError, match="Token authorization failed"):
        connector.register()


# -- closed tickets -------------------------------------------------------------------------


def test_closed_tickets_since_none_returns_every_closed_ticket(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    tickets = list(zammad.closed_tickets_since(None))
    assert {t.remote_id for t in tickets} == closed_ids(sandbox)
    assert [t.updated_at for t in tickets] == sorted(t.updated_at for t in tickets)
    assert all(t.state == "closed" and t.closed_at is not None for t in tickets)
    with sandbox.lock:
        orgs = {o["id"]: o["name"] for o in sandbox.state.data["organizations"].values()}
        raw = {str(t["id"]): t for t in sandbox.state.data["tickets"].values()}
    for ticket in tickets:
        expected = raw[ticket.remote_id]
        assert ticket.customer is not None
        assert ticket.customer.name == orgs[int(ticket.customer.remote_id)]
        assert int(ticket.customer.remote_id) == expected["organization_id"]
        assert ticket.number == expected["number"]
        assert ticket.web_url == f"{sandbox.url}/#ticket/zoom/{ticket.remote_id}"
    # Two requests for all of it: the closed states and one search page.
    assert zammad.http.request_count == 2


def test_closed_state_ids_are_resolved_not_hard_coded(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    with sandbox.lock:
        sandbox.state.data["states"][7] = {
            **sandbox.state.data["states"][4], "id": 7, "name": "closed (billed elsewhere)"}
    assert zammad.closed_state_ids() == {4: "closed", 7: "closed (billed elsewhere)"}
    ticket = sandbox.create_ticket("Eigener Abschlussstatus", organization_id=2)
    with sandbox.lock:
        sandbox.state.data["tickets"][ticket["id"]]["state_id"] = 7
        sandbox.state.data["tickets"][ticket["id"]]["updated_at"] = "2025-07-01T11:59:00.000Z"
    found = {t.remote_id: t for t in zammad.closed_tickets_since(NOW - timedelta(minutes=5))}
    assert found[str(ticket["id"])].state == "closed (billed elsewhere)"


def test_cursor_minus_overlap(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox, overlap_seconds=120)
    cursor = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
    inside = sandbox.create_ticket("Innerhalb der Überlappung", at=cursor - timedelta(days=1))
    outside = sandbox.create_ticket("Vor der Überlappung", at=cursor - timedelta(days=1))
    later = sandbox.create_ticket("Nach dem Cursor", at=cursor - timedelta(days=1))
    sandbox.close_ticket(outside["id"], at=cursor - timedelta(seconds=121))
    sandbox.close_ticket(inside["id"], at=cursor - timedelta(seconds=119))
    sandbox.close_ticket(later["id"], at=cursor + timedelta(hours=1))
    found = [t.remote_id for t in connector.closed_tickets_since(cursor)]
    assert found == [str(inside["id"]), str(later["id"])]
    search = [p for m, p in sandbox.requests_seen if "tickets/search" in p]
    assert len(search) == 1


def _close_many(sb: ZammadSandbox, count: int) -> list[int]:
    start = datetime(2025, 7, 2, 8, 0, tzinfo=UTC)
    ids = []
    for n in range(count):
        at = start + timedelta(minutes=n)
        ticket = sb.create_ticket(f"Massenticket {n}", organization_id=1 + n % 3, at=at)
        sb.close_ticket(ticket["id"], at=at + timedelta(seconds=30))
        ids.append(ticket["id"])
    return ids


@pytest.mark.parametrize("version", ["6.4", "6.5"])
@pytest.mark.parametrize("expand", [True, False])
def test_paging_over_200_in_both_search_shapes(
    sandbox: ZammadSandbox, version: str, expand: bool
) -> None:
    ids = _close_many(sandbox, 230)
    sandbox.version = version
    connector = connect(sandbox, search_expand=expand)
    cursor = datetime(2025, 7, 2, 8, 0, tzinfo=UTC)
    tickets = list(connector.closed_tickets_since(cursor))
    assert [t.remote_id for t in tickets] == [str(i) for i in ids]
    assert len({t.remote_id for t in tickets}) == 230
    pages = [p for m, p in sandbox.requests_seen if "tickets/search" in p]
    assert len(pages) == 2
    names = {"1": "Bäckerei Hansen GmbH", "2": "Müller & Söhne Maschinenbau KG",
             "3": "Kanzlei Richter & Partner mbB"}
    assert all(t.customer is not None and t.customer.name == names[t.customer.remote_id]
               for t in tickets)
    assert all(t.state == "closed" and t.group == "Users" for t in tickets)
    # Organization names are looked up once per run at most, never per ticket.
    org_lookups = [p for m, p in sandbox.requests_seen if "/organizations/" in p]
    assert len(org_lookups) <= 3


def test_ticket_updated_while_paging_moves_to_the_end_and_nothing_is_missed(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    ids = _close_many(sandbox, 230)
    tickets = zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 0, tzinfo=UTC))
    first = next(tickets)  # page 1 has been fetched
    sandbox.book_time(ids[10], "5", at=datetime(2025, 7, 3, 9, 0, tzinfo=UTC))
    rest = list(tickets)
    got = [first.remote_id] + [t.remote_id for t in rest]
    # Page-number paging would lose the ticket that slid from page 2 onto page 1.
    assert set(got) == {str(i) for i in ids}
    assert got[-1] == str(ids[10]), "the updated ticket comes again, with its new updated_at"
    assert len(got) == 231
    search = [p for m, p in sandbox.requests_seen if "tickets/search" in p]
    assert len(search) == 2


def test_boundary_tickets_are_deduplicated(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    ids = _close_many(sandbox, 201)
    tickets = list(zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 0, tzinfo=UTC)))
    # Page 2 asks for updated_at >= the 200th ticket's, so that ticket comes back once more.
    assert [t.remote_id for t in tickets] == [str(i) for i in ids]


def _close_at_one_instant(sb: ZammadSandbox, count: int) -> list[int]:
    at = datetime(2025, 7, 2, 8, 0, tzinfo=UTC)
    ids = []
    for n in range(count):
        ticket = sb.create_ticket(f"Massenschließung {n}", at=at)
        sb.close_ticket(ticket["id"], at=at + timedelta(hours=1))
        ids.append(ticket["id"])
    return ids


def test_a_full_page_of_one_timestamp_is_stepped_through(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    ids = _close_at_one_instant(sandbox, 450)
    tickets = list(zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 30, tzinfo=UTC)))
    assert sorted(int(t.remote_id) for t in tickets) == ids
    pages = [p for m, p in sandbox.requests_seen if "tickets/search" in p]
    # the first page, two passes over the shared timestamp (3 pages each; the second finds
    # nothing new), then the next millisecond: empty
    assert len(pages) == 8


def test_tickets_sharing_a_timestamp_are_neither_skipped_nor_repeated_in_any_tie_order(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    """Real Zammad with PostgreSQL: ties on `updated_at` come back in any order per request."""
    ids = _close_at_one_instant(sandbox, 450)
    sandbox.unstable_ties = True
    tickets = [t.remote_id for t in
               zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 30, tzinfo=UTC))]
    assert sorted(int(t) for t in tickets) == ids  # each exactly once


def test_a_ticket_updated_while_a_shared_timestamp_is_read_is_not_lost(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    """A ticket of the shared timestamp changes mid-pass: the rest shift, the next pass finds
    the one that slid onto an already read page; the changed one comes again later."""
    ids = _close_at_one_instant(sandbox, 450)
    tickets = zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 30, tzinfo=UTC))
    got = [next(tickets).remote_id for _ in range(250)]  # into the second page of the pass
    sandbox.book_time(ids[3], "5", at=datetime(2025, 7, 3, 9, 0, tzinfo=UTC))
    got += [t.remote_id for t in tickets]
    assert set(got) == {str(i) for i in ids}
    assert got.count(str(ids[3])) == 2 and len(got) == 451


def test_repeating_search_page_is_detected(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    _close_at_one_instant(sandbox, 205)
    sandbox.repeat_search_page(1)
    with pytest.raises(RemoteError, match="loop detected in pagination"):
        list(zammad.closed_tickets_since(datetime(2025, 7, 2, 8, 30, tzinfo=UTC)))


def test_customer_falls_back_to_the_customers_organization(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    ticket = sandbox.create_ticket("Altes Ticket ohne Organisation", organization_id=2)
    sandbox.close_ticket(ticket["id"])
    with sandbox.lock:
        sandbox.state.data["tickets"][ticket["id"]]["organization_id"] = None
    result = zammad.ticket(str(ticket["id"]))
    assert result.customer is not None
    assert result.customer.remote_id == "2"
    assert result.customer.name == "Müller & Söhne Maschinenbau KG"


def test_ticket_deleted_between_search_and_fetch(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    first = next(iter(zammad.closed_tickets_since(None)))
    sandbox.delete_ticket(int(first.remote_id))
    with pytest.raises(NotFound, match="Couldn't find Ticket"):
        zammad.time_entries(first.remote_id)
    with pytest.raises(NotFound):
        zammad.ticket(first.remote_id)
    with pytest.raises(NotFound):
        zammad.write_back(first.remote_id, WriteBack(billing_status="invoiced", marker="RE-1"))


# -- time entries ---------------------------------------------------------------------------


def test_time_entries_match_the_bookings(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    entries = zammad.time_entries("3")
    bookings = sandbox.bookings(3)
    assert [e.remote_id for e in entries] == [str(b["id"]) for b in bookings]
    assert [e.minutes for e in entries] == [Decimal(b["time_unit"]) for b in bookings]
    assert Decimal("-15") in [e.minutes for e in entries], "ticket 3 carries a correction"
    with sandbox.lock:
        types = {t["id"]: t["name"] for t in sandbox.state.data["time_accounting_types"].values()}
        logins = {u["id"]: u["login"] for u in sandbox.state.data["users"].values()}
        names = {u["id"]: f"{u['firstname']} {u['lastname']}" for u in sandbox.state.data["users"].values()}
    for entry, booking in zip(entries, bookings, strict=True):
        assert entry.ticket_remote_id == "3"
        assert entry.activity == types.get(booking["type_id"])
        assert entry.agent == logins[booking["created_by_id"]]
        assert entry.agent_name == names[booking["created_by_id"]]
        assert entry.booked_at.tzinfo is not None
        assert entry.booked_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") == (
            booking["created_at"])
    agents = {b["created_by_id"] for b in bookings}
    assert zammad.http.request_count == 1 + len(agents), "one read of the bookings, one per agent's name"
    zammad.time_entries("3")
    assert zammad.http.request_count == 2 + len(agents), "agent names are cached"


@pytest.mark.parametrize(
    ("unit", "booked", "minutes"),
    [("minute", "12.5", Decimal("12.5")), ("hour", "1.25", Decimal("75")),
     ("quarter", "3", Decimal("45")), ("hour", "-0.5", Decimal("-30"))],
)
def test_time_unit_conversion(
    sandbox: ZammadSandbox, unit: str, booked: str, minutes: Decimal
) -> None:
    ticket = sandbox.create_ticket("Einheitentest")
    booking = sandbox.book_time(ticket["id"], booked, type_id=1)
    assert isinstance(booking["time_unit"], str)
    connector = connect(sandbox, time_unit=unit)
    (entry,) = connector.time_entries(str(ticket["id"]))
    assert entry.minutes == minutes
    assert entry.activity == "Remote"


def test_time_entries_page_through_many_rows(sandbox: ZammadSandbox) -> None:
    ticket = sandbox.create_ticket("Viele Buchungen")
    for n in range(510):
        sandbox.book_time(ticket["id"], "1", article=False,
                          at=NOW + timedelta(seconds=n))
    connector = connect(sandbox)
    entries = connector.time_entries(str(ticket["id"]))
    assert len(entries) == 510
    assert sum(e.minutes for e in entries) == Decimal(510)
    assert connector.http.request_count == 3  # two pages (500 + 10) and the one agent's name


def test_time_entries_of_ticket_without_bookings(sandbox: ZammadSandbox) -> None:
    ticket = sandbox.create_ticket("Ohne Zeit")
    assert connect(sandbox).time_entries(str(ticket["id"])) == []


# -- write-back ------------------------------------------------------------------------------


def invoice_change(number: str = "RE-2025-00042") -> WriteBack:
    return WriteBack(
        billing_status="invoiced",
        marker=number,
        invoice_reference=number,
        invoice_url=f"https://billing.example/invoices/{number}",
        note_subject=f"Rechnung {number}",
        note_html=f'<p>Rechnung <a href="https://billing.example/invoices/{number}">{number}</a>'
                  " erstellt.</p>",
    )


def test_write_back_exactly_once(registered: ZammadConnector, sandbox: ZammadSandbox) -> None:
    change = invoice_change()
    assert registered.write_back("1", change) is True
    ticket = sandbox.ticket(1)
    assert ticket[FIELD_STATUS] == "invoiced"
    assert ticket[FIELD_REFERENCE] == "RE-2025-00042"
    assert ticket[FIELD_URL] == "https://billing.example/invoices/RE-2025-00042"
    notes = internal_notes_with(sandbox, 1, "RE-2025-00042")
    assert len(notes) == 1
    assert notes[0]["content_type"] == "text/html"
    assert notes[0]["subject"] == "Rechnung RE-2025-00042"
    puts = [p for m, p in writes(sandbox) if m == "PUT"]
    assert puts == ["/api/v1/tickets/1"]

    # a repeat after an unknown outcome reads back first (the outbox asks) and finds it all there
    assert registered.remainder("1", change) is None
    assert len(internal_notes_with(sandbox, 1, "RE-2025-00042")) == 1
    assert [p for m, p in writes(sandbox) if m == "PUT"] == puts


def test_write_back_after_a_crash_is_skipped(sandbox: ZammadSandbox) -> None:
    assert connect(sandbox).register().ok
    assert connect(sandbox).write_back("2", invoice_change("RE-7")) is True
    # The process died before recording success; a fresh process retries the same change.
    retry = connect(sandbox)
    assert retry.remainder("2", invoice_change("RE-7")) is None
    assert len(internal_notes_with(sandbox, 2, "RE-7")) == 1
    assert retry.http.request_count == 1, "the reference field alone proves the earlier write"


def test_status_note_marker_found_in_the_note(
    registered: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    change = WriteBack(billing_status="needs_attention", marker="needs_attention:1:ab12cd34ef",
                       note_subject="Abrechnung: Bitte prüfen",
                       note_html="<p>Kein Vertrag für Bäckerei Hansen &amp; Co.</p>")
    assert registered.write_back("4", change) is True
    notes = internal_notes_with(sandbox, 4, "needs_attention:1:ab12cd34ef")
    assert len(notes) == 1, "the connector appends the marker when the note lacks it"
    assert registered.remainder("4", change) is None  # found by its marker in the note
    assert sandbox.ticket(4)[FIELD_STATUS] == "needs_attention"


def test_status_only_change_without_note(
    registered: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    change = WriteBack(billing_status="not_billable", marker="not_billable:2:0000000000")
    assert registered.write_back("6", change) is True
    assert sandbox.ticket(6)[FIELD_STATUS] == "not_billable"
    assert registered.remainder("6", change) is None


def test_unmigrated_field_is_detected_and_repaired_without_a_second_note(
    zammad: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    with pytest.raises(RemoteError, match="did not store billing_status") as caught:
        zammad.write_back("1", invoice_change("RE-9"))
    assert caught.value.status == 200
    assert len(internal_notes_with(sandbox, 1, "RE-9")) == 1, "Zammad kept the note"

    assert zammad.register().ok
    rest = zammad.remainder("1", invoice_change("RE-9"))  # the outbox reads back after the failure
    assert rest is not None and rest.note_html is None
    assert zammad.write_back("1", rest) is True
    assert sandbox.ticket(1)[FIELD_REFERENCE] == "RE-9"
    assert len(internal_notes_with(sandbox, 1, "RE-9")) == 1


def test_read_back_names_only_what_is_missing(zammad: ZammadConnector, sandbox: ZammadSandbox) -> None:
    """After an uncertain failure the outbox asks what is missing: a note that landed while
    the fields were dropped must not be sent again."""
    with pytest.raises(RemoteError, match="did not store"):
        zammad.write_back("1", invoice_change("RE-9"))
    rest = zammad.remainder("1", invoice_change("RE-9"))
    assert rest is not None and rest.note_html is None and rest.invoice_reference == "RE-9"

    assert zammad.register().ok
    assert zammad.write_back("1", rest) is True
    assert zammad.remainder("1", invoice_change("RE-9")) is None
    assert len(internal_notes_with(sandbox, 1, "RE-9")) == 1


def test_invalid_status_is_rejected_by_zammad(
    registered: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    with pytest.raises(RemoteError) as caught:
        registered.write_back("1", WriteBack(billing_status="paid-ish", marker="x-1"))
    assert caught.value.status == 422
    assert "paid-ish" in str(caught.value)


def test_write_back_put_is_not_retried_after_a_gateway_timeout(
    registered: ZammadConnector, sandbox: ZammadSandbox
) -> None:
    sandbox.fail_next(count=1, status=504, path="/tickets/1", method="PUT")
    with pytest.raises(RemoteError) as caught:
        registered.write_back("1", invoice_change("RE-11"))
    assert caught.value.status == 504
    assert [m for m, p in writes(sandbox) if p == "/api/v1/tickets/1"] == ["PUT"]
    assert registered.write_back("1", invoice_change("RE-11")) is True
    assert len(internal_notes_with(sandbox, 1, "RE-11")) == 1


def test_ticket_reads_billing_fields(registered: ZammadConnector, sandbox: ZammadSandbox) -> None:
    registered.write_back("5", invoice_change("RE-5"))
    ticket = registered.ticket("5")
    assert ticket.billing_status == "invoiced"
    assert ticket.invoice_reference == "RE-5"
    raw = sandbox.ticket(5)
    assert raw["close_at"] < raw["last_close_at"], "seed: ticket 5 was closed twice"
    assert ticket.closed_at is not None
    assert ticket.closed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") == (
        raw["last_close_at"])
    assert registered.ticket_url("5") == f"{sandbox.url}/#ticket/zoom/5"


def test_a_write_remembers_the_version_it_made(registered: ZammadConnector, sandbox: ZammadSandbox) -> None:
    listed = {t.remote_id: t for t in registered.changed_tickets_since(None)}
    assert "1" in listed
    requests_before = registered.http.request_count

    assert registered.write_back("1", invoice_change()) is True

    assert registered.http.request_count == requests_before + 1, "one PUT, no read before it"
    written = registered.written_version("1")
    assert written is not None and written == parse_time(sandbox.ticket(1)["updated_at"])


def test_a_booking_between_the_poll_and_the_write_is_not_taken_for_our_own_change(
        registered: ZammadConnector, sandbox: ZammadSandbox) -> None:
    list(registered.changed_tickets_since(None))
    sandbox.advance(60)
    sandbox.book_time(1, 25)  # an agent books while the run bills: the next poll must read it

    assert registered.write_back("1", invoice_change()) is True

    assert registered.written_version("1") is None
