"""The global time accounting list (Zammad 6.1+ `GET /time_accountings`): one listing per poll
answers `time_entries` for the tickets it provably holds in full; every other ticket is read on
its own (`GET /tickets/{id}/time_accountings`), as before. Requests are counted at the sandbox.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from empty_sandbox import empty_sandbox

import connectors.zammad as zammad_module
from connectors.base import NoAccess, RemoteTicket
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

ADMIN_USER, AGENT_ROLE, SERVICE_GROUP = 2, 2, 2
LISTING = "/api/v1/time_accountings"


@pytest.fixture
def sb() -> Iterator[ZammadSandbox]:
    with empty_sandbox() as sandbox:
        yield sandbox


def connect(sb: ZammadSandbox, token: str | None = None) -> ZammadConnector:
    return ZammadConnector(sb.url, token=token or sb.admin_token, sleep=lambda _: None)


def closed(sb: ZammadSandbox, title: str, minutes: list[int], group_id: int = 1) -> int:
    ticket = sb.create_ticket(title, group_id=group_id)
    for amount in minutes:
        sb.advance(60)
        sb.book_time(ticket["id"], amount, agent_id=3, type_id=1)
    sb.advance(60)
    sb.close_ticket(ticket["id"])
    return int(ticket["id"])


class Requests:
    """The sandbox's requests from a mark on, by (method, path without query)."""

    def __init__(self, sb: ZammadSandbox) -> None:
        self.sb, self.mark = sb, len(sb.requests_seen)

    def all(self) -> list[tuple[str, str]]:
        return list(self.sb.requests_seen)[self.mark:]

    def count(self) -> Counter[tuple[str, str]]:
        return Counter((m, re.sub(r"\?.*", "", p)) for m, p in self.all())

    def per_ticket(self) -> int:
        return sum(n for (m, p), n in self.count().items()
                   if m == "GET" and re.fullmatch(r"/api/v1/tickets/\d+/time_accountings", p))

    def listing_pages(self) -> int:
        return self.count()[("GET", LISTING)]


def poll(connector: ZammadConnector, cursor: datetime | None) -> dict[str, Any]:
    """A poll as the sync runs it: the search, then each ticket's time entries."""
    tickets = list(connector.changed_tickets_since(cursor))
    return {t.remote_id: connector.time_entries(t.remote_id) for t in tickets}


def per_ticket_reads(sb: ZammadSandbox, ids: Any) -> dict[str, Any]:
    """The same tickets read the old way: a connector outside a poll never uses the listing."""
    fresh = connect(sb)
    return {str(i): fresh.time_entries(str(i)) for i in ids}


def test_a_first_run_reads_no_ticket_on_its_own_and_converts_rows_as_before(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30, 15 * n + 5]) for n in range(4)]
    ids.append(closed(sb, "Ohne Zeit", []))
    sb.advance(60)  # the poll runs a minute after the last close
    connector = connect(sb)
    seen = Requests(sb)

    entries = poll(connector, None)

    assert seen.per_ticket() == 0
    assert seen.listing_pages() == 1
    assert seen.count()[("GET", "/api/v1/users/me")] == 1, "the group rights, once a poll"
    assert entries == per_ticket_reads(sb, ids), "the same entries as the per-ticket list gives"
    assert entries[str(ids[-1])] == []


def test_the_listing_stops_at_the_first_row_older_than_the_window(
    sb: ZammadSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zammad_module, "LISTING_PAGE_SIZE", 2)
    old = [closed(sb, f"Alt {n}", [10, 20]) for n in range(5)]  # 10 rows before the cursor
    sb.advance(3600)
    connector = connect(sb)
    poll(connector, None)
    cursor = connector.poll_started_at()
    assert cursor is not None
    sb.advance(3600)
    new = [closed(sb, f"Neu {n}", [5]) for n in range(3)]
    sb.advance(60)
    seen = Requests(sb)

    entries = poll(connector, cursor)

    assert set(entries) == {str(i) for i in new}, "the old tickets are outside the window"
    assert seen.per_ticket() == 0
    assert seen.listing_pages() == 2, "3 rows in the window; the 4th row, on page 2, is older"
    assert entries == per_ticket_reads(sb, new)
    assert old


def test_an_old_ticket_with_a_new_booking_is_read_on_its_own(sb: ZammadSandbox) -> None:
    old = closed(sb, "Alt", [30])
    sb.advance(3600)
    connector = connect(sb)
    poll(connector, None)
    cursor = connector.poll_started_at()
    sb.advance(3600)
    late = sb.book_time(old, 45, agent_id=3, type_id=1)  # its first row is outside the window
    new = [closed(sb, f"Neu {n}", [5]) for n in range(3)]
    sb.advance(60)
    seen = Requests(sb)

    entries = poll(connector, cursor)

    assert seen.count()[("GET", f"/api/v1/tickets/{old}/time_accountings")] == 1
    assert seen.per_ticket() == 1, "only the old ticket"
    assert [e.remote_id for e in entries[str(old)]][-1] == str(late["id"])
    assert [e.minutes for e in entries[str(old)]] == [30, 45]
    assert entries == per_ticket_reads(sb, [old, *new])


def test_a_deleted_booking_of_a_fully_listed_ticket_is_gone(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30, 20]) for n in range(3)]
    with sb.lock:
        first = sb.state.rows_of("time_accountings", "ticket_id", ids[0])[0]
        sb.state.delete_booking(first)
    sb.advance(60)
    connector = connect(sb)
    seen = Requests(sb)

    entries = poll(connector, None)

    assert seen.per_ticket() == 0
    assert [e.minutes for e in entries[str(ids[0])]] == [20]
    assert entries == per_ticket_reads(sb, ids)


def test_a_booking_after_the_listing_on_a_ticket_searched_later_is_read(
    sb: ZammadSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search pages on while the tickets are read: a ticket updated after the listing
    began may have rows the listing lacks, so it is read on its own."""
    monkeypatch.setattr(zammad_module, "SEARCH_PAGE_SIZE", 2)
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(5)]
    sb.advance(60)
    connector = connect(sb)
    search = connector.changed_tickets_since(None)
    first: list[RemoteTicket] = [next(search) for _ in range(3)]  # two search pages so far
    seen = Requests(sb)
    connector.time_entries(first[0].remote_id)  # the listing is made now
    assert seen.listing_pages() == 1
    sb.advance(5)
    late = sb.book_time(ids[4], 15, agent_id=3, type_id=1)  # not searched yet
    sb.advance(5)
    rest = list(search)

    entries = {t.remote_id: connector.time_entries(t.remote_id) for t in first[1:] + rest}

    assert [t.remote_id for t in rest] == [str(ids[3]), str(ids[4])]
    assert seen.count()[("GET", f"/api/v1/tickets/{ids[4]}/time_accountings")] == 1
    assert seen.per_ticket() == 1
    assert [e.remote_id for e in entries[str(ids[4])]][-1] == str(late["id"])


def test_a_booking_after_the_listing_on_a_ticket_searched_before_is_read_next_poll(
    sb: ZammadSandbox,
) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(4)]
    sb.advance(60)
    connector = connect(sb)
    search = connector.changed_tickets_since(None)
    tickets = list(search)
    connector.time_entries(tickets[0].remote_id)  # the listing
    sb.advance(5)
    late = sb.book_time(ids[1], 15, agent_id=3, type_id=1)
    sb.advance(5)
    assert [e.minutes for e in connector.time_entries(str(ids[1]))] == [30], (
        "as read before the booking, like a per-ticket read a moment earlier")
    cursor = connector.poll_started_at()
    sb.advance(60)

    entries = poll(connector, cursor)  # the booking moved the ticket: it is in the window again

    assert [e.remote_id for e in entries[str(ids[1])]][-1] == str(late["id"])


def test_a_ticket_updated_in_the_second_the_listing_began_is_read_on_its_own(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(4)]  # the last closed just now
    connector = connect(sb)
    seen = Requests(sb)

    poll(connector, None)

    assert seen.count()[("GET", f"/api/v1/tickets/{ids[-1]}/time_accountings")] == 1
    assert seen.per_ticket() == 1


def test_a_poll_of_few_tickets_reads_them_on_their_own(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(2)]
    sb.advance(60)
    seen = Requests(sb)

    poll(connect(sb), None)

    assert seen.listing_pages() == 0 and seen.per_ticket() == len(ids)


def test_a_token_without_admin_time_accounting_reads_each_ticket(
    sb: ZammadSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(3)]
    sb.advance(60)
    connector = connect(sb, token=sb.agent_token)  # the admin user, but only ticket.agent
    seen = Requests(sb)

    with caplog.at_level(logging.INFO, logger="connectors.zammad"):
        entries = poll(connector, None)
        cursor = connector.poll_started_at()
        closed(sb, "Noch einer", [10])
        sb.advance(60)
        poll(connector, cursor)
        poll(connector, None)

    assert seen.listing_pages() == 1, "tried once: off for this connector after the 403"
    assert entries == per_ticket_reads(sb, ids)
    told = [r for r in caplog.records if "global time accounting list is not available" in r.message]
    assert len(told) == 1 and told[0].levelno == logging.INFO
    assert "Not authorized" in told[0].message


def test_a_zammad_before_6_1_reads_each_ticket(sb: ZammadSandbox) -> None:
    sb.version = "6.0"
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(3)]
    sb.advance(60)
    connector = connect(sb)
    seen = Requests(sb)

    entries = poll(connector, None)
    poll(connector, None)

    assert seen.listing_pages() == 1
    assert seen.per_ticket() == 2 * len(ids)
    assert entries == per_ticket_reads(sb, ids)


def test_a_failing_listing_falls_back_for_this_poll_only(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(3)]
    sb.advance(60)
    connector = connect(sb)
    sb.fail_next(count=5, status=502, path=LISTING)
    seen = Requests(sb)

    assert poll(connector, None) == per_ticket_reads(sb, ids)
    assert seen.per_ticket() == 2 * len(ids)  # this poll's, and the comparison's
    again = Requests(sb)
    poll(connector, None)
    assert again.listing_pages() == 1 and again.per_ticket() == 0


def test_a_ticket_the_user_may_only_read_keeps_its_no_access(sb: ZammadSandbox) -> None:
    """The listing shows every ticket's rows to admin.time_accounting, but the sidecar bills
    only what it may change: such a ticket is read on its own, which refuses as before."""
    readable = [closed(sb, f"Drucker {n}", [30]) for n in range(3)]
    hidden = closed(sb, "Server", [45], group_id=SERVICE_GROUP)
    sb.advance(60)
    sb.set_group_access(ADMIN_USER, SERVICE_GROUP, ["read"])
    connector = connect(sb)
    seen = Requests(sb)

    tickets = list(connector.changed_tickets_since(None))
    assert str(hidden) in {t.remote_id for t in tickets}
    for ticket_id in readable:
        connector.time_entries(str(ticket_id))
    with pytest.raises(NoAccess, match="change \\(or full\\) access to group 'Service'"):
        connector.time_entries(str(hidden))

    assert seen.per_ticket() == 1
    assert seen.count()[("GET", "/api/v1/roles")] == 1, "its roles might grant the change"


def test_change_access_through_a_role_counts(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Server {n}", [30], group_id=SERVICE_GROUP) for n in range(3)]
    sb.advance(60)
    sb.set_group_access(ADMIN_USER, SERVICE_GROUP, ["read"])
    sb.set_role_group_access(AGENT_ROLE, SERVICE_GROUP, ["read", "change"])
    connector = connect(sb)
    seen = Requests(sb)

    entries = poll(connector, None)

    assert seen.per_ticket() == 0
    assert seen.count()[("GET", "/api/v1/roles")] == 1, "once a poll"
    assert entries == per_ticket_reads(sb, ids)


def test_the_listing_is_capped_and_then_answers_only_for_newer_rows(
    sb: ZammadSandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(zammad_module, "LISTING_PAGE_SIZE", 2)
    monkeypatch.setattr(zammad_module, "MAX_LISTING_PAGES", 2)
    ids = [closed(sb, f"Drucker {n}", [10 + n]) for n in range(6)]  # one row each, oldest first
    sb.advance(60)
    connector = connect(sb)
    seen = Requests(sb)

    with caplog.at_level(logging.INFO, logger="connectors.zammad"):
        entries = poll(connector, None)

    assert seen.listing_pages() == 2
    assert seen.per_ticket() == 2, "the two oldest tickets' rows were beyond the cap"
    assert {p for (m, p), _ in seen.count().items() if p.endswith("/time_accountings")
            and p != LISTING} == {f"/api/v1/tickets/{i}/time_accountings" for i in ids[:2]}
    assert entries == per_ticket_reads(sb, ids)
    assert any("stops after 2 pages" in r.message for r in caplog.records)


def test_a_poll_does_not_reuse_the_last_polls_listing(sb: ZammadSandbox) -> None:
    ids = [closed(sb, f"Drucker {n}", [30]) for n in range(3)]
    sb.advance(60)
    connector = connect(sb)
    poll(connector, None)
    sb.advance(60)
    with sb.lock:  # an admin corrects a row: the ticket's total changes, and its updated_at
        row = sb.state.rows_of("time_accountings", "ticket_id", ids[0])[0]
        sb.state.update_booking(row, {"time_unit": "35"})
    sb.advance(60)
    seen = Requests(sb)

    entries = poll(connector, None)

    assert seen.listing_pages() == 1 and seen.per_ticket() == 0
    assert [e.minutes for e in entries[str(ids[0])]] == [35]
    assert entries[str(ids[0])][0].remote_updated_at == datetime.fromisoformat(
        row["updated_at"].replace("Z", "+00:00")).astimezone(UTC)
    assert timedelta(0) <= sb.now() - entries[str(ids[0])][0].remote_updated_at


@pytest.mark.parametrize("with_ids", [True, False])
def test_a_row_the_paging_skipped_while_another_was_deleted_is_read_on_its_own(
    sb: ZammadSandbox, monkeypatch: pytest.MonkeyPatch, with_ids: bool
) -> None:
    """Paging is by offset: a row deleted after page 1 moves the next page's rows up by one, and
    one row is never listed. Its ticket's `ticket_time_accounting_ids` (or, in a record without
    them, its `time_unit`) shows the gap."""
    monkeypatch.setattr(zammad_module, "LISTING_PAGE_SIZE", 2)
    ids = [closed(sb, f"Drucker {n}", [10 * (n + 1)]) for n in range(4)]  # one row each
    sb.advance(60)
    connector = connect(sb)
    tickets = list(connector.changed_tickets_since(None))
    if not with_ids:
        for record in connector._records.values():
            record.pop("ticket_time_accounting_ids", None)  # type: ignore[attr-defined]

    def delete_the_newest() -> None:
        with sb.lock:
            sb.state.delete_booking(sb.state.rows_of("time_accountings", "ticket_id", ids[3])[0])

    sb.after_next(delete_the_newest, path=LISTING)
    seen = Requests(sb)
    entries = {t.remote_id: connector.time_entries(t.remote_id) for t in tickets}

    assert seen.listing_pages() == 2
    reads = {p for (m, p), _ in seen.count().items() if p.endswith("/time_accountings") and p != LISTING}
    assert f"/api/v1/tickets/{ids[1]}/time_accountings" in reads, "its row was skipped"
    assert f"/api/v1/tickets/{ids[0]}/time_accountings" not in reads
    assert [e.minutes for e in entries[str(ids[1])]] == [20]
    assert [e.minutes for e in entries[str(ids[0])]] == [10]
