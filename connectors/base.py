"""The connector protocol: what the sync needs from any helpdesk, in neutral records.

The core never sees a helpdesk's JSON. Each connector module maps its API onto these frozen
records and back (billing status, invoice reference, internal note). Times are aware UTC
datetimes; booked time is in minutes as `Decimal` (helpdesks book fractions and negatives).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable


class ConnectorError(Exception):
    """Base of every error a connector raises; the message is safe to show (no secrets)."""


class AuthError(ConnectorError):
    """The helpdesk refused the credentials (401) or the permission (403)."""


class NoAccess(AuthError):
    """The helpdesk lists the ticket but refuses its bookings to the API user (a right on the
    ticket's group or queue is missing). The message says which right; the sync flags the
    ticket with it instead of failing the run, and reads it again on the next one."""


class NotFound(ConnectorError):
    """The record does not exist (any more): deleted or merged between search and fetch."""


class RateLimited(ConnectorError):
    """429 after all retries; `retry_after` is the helpdesk's last hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteError(ConnectorError):
    """The helpdesk answered, but not usefully: 5xx, malformed JSON, a repeating page, a
    rejected write. `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:500]


# The billing category agents set per ticket (a select field in every helpdesk). `None` on a
# `RemoteTicket` means "not set", which billing treats as the default, "billable".
#: billing_status values the sidecar writes, with the labels agents see (German / English)
BILLING_STATUS_LABELS = {
    "unbilled": "Nicht abgerechnet / unbilled",
    "billable": "Abrechenbar / billable",
    "not_billable": "Nicht abrechenbar / not billable",
    "needs_attention": "Bitte prüfen / needs attention",
    "draft": "Rechnungsentwurf / draft",
    "covered": "Im Vertrag enthalten / covered",
    "invoiced": "Abgerechnet / invoiced",
    "cancelled": "Storniert / cancelled",
}
#: what one booked helpdesk time unit is in minutes, as (multiply, divide): dividing last keeps
#: 5400 seconds at exactly 90 minutes
TIME_UNITS = {
    "minute": (Decimal(1), Decimal(1)),
    "hour": (Decimal(60), Decimal(1)),
    "quarter": (Decimal(15), Decimal(1)),
    "second": (Decimal(1), Decimal(60)),
}


def to_minutes(units: Decimal, time_unit: str) -> Decimal:
    """Booked units → minutes (7200 seconds → 120, "0.25" hours → 15)."""
    multiply, divide = TIME_UNITS[time_unit]
    return units * multiply / divide


#: billing_category values agents choose on a ticket, with their labels
BILLING_CATEGORY_LABELS = {
    "billable": "Abrechenbar / billable",
    "internal": "Intern / internal",
    "warranty": "Gewährleistung / warranty",
    "goodwill": "Kulanz, ohne Berechnung / goodwill, no charge",
    "covered": "Im Vertrag enthalten / covered by contract",
}
#: activity types `register` offers for time bookings unless configured otherwise
DEFAULT_ACTIVITY_TYPES = ("Remote", "Vor-Ort", "Notfall", "Intern", "Fahrt")
BILLING_CATEGORIES = tuple(BILLING_CATEGORY_LABELS)


@dataclass(frozen=True)
class CustomerDetails:
    """Billing data an admin keeps in the helpdesk itself (Zammad organization fields).

    Raw as the helpdesk holds it (None: empty); the sync validates it like the JSON import
    (addon/customers.py), and a key the import set wins over it.
    """

    legal_name: str | None = None
    street: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None
    vat_id: str | None = None
    customer_number: str | None = None
    email: str | None = None
    buyer_reference: str | None = None


@dataclass(frozen=True)
class RemoteCustomer:
    """Who pays: a Zammad organization, an OTRS CustomerID, an RT queue or requestor domain.

    `details`: the customer's billing data from the helpdesk, where it keeps some (None: the
    helpdesk has no such fields; billing data then comes from the JSON import alone).
    """

    remote_id: str
    name: str
    details: CustomerDetails | None = None


@dataclass(frozen=True)
class RemoteTimeEntry:
    """One booking as the helpdesk reports it. `minutes` may be negative (a correction)."""

    remote_id: str
    ticket_remote_id: str
    agent: str
    minutes: Decimal
    booked_at: datetime
    activity: str | None = None
    start: datetime | None = None
    remote_updated_at: datetime | None = None
    agent_name: str | None = None  # for people to read (invoice, annex); `agent` stays the key


@dataclass(frozen=True)
class RemoteTicket:
    """A ticket with what billing needs to know about it.

    `state_type` is the helpdesk's kind of state: "closed" (billed on close), "open" (new,
    open, pending: its time is shown, not billed) or "merged" (merged into another ticket); None
    means "closed if `closed_at` is set". `merged_into` is the surviving ticket's remote id when
    the time stays on the merged one (Zammad), "" when the helpdesk moved the time to the
    survivor itself (OTRS/Znuny, RT). `has_time` says whether the ticket has booked time at all
    (None: unknown), so a poll need not read the bookings of every open ticket.
    """

    remote_id: str
    number: str
    title: str
    customer: RemoteCustomer | None
    state: str
    closed_at: datetime | None
    updated_at: datetime
    billing_status: str | None = None
    invoice_reference: str | None = None
    web_url: str | None = None
    category: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = field(default=())
    state_type: str | None = None
    merged_into: str | None = None
    has_time: bool | None = None


@dataclass(frozen=True)
class RemoteExtra:
    """A material, a travel distance or an on-site visit an agent booked on a ticket.

    Booked by a note line or a ticket field. `remote_id` is stable across reads (the note's id
    plus its line number, or the ticket plus the field name), so a re-read updates instead of
    duplicating. `quantity` is pieces for a material, kilometres for travel and 1 for a visit;
    `unit_cost` is the net price per piece in EUR, and None where the contract sets the price
    (travel per km, the flat fee per visit) unless the note names one. A visit's `booked_at`
    gives its day.
    """

    remote_id: str
    ticket_remote_id: str
    kind: Literal["material", "travel", "visit"]
    description: str
    quantity: Decimal
    unit_cost: Decimal | None
    category: str | None
    booked_at: datetime
    agent: str


@dataclass(frozen=True)
class BookingProblem:
    """A booking line that could not be read; nothing is billed from it.

    `source_id` names where the line is (a note's id, or a ticket field), `line` is the line as
    the agent wrote it and `reason` says exactly what is wrong, for the "needs attention" text.
    """

    ticket_remote_id: str
    source_id: str
    line: str
    reason: str


@dataclass(frozen=True)
class WriteBack:
    """What the sidecar writes onto a ticket: status, reference, link, at most one internal note.

    `marker` is a stable string (the invoice number, or the attention reason) carried by the
    note: after an attempt whose outcome is unknown, the read-back (`ReadBack.remainder`, or a
    connector that reads before it writes) finds its own earlier note (or reference) and does
    not write it again.
    """

    billing_status: str
    marker: str
    invoice_reference: str | None = None
    invoice_url: str | None = None
    note_subject: str | None = None
    note_html: str | None = None


@dataclass(frozen=True)
class RegistrationReport:
    """What `register` found, created or could not create; printed to the admin."""

    created: tuple[str, ...]
    present: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@runtime_checkable
class HelpdeskConnector(Protocol):
    """The operations the sync needs. Implementations live one per module in `connectors/`."""

    kind: str

    def check(self) -> str:
        """Verify URL and credentials; return a short description of the identity used."""

    def register(self) -> RegistrationReport:
        """Create the billing fields idempotently (or say exactly what the admin must do)."""

    def closed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Closed tickets updated at or after `cursor` (minus the overlap), ascending."""

    def changed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Tickets of any state (open, closed, merged) updated at or after `cursor` (minus the
        overlap), ascending, each with `state_type`, `merged_into` and `has_time` set. One
        search per page, like `closed_tickets_since`: the sync polls this stream, so open work
        is visible and merged time is not lost."""

    def time_entries(self, ticket_remote_id: str) -> Sequence[RemoteTimeEntry]:
        """All time bookings of one ticket; raises `NotFound` if the ticket is gone."""

    def ticket(self, ticket_remote_id: str) -> RemoteTicket:
        """One ticket, fresh; raises `NotFound` if it is gone."""

    def write_back(self, ticket_remote_id: str, change: WriteBack) -> bool:
        """Apply `change` unless its marker is already on the ticket; True if it wrote."""

    def ticket_url(self, ticket_remote_id: str) -> str:
        """The agent-facing URL of a ticket, for reports and the demo output."""


@runtime_checkable
class WrittenVersions(Protocol):
    """A connector that knows the version (`updated_at`) its own writes gave a ticket.

    The sync stores it on the ticket row: a later poll that lists the ticket with exactly
    that `updated_at` sees the sidecar's own write, not a change, and reads nothing.
    """

    def written_version(self, ticket_remote_id: str) -> datetime | None:
        """The `updated_at` the helpdesk answered to this process's last write of the ticket."""


@runtime_checkable
class CustomerReader(Protocol):
    """A connector that keeps customers' billing data in the helpdesk (Zammad organizations)."""

    def customer(self, customer_remote_id: str) -> RemoteCustomer | None:
        """The customer (organization) with its billing data as the helpdesk has it now."""


@runtime_checkable
class HelpdeskClock(Protocol):
    """A connector that knows the helpdesk's own time when its last poll began.

    The sync never stores a cursor beyond it: one ticket whose `updated_at` lies in the future
    (a helpdesk node with a wrong clock, an import) must not make later tickets invisible.
    """

    def poll_started_at(self) -> datetime | None:
        """The helpdesk's clock (e.g. its HTTP `Date`) at the start of the last poll; None if unknown."""


@runtime_checkable
class ReadBack(Protocol):
    """A connector that can tell whether a write-back already landed on the ticket.

    Asked only after an uncertain failure (a timeout, a reset after the request was sent, a
    5xx, a crash before the outcome was recorded): the write may have landed, so the outbox
    reads back before it writes again. The normal path writes without reading.
    """

    def remainder(self, ticket_remote_id: str, change: WriteBack) -> WriteBack | None:
        """What of `change` the ticket still lacks: None when all of it landed (the fields are
        set, the note with its marker is there), else `change` without a note that exists."""


@runtime_checkable
class BookingReader(Protocol):
    """What agents book besides time: materials, travel and on-site visits.

    Kept apart from `HelpdeskConnector` only while not every connector implements it yet
    (OTRS is in progress); the sync asks `isinstance(connector, BookingReader)`. Zammad and RT
    implement it; once all do, `extras` moves into `HelpdeskConnector`.
    """

    def extras(
        self, ticket_remote_id: str
    ) -> tuple[Sequence[RemoteExtra], Sequence[BookingProblem]]:
        """Materials, travel and visits booked on one ticket, and the lines that were unreadable.

        Raises `NotFound` if the ticket is gone.
        """
