"""The Zammad sandbox the flow tests and the harnesses start from: seeded users, organizations
and settings, but no tickets and no organization billing data, its clock at 2 Nov 2026 09:00 UTC.

Each test books exactly what it checks and imports (or fills in) the billing data it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from connectors.sandbox.zammad import ZammadSandbox


@contextmanager
def empty_sandbox() -> Iterator[ZammadSandbox]:
    """A running, emptied sandbox; stopped on exit."""
    with ZammadSandbox.running(restart_seconds=0, seed_reference_date=date(2026, 11, 1)) as sandbox:
        sandbox.set_now(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
        with sandbox.lock:
            ticket_ids = list(sandbox.state.data["tickets"])
            for org in sandbox.state.data["organizations"].values():
                org.update({key: None for key in org if key.startswith("billing_")})
        for ticket_id in ticket_ids:
            sandbox.delete_ticket(ticket_id)
        yield sandbox
