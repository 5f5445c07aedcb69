"""Close events a helpdesk announces (Znuny's invoker, Zammad's webhook): stored once, then
the next sync run starts at once.

Why one place: both receivers must deduplicate deliveries the same way (a retried delivery
changes nothing) and hand the work to the sync instead of doing it in the request: the
sender waits for the answer (Zammad gives up after 30 s and retries), and billing belongs to
the run that holds the job lock. Polling stays the safety net for events that never arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy.exc import IntegrityError

from addon.db import transaction
from addon.models import PushEvent


def record_close_event(source: str, key: str, ticket_remote_id: str) -> bool:
    """Store the event once per (source, key); True if it is new (the sync run is requested).

    `key` must be at most 64 characters (the dedupe column): a hash of the delivery.
    """
    try:
        with transaction(current_app.extensions["ticketbill"].sessions) as session:
            session.add(PushEvent(source=source, event_key=key, ticket_remote_id=ticket_remote_id,
                                  received_at=datetime.now(UTC)))
    except IntegrityError:
        return False
    request_sync: Callable[[], None] | None = current_app.config.get("TICKETBILL_REQUEST_SYNC")
    if request_sync is not None:
        request_sync()
    return True
