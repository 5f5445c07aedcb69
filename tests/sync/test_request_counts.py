"""What a run costs the helpdesk, counted at the sandbox (issue 15): no read before a write on
the normal path, one write per ticket and run, the time accountings of all polled tickets in one
global list (Zammad 6.1+), an idle poll that reads nothing again."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from sync_fixtures import Sidecar, closed_ticket

from addon.sync.jobs import RunResult

REMOTE = 1


def requests_of(sidecar: Sidecar, run: RunResult, before: int) -> list[tuple[str, str]]:
    assert run.ok, run.error
    return [(method, re.sub(r"\?.*", "", path)) for method, path in list(sidecar.sandbox.requests_seen)[before:]]


def test_one_put_per_ticket_and_no_read_before_it(sidecar: Sidecar, tmp_path: Path) -> None:
    """A first run of N closed tickets: N article lists, N writes, the search page, the one page
    of the global time accounting list, and what a run reads once (states, organizations, the
    API user, the booking agent's name), plus the poll after the writes that moves the cursor
    past them (states, search, organizations). No ticket's own time accounting list."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])  # organization 2 has no billing data: needs attention
    tickets = [closed_ticket(sb, f"Drucker {n}", 1, [(30, 3, REMOTE)]) for n in range(3)]
    tickets.append(closed_ticket(sb, "Ohne Adresse", 2, [(30, 3, REMOTE)]))
    sb.advance(60)  # the run begins a minute after the last close
    before = len(sb.requests_seen)

    seen = Counter(requests_of(sidecar, sidecar.run(), before))

    for ticket_id in tickets:
        assert seen[("PUT", f"/api/v1/tickets/{ticket_id}")] == 1
        assert seen[("GET", f"/api/v1/tickets/{ticket_id}")] == 0, "no read before the write"
        assert seen[("GET", f"/api/v1/ticket_articles/by_ticket/{ticket_id}")] == 1, "the bookings, once"
        assert seen[("GET", f"/api/v1/tickets/{ticket_id}/time_accountings")] == 0, "from the list"
    per_run = {("GET", "/api/v1/ticket_states"): 2, ("POST", "/api/v1/tickets/search"): 2,
               ("GET", "/api/v1/organizations"): 2, ("GET", "/api/v1/time_accountings"): 1,
               ("GET", "/api/v1/users/me"): 1, ("GET", "/api/v1/users/3"): 1}
    assert {key: seen[key] for key in per_run} == per_run
    assert sum(seen.values()) == 2 * len(tickets) + sum(per_run.values())


def test_a_ticket_changed_as_the_run_begins_reads_its_own_list(sidecar: Sidecar, tmp_path: Path) -> None:
    """The helpdesk's clock has whole seconds: a ticket updated in the second the global list
    was read may have a row the list lacks, so its own list is read."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    earlier = [closed_ticket(sb, f"Drucker {n}", 1, [(30, 3, REMOTE)]) for n in range(3)]
    just_now = closed_ticket(sb, "Gerade eben", 1, [(30, 3, REMOTE)])
    before = len(sb.requests_seen)

    run = sidecar.run()

    seen = Counter(requests_of(sidecar, run, before))
    assert run.counts["invoiced"] == 4
    assert seen[("GET", f"/api/v1/tickets/{just_now}/time_accountings")] == 1
    assert all(seen[("GET", f"/api/v1/tickets/{t}/time_accountings")] == 0 for t in earlier)


def test_idle_poll_reads_nothing_again(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    for n in range(5):
        closed_ticket(sb, f"VPN {n}", 1, [(30, 3, REMOTE)])
    assert sidecar.run().counts["invoiced"] == 5
    sb.advance(300)
    before = len(sb.requests_seen)

    idle = sidecar.run()

    seen = requests_of(sidecar, idle, before)
    assert len(seen) <= 3, seen
    assert idle.counts.get("written", 0) == 0
