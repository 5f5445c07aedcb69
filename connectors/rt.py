"""Request Tracker 5 connector: maps RT's REST 2.0 API onto the neutral records of `connectors.base`.

Facts this module relies on (see shared/reference/rt-api.md, checked against RT 5.0.3):
- Auth: `Authorization: token <t>` (RT::Authen::Token, core in RT 5) or HTTP basic auth.
- Numbers come back as strings (`"TimeTaken": "25"`, minutes, may be negative); timestamps are
  ISO-8601 UTC with `Z`; an unset date is `1970-01-01T00:00:00Z`. `Creator.id` is the user name.
- There is no time-entry object: a booking is a ticket transaction with `TimeTaken != 0`
  (comment, reply, or a direct change of TimeWorked). Its creator is the agent and its creation
  time the booking time. This is exactly what RT's own "User Time Worked" report sums.
- TicketSQL reads dates in the API user's (or RT's `$Timezone`) zone, even with a trailing `Z`,
  so the cursor is converted to `rt_timezone` before it goes into a query.
- `GET /ticket/{id}/history` of a missing ticket is an empty 200, not a 404.
- Pages: `page`/`per_page`, `per_page` capped at 100 by RT. RT drops the records a user may
  not see *after* the SQL `LIMIT`, and leaves `total`/`pages` null unless the user may see the
  whole collection (global SeeQueue for queues, SeeCustomField for custom fields, SuperUser
  for transactions): a short page is then no proof of the end.
- A custom field is visible to a right granted on a queue only in that queue's context: the
  `/customfields` search hides it, `GET /queue/{id}` lists it under `TicketCustomFields`.
- `PUT /ticket/{id}` answers 200 even when parts fail; the body is a list of messages, and an
  unknown custom field is silently ignored (`[]`). Every write is therefore read back.
- `POST /customfield` creates a ticket CF and applies it globally (`"Queue": 0`) or to one queue.
  REST2 in 5.0 cannot apply an existing CF to further queues (no ObjectCustomField endpoint).
- A comment's subject is stored in its transaction's `Data`, so the write-back marker can be
  found with one history request instead of reading every attachment.
- `GET /transaction/{id}/attachments?fields=Content,...` returns the content decoded (the single
  `GET /attachment/{id}` gives base64). Asking a collection for `Parent` is a 500 in 5.0.3.
- Transactions in RT 5.0 carry no activity; the activity is a ticket Select CF and applies to
  every booking of the ticket (split the work into tickets when activities differ).

What agents book (with `category_field` / `activity_field`): the Select CFs "Billing Category"
and "Activity", plus material, travel and on-site lines in comments (`connectors.bookings`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from connectors.base import (
    BILLING_CATEGORIES,
    BILLING_STATUS_LABELS,
    DEFAULT_ACTIVITY_TYPES,
    AuthError,
    BookingProblem,
    ConnectorError,
    NoAccess,
    NotFound,
    RegistrationReport,
    RemoteCustomer,
    RemoteError,
    RemoteExtra,
    RemoteTicket,
    RemoteTimeEntry,
    WriteBack,
)
from connectors.bookings import note_text, parse_note
from connectors.http import HttpClient

if TYPE_CHECKING:
    from addon.settings import Settings

log = logging.getLogger(__name__)

API = "/REST/2.0"
PAGE_SIZE = 100  # RT's hard cap (RT::REST2::Resource::Collection::setup_paging)
MAX_PAGES = 10_000
TICKET_LOOKUP = "RT::Queue-RT::Ticket"
UNSET_DATE = "1970-01-01T00:00:00Z"
CUSTOMER_SOURCES = ("queue", "custom_field", "requestor_domain")
#: The Select fields agents book in, as `from_settings` (and so `register`) names them.
CATEGORY_FIELD = "Billing Category"
ACTIVITY_FIELD = "Activity"

# Same vocabulary as the other connectors; a Select CF offers exactly these.
BILLING_STATUSES = tuple(BILLING_STATUS_LABELS)
TICKET_FIELDS = "Subject,Status,Resolved,LastUpdated,Queue,Requestor,CustomFields,EffectiveId,TimeWorked"
HISTORY_FIELDS = "Type,TimeTaken,Creator,Created,Data,ObjectId"
#: What the sidecar's own RT user needs on every billed queue (README, .ci/rt-up.sh): read
#: tickets, their comments and the mail RT recorded (else RT hides those transactions and the
#: history looks complete when it is not), comment, see and set the billing fields.
QUEUE_RIGHTS = ("SeeQueue", "ShowTicket", "ShowTicketComments", "ShowOutgoingEmail",
                "CommentOnTicket", "SeeCustomField", "ModifyCustomField")
#: Global rights of that user: its own auth token, and for `register` creating the fields
#: (AdminCustomField), applying them to all queues (AssignCustomFields) and reading the values
#: of existing ones (SeeCustomField: a queue-level grant does not show a field's values).
GLOBAL_RIGHTS = ("ManageAuthTokens", "AdminCustomField", "AssignCustomFields", "SeeCustomField")
ATTACHMENT_FIELDS = "ContentType,Content,Filename"


@dataclass(frozen=True)
class FieldSpec:
    """One billing custom field: its RT name, its role, and how to create it."""

    role: str
    name: str
    cf_type: str
    description: str
    values: tuple[str, ...] = ()
    link_value: bool = False


def _parse_time(value: Any) -> datetime | None:
    """RT's `2026-11-24T04:09:10Z` as aware UTC; None for the unset date or nothing."""
    if not value or not isinstance(value, str) or value == UNSET_DATE:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RemoteError(f"RT sent an unreadable timestamp {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _minutes(value: Any, where: str) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        raise RemoteError(f"{where}: TimeTaken {value!r} is not a number") from None


def _ref_id(value: Any) -> str:
    """The `id` of a REST2 reference object (`{"id": "root", "type": "user"}`) or a bare value."""
    if isinstance(value, Mapping):
        return str(value.get("id", ""))
    return "" if value is None else str(value)


def _cf_values(item: Mapping[str, Any]) -> dict[str, list[str]]:
    """`CustomFields` of a ticket as {lower-case name: values}; RT lists them unordered."""
    result: dict[str, list[str]] = {}
    for cf in item.get("CustomFields") or []:
        if isinstance(cf, Mapping) and cf.get("name") is not None:
            result[str(cf["name"]).casefold()] = [str(v) for v in cf.get("values") or []]
    return result


def _quote_sql(value: str) -> str:
    """A TicketSQL string literal (single quotes, backslash-escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RTConnector:
    """`HelpdeskConnector` for Request Tracker 5 over REST 2.0.

    Customer mapping (`customer_source`):
    - `"queue"`: one queue per customer; the customer is the ticket's queue (id and name).
    - `"custom_field"`: the value of the ticket CF `customer_field` (e.g. "Customer").
    - `"requestor_domain"`: the e-mail domain of the first requestor, lower-cased.

    `queues` limits polling to these queue names (and is where registration checks the billing
    fields are visible); None polls every queue the API user can see. `rt_timezone` is the zone
    RT reads TicketSQL dates in: RT's `$Timezone`, or the API user's own preference if set.

    `category_field` and `activity_field` name the Select CFs agents book in (registration
    creates them, the activity CF with the values `activity_types`); None leaves them out.
    They are None in the bare constructor and set in `from_settings`.
    """

    kind = "rt"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        overlap_seconds: int = 120,
        customer_source: str = "queue",
        customer_field: str = "Customer",
        queues: Sequence[str] | None = None,
        closed_statuses: Sequence[str] = ("resolved",),
        rt_timezone: str = "UTC",
        status_field: str = "Billing Status",
        invoice_field: str = "Invoice Number",
        invoice_url_field: str = "Invoice URL",
        billing_statuses: Sequence[str] = BILLING_STATUSES,
        category_field: str | None = None,
        activity_field: str | None = None,
        activity_types: Sequence[str] = DEFAULT_ACTIVITY_TYPES,
        http: HttpClient | None = None,
        **http_options: Any,
    ) -> None:
        if customer_source not in CUSTOMER_SOURCES:
            raise ValueError(
                f"customer_source {customer_source!r} is not one of {', '.join(CUSTOMER_SOURCES)}"
            )
        if not closed_statuses:
            raise ValueError("closed_statuses must name at least one RT status")
        if token is None and (user is None or password is None):
            raise ValueError("RT needs a token, or a user and a password")
        self.base_url = base_url.rstrip("/")
        self.overlap = timedelta(seconds=overlap_seconds)
        self.customer_source = customer_source
        self.customer_field = customer_field
        self.queues = tuple(queues) if queues else None
        self.closed_statuses = tuple(closed_statuses)
        self.rt_timezone = ZoneInfo(rt_timezone)
        self.fields = (
            FieldSpec("status", status_field, "Select", "ticketbill: billing status",
                      tuple(billing_statuses)),
            FieldSpec("reference", invoice_field, "Freeform", "ticketbill: invoice number"),
            FieldSpec("url", invoice_url_field, "Freeform", "ticketbill: link to the invoice",
                      link_value=True),
        )
        if category_field:
            self.fields += (FieldSpec("category", category_field, "Select",
                                      "ticketbill: billing category (empty = billable)",
                                      BILLING_CATEGORIES),)
        if activity_field:
            if not activity_types or any(not name.strip() for name in activity_types):
                raise ValueError("activity_types must name at least one activity, none empty")
            self.fields += (FieldSpec("activity", activity_field, "Select",
                                      "ticketbill: activity of the time booked on this ticket",
                                      tuple(name.strip() for name in activity_types)),)
        self.category_field = category_field
        self.activity_field = activity_field
        self.user = user if token is None else None
        if http is None:
            if token is not None:
                http = HttpClient(
                    self.base_url,
                    headers={"Authorization": f"token {token}"},
                    secrets=(token,),
                    **http_options,
                )
            else:
                assert user is not None and password is not None
                http = HttpClient(self.base_url, auth=(user, password), **http_options)
        self.http = http
        self._auth_kind = "token" if token is not None else f"user {user}"
        self._cf_ids: dict[str, str] | None = None
        self._queue_field_cache: list[Mapping[str, Any]] | None = None
        self._users: dict[str, Mapping[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RTConnector:
        """Build from the frozen settings (the RT_* keys of .env); `overrides` win."""
        options: dict[str, Any] = {
            "token": settings.helpdesk_token,
            "user": settings.helpdesk_user,
            "password": settings.helpdesk_password,
            "overlap_seconds": settings.sync_overlap_seconds,
            "customer_source": settings.rt_customer_source,
            "customer_field": settings.rt_customer_field,
            "queues": settings.rt_queues or None,
            "rt_timezone": settings.rt_timezone,
            "closed_statuses": settings.rt_closed_statuses,
            "category_field": CATEGORY_FIELD,
            "activity_field": ACTIVITY_FIELD,
        }
        options.update(overrides)
        return cls(settings.helpdesk_url, **options)

    # -- identity and registration --------------------------------------------------------

    def check(self) -> str:
        """`GET /rt` (needs valid credentials), then a queue the API user may see (SeeQueue).

        With `queues` each of them must be visible. Without, any visible queue will do; RT
        counts a collection only for a user with the *global* right, so the answer's items are
        looked at, not its `total`.
        """
        info = self.http.get_json(f"{API}/rt")
        if not isinstance(info, Mapping) or "Version" not in info:
            raise RemoteError(f"GET {API}/rt: unexpected answer (is {self.base_url} an RT 5?)")
        if self.queues:
            for queue in self.queues:
                self._queue(queue)
        elif next(self._search(f"{API}/queues/all", {}, until_empty=True), None) is None:
            raise RemoteError(
                "RT accepted the credentials but shows them no queue (missing right SeeQueue "
                "on the billed queues)"
            )
        return f"RT {info['Version']} at {self.base_url} ({self._auth_kind})"

    def _queue(self, name: str) -> Mapping[str, Any]:
        """`GET /queue/{name}`; RT answers 403 for a queue that is missing *or* not visible."""
        try:
            found = self.http.get_json(f"{API}/queue/{quote(name, safe='')}")
        except (NotFound, AuthError):
            raise RemoteError(
                f"queue {name!r} does not exist in RT, or the API user lacks SeeQueue on it"
            ) from None
        if not isinstance(found, Mapping) or not found.get("id"):
            raise RemoteError(f"GET queue {name!r}: unexpected answer")
        return found

    def register(self) -> RegistrationReport:
        """Ensure the billing CFs exist (global), with every Select value; idempotent.

        An existing field is reused whatever queue it is applied to, also when the API user
        sees it only through a queue (a queue-level SeeCustomField hides it from the search):
        `register` never creates a second field of the same name. With `queues`, each of
        those queues is checked to see every field, and a gap is reported with the admin step
        that fixes it (REST2 cannot apply an existing CF to another queue).
        """
        created: list[str] = []
        present: list[str] = []
        problems: list[str] = []
        ids: dict[str, str] = {}
        self._queue_field_cache = None
        for spec in self.fields:
            found = self._find_custom_field(spec.name)
            if found is None:
                body: dict[str, Any] = {
                    "Name": spec.name,
                    "Type": spec.cf_type,
                    "MaxValues": 1,
                    "LookupType": TICKET_LOOKUP,
                    "Description": spec.description,
                    "Queue": 0,  # RT::CustomField::Create: 0 = apply globally
                }
                if spec.link_value:
                    body["LinkValueTo"] = "__CustomField__"  # render the URL as a link
                try:
                    answer = self.http.post_json(f"{API}/customfield", body)
                except ConnectorError as exc:
                    problems.append(
                        f"custom field {spec.name!r}: RT refused to create it ({exc}); the API "
                        "user needs the global rights AdminCustomField and AssignCustomFields, "
                        "or an admin creates it (Select/Freeform, single value, all queues)"
                    )
                    continue
                if not isinstance(answer, Mapping) or not answer.get("id"):
                    problems.append(f"custom field {spec.name!r}: RT did not create it: {answer!r}")
                    continue
                ids[spec.role] = str(answer["id"])
                self._queue_field_cache = None  # the queues list the new field from now on
                created.append(f"custom field {spec.name!r} (id {answer['id']}, all queues)")
            else:
                ids[spec.role] = str(found["id"])
                if str(found.get("Disabled", "0")) not in ("0", ""):
                    problems.append(
                        f"custom field {spec.name!r} (id {found['id']}) is disabled; "
                        "enable it in RT under Admin → Custom Fields"
                    )
                    continue
                present.append(f"custom field {spec.name!r} (id {found['id']})")
            if spec.values and (found is None or found.get("Type") in ("Select", None)):
                self._ensure_values(spec, ids[spec.role], created, present, problems)
        self._check_queue_coverage(ids, problems)
        if not problems:
            self._cf_ids = ids
        return RegistrationReport(tuple(created), tuple(present), tuple(problems))

    def _find_custom_field(self, name: str) -> Mapping[str, Any] | None:
        """The ticket CF called `name` (disabled ones too), or None.

        First the search, which shows fields the API user may see globally; then the fields
        each queue lists for itself, where a right granted on the queue shows them too.
        """
        items = list(self._search(
            f"{API}/customfields",
            {"fields": "Name,Type,MaxValues,Disabled,LookupType", "find_disabled_rows": 1},
            body=[{"field": "Name", "value": name},
                  {"field": "LookupType", "value": TICKET_LOOKUP}],
            until_empty=True,
        ))
        exact = [item for item in items if str(item.get("Name")) == name]
        if not exact:
            exact = [dict(item, Name=name) for item in self._queue_fields() if item["name"] == name]
        enabled = [item for item in exact if str(item.get("Disabled", "0")) in ("0", "")]
        chosen = enabled or exact
        return min(chosen, key=lambda item: int(item["id"])) if chosen else None

    def _queue_fields(self) -> list[Mapping[str, Any]]:
        """Ticket CFs as the queues list them (`TicketCustomFields`: {id, name}), all queues.

        The configured `queues`, else every queue the API user may see. Read once per
        lookup round (`register`, or the first `custom_field_ids`), not per field.
        """
        if self._queue_field_cache is None:
            names = self.queues or tuple(
                str(item["id"]) for item in self._search(f"{API}/queues/all", {}, until_empty=True)
            )
            fields: list[Mapping[str, Any]] = []
            for queue in names:
                try:
                    record = self._queue(queue)
                except RemoteError:
                    continue  # reported by check() and _check_queue_coverage()
                fields += [
                    {"id": str(cf["id"]), "name": str(cf.get("name"))}
                    for cf in record.get("TicketCustomFields") or []
                    if isinstance(cf, Mapping) and cf.get("id") is not None
                ]
            self._queue_field_cache = fields
        return self._queue_field_cache

    def _ensure_values(
        self, spec: FieldSpec, cf_id: str, created: list[str], present: list[str],
        problems: list[str],
    ) -> None:
        try:
            existing = {
                str(item.get("name") or item.get("Name"))
                for item in self._search(f"{API}/customfield/{cf_id}/values", {})
            }
        except AuthError:
            # Adding values blindly would duplicate them (RT allows that): say what is missing.
            problems.append(
                f"values of {spec.name!r} (id {cf_id}): the API user may not read them; grant "
                "it the global right SeeCustomField (a queue-level grant does not show a "
                "field's values), then register again"
            )
            return
        missing = [value for value in spec.values if value not in existing]
        for order, value in enumerate(spec.values, start=1):
            if value in missing:
                self.http.post_json(
                    f"{API}/customfield/{cf_id}/value", {"Name": value, "SortOrder": order}
                )
        if missing:
            created.append(f"values of {spec.name!r}: {', '.join(missing)}")
        else:
            present.append(f"values of {spec.name!r}")

    def _check_queue_coverage(self, ids: Mapping[str, str], problems: list[str]) -> None:
        for queue in self.queues or ():
            try:
                record = self._queue(queue)
            except RemoteError as exc:
                problems.append(str(exc))
                continue
            applied = {
                str(cf.get("id")) for cf in record.get("TicketCustomFields") or []
                if isinstance(cf, Mapping)
            }
            for spec in self.fields:
                cf_id = ids.get(spec.role)
                if cf_id is not None and cf_id not in applied:
                    problems.append(
                        f"custom field {spec.name!r} (id {cf_id}) is not applied to queue "
                        f"{queue!r}; apply it in RT under Admin → Custom Fields → Applies to"
                    )

    def custom_field_ids(self) -> dict[str, str]:
        """CF ids by role (`status`, `reference`, `url`, `category`, `activity`), looked up once.

        A missing field means `register` was not run (or an admin deleted the field).
        """
        if self._cf_ids is None:
            ids: dict[str, str] = {}
            self._queue_field_cache = None
            for spec in self.fields:
                found = self._find_custom_field(spec.name)
                if found is None:
                    raise RemoteError(
                        f"RT has no ticket custom field {spec.name!r}; run the registration first"
                    )
                ids[spec.role] = str(found["id"])
            self._cf_ids = ids
        return self._cf_ids

    # -- reading --------------------------------------------------------------------------

    def closed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """TicketSQL search, ascending by LastUpdated (then id), `page`/`per_page` paging."""
        clause = " OR ".join(f"Status = {_quote_sql(s)}" for s in self.closed_statuses)
        yield from self._tickets_since(cursor, clause)

    def changed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Tickets of any status but deleted, as `closed_tickets_since` pages them.

        RT's searches leave merged tickets out (their id differs from their EffectiveId), and the
        survivor's history lists the merged tickets' transactions under their own ids, so merged
        time simply arrives with the survivor. `TimeWorked` tells whether an open ticket has time.
        """
        for ticket in self._tickets_since(cursor, "Status != 'deleted'"):
            closed = ticket.state in self.closed_statuses
            yield replace(ticket, state_type="closed" if closed else "open")

    def _tickets_since(self, cursor: datetime | None, status_clause: str) -> Iterator[RemoteTicket]:
        clauses = [status_clause]
        if cursor is not None:
            clauses.append(f"LastUpdated >= {_quote_sql(self._sql_date(cursor - self.overlap))}")
        if self.queues:
            clauses.append(" OR ".join(f"Queue = {_quote_sql(q)}" for q in self.queues))
        query = " AND ".join(f"( {clause} )" for clause in clauses)
        params = {
            "query": query,
            "fields": TICKET_FIELDS,
            "fields[Queue]": "Name",
            "fields[Requestor]": "EmailAddress",
            "orderby": ["LastUpdated", "id"],
            "order": ["ASC", "ASC"],
        }
        for item in self._search(f"{API}/tickets", params):
            yield self._ticket(item)

    def _sql_date(self, moment: datetime) -> str:
        """`moment` as RT will read it in a TicketSQL date: local wall time in `rt_timezone`.

        Outside UTC one extra hour is subtracted: a wall time in the autumn DST overlap is
        ambiguous, and polling one hour more is harmless while missing a ticket is not.
        """
        if moment.tzinfo is None:
            raise ValueError("cursor must be an aware datetime")
        if self.rt_timezone.key not in ("UTC", "Etc/UTC"):
            moment -= timedelta(hours=1)
        return moment.astimezone(self.rt_timezone).strftime("%Y-%m-%d %H:%M:%S")

    def ticket(self, ticket_remote_id: str) -> RemoteTicket:
        """One ticket; NotFound if missing, deleted, or merged into another ticket.

        RT answers a merged ticket's URL with the ticket it was merged into; that one carries
        the merged time and is billed under its own id, so the old id is gone for us.
        """
        ticket_id = self._id(ticket_remote_id)
        item = self.http.get_json(
            f"{API}/ticket/{ticket_id}",
            params={"fields[Queue]": "Name", "fields[Requestor]": "EmailAddress"},
        )
        if not isinstance(item, Mapping) or "id" not in item:
            raise RemoteError(f"GET ticket {ticket_id}: unexpected answer")
        if str(item["id"]) != ticket_id:
            raise NotFound(f"ticket {ticket_id} was merged into ticket {item['id']}")
        if item.get("Status") == "deleted":
            raise NotFound(f"ticket {ticket_id} was deleted")
        return self._ticket(item)

    def time_entries(self, ticket_remote_id: str) -> Sequence[RemoteTimeEntry]:
        """Transactions with TimeTaken != 0, oldest first; NotFound if the ticket is gone.

        After a merge RT lists the transactions of all merged tickets under the surviving one
        (and under the old ids too). Entries keep their transaction ids, so the survivor's
        list contains the merged ticket's bookings under their original remote ids; the old
        ticket itself raises NotFound, so nothing is counted twice.
        """
        ticket_id = self._id(ticket_remote_id)
        history = list(self._history(ticket_id))
        if not history:
            # An RT ticket always has its Create transaction; none means no ticket (or no
            # right to see it), which the ticket endpoint reports as 404/403.
            self.http.get_json(f"{API}/ticket/{ticket_id}")
            raise NotFound(f"ticket {ticket_id}: RT shows no history for it")
        if any(str(txn.get("ObjectId", ticket_id)) != ticket_id for txn in history):
            self.ticket(ticket_id)  # a merge happened: NotFound unless this is the survivor
        record = self.http.get_json(f"{API}/ticket/{ticket_id}", params={"fields[Queue]": "Name"})
        record = record if isinstance(record, Mapping) else {}
        activity = None
        if self.activity_field:  # RT 5.0 transactions carry no activity: the ticket's CF
            values = _cf_values(record).get(self.activity_field.casefold(), [])
            activity = next((v for v in values if v), None)
        entries = []
        for txn in history:
            minutes = _minutes(txn.get("TimeTaken"), f"transaction {txn.get('id')}")
            if minutes == 0:
                continue
            booked_at = _parse_time(txn.get("Created"))
            if booked_at is None:
                raise RemoteError(f"transaction {txn.get('id')} has no creation time")
            agent = _ref_id(txn.get("Creator"))
            entries.append(RemoteTimeEntry(
                remote_id=str(txn["id"]),
                ticket_remote_id=ticket_id,
                agent=agent,
                agent_name=self._agent_name(agent),
                minutes=minutes,
                booked_at=booked_at,
                activity=activity,
            ))
        self._check_complete(ticket_id, record, sum((e.minutes for e in entries), Decimal(0)))
        return entries

    def _check_complete(self, ticket_id: str, record: Mapping[str, Any], seen: Decimal) -> None:
        """The bookings read must add up to the ticket's TimeWorked (RT keeps it as the sum
        of every transaction's TimeTaken, merged tickets included). RT silently drops the
        transactions a user may not see (recorded mail without ShowOutgoingEmail, changes of
        a field without SeeCustomField), and its pages then end early: a gap is `NoAccess`,
        never a short invoice."""
        worked = record.get("TimeWorked")
        if worked in (None, ""):
            return
        total = _minutes(worked, f"ticket {ticket_id}")
        if total == seen:
            return
        queue = record.get("Queue")
        name = queue.get("Name") if isinstance(queue, Mapping) else None
        where = f"queue {name!r}" if name else "the ticket's queue"
        raise NoAccess(
            f"RT shows ticket {ticket_id} only in part to the API user: its transactions add up "
            f"to {seen} minutes, the ticket has {total} worked; grant ShowOutgoingEmail, "
            f"ShowTicketComments and SeeCustomField on {where}"
        )

    def extras(
        self, ticket_remote_id: str
    ) -> tuple[Sequence[RemoteExtra], Sequence[BookingProblem]]:
        """Booking lines in the ticket's comments (not replies: customers see those).

        A comment's text is its first `text/plain` part, else its `text/html` part; files
        attached to it are not read. Comments by the connector's own basic-auth user are the
        sidecar's notes and are skipped (with a token RT does not say whose it is).
        """
        ticket_id = self._id(ticket_remote_id)
        history = list(self._history(ticket_id))
        if not history:
            self.http.get_json(f"{API}/ticket/{ticket_id}")
            raise NotFound(f"ticket {ticket_id}: RT shows no history for it")
        if any(str(txn.get("ObjectId", ticket_id)) != ticket_id for txn in history):
            self.ticket(ticket_id)  # merged away: NotFound (the survivor lists these comments)
        extras: list[RemoteExtra] = []
        problems: list[BookingProblem] = []
        for txn in history:
            if txn.get("Type") != "Comment":
                continue
            agent = _ref_id(txn.get("Creator"))
            if self.user is not None and agent == self.user:
                continue
            booked_at = _parse_time(txn.get("Created"))
            if booked_at is None:
                raise RemoteError(f"transaction {txn.get('id')} has no creation time")
            text = self._comment_text(str(txn["id"]))
            if not text:
                continue
            found, bad = parse_note(text, ticket_remote_id=ticket_id,
                                    source_id=f"transaction:{txn['id']}", booked_at=booked_at,
                                    agent=agent)
            extras += found
            problems += bad
        return extras, problems

    def _comment_text(self, transaction_id: str) -> str:
        parts = [
            item for item in self._search(f"{API}/transaction/{transaction_id}/attachments",
                                          {"fields": ATTACHMENT_FIELDS})
            if not item.get("Filename")
        ]
        for wanted in ("text/plain", "text/html"):
            for part in parts:
                if str(part.get("ContentType", "")).lower() == wanted:
                    return note_text(str(part.get("Content") or ""), wanted)
        return ""

    def _history(self, ticket_id: str) -> Iterator[Mapping[str, Any]]:
        return self._search(f"{API}/ticket/{ticket_id}/history", {"fields": HISTORY_FIELDS})

    def _search(
        self, path: str, params: Mapping[str, Any], body: Any = None, *, until_empty: bool = False
    ) -> Iterator[Mapping[str, Any]]:
        """All items of a REST2 collection, page by page (POST with a JSON search `body`).

        `until_empty`: RT drops records the user may not see after the SQL `LIMIT` and then
        reports no `total`, so a short page does not prove the end; paging goes on to the
        first empty page (or as far as a reported `total` says). Used for the collections
        whose visibility depends on queue-level rights (queues, custom fields).
        """
        reported: dict[str, Any] = {}

        def fetch(page: int) -> Sequence[Mapping[str, Any]]:
            query = {**params, "page": page, "per_page": PAGE_SIZE}
            if body is None:
                answer = self.http.get_json(path, params=query)
            else:
                answer = self.http.request_json(
                    "POST", path, params=query, json_body=body, idempotent=True
                )
            if not isinstance(answer, Mapping) or not isinstance(answer.get("items"), list):
                raise RemoteError(f"{path}: expected a REST2 collection, got {str(answer)[:200]}")
            reported["total"] = answer.get("total")
            return [item for item in answer["items"] if isinstance(item, Mapping)]

        if not until_empty:
            return self.http.paginate(fetch, per_page=PAGE_SIZE)

        def walk() -> Iterator[Mapping[str, Any]]:
            previous: list[Any] | None = None
            for page in range(1, MAX_PAGES + 1):
                items = fetch(page)
                keys = [item.get("id") for item in items]
                if items and keys == previous:
                    raise RemoteError(f"loop detected in pagination: {path} page {page} repeats")
                previous = keys
                yield from items
                total = reported.get("total")
                if not items or (total is not None and page * PAGE_SIZE >= int(total)):
                    return
            raise RemoteError(f"{path}: more than {MAX_PAGES} pages; giving up")

        return walk()

    def _ticket(self, item: Mapping[str, Any]) -> RemoteTicket:
        ticket_id = str(item["id"])
        updated = _parse_time(item.get("LastUpdated"))
        if updated is None:
            raise RemoteError(f"ticket {ticket_id}: no LastUpdated")
        cfs = _cf_values(item)
        queue = item.get("Queue")
        queue_name = str(queue.get("Name")) if isinstance(queue, Mapping) and queue.get(
            "Name") else None
        status_name, reference_name = self.fields[0].name, self.fields[1].name
        return RemoteTicket(
            remote_id=ticket_id,
            number=ticket_id,
            title=str(item.get("Subject") or ""),
            customer=self._customer(item, cfs, queue_name),
            state=str(item.get("Status") or ""),
            closed_at=_parse_time(item.get("Resolved")),
            updated_at=updated,
            billing_status=next(iter(cfs.get(status_name.casefold(), [])), None),
            invoice_reference=next(iter(cfs.get(reference_name.casefold(), [])), None),
            web_url=self.ticket_url(ticket_id),
            category=(next((v for v in cfs.get(self.category_field.casefold(), []) if v), None)
                      if self.category_field else None),
            group=queue_name,
            has_time=_minutes(item["TimeWorked"], f"ticket {ticket_id}") != 0 if "TimeWorked" in item else None,
        )

    def _customer(
        self, item: Mapping[str, Any], cfs: Mapping[str, list[str]], queue_name: str | None
    ) -> RemoteCustomer | None:
        if self.customer_source == "queue":
            queue_id = _ref_id(item.get("Queue"))
            return RemoteCustomer(queue_id, queue_name or queue_id) if queue_id else None
        if self.customer_source == "custom_field":
            value = next((v.strip() for v in cfs.get(self.customer_field.casefold(), [])
                          if v.strip()), None)
            return RemoteCustomer(value, value) if value else None
        for requestor in item.get("Requestor") or []:
            email = self._email(requestor)
            if email and "@" in email:
                domain = email.rsplit("@", 1)[1].strip().lower()
                if domain:
                    return RemoteCustomer(domain, domain)
        return None

    def _email(self, requestor: Any) -> str | None:
        """A requestor's address: expanded in searches, a user name elsewhere (then looked up)."""
        if isinstance(requestor, Mapping) and requestor.get("EmailAddress"):
            return str(requestor["EmailAddress"])
        name = _ref_id(requestor)
        if "@" in name:
            return name
        email = self._user(name).get("EmailAddress")
        return str(email) if email else None

    def _agent_name(self, login: str) -> str | None:
        """The agent's RealName for invoices ("Agent One", not "agent1"); None if RT has none."""
        real = str(self._user(login).get("RealName") or "").strip() if login else ""
        return real or None

    def _user(self, name: str) -> Mapping[str, Any]:
        """`GET /user/{name}`, once per user and connector.

        A privileged API user sees RT's user summary (`$UserSummaryExtraInfo`: RealName,
        EmailAddress, Name) of everyone; an unknown or hidden user is an empty record.
        """
        if name not in self._users:
            try:
                user = self.http.get_json(f"{API}/user/{quote(name, safe='')}")
            except (NotFound, AuthError):
                user = None
            self._users[name] = user if isinstance(user, Mapping) else {}
        return self._users[name]

    # -- writing --------------------------------------------------------------------------

    def write_back(self, ticket_remote_id: str, change: WriteBack) -> bool:
        """The CFs that differ first, read back; the note (unless already there) last.

        Fields first: RT answers 200 even when it rejected a value or ignored a field the
        ticket's queue lacks, so the update is read back and raises before anything else is
        written; a failed write-back leaves no comment behind (and a retry would add another
        "invoice issued" note to a ticket whose fields never changed). Each part checks before
        it writes, so a retry after a crash completes what is missing and never adds a second
        note. A merged ticket's id leads RT to the surviving ticket, which then receives the
        note: agents find the invoice where the work now lives.
        """
        ticket_id = self._id(ticket_remote_id)
        ids = self.custom_field_ids()
        current = self.http.get_json(f"{API}/ticket/{ticket_id}")
        if not isinstance(current, Mapping) or "id" not in current:
            raise RemoteError(f"GET ticket {ticket_id}: unexpected answer")
        wrote = False
        wanted = {
            "status": change.billing_status,
            "reference": change.invoice_reference,
            "url": change.invoice_url,
        }
        have = _cf_values(current)
        update = {
            ids[spec.role]: value
            for spec in self.fields
            if (value := wanted.get(spec.role)) is not None
            and have.get(spec.name.casefold(), []) != [value]
        }
        if update:
            messages = self.http.put_json(f"{API}/ticket/{ticket_id}", {"CustomFields": update})
            self._verify_update(ticket_id, update, messages)
            log.info("RT ticket %s: billing fields set (%s)", ticket_id, change.marker)
            wrote = True
        if (change.note_html or change.note_subject) and not self._has_note(ticket_id, change):
            self._add_note(ticket_id, change)
            log.info("RT ticket %s: billing note %s added", ticket_id, change.marker)
            wrote = True
        return wrote

    def _has_note(self, ticket_id: str, change: WriteBack) -> bool:
        """A comment whose subject (kept in the transaction's `Data`) carries the marker.

        RT stores the subject header as received, folded at about 78 characters; unfolding
        restores the line, so a marker is found even where a fold fell into it.
        """
        return any(
            txn.get("Type") == "Comment"
            and change.marker in re.sub(r"\r?\n[ \t]+", " ", str(txn.get("Data") or ""))
            for txn in self._history(ticket_id)
        )

    def _add_note(self, ticket_id: str, change: WriteBack) -> None:
        subject = change.note_subject or "ticketbill"
        if change.marker not in subject:
            # Short enough for RT's Transactions.Data (varchar 255 on MySQL/Oracle).
            subject = f"{subject[: max(20, 200 - len(change.marker))]} [{change.marker}]"
        content = change.note_html
        if content is None:
            content = f"<p>{subject}</p>"
        # Internal comment, never correspondence: customers must not get billing notes.
        self.http.post_json(
            f"{API}/ticket/{ticket_id}/comment",
            {"Subject": subject, "Content": content, "ContentType": "text/html"},
        )

    def _verify_update(self, ticket_id: str, update: Mapping[str, str], messages: Any) -> None:
        after = self.http.get_json(f"{API}/ticket/{ticket_id}")
        by_id = {
            str(cf.get("id")): [str(v) for v in cf.get("values") or []]
            for cf in (after.get("CustomFields") or [] if isinstance(after, Mapping) else [])
            if isinstance(cf, Mapping)
        }
        failed = [cf_id for cf_id, value in update.items() if by_id.get(cf_id) != [value]]
        if failed:
            ids = self.custom_field_ids()
            names = {ids[spec.role]: spec.name for spec in self.fields}
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else messages
            raise RemoteError(
                f"ticket {ticket_id}: RT did not store "
                f"{', '.join(repr(names.get(cf_id, cf_id)) for cf_id in failed)}: "
                f"{text or 'no message (field not applied to the ticket queue?)'}",
                status=200,
                body=str(messages),
            )

    # -- helpers --------------------------------------------------------------------------

    def ticket_url(self, ticket_remote_id: str) -> str:
        return f"{self.base_url}/Ticket/Display.html?id={self._id(ticket_remote_id)}"

    @staticmethod
    def _id(ticket_remote_id: str) -> str:
        """Ticket ids are numbers; anything else would be a path injection, not a ticket."""
        text = str(ticket_remote_id).strip()
        if not text.isdigit():
            raise NotFound(f"{ticket_remote_id!r} is not an RT ticket id")
        return text

