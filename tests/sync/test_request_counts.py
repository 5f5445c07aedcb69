"""What a run costs the helpdesk, counted at the sandbox (issue 15): no read before a write on
the normal path, one write per ticket and run, an idle poll that reads nothing again."""

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
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])  # organization 2 has no billing data: needs attention
    tickets = [closed_ticket(sb, f"Drucker {n}", 1, [(30, 3, REMOTE)]) for n in range(3)]
    tickets.append(closed_ticket(sb, "Ohne Adresse", 2, [(30, 3, REMOTE)]))
    before = len(sb.requests_seen)

    seen = Counter(requests_of(sidecar, sidecar.run(), before))

    for ticket_id in tickets:
        assert seen[("PUT", f"/api/v1/tickets/{ticket_id}")] == 1
        assert seen[("GET", f"/api/v1/tickets/{ticket_id}")] == 0, "no read before the write"
        assert seen[("GET", f"/api/v1/ticket_articles/by_ticket/{ticket_id}")] == 1, "the bookings, once"
        assert seen[("GET", f"/api/v1/tickets/{ticket_id}/time_accountings")] == 1


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
