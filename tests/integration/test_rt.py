"""RTConnector against a real Request Tracker 5 (started by `bash .ci/rt-up.sh`).

Each session works in its own queues and billing fields (names carry a random tag), so runs
never see each other's tickets although RT keeps its database between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rt_fixtures import *  # noqa: F403  (the RT fixtures, used by name)
from rt_fixtures import RTDesk, RTEnv

import connectors.rt as rt_module
from addon.settings import load_settings
from connectors.base import AuthError, HelpdeskConnector, NotFound, RemoteError, WriteBack
from connectors.rt import BILLING_STATUSES, RTConnector

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def billed_tickets(rt_desk: RTDesk, rt_queues: dict[str, str]) -> dict[str, str]:
    """Two resolved tickets with time by two agents over two days, one still open."""
    started = datetime.now(UTC).replace(microsecond=0)
    acme = rt_desk.create_ticket(rt_queues["acme"], "Printer on fire", agent="agent1")
    rt_desk.book(acme, "agent1", 30, at=DAY1, kind="comment")
    rt_desk.book(acme, "agent2", 45, at=DAY2, kind="correspond")
    rt_desk.book(acme, "agent1", -10, at=DAY2 + timedelta(hours=1), kind="comment")
    globex = rt_desk.create_ticket(rt_queues["globex"], "VPN down", agent="agent2")
    rt_desk.book(globex, "agent2", 20, at=DAY2 + timedelta(hours=2))
    still_open = rt_desk.create_ticket(rt_queues["acme"], "Still open", agent="agent1")
    rt_desk.book(still_open, "agent1", 5)
    rt_desk.resolve(acme)
    rt_desk.resolve(globex)
    return {"acme": acme, "globex": globex, "open": still_open, "started": started.isoformat()}


def test_connector_satisfies_protocol(rt_connector: RTConnector) -> None:
    assert isinstance(rt_connector, HelpdeskConnector)
    assert rt_connector.kind == "rt"


def test_check_with_token_and_with_basic_auth(rt_env: RTEnv, rt_connector: RTConnector) -> None:
    assert rt_connector.check().startswith("RT 5.")
    basic = RTConnector(rt_env.url, user="agent1", password=rt_env.agents["agent1"])
    assert "user agent1" in basic.check()


def test_check_rejects_a_bad_token_without_leaking_it(rt_env: RTEnv) -> None:
    bad = RTConnector(rt_env.url, token="1-14-deadbeefdeadbeefdeadbeefdeadbeef", max_attempts=1)
    with pytest.raises(AuthError) as caught:
        bad.check()
    assert "deadbeef" not in str(caught.value)


def test_register_twice_creates_then_finds(
    make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    connector = make_rt_connector(
        status_field=rt_desk.name("Reg Status"),
        invoice_field=rt_desk.name("Reg Invoice"),
        invoice_url_field=rt_desk.name("Reg URL"),
    )
    first = connector.register()
    rt_desk.created_custom_fields.extend(connector.custom_field_ids().values())
    assert first.ok, first.problems
    assert len([c for c in first.created if c.startswith("custom field")]) == 3
    assert any(all(s in c for s in BILLING_STATUSES) for c in first.created)

    again = make_rt_connector(
        status_field=rt_desk.name("Reg Status"),
        invoice_field=rt_desk.name("Reg Invoice"),
        invoice_url_field=rt_desk.name("Reg URL"),
    ).register()
    assert again.ok, again.problems
    assert again.created == ()
    assert len(again.present) == 4  # three fields and the status values

    # Every session queue sees the fields (they are global), with the Select values.
    ids = connector.custom_field_ids()
    for queue in rt_queues.values():
        queue_id = rt_desk.call("GET", f"/queue/{queue}")["id"]
        applied = {item["id"] for item in rt_desk.call("GET", f"/queue/{queue_id}/customfields",
                                                       params={"per_page": 100})["items"]}
        assert set(ids.values()) <= applied
    values = rt_desk.call("GET", f"/customfield/{ids['status']}/values")["items"]
    assert [v["name"] for v in values] == list(BILLING_STATUSES)


def test_register_reports_an_unknown_queue(make_rt_connector: Callable[..., RTConnector],
                                           rt_desk: RTDesk) -> None:
    report = make_rt_connector(queues=(rt_desk.name("No Such Queue"),)).register()
    assert not report.ok
    assert "does not exist" in report.problems[0]


def test_closed_tickets_since_returns_resolved_tickets_with_queue_customers(
    rt_connector: RTConnector, billed_tickets: dict[str, str], rt_queues: dict[str, str]
) -> None:
    cursor = datetime.fromisoformat(billed_tickets["started"])
    found = list(rt_connector.closed_tickets_since(cursor))
    by_id = {t.remote_id: t for t in found}
    assert {billed_tickets["acme"], billed_tickets["globex"]} <= set(by_id)
    assert billed_tickets["open"] not in by_id
    acme = by_id[billed_tickets["acme"]]
    assert acme.customer is not None and acme.customer.name == rt_queues["acme"]
    assert by_id[billed_tickets["globex"]].customer.name == rt_queues["globex"]  # type: ignore[union-attr]
    assert acme.state == "resolved" and acme.title == "Printer on fire"
    assert acme.closed_at is not None and acme.closed_at >= cursor
    assert acme.updated_at >= cursor
    assert acme.web_url == f"{rt_connector.base_url}/Ticket/Display.html?id={acme.remote_id}"
    assert [t.updated_at for t in found] == sorted(t.updated_at for t in found)
    # A cursor after the last update (beyond the overlap) finds nothing.
    later = max(t.updated_at for t in found) + rt_connector.overlap + timedelta(seconds=2)
    assert list(rt_connector.closed_tickets_since(later)) == []


def test_closed_tickets_since_pages_through_all_results(
    rt_connector: RTConnector, billed_tickets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = [t.remote_id for t in rt_connector.closed_tickets_since(None)]
    monkeypatch.setattr(rt_module, "PAGE_SIZE", 1)
    requests_before = rt_connector.http.request_count
    paged = [t.remote_id for t in rt_connector.closed_tickets_since(None)]
    assert paged == expected and len(paged) >= 2
    assert rt_connector.http.request_count - requests_before >= len(expected)


def test_time_entries_are_exact_per_agent_minute_and_time(
    rt_connector: RTConnector, billed_tickets: dict[str, str]
) -> None:
    entries = rt_connector.time_entries(billed_tickets["acme"])
    got = [(e.agent, e.minutes, e.booked_at) for e in entries]
    assert got == [
        ("agent1", Decimal(30), DAY1),
        ("agent2", Decimal(45), DAY2),
        ("agent1", Decimal(-10), DAY2 + timedelta(hours=1)),
    ]
    assert all(e.ticket_remote_id == billed_tickets["acme"] for e in entries)
    assert len({e.remote_id for e in entries}) == 3
    assert sum(e.minutes for e in entries) == Decimal(
        rt_connector.http.get_json(f"/REST/2.0/ticket/{billed_tickets['acme']}")["TimeWorked"])
    globex = rt_connector.time_entries(billed_tickets["globex"])
    assert [(e.agent, e.minutes) for e in globex] == [("agent2", Decimal(20))]


def test_time_entries_include_a_direct_time_worked_change(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Direct time")
    rt_desk.call("PUT", f"/ticket/{ticket}", agent="agent2", json={"TimeWorked": 15})
    assert [(e.agent, e.minutes) for e in rt_connector.time_entries(ticket)] == [
        ("agent2", Decimal(15))]


def test_missing_ticket_is_not_found(rt_connector: RTConnector) -> None:
    with pytest.raises(NotFound):
        rt_connector.time_entries("99999999")
    with pytest.raises(NotFound):
        rt_connector.ticket("99999999")
    with pytest.raises(NotFound):
        rt_connector.ticket("1/../2")


def test_customer_from_custom_field_and_from_requestor_domain(
    make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk, rt_env: RTEnv,
    rt_queues: dict[str, str],
) -> None:
    ticket = rt_desk.create_ticket(
        rt_queues["general"], "Mail broken", requestor="Jane Roe <jane@Initech.EXAMPLE>",
        custom_fields={rt_env.customer_cf: "Initech GmbH"})
    by_cf = make_rt_connector(customer_source="custom_field").ticket(ticket)
    assert by_cf.customer is not None
    assert (by_cf.customer.remote_id, by_cf.customer.name) == ("Initech GmbH", "Initech GmbH")
    by_domain = make_rt_connector(customer_source="requestor_domain").ticket(ticket)
    assert by_domain.customer is not None and by_domain.customer.remote_id == "initech.example"
    by_queue = make_rt_connector().ticket(ticket)
    assert by_queue.customer is not None and by_queue.customer.name == rt_queues["general"]
    # No CF value: no customer (the sync flags the ticket instead of guessing).
    bare = rt_desk.create_ticket(rt_queues["general"], "Who pays?")
    assert make_rt_connector(customer_source="custom_field").ticket(bare).customer is None


def _invoice_change(marker: str) -> WriteBack:
    return WriteBack(
        billing_status="invoiced",
        marker=marker,
        invoice_reference=marker,
        invoice_url=f"http://127.0.0.1:8400/invoices/{marker}.pdf",
        note_subject=f"Rechnung {marker}",
        note_html=f"<p>Rechnung / Invoice <a href='http://x/{marker}'>{marker}</a> — 119,00 €</p>",
    )


def test_write_back_writes_once(
    rt_connector: RTConnector, rt_desk: RTDesk, billed_tickets: dict[str, str]
) -> None:
    ticket = billed_tickets["globex"]
    marker = f"RE-2026-{rt_desk.tag}"
    change = _invoice_change(marker)
    assert rt_connector.write_back(ticket, change) is True

    cfs = rt_desk.custom_fields(ticket)
    assert cfs[rt_desk.name("Billing Status")] == ["invoiced"]
    assert cfs[rt_desk.name("Invoice Number")] == [marker]
    assert cfs[rt_desk.name("Invoice URL")] == [change.invoice_url]
    notes = [c for c in rt_desk.comments(ticket) if marker in c["subject"]]
    assert len(notes) == 1
    assert notes[0]["creator"] == rt_desk.env.billing_user
    assert any("119,00 €" in (a.get("Content") or "") or a.get("Content") for a in
               notes[0]["attachments"])
    assert rt_desk.ticket(ticket)["Status"] == "resolved"  # a comment does not reopen
    remote = rt_connector.ticket(ticket)
    assert (remote.billing_status, remote.invoice_reference) == ("invoiced", marker)
    # The note is not booked time.
    assert [(e.agent, e.minutes) for e in rt_connector.time_entries(ticket)] == [
        ("agent2", Decimal(20))]

    transactions = len(rt_desk.history(ticket))
    assert rt_connector.write_back(ticket, change) is False
    assert len(rt_desk.history(ticket)) == transactions


def test_write_back_completes_after_a_half_done_attempt(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    """The note landed but the CF update did not (crash, timeout): a retry adds only the CFs."""
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Half done")
    marker = f"RE-HALF-{rt_desk.tag}"
    rt_desk.call("POST", f"/ticket/{ticket}/comment", json={
        "Subject": f"Rechnung {marker}", "Content": "earlier attempt", "ContentType": "text/plain"})
    assert rt_connector.write_back(ticket, _invoice_change(marker)) is True
    assert len([c for c in rt_desk.comments(ticket) if marker in c["subject"]]) == 1
    assert rt_desk.custom_fields(ticket)[rt_desk.name("Invoice Number")] == [marker]


def test_status_only_write_back_without_note(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Status only")
    change = WriteBack(billing_status="needs_attention", marker="needs_attention:1:abc")
    assert rt_connector.write_back(ticket, change) is True
    assert rt_desk.comments(ticket) == []
    assert rt_desk.custom_fields(ticket)[rt_desk.name("Billing Status")] == ["needs_attention"]
    assert rt_connector.write_back(ticket, change) is False


def test_a_write_back_that_fails_on_a_missing_field_leaves_no_comment(
    rt_connector: RTConnector, make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk,
    rt_queues: dict[str, str],
) -> None:
    """The invoice-number field is applied to another queue only: RT ignores it with 200."""
    elsewhere = rt_desk.name("Elsewhere")
    other_queue = rt_desk.create_queue(elsewhere)
    field = rt_desk.name("Queue Only Invoice")
    cf = rt_desk.call("POST", "/customfield", json={
        "Name": field, "Type": "Freeform", "MaxValues": 1, "LookupType": "RT::Queue-RT::Ticket",
        "Queue": int(other_queue)})
    rt_desk.created_custom_fields.append(str(cf["id"]))
    connector = make_rt_connector(invoice_field=field)
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Field missing here")
    with pytest.raises(RemoteError, match="did not store"):
        connector.write_back(ticket, _invoice_change(f"RE-MISSING-{rt_desk.tag}"))
    assert rt_desk.comments(ticket) == []


def test_time_entries_name_the_agent_as_rt_knows_them(
    rt_connector: RTConnector, billed_tickets: dict[str, str]
) -> None:
    entries = rt_connector.time_entries(billed_tickets["acme"])
    assert [(e.agent, e.agent_name) for e in entries] == [
        ("agent1", "Agent One"), ("agent2", "Agent Two"), ("agent1", "Agent One")]


def test_the_queues_list_the_billing_fields_for_a_queue_level_right(
    rt_connector: RTConnector, rt_desk: RTDesk
) -> None:
    """Where `register` looks when the search hides a field: the queue's TicketCustomFields."""
    rt_connector._queue_field_cache = None
    listed = {item["name"]: item["id"] for item in rt_connector._queue_fields()}
    for role, cf_id in rt_connector.custom_field_ids().items():
        name = next(spec.name for spec in rt_connector.fields if spec.role == role)
        assert listed[name] == cf_id


def test_partially_failed_put_raises(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    """RT answers 200 with "Invalid value for custom field" for a value the Select lacks."""
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Bad status")
    change = WriteBack(billing_status="no-such-status", marker="x", invoice_reference="RE-X")
    with pytest.raises(RemoteError) as caught:
        rt_connector.write_back(ticket, change)
    assert caught.value.status == 200
    assert "Invalid value" in str(caught.value)
    assert rt_desk.name("Billing Status") in str(caught.value)


def test_write_back_to_missing_ticket_is_not_found(rt_connector: RTConnector) -> None:
    with pytest.raises(NotFound):
        rt_connector.write_back("99999999", _invoice_change("RE-NONE"))


def test_write_back_without_registration_says_so(
    make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk, billed_tickets: dict[str, str]
) -> None:
    connector = make_rt_connector(status_field=rt_desk.name("Never Registered"))
    with pytest.raises(RemoteError, match="run the registration"):
        connector.write_back(billed_tickets["acme"], _invoice_change("RE-UNREG"))


def test_status_note_with_umlauts_is_written_once(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    """RT folds long subjects ("\\n "); the marker must still be found on the second run."""
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Needs a look")
    marker = "needs_attention:2:0123456789"
    change = WriteBack(
        billing_status="needs_attention",
        marker=marker,
        note_subject="Abrechnung: Bitte prüfen / billing needs attention — Kunde fehlt im Ticket",
        note_html=f"<p>Kunde fehlt — bitte zuordnen</p><p><small>ticketbill ref {marker}</small></p>",
    )
    assert rt_connector.write_back(ticket, change) is True
    assert rt_connector.write_back(ticket, change) is False
    notes = rt_desk.comments(ticket)
    assert len(notes) == 1
    assert "prüfen" in notes[0]["subject"]


def test_register_without_admin_rights_reports_instead_of_raising(
    make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk, rt_env: RTEnv
) -> None:
    agent = make_rt_connector(
        token=None, user="agent1", password=rt_env.agents["agent1"],
        status_field=rt_desk.name("Agent Status"), invoice_field=rt_desk.name("Agent Invoice"),
        invoice_url_field=rt_desk.name("Agent URL"),
    )
    report = agent.register()
    assert not report.ok and report.created == ()
    assert len(report.problems) == 3
    assert "AdminCustomField" in report.problems[0]


def test_merged_ticket_is_gone_and_its_time_moves_to_the_survivor(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    old = rt_desk.create_ticket(rt_queues["acme"], "Duplicate report")
    old_booking = rt_desk.book(old, "agent1", 7, at=DAY1)
    survivor = rt_desk.create_ticket(rt_queues["acme"], "Original report")
    rt_desk.book(survivor, "agent2", 11, at=DAY2)
    rt_desk.merge(old, into=survivor)

    with pytest.raises(NotFound, match="merged into"):
        rt_connector.ticket(old)
    with pytest.raises(NotFound, match="merged into"):
        rt_connector.time_entries(old)
    entries = rt_connector.time_entries(survivor)
    assert [(e.remote_id == old_booking, e.agent, e.minutes) for e in entries] == [
        (True, "agent1", Decimal(7)), (False, "agent2", Decimal(11))]
    assert {e.ticket_remote_id for e in entries} == {survivor}


def test_changed_tickets_since_sees_open_work_and_merged_time_with_the_survivor(
    rt_connector: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    """Issue 11: the sync polls every state; RT hides the merged ticket and lists its time
    under the survivor, whose TimeWorked says it has time."""
    started = datetime.now(UTC).replace(microsecond=0)
    working = rt_desk.create_ticket(rt_queues["acme"], "Open with time")
    rt_desk.book(working, "agent1", 12)
    idle = rt_desk.create_ticket(rt_queues["acme"], "Open without time")
    old = rt_desk.create_ticket(rt_queues["acme"], "Duplicate")
    rt_desk.book(old, "agent1", 9)
    survivor = rt_desk.create_ticket(rt_queues["acme"], "Original")
    rt_desk.merge(old, into=survivor)

    found = {t.remote_id: t for t in rt_connector.changed_tickets_since(started)}

    assert (found[working].state_type, found[working].has_time) == ("open", True)
    assert (found[idle].state_type, found[idle].has_time) == ("open", False)
    assert old not in found and found[survivor].has_time is True
    assert [e.minutes for e in rt_connector.time_entries(survivor)] == [Decimal(9)]


def test_from_settings_reads_helpdesk_keys_and_rt_options() -> None:
    """No RT needed: settings (RT_* keys) → constructor options."""
    env = {
        "HELPDESK_KIND": "rt", "HELPDESK_URL": "https://rt.example.com/rt/",
        "HELPDESK_TOKEN": "1-14-0123456789abcdef", "SYNC_OVERLAP_SECONDS": "300",
        "SELLER_NAME": "IT GmbH", "SELLER_STREET": "Weg 1", "SELLER_POSTCODE": "10115",
        "SELLER_CITY": "Berlin", "SELLER_TAX_NUMBER": "1234567890",
        "SELLER_IBAN": "DE89370400440532013000",
    }
    settings = load_settings(env)
    plain = RTConnector.from_settings(settings)
    assert plain.base_url == "https://rt.example.com/rt"
    assert plain.overlap == timedelta(seconds=300)
    assert (plain.customer_source, plain.queues) == ("queue", None)
    assert plain.ticket_url("42") == "https://rt.example.com/rt/Ticket/Display.html?id=42"

    extended = load_settings({**env, "RT_CUSTOMER_SOURCE": "requestor_domain",
                              "RT_QUEUES": "Acme GmbH, Globex AG", "RT_TIMEZONE": "Europe/Berlin"})
    rt = RTConnector.from_settings(extended)
    assert rt.customer_source == "requestor_domain"
    assert rt.queues == ("Acme GmbH", "Globex AG")
    # TicketSQL reads wall time in RT's zone; outside UTC one extra hour covers DST overlaps.
    assert rt._sql_date(datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == "2026-11-25 12:00:00"
    assert plain._sql_date(datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == "2026-11-25 12:00:00"
