"""The connector for ticket systems that push (HELPDESK_KIND=api): nothing to poll or write.

Tickets and time arrive through the push API (`addon.web.push`); the sender reads billing
status and invoice links back from it. This class lets the sync job run unchanged for such a
deployment: it polls nothing, and its write-back reports the marker as delivered because the
push API serves the status itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.base import NotFound, RegistrationReport, RemoteTicket, RemoteTimeEntry, WriteBack

if TYPE_CHECKING:
    from addon.settings import Settings


class PushConnector:
    """The push API's side of the connector protocol."""

    kind = "api"

    def __init__(self, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConnector:
        return cls(settings.public_url)

    def check(self) -> str:
        return "push API (tickets arrive at /api/push/v1)"

    def register(self) -> RegistrationReport:
        return RegistrationReport(created=(), present=("push API",), problems=())

    def closed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        return iter(())

    def changed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        return iter(())  # pushed tickets, open or closed, arrive through the push API

    def time_entries(self, ticket_remote_id: str) -> Sequence[RemoteTimeEntry]:
        raise NotFound(f"ticket {ticket_remote_id}: pushed tickets carry their entries")

    def ticket(self, ticket_remote_id: str) -> RemoteTicket:
        raise NotFound(f"ticket {ticket_remote_id}: read pushed tickets from the database")

    def write_back(self, ticket_remote_id: str, change: WriteBack) -> bool:
        return False

    def ticket_url(self, ticket_remote_id: str) -> str:
        """Where the sender reads this ticket's billing status (its own URL is `web_url`)."""
        return f"{self.public_url}/api/push/v1/tickets/{ticket_remote_id}"
