"""A ticket whose bookings the API user may not read is flagged, not a failed run.

Zammad lists every ticket of a group the token's user may *read*, but shows a ticket's time
accountings only with *change* access (TicketPolicy#update?). The sandbox imitates that policy
(`group_access`, on by default); the token's owner here has only read access to one group.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar

from addon.models import Outbox, Ticket
from connectors.sandbox.zammad import ZammadSandbox

ADMIN_USER = 2  # owner of the sandbox's admin token
SERVICE_GROUP = 2  # "Service"


def closed_in_group(sb: ZammadSandbox, title: str, group_id: int) -> int:
    ticket = sb.create_ticket(title, organization_id=1, group_id=group_id)
    sb.advance(600)
    sb.book_time(ticket["id"], 45, type_id=1)
    sb.advance(600)
    sb.close_ticket(ticket["id"])
    return int(ticket["id"])


def test_an_unreadable_ticket_needs_attention_and_is_billed_once_the_right_is_granted(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    sb = sidecar.sandbox
    hidden = closed_in_group(sb, "Server", SERVICE_GROUP)
    sb.advance(3600)  # the poll's overlap (120 s) will not reach back to the hidden ticket
    readable = closed_in_group(sb, "Drucker", 1)
    sidecar.import_customers(tmp_path, [1])
    sb.set_group_access(ADMIN_USER, SERVICE_GROUP, ["read"])

    first = sidecar.run()
    assert first.ok, first.error
    assert first.counts["tickets_unreadable"] == 1 and first.counts["invoiced"] == 1
    with sidecar.factory() as session:
        flagged = session.execute(select(Ticket).where(Ticket.remote_id == str(hidden))).scalar_one()
        assert flagged.billing_status == "needs_attention"
        assert flagged.attention_reason == flagged.access_problem
        assert "change (or full) access to group 'Service'" in (flagged.attention_reason or "")
        # nothing is queued for it: the same missing right keeps the token from writing there
        assert session.execute(select(Outbox).where(Outbox.ticket_id == flagged.id)).first() is None
    assert sb.ticket(hidden)["billing_status"] is None

    sb.advance(3600)
    again = sidecar.run()  # the poll lists nothing (the billed ticket's change was our own write);
    assert again.ok and again.counts["tickets_unreadable"] == 1  # the re-read finds the other unchanged
    assert again.counts.get("tickets_seen", 0) == 0

    sb.set_group_access(ADMIN_USER, SERVICE_GROUP, ["full"])
    sb.advance(3600)
    granted = sidecar.run()  # the ticket did not change: the poll alone would not see it again
    assert granted.ok, granted.error
    assert granted.counts["tickets_readable_again"] == 1 and granted.counts["invoiced"] == 1
    assert sb.ticket(hidden)["billing_status"] == "invoiced"
    assert sb.ticket(readable)["billing_status"] == "invoiced"
    with sidecar.factory() as session:
        ticket = session.execute(select(Ticket).where(Ticket.remote_id == str(hidden))).scalar_one()
        assert ticket.access_problem is None and ticket.billing_status == "invoiced"


def test_a_token_without_the_permission_still_fails_the_run(sidecar: Sidecar, tmp_path: Path) -> None:
    """Not a per-ticket right: every ticket would fail, so the admin must see a failed run."""
    sb = sidecar.sandbox
    closed_in_group(sb, "Drucker", 1)
    with sb.lock:
        sb.state.data["tokens"][sb.admin_token]["permission"] = ["admin.object"]
    result = sidecar.run()
    assert not result.ok and "Token authorization failed" in (result.error or "")
