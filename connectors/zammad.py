"""Zammad connector: maps Zammad's REST API (6.x) onto the neutral records of `connectors.base`.

Facts this module relies on (see shared/reference/zammad-api.md):
- Closed-state ids come from `GET /ticket_states?expand=true` (`state_type == "closed"`); admins
  add their own closed states, so nothing is hard-coded.
- `POST /tickets/search` with a `condition` is the only filter that works without
  Elasticsearch. Up to 6.4 a search may answer `{"tickets": [ids], "assets": {...}}`, from 6.5 a
  plain array; both are accepted. Pages are clamped to 200 silently, so we ask for exactly 200.
- `time_unit` is a unitless decimal *string*; the install's unit (minute, hour, quarter) comes
  from our configuration.
- `PUT /tickets/{id}` drops unknown keys with 200, including custom fields whose column is not
  migrated yet; every write is therefore read back.
- Custom fields need `execute_migrations`, which restarts Zammad; registration waits for the
  restart, bounded, and confirms the new keys on a real ticket.
- Activity types (6.1+) live in `/time_accounting/types` (names unique, case-insensitive; no
  delete over REST) and are only offered to agents while the setting `time_accounting_types`
  is on; settings are changed with `PUT /settings/{id}` and `state_current.value`.

What agents book (with `booking_fields`): the ticket select `billing_category`, the integer
`billing_travel_km` (km driven for the ticket, one travel line) and the boolean
`billing_onsite` (one on-site visit, dated by the ticket's last close), plus material, travel
and on-site lines in internal notes (`connectors.bookings`). Both ways add up: a trip booked
in the field and in a note is billed twice, so the README tells agents to use one.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from connectors.base import (
    BILLING_CATEGORY_LABELS,
    BILLING_STATUS_LABELS,
    DEFAULT_ACTIVITY_TYPES,
    TIME_UNITS,
    AuthError,
    BookingProblem,
    ConnectorError,
    CustomerDetails,
    NoAccess,
    NotFound,
    RegistrationReport,
    RemoteCustomer,
    RemoteError,
    RemoteExtra,
    RemoteTicket,
    RemoteTimeEntry,
    WriteBack,
    to_minutes,
)
from connectors.bookings import VISIT_DESCRIPTION, note_text, parse_note
from connectors.http import HttpClient

if TYPE_CHECKING:
    from addon.settings import Settings

log = logging.getLogger(__name__)

API = "/api/v1"
ORGANIZATION_PAGE_SIZE = 1000  # the generic index maximum
SEARCH_PAGE_SIZE = 200  # Zammad's maximum for */search; larger requests are clamped silently.
MAX_SEARCH_PAGES = 5_000  # a million tickets; beyond that something is wrong
TIME_PAGE_SIZE = 500  # generic index maximum is 1000; one request covers almost every ticket.
LISTING_PAGE_SIZE = 1000  # the global time accounting list: the generic index maximum
MAX_LISTING_PAGES = 50  # 50,000 rows; past them only the newer rows count as listed
LISTING_MIN_TICKETS = 3  # fewer polled tickets are read one by one: cheaper than the listing
LISTING_CLOCK_MARGIN = timedelta(seconds=1)  # the Date header has whole seconds

FIELD_STATUS = "billing_status"
FIELD_REFERENCE = "billing_invoice_ref"  # `*_id` names are rejected by Zammad.
FIELD_URL = "billing_invoice_url"
FIELD_CATEGORY = "billing_category"
FIELD_TRAVEL_KM = "billing_travel_km"
FIELD_ONSITE = "billing_onsite"
SETTING_TYPES = "time_accounting_types"
SETTING_ACCOUNTING = "time_accounting"
SETTING_AUTO_SHUTDOWN = "auto_shutdown"  # 6.5+: processes restart after a migration
WEBHOOK_PATH = "/api/zammad/v1/webhook"  # the sidecar's receiver (addon/web/zammad_hook.py)
WEBHOOK_NAME = "ticketbill"
TRIGGER_NAME = "ticketbill: ticket closed"
PENDING_FLAGS = ("to_create", "to_migrate", "to_config", "to_delete")




def _screens(on_create: bool = False) -> dict[str, Any]:
    """Shown to agents when editing, never required: a required field blocks every API update."""
    return {
        "create_middle": {"ticket.agent": {"shown": on_create, "required": False}},
        "edit": {
            "ticket.agent": {"shown": True, "required": False},
            "ticket.customer": {"shown": False, "required": False},
        },
    }


ATTRIBUTES: tuple[dict[str, Any], ...] = (
    {
        "object": "Ticket",
        "name": FIELD_STATUS,
        "display": "Abrechnung / Billing status",
        "data_type": "select",
        "active": True,
        "position": 1550,
        "data_option": {
            "options": BILLING_STATUS_LABELS,
            "default": "",
            "null": True,
            "nulloption": True,
            "translate": False,
            "maxlength": 255,
        },
        "screens": _screens(),
    },
    {
        "object": "Ticket",
        "name": FIELD_REFERENCE,
        "display": "Rechnungsnummer / Invoice number",
        "data_type": "input",
        "active": True,
        "position": 1551,
        "data_option": {"type": "text", "maxlength": 64, "default": "", "null": True},
        "screens": _screens(),
    },
    {
        "object": "Ticket",
        "name": FIELD_URL,
        "display": "Rechnung (Link) / Invoice link",
        "data_type": "input",
        "active": True,
        "position": 1552,
        "data_option": {"type": "url", "maxlength": 1000, "default": "", "null": True},
        "screens": _screens(),
    },
)


# What agents book themselves: shown when creating and editing, for agents only.
BOOKING_ATTRIBUTES: tuple[dict[str, Any], ...] = (
    {
        "object": "Ticket",
        "name": FIELD_CATEGORY,
        "display": "Abrechnungsart / Billing category",
        "data_type": "select",
        "active": True,
        "position": 1553,
        "data_option": {
            "options": BILLING_CATEGORY_LABELS,
            "default": "billable",
            "null": True,
            "nulloption": False,
            "translate": False,
            "maxlength": 255,
        },
        "screens": _screens(on_create=True),
    },
    {
        "object": "Ticket",
        "name": FIELD_TRAVEL_KM,
        "display": "Fahrt km / Travel km",
        "data_type": "integer",
        "active": True,
        "position": 1554,
        "data_option": {"min": 0, "max": 100000, "default": None, "null": True},
        "screens": _screens(on_create=True),
    },
    {
        "object": "Ticket",
        "name": FIELD_ONSITE,
        "display": "Vor-Ort-Einsatz / On-site visit",
        "data_type": "boolean",
        "active": True,
        "position": 1555,
        "data_option": {"options": {"true": "ja / yes", "false": "nein / no"}, "default": False,
                        "null": True},
        "screens": _screens(on_create=True),
    },
)


def _org_screens() -> dict[str, Any]:
    """Organization screens (create, edit, view): shown, never required."""
    shown = {"-all-": {"shown": True, "required": False}}
    return {"create": shown, "edit": shown, "view": {"-all-": {"shown": True}}}


def _org_input(name: str, display: str, maxlength: int, position: int,
               input_type: str = "text") -> dict[str, Any]:
    return {
        "object": "Organization",
        "name": name,
        "display": display,
        "data_type": "input",
        "active": True,
        "position": position,
        "data_option": {"type": input_type, "maxlength": maxlength, "default": "", "null": True},
        "screens": _org_screens(),
    }


# Customer billing data kept in Zammad, on the organization (names may not end in `_id`).
# Column → the sidecar's customer field it fills (see addon/customers.py).
ORGANIZATION_FIELDS = {
    "billing_legal_name": "legal_name",
    "billing_street": "street",
    "billing_postcode": "postcode",
    "billing_city": "city",
    "billing_country": "country",
    "billing_vat": "vat_id",
    "billing_customer_number": "customer_number",
    "billing_email": "email",
    "billing_leitweg": "buyer_reference",
}
ORGANIZATION_ATTRIBUTES: tuple[dict[str, Any], ...] = (
    _org_input("billing_legal_name", "Rechnungsname (leer: Name) / Legal name", 200, 1600),
    _org_input("billing_street", "Rechnungsanschrift: Straße / Billing street", 200, 1601),
    _org_input("billing_postcode", "PLZ / Postcode", 20, 1602),
    _org_input("billing_city", "Ort / City", 100, 1603),
    _org_input("billing_country", "Land (ISO, z. B. DE) / Country code", 2, 1604),
    _org_input("billing_vat", "USt-IdNr. / VAT ID", 20, 1605),
    _org_input("billing_customer_number", "Kundennummer / Customer number", 50, 1606),
    _org_input("billing_email", "Rechnungs-E-Mail / Invoice e-mail", 200, 1607, "email"),
    _org_input("billing_leitweg", "Leitweg-ID (öffentliche Auftraggeber)", 100, 1608),
)


@dataclass
class TimeListing:
    """One poll's `GET /time_accountings` (Zammad 6.1+), newest update first, by ticket.

    `started` is Zammad's clock (a `Date` header received before the first page was asked
    for, less a margin): a ticket updated after it may have rows the listing lacks.
    `covers_from`: every row updated at or after it is listed (None: every row at all).
    """

    started: datetime
    covers_from: datetime | None
    rows: dict[int, list[Mapping[str, Any]]] = field(default_factory=dict)
    pages: int = 0


def _changes_group(grants: Any, group_id: int) -> bool:
    """Whether a `group_ids` access map (`{"1": ["full"], "2": ["read", "change"]}`, as
    `HasGroups#group_ids_access_map` renders it) grants change on the group."""
    if not isinstance(grants, Mapping):
        return False
    access = grants.get(str(group_id), grants.get(group_id))
    access = [access] if isinstance(access, str) else access
    return isinstance(access, list) and ("full" in access or "change" in access)


def _label(spec: Mapping[str, Any]) -> str:
    """How the registration report names a field: ticket fields bare, others with object."""
    return spec["name"] if spec["object"] == "Ticket" else f"{spec['object'].lower()}.{spec['name']}"


def parse_time(value: Any) -> datetime | None:
    """Zammad's `2025-06-24T10:46:58.554Z` as an aware UTC datetime (None stays None)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RemoteError(f"unparseable timestamp from Zammad: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _has_time(time_unit: Any) -> bool | None:
    """Whether a ticket's `time_unit` (the sum of its bookings) says it has time; None: unsure."""
    if time_unit in (None, ""):
        return False
    try:
        return Decimal(str(time_unit)) != 0
    except InvalidOperation:
        return None


def format_time(value: datetime) -> str:
    """An aware datetime in the ISO form Zammad's selectors accept."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ZammadConnector:
    """`HelpdeskConnector` for Zammad 6.x over its REST API.

    Authenticate with an API token (`Authorization: Token token=...`, recommended) or with
    `user`/`password` (HTTP Basic). `time_unit` names what one booked unit means on this
    install (Zammad stores unitless numbers). `overlap_seconds` is subtracted from the cursor
    so tickets updated while the previous poll ran are not missed; duplicates are harmless
    because the sync upserts. `search_expand=False` asks the search for plain records: on
    6.4 and older that is the `{tickets, assets}` shape, whose assets carry organizations and
    customers, saving the name lookups.

    `booking_fields=True` makes `register` also create the fields agents book in
    (`BOOKING_ATTRIBUTES`); `activity_types` (e.g. `DEFAULT_ACTIVITY_TYPES`) makes it switch
    on activity types and create the missing ones. Both are off in the bare constructor, on
    in `from_settings`.
    """

    kind = "zammad"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        time_unit: str = "minute",
        overlap_seconds: int = 120,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        registration_wait_seconds: float = 180.0,
        registration_poll_seconds: float = 5.0,
        search_expand: bool = True,
        booking_fields: bool = False,
        customer_fields: bool = False,
        activity_types: Sequence[str] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 1,
    ) -> None:
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
        if overlap_seconds < 0:
            raise ValueError("overlap_seconds must not be negative")
        self.base_url = base_url.rstrip("/")
        self.time_unit = time_unit
        self.overlap = timedelta(seconds=overlap_seconds)
        self.registration_wait_seconds = registration_wait_seconds
        self.registration_poll_seconds = registration_poll_seconds
        self.sleep = sleep
        self.search_expand = search_expand
        self.attributes = (ATTRIBUTES + (BOOKING_ATTRIBUTES if booking_fields else ())
                           + (ORGANIZATION_ATTRIBUTES if customer_fields else ()))
        self.customer_fields = customer_fields
        names = [name.strip() for name in activity_types or ()]
        if any(not name for name in names):
            raise ValueError("activity type names must not be empty")
        if len({name.casefold() for name in names}) != len(names):
            raise ValueError("activity type names repeat (Zammad compares them case-insensitively)")
        self.activity_types = tuple(names)
        if (webhook_url is None) != (webhook_secret is None):
            raise ValueError("the webhook needs both its URL and its secret")
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        if http is None:
            headers = {"Authorization": f"Token token={token}"} if token else {}
            auth = (user, password) if (not token and user and password) else None
            http = HttpClient(
                self.base_url,
                headers=headers,
                auth=auth,
                secrets=(token, password, webhook_secret),
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                sleep=sleep,
                pool_size=concurrency,
            )
        self.http = http
        self.concurrency = concurrency
        self._organizations: dict[int, Mapping[str, Any]] = {}
        self._users: dict[int, Mapping[str, Any]] = {}
        self._activity_types: dict[int, str] | None = None
        self._groups: dict[int, str] | None = None
        self._me: int | None = None
        #: the ticket records of this run's search pages: `extras` reads the km and on-site
        #: fields from them instead of fetching each ticket again
        self._records: dict[str, Mapping[str, Any]] = {}
        self._organizations_listed = False
        #: remote id → the `updated_at` Zammad answered to our last write (`WrittenVersions`)
        self._written: dict[str, datetime] = {}
        self._poll_started: datetime | None = None
        # The global time accounting list (see `time_entries`), one per poll.
        self._listing_lock = threading.Lock()
        self._users_lock = threading.Lock()
        #: why the listing is off for this connector (403: no admin.time_accounting; 404: < 6.1)
        self._listing_off: str | None = None
        self._polling = False  # a search began: the listing may answer for its tickets
        #: the start of the poll's window (the cursor less the overlap); None: since ever
        self._window: datetime | None = None
        self._listing: TimeListing | None = None
        self._listing_tried = False
        #: this poll's `GET /users/me` (its group rights) and the groups its roles may change
        self._me_record: Mapping[str, Any] | None = None
        self._role_groups: set[int] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ZammadConnector:
        """Build from the validated, frozen settings object (`addon.settings.Settings`)."""
        return cls(
            settings.helpdesk_url,
            token=settings.helpdesk_token,
            user=settings.helpdesk_user,
            password=settings.helpdesk_password,
            time_unit=settings.helpdesk_time_unit,
            overlap_seconds=settings.sync_overlap_seconds,
            booking_fields=True,
            customer_fields=True,
            activity_types=DEFAULT_ACTIVITY_TYPES,
            webhook_url=(settings.public_url.rstrip("/") + WEBHOOK_PATH
                         if settings.zammad_signature_token else None),
            webhook_secret=settings.zammad_signature_token,
            concurrency=settings.helpdesk_concurrency,
        )

    # -- identity and registration --------------------------------------------------------

    def check(self) -> str:
        """`GET /users/me`: proves URL and credentials; names the identity used."""
        me = self.http.get_json(f"{API}/users/me")
        if not isinstance(me, Mapping) or "id" not in me:
            raise RemoteError(f"GET {API}/users/me: unexpected answer (not a user record)")
        who = me.get("login") or me.get("email") or f"user {me['id']}"
        return f"{who} (Zammad user {me['id']}) at {self.base_url}"

    def register(self) -> RegistrationReport:
        """Ensure the billing fields exist, migrate only if needed, wait for the restart.

        Then (with `activity_types`) switch activity types on and create the missing ones.
        """
        rows = self.http.get_json(f"{API}/object_manager_attributes") or []
        existing = {
            (row.get("object"), row.get("name")): row
            for row in rows
            if isinstance(row, Mapping) and row.get("object") in ("Ticket", "Organization")
        }
        created: list[str] = []
        present: list[str] = []
        problems: list[str] = []
        pending = False
        for spec in self.attributes:
            name = _label(spec)
            row = existing.get((spec["object"], spec["name"]))
            if row is None:
                if self._create_attribute(spec):
                    created.append(name)
                else:
                    present.append(name)
                pending = True
            elif row.get("to_delete"):
                problems.append(
                    f"field {name!r} is marked for deletion in Zammad; discard the pending "
                    "change under Admin → Objects before registering again"
                )
            elif row.get("data_type") != spec["data_type"]:
                problems.append(
                    f"field {name!r} exists with type {row.get('data_type')!r}, expected "
                    f"{spec['data_type']!r}; rename or remove it in Admin → Objects"
                )
            else:
                changes = self._update_attribute(row, spec)
                if changes:
                    created.append(f"{name} (updated: {changes})")
                    pending = True
                else:
                    present.append(name)
                    pending = pending or any(row.get(flag) for flag in PENDING_FLAGS)
        if any("marked for deletion" in problem for problem in problems):
            # Migrating now would drop the column (and its values) system-wide.
            self._register_activity_types(created, present, problems)
            return RegistrationReport(tuple(created), tuple(present), tuple(problems))
        # Read before migrating: the API may be down while Zammad restarts afterwards.
        restarts_itself = self._auto_shutdown()
        if pending:
            ours = {(spec["object"], spec["name"]) for spec in self.attributes}
            others = sorted(
                f"{obj}.{name}"
                for (obj, name), row in existing.items()
                if (obj, name) not in ours and any(row.get(flag) for flag in PENDING_FLAGS)
            )
            if others:
                log.warning("execute_migrations also applies other pending changes: %s", others)
            self.http.post_json(f"{API}/object_manager_attributes_execute_migrations", {},
                                idempotent=True)
        # Zammad 6.5+ with auto_shutdown off restarts nothing: waiting would be in vain.
        problem = (self._fields_visible_now(migrated=pending) if restarts_itself is False
                   else self._wait_for_fields())
        if problem:
            problems.append(problem)
        self._register_activity_types(created, present, problems)
        self._register_webhook(created, present, problems)
        return RegistrationReport(tuple(created), tuple(present), tuple(problems))

    def _register_webhook(self, created: list[str], present: list[str],
                          problems: list[str]) -> None:
        """The fast path: a signed webhook to the sidecar and a trigger when a ticket closes.

        Both are found by name and repaired when they differ (Zammad's webhook names are not
        unique, trigger names are). The trigger is `selective` on the closed state ids, so it
        fires once per close and not on the sidecar's own note. Needs admin.webhook and
        admin.trigger; without them the admin gets the manual steps.
        """
        if self.webhook_url is None or self.webhook_secret is None:
            return
        try:
            hooks = self.http.get_json(f"{API}/webhooks") or []
            hook = next((h for h in hooks if isinstance(h, Mapping)
                         and h.get("name") == WEBHOOK_NAME), None)
            wanted_hook = {"name": WEBHOOK_NAME, "endpoint": self.webhook_url,
                           "signature_token": self.webhook_secret,
                           "ssl_verify": self.webhook_url.startswith("https://"), "active": True,
                           "note": "ticketbill: closed tickets are billed at once"}
            hook = self._upsert("webhooks", hook, wanted_hook, f"webhook {WEBHOOK_NAME!r} → "
                                f"{self.webhook_url}", created, present)
            closed = sorted(self.closed_state_ids())
            triggers = self.http.get_json(f"{API}/triggers") or []
            trigger = next((t for t in triggers if isinstance(t, Mapping)
                            and str(t.get("name")).lower() == TRIGGER_NAME.lower()), None)
            wanted_trigger = {
                "name": TRIGGER_NAME,
                "condition": {"ticket.state_id": {"operator": "is",
                                                  "value": [str(i) for i in closed]}},
                "perform": {"notification.webhook": {"webhook_id": str(hook["id"])}},
                "activator": "action", "execution_condition_mode": "selective", "active": True,
                "note": "ticketbill: tells the sidecar when a ticket closes",
            }
            self._upsert("triggers", trigger, wanted_trigger, f"trigger {TRIGGER_NAME!r}",
                         created, present)
        except AuthError:
            problems.append(
                "webhook not registered: the API token lacks admin.webhook or admin.trigger; "
                f"grant them, or create under Manage → Webhook a webhook to {self.webhook_url} "
                "with ZAMMAD_WEBHOOK_SECRET as HMAC SHA1 signature token, and under Manage → "
                "Trigger one that fires it when the state is closed (polling bills them anyway)"
            )

    def _upsert(self, kind: str, row: Mapping[str, Any] | None, wanted: Mapping[str, Any],
                label: str, created: list[str], present: list[str]) -> Mapping[str, Any]:
        if row is None:
            answer = self.http.post_json(f"{API}/{kind}", dict(wanted))
            created.append(label)
            return answer if isinstance(answer, Mapping) else {}
        changed = sorted(key for key, value in wanted.items() if row.get(key) != value)
        if not changed:
            present.append(label)
            return row
        answer = self.http.put_json(f"{API}/{kind}/{row['id']}", dict(wanted))
        created.append(f"{label} (updated: {', '.join(changed)})")
        return answer if isinstance(answer, Mapping) else row

    def _register_activity_types(
        self, created: list[str], present: list[str], problems: list[str]
    ) -> None:
        """Settings on, then each configured type once (names compare case-insensitively).

        Needs `admin.time_accounting`; without it the admin gets the manual steps instead.
        """
        if not self.activity_types:
            return
        try:
            rows = self.http.get_json(f"{API}/settings") or []
            settings = {row.get("name"): row for row in rows if isinstance(row, Mapping)}
            for name in (SETTING_ACCOUNTING, SETTING_TYPES):
                row = settings.get(name)
                if row is None:  # Zammad lists only the settings the caller may change
                    problems.append(self._types_manual_step(
                        f"the setting {name!r} is not visible (Zammad older than 6.1, or the "
                        "API token lacks the permission admin.time_accounting)"))
                    return
                if (row.get("state_current") or {}).get("value") is True:
                    present.append(f"setting {name}")
                    continue
                answer = self.http.put_json(f"{API}/settings/{row['id']}",
                                            {"state_current": {"value": True}})
                if (answer or {}).get("state_current", {}).get("value") is not True:
                    problems.append(f"Zammad did not switch on the setting {name!r}")
                    return
                created.append(f"setting {name} (switched on)")
            types = self.http.get_json(f"{API}/time_accounting/types") or []
            existing = {str(row.get("name")).casefold(): row for row in types
                        if isinstance(row, Mapping)}
            for name in self.activity_types:
                row = existing.get(name.casefold())
                if row is None:
                    row = self._create_activity_type(name)
                    if row is not None:
                        created.append(f"activity type {name!r}")
                        continue
                    present.append(f"activity type {name!r}")
                elif row.get("active") is False:
                    self.http.put_json(f"{API}/time_accounting/types/{row['id']}",
                                       {"active": True})
                    created.append(f"activity type {row.get('name')!r} (reactivated)")
                else:
                    present.append(f"activity type {row.get('name')!r}")
        except AuthError:
            problems.append(self._types_manual_step(
                "the API token lacks the permission admin.time_accounting"))
        except RemoteError as exc:
            if exc.status and exc.status < 500:
                raise
            # Still restarting after the migration: the fields are reported; types next time.
            problems.append(f"activity types not registered: Zammad did not answer ({exc}); "
                            "register again once it is up")
        self._activity_types = None

    def _types_manual_step(self, why: str) -> str:
        return (
            f"activity types not registered: {why}; grant it, or switch on 'Activity types' "
            "under Manage → Time Accounting and add " + ", ".join(self.activity_types)
        )

    def _create_activity_type(self, name: str) -> Mapping[str, Any] | None:
        """POST one type; None when another registration created it first (422 taken)."""
        try:
            row = self.http.post_json(f"{API}/time_accounting/types",
                                      {"name": name, "active": True})
        except RemoteError as exc:
            if exc.status == 422 and "taken" in str(exc):
                return None
            raise
        return row if isinstance(row, Mapping) else {}

    def _create_attribute(self, spec: Mapping[str, Any]) -> bool:
        """POST one attribute; False if a concurrent registration created it first."""
        try:
            self.http.post_json(f"{API}/object_manager_attributes", dict(spec))
        except RemoteError as exc:
            if exc.status == 422 and "already exists" in str(exc):
                return False
            raise
        return True

    def _update_attribute(self, row: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
        """Repair what would break billing (missing options, required, inactive); say what."""
        option = dict(row.get("data_option_new") or row.get("data_option") or {})
        screens = {screen: dict(perms) for screen, perms in (row.get("screens") or {}).items()}
        changes: list[str] = []
        if spec["data_type"] == "select":
            options = dict(option.get("options") or {})
            missing = [key for key in spec["data_option"]["options"] if key not in options]
            if missing:
                options.update({key: spec["data_option"]["options"][key] for key in missing})
                option["options"] = options
                changes.append("added options " + ", ".join(missing))
        for screen, perms in screens.items():
            for permission, flags in perms.items():
                if isinstance(flags, Mapping) and flags.get("required"):
                    perms[permission] = {**flags, "required": False}
                    changes.append(f"not required in {screen} for {permission}")
        if not row.get("active", True):
            changes.append("activated")
        if not changes:
            return ""
        payload = {
            "object": spec["object"],
            "name": spec["name"],
            "display": row.get("display") or spec["display"],
            "data_type": spec["data_type"],
            "active": True,
            "position": row.get("position", spec["position"]),
            "data_option": option,
            "screens": screens or spec["screens"],
        }
        self.http.put_json(f"{API}/object_manager_attributes/{row.get('id')}", payload)
        return "; ".join(changes)

    def _auto_shutdown(self) -> bool | None:
        """Zammad's `auto_shutdown` setting (6.5+): do its processes restart themselves after a
        migration? None when unknown (older Zammad, or the setting is not visible)."""
        try:
            rows = self.http.get_json(f"{API}/settings") or []
        except AuthError:
            return None
        for row in rows:
            if isinstance(row, Mapping) and row.get("name") == SETTING_AUTO_SHUTDOWN:
                value = (row.get("state_current") or {}).get("value")
                return value if isinstance(value, bool) else None
        return None

    def _fields_visible_now(self, migrated: bool) -> str | None:
        """One look at a ticket, for a Zammad that will not restart on its own."""
        wanted = {spec["name"] for spec in self.attributes if spec["object"] == "Ticket"}
        tickets = self.http.get_json(f"{API}/tickets", {"page": 1, "per_page": 1}) or []
        if tickets:
            ticket = self.http.get_json(f"{API}/tickets/{tickets[0]['id']}")
            if wanted <= set(ticket):
                return None
        elif not migrated:
            return None  # nothing was migrated now, and no ticket to look at
        return (
            "Zammad has migrated the billing fields but does not restart itself (its setting "
            "auto_shutdown is off): restart Zammad now (e.g. `systemctl restart zammad`, or "
            "restart its containers), then run `ticketbill register` again; until the restart "
            "Zammad silently drops what is written to the new fields"
        )

    def _wait_for_fields(self) -> str | None:
        """Poll until a real ticket carries the three keys; survive the Zammad restart.

        Returns a problem text when the keys do not appear within the configured wait.
        """
        wanted = {spec["name"] for spec in self.attributes if spec["object"] == "Ticket"}
        polls = max(1, int(self.registration_wait_seconds / self.registration_poll_seconds) + 1)
        last_error = ""
        for poll in range(polls):
            if poll:
                self.sleep(self.registration_poll_seconds)
            try:
                tickets = self.http.get_json(f"{API}/tickets", {"page": 1, "per_page": 1})
                if not tickets:
                    return self._wait_without_tickets(polls - poll)
                ticket = self.http.get_json(f"{API}/tickets/{tickets[0]['id']}")
            except RemoteError as exc:
                if exc.status == 0 or exc.status >= 500:
                    last_error = str(exc)
                    continue
                raise
            missing = wanted - set(ticket)
            if not missing:
                return None
            last_error = f"ticket {ticket.get('id')} lacks {', '.join(sorted(missing))}"
        return (
            f"billing fields not visible on tickets after {self.registration_wait_seconds:.0f} s "
            f"({last_error}); restart Zammad and register again (a Zammad before 6.5 restarts "
            "itself only with APP_RESTART_CMD set)"
        )

    def _wait_without_tickets(self, polls: int) -> str | None:
        """An empty install has no ticket to look at: wait for the migration flags instead."""
        names = {(spec["object"], spec["name"]) for spec in self.attributes}
        for poll in range(polls):
            if poll:
                self.sleep(self.registration_poll_seconds)
            try:
                rows = self.http.get_json(f"{API}/object_manager_attributes") or []
            except RemoteError as exc:
                if exc.status == 0 or exc.status >= 500:
                    continue
                raise
            ours = [r for r in rows if (r.get("object"), r.get("name")) in names]
            if len(ours) == len(names) and not any(r.get(f) for r in ours for f in PENDING_FLAGS):
                return None
        return "billing field migrations still pending; restart Zammad and register again"

    # -- reading --------------------------------------------------------------------------

    def closed_state_ids(self) -> dict[int, str]:
        """Every state whose type is `closed`, id → name (admins may add their own)."""
        states = self.http.get_json(f"{API}/ticket_states", {"expand": "true"}) or []
        return {
            int(state["id"]): str(state.get("name"))
            for state in states
            if isinstance(state, Mapping) and state.get("state_type") == "closed"
        }

    def state_types(self) -> dict[int, tuple[str, str]]:
        """Every ticket state, id → (name, state type): one `GET /ticket_states?expand=true`."""
        states = self.http.get_json(f"{API}/ticket_states", {"expand": "true"}) or []
        return {
            int(state["id"]): (str(state.get("name")), str(state.get("state_type")))
            for state in states
            if isinstance(state, Mapping) and "id" in state
        }

    def changed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Tickets of every state updated at or after `cursor - overlap`, oldest update first.

        The same keyset paging as `closed_tickets_since`, over all state ids; each ticket says
        its state type (closed / merged / open for new, open and pending), whether it has time
        (`time_unit`, the ticket's sum of bookings) and, when merged, which ticket survived:
        Zammad leaves the time rows on the merged ticket, and its merge link (`GET /links`,
        type `parent`) names the ticket whose invoice bills them. One extra request per merged
        ticket; an idle poll costs two (states, search).
        """
        self._reset_caches()
        self._begin_poll(cursor)
        states = self.state_types()
        self._poll_started = self.http.server_date  # before the search: nothing later is missed
        names = {state_id: name for state_id, (name, _kind) in states.items()}
        for record in self._changed_records(states, cursor):
            self._records[str(record.get("id"))] = record
            kind = states.get(int(record.get("state_id") or -1), ("", "open"))[1]
            state_type = kind if kind in ("closed", "merged") else "open"
            ticket = self._ticket_record(record, names)
            yield replace(
                ticket, state_type=state_type, has_time=_has_time(record.get("time_unit")),
                merged_into=self._merged_into(int(ticket.remote_id)) if state_type == "merged" else None,
            )

    def _changed_records(self, states: Mapping[int, Any], cursor: datetime | None) -> Iterator[Mapping[str, Any]]:
        """The records updated since the cursor, and in the overlap window before it those that
        someone else updated last: one search (`ours_since`).

        The overlap window is there for a change that became visible late; the sidecar's own
        writes are never late (it knows them: `written_version`). Without this, a burst of
        write-backs (a month's 5,000 tickets) would come back in the window of every following
        poll until some other ticket changed: 25 search pages each time. A write of ours that
        someone changed again carries their `updated_at`, after our write.

        After the cursor, the sidecar's own writes are listed from 1 ms past it (timestamps
        have millisecond precision): the tickets at the cursor itself were read up to it, and
        one someone else updated is in the window anyway.
        """
        if cursor is None:
            yield from self._keyset_search(states, None)
            return
        me = self._my_id()
        window = format_time(cursor - self.overlap)
        if not me or me < 0 or not self.overlap:
            yield from self._keyset_search(states, window)
            return
        yield from self._keyset_search(states, window, (me, format_time(cursor + timedelta(milliseconds=1))))

    def poll_started_at(self) -> datetime | None:
        """Zammad's clock (its `Date` header) when the last `changed_tickets_since` began."""
        return self._poll_started

    def _merged_into(self, ticket_id: int) -> str:
        """The surviving ticket of a merged one, from its merge link; "" when Zammad names none."""
        answer = self.http.get_json(f"{API}/links", {"link_object": "Ticket", "link_object_value": ticket_id})
        links = answer.get("links") if isinstance(answer, Mapping) else None
        for link in links or []:
            if (isinstance(link, Mapping) and link.get("link_type") == "parent"
                    and link.get("link_object") == "Ticket"):
                return str(link.get("link_object_value"))
        return ""

    def closed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Closed tickets updated at or after `cursor - overlap`, oldest update first.

        Pages by *keyset* rather than by page number: each request asks again for
        `updated_at >= <last updated_at seen>`. With page numbers, a ticket updated while we
        page moves to the end and shifts every later ticket one place forward, so one ticket
        would silently fall between two pages (and never be billed). Here the boundary tickets
        come back once more and are dropped by `(id, updated_at)`.

        The keyset cannot move past a timestamp that a whole page shares. Zammad sorts by
        `updated_at` alone unless told otherwise, and PostgreSQL returns ties in any order, so
        stepping through such a timestamp by page number could repeat or skip tickets. The
        search is therefore sorted by `updated_at, id` (Zammad's SqlHelper takes a list of
        sort columns with one order each), and a shared timestamp is read in full passes by
        page number until a pass brings nothing new (a ticket updated meanwhile leaves the
        set and shifts the rest; the next pass finds what shifted). Timestamps have
        millisecond precision (`limit: 3`), so the keyset then continues 1 ms later.
        """
        self._reset_caches()
        self._begin_poll(cursor)
        closed = self.closed_state_ids()
        if not closed:
            raise RemoteError("Zammad reports no ticket state of type 'closed'")
        for record in self._keyset_search(closed, format_time(cursor - self.overlap) if cursor else None):
            self._records[str(record.get("id"))] = record
            yield self._ticket_record(record, closed)

    def _keyset_search(
        self, states: Mapping[int, Any], after: str | None, ours_since: tuple[int, str] | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """Ticket records in the given states updated at or after `after`, by keyset (see
        `closed_tickets_since` for why keyset, and how a shared timestamp is read). With
        `ours_since` = (user id, moment), a record that user updated last is listed only from
        that moment on."""
        seen: set[tuple[Any, Any]] = set()
        for _ in range(MAX_SEARCH_PAGES):
            records = self._search_page(states, after, 1, ours_since)
            yield from self._unseen(records, seen)
            if len(records) < SEARCH_PAGE_SIZE:
                return
            last = str(records[-1].get("updated_at"))
            if all(record.get("updated_at") == last for record in records):
                yield from self._all_at(states, last, seen, ours_since)
                moment = parse_time(last)
                assert moment is not None
                after = format_time(moment + timedelta(milliseconds=1))
            else:
                after = last
        raise RemoteError(f"ticket search exceeded {MAX_SEARCH_PAGES} pages; giving up")

    @staticmethod
    def _unseen(records: Iterable[Mapping[str, Any]], seen: set[tuple[Any, Any]]) -> Iterator[Mapping[str, Any]]:
        """The records not yielded yet, by (id, updated_at): keyset pages overlap at their boundary."""
        for record in records:
            key = (record.get("id"), record.get("updated_at"))
            if key not in seen:
                seen.add(key)
                yield record

    def _all_at(
        self, states: Mapping[int, Any], stamp: str, seen: set[tuple[Any, Any]],
        ours_since: tuple[int, str] | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every ticket record whose `updated_at` is exactly `stamp` (more than a page)."""
        for _ in range(MAX_SEARCH_PAGES):
            found_new = False
            previous_ids: tuple[Any, ...] | None = None
            for page in range(1, MAX_SEARCH_PAGES):
                records = self._search_page(states, stamp, page, ours_since)
                ids = tuple(record.get("id") for record in records)
                if ids and ids == previous_ids:
                    raise RemoteError(
                        f"loop detected in pagination: ticket search page {page} (updated_at >= "
                        f"{stamp}) repeats the previous page"
                    )
                previous_ids = ids
                at_stamp = [r for r in records if r.get("updated_at") == stamp]
                for record in self._unseen(at_stamp, seen):
                    found_new = True
                    yield record
                if len(at_stamp) < len(records) or len(records) < SEARCH_PAGE_SIZE:
                    break  # past the tickets of this timestamp
            if not found_new:
                return
        raise RemoteError(f"tickets updated at {stamp} kept changing while being read; giving up")

    def _search_page(
        self, states: Mapping[int, Any], after: str | None, page: int, ours_since: tuple[int, str] | None = None
    ) -> list[Mapping[str, Any]]:
        condition: dict[str, Any] = {
            "ticket.state_id": {"operator": "is", "value": [str(i) for i in sorted(states)]},
        }
        if after is not None:
            condition["ticket.updated_at"] = {"operator": "after (absolute)", "value": after}
        if ours_since is not None:  # expert conditions (Zammad 6): AND of the above, and an OR
            me, since = ours_since
            condition = {"operator": "AND", "conditions": [
                *({"name": name, **spec} for name, spec in condition.items()),
                {"operator": "OR", "conditions": [
                    {"name": "ticket.updated_by_id", "operator": "is not", "value": [str(me)]},
                    {"name": "ticket.updated_at", "operator": "after (absolute)", "value": since},
                ]},
            ]}
        body = {
            "condition": condition,
            # One order per column: Zammad drops a sort column that has none.
            "sort_by": "updated_at,id",
            "order_by": "asc,asc",
            "page": page,
            "per_page": SEARCH_PAGE_SIZE,
            "expand": self.search_expand,
        }
        answer = self.http.post_json(f"{API}/tickets/search", body, idempotent=True)
        return self._search_records(answer)

    def ticket(self, ticket_remote_id: str) -> RemoteTicket:
        record = self.http.get_json(f"{API}/tickets/{int(ticket_remote_id)}", {"expand": "true"})
        if not isinstance(record, Mapping):
            raise RemoteError(f"GET {API}/tickets/{ticket_remote_id}: not a ticket record")
        self._records[str(record.get("id"))] = record
        return self._ticket_record(record, None)

    def time_entries(self, ticket_remote_id: str) -> Sequence[RemoteTimeEntry]:
        """All bookings of a ticket, converted to minutes; `NotFound` if the ticket is gone.

        For a ticket the current poll's search listed, the answer may come from the poll's one
        global list of time accountings (`_listed_rows`: no request of its own); otherwise,
        and whenever that list cannot prove it holds all of the ticket's rows, from
        `GET /tickets/{id}/time_accountings`.

        The sidecar bills only tickets the API user may *change* (the write-back needs it).
        The sandbox, like the Zammad these rules were written against, shows a ticket's time
        accountings only with change access (`TicketPolicy#update?`, group access `change`
        or `full`), while the search lists every ticket it may read; such a ticket raises
        `NoAccess` naming the group, not the bare 403. (Zammad 6.1+ lets a user with
        `admin.time_accounting` list any ticket's rows; the global list therefore answers
        only for tickets in groups the user may change.)
        """
        ticket_id = int(ticket_remote_id)
        listed = self._listed_rows(ticket_id)
        if listed is not None:
            return [self._time_entry(row, ticket_id) for row in listed]
        try:
            return self._time_entries(ticket_id)
        except AuthError as exc:
            if "Not authorized" not in str(exc):
                raise  # the token or user lacks a permission: every ticket would fail
            raise NoAccess(self._no_change_access(ticket_id)) from None

    def _no_change_access(self, ticket_id: int) -> str:
        who = self._my_login()
        try:
            record = self.http.get_json(f"{API}/tickets/{ticket_id}", {"expand": "true"})
        except (AuthError, NotFound):
            record = {}
        group = record.get("group") if isinstance(record, Mapping) else None
        where = f"group {group!r}" if group else "the ticket's group"
        number = record.get("number") if isinstance(record, Mapping) else None
        return (
            f"Zammad shows ticket {number or ticket_id} to {who} but not its time accounting: "
            f"{who} needs change (or full) access to {where} (Admin → Users or Roles → Group "
            "permissions)"
        )

    def _my_login(self) -> str:
        me = self.http.get_json(f"{API}/users/me")
        if isinstance(me, Mapping):
            return str(me.get("login") or me.get("email") or f"user {me.get('id')}")
        return "the API user"

    def _time_entries(self, ticket_id: int) -> Sequence[RemoteTimeEntry]:
        path = f"{API}/tickets/{ticket_id}/time_accountings"

        def fetch(page: int) -> Sequence[Mapping[str, Any]]:
            params = {"page": page, "per_page": TIME_PAGE_SIZE, "expand": "true",
                      "sort_by": "id", "order_by": "asc"}
            rows = self.http.get_json(path, params)
            if not isinstance(rows, list):
                raise RemoteError(f"GET {path}: expected a list of time accountings")
            return rows

        return [self._time_entry(row, ticket_id)
                for row in self.http.paginate(fetch, per_page=TIME_PAGE_SIZE)]

    # -- the global time accounting list -------------------------------------------------

    def _begin_poll(self, cursor: datetime | None) -> None:
        """A search begins: its window is the listing's (the listing itself comes lazily)."""
        self._polling = True
        self._window = cursor - self.overlap if cursor is not None else None

    def _listed_rows(self, ticket_id: int) -> list[Mapping[str, Any]] | None:
        """The ticket's rows from this poll's global list, oldest id first, or None when that
        list cannot prove it holds all of them (then the ticket's own list is read).

        Proof needs all of: the ticket's record from this poll's search (or `ticket`), updated
        no later than the listing started (a row saved or deleted later moves the ticket's
        `updated_at` whenever it changes the total: `Ticket::TimeAccounting.update_ticket`);
        the listing holding each of the record's `ticket_time_accounting_ids` and no other
        row (a record without them: the ticket created inside the listed window, so that all
        its rows were saved inside it); the rows adding up to the record's `time_unit`
        (which catches a row the offset paging skipped while another was deleted); and
        change access to the ticket's group.
        """
        if not self._polling or self._listing_off is not None:
            return None
        record = self._records.get(str(ticket_id))
        if record is None:
            return None
        listing = self._time_listing()
        if listing is None:
            return None
        rows = listing.rows.get(ticket_id, [])
        if not self._listing_complete(record, rows, listing) or not self._may_change(record):
            return None
        return sorted(rows, key=lambda row: int(row.get("id") or 0))

    @staticmethod
    def _listing_complete(record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                          listing: TimeListing) -> bool:
        try:
            updated = parse_time(record.get("updated_at"))
            created = parse_time(record.get("created_at"))
        except RemoteError:
            return False
        if updated is None or updated > listing.started:
            return False
        ids = record.get("ticket_time_accounting_ids")
        if isinstance(ids, list):
            try:
                if {int(i) for i in ids} != {int(row.get("id") or 0) for row in rows}:
                    return False
            except (TypeError, ValueError):
                return False
        elif listing.covers_from is not None and (created is None or created < listing.covers_from):
            return False
        if "time_unit" not in record:
            return False
        try:
            total = sum((Decimal(str(row.get("time_unit"))) for row in rows), Decimal(0))
            return Decimal(str(record.get("time_unit") or 0)) == total
        except InvalidOperation:
            return False

    def _time_listing(self) -> TimeListing | None:
        """This poll's listing, made at the first call (on one thread; the others wait)."""
        with self._listing_lock:
            if not self._listing_tried:
                self._listing_tried = True
                if len(self._records) >= LISTING_MIN_TICKETS:
                    self._listing = self._list_time_accountings()
                    if self._listing is not None and self._me_record is None:
                        self._me_record = self._fetch_me()
            return self._listing

    def _list_time_accountings(self) -> TimeListing | None:
        """`GET /time_accountings` (admin.time_accounting), `updated_at` descending, page by
        page until a row is older than the poll's window (a first run: to the end, at most
        MAX_LISTING_PAGES). There is no date filter; paging is by offset, so a row deleted
        meanwhile shifts the rest, which the checks in `_listed_rows` catch."""
        started = self.http.server_date  # of a response before the first page: no later
        if started is None:
            return None  # no Date header: nothing to bound the listing by
        listing = TimeListing(started - LISTING_CLOCK_MARGIN, self._window)
        window, seen, last = self._window, set(), None
        path = f"{API}/time_accountings"
        try:
            for page in range(1, MAX_LISTING_PAGES + 1):
                rows = self.http.get_json(path, {
                    "page": page, "per_page": LISTING_PAGE_SIZE, "expand": "true",
                    "sort_by": "updated_at,id", "order_by": "desc,desc"})
                if not isinstance(rows, list):
                    raise RemoteError(f"GET {path}: expected a list of time accountings")
                listing.pages = page
                for row in rows:
                    if not isinstance(row, Mapping) or row.get("id") is None:
                        raise RemoteError(f"GET {path}: a row without id")
                    stamp = parse_time(row.get("updated_at"))
                    if stamp is None:
                        raise RemoteError(f"GET {path}: time accounting {row['id']} has no updated_at")
                    if window is not None and stamp < window:
                        return listing
                    last = stamp
                    if row["id"] in seen or row.get("ticket_id") is None:
                        continue  # a row shifted onto the next page by a newer one
                    seen.add(row["id"])
                    listing.rows.setdefault(int(row["ticket_id"]), []).append(row)
                if len(rows) < LISTING_PAGE_SIZE:
                    listing.covers_from = None
                    return listing
        except (AuthError, NotFound) as exc:
            self._listing_off = str(exc)
            log.info("Zammad's global time accounting list is not available (%s: needs Zammad 6.1 "
                     "and admin.time_accounting); each ticket's time accountings are read on "
                     "their own", exc)
            return None
        except (ConnectorError, TypeError, ValueError) as exc:
            log.warning("the global time accounting list failed (%s); this poll reads each "
                        "ticket's time accountings on their own", exc)
            return None
        assert last is not None
        log.info("the global time accounting list stops after %d pages: tickets with rows "
                 "updated before %s are read on their own", MAX_LISTING_PAGES, format_time(last))
        listing.covers_from = last + timedelta(milliseconds=1)
        return listing

    def _fetch_me(self) -> Mapping[str, Any] | None:
        try:
            me = self.http.get_json(f"{API}/users/me")
        except ConnectorError as exc:
            log.warning("GET %s/users/me failed (%s): this poll reads each ticket's time "
                        "accountings on their own", API, exc)
            return None
        if not isinstance(me, Mapping) or "id" not in me:
            return None
        self._me = int(me["id"])
        return me

    def _may_change(self, record: Mapping[str, Any]) -> bool:
        """Change access to the ticket's group, as `HasGroups#group_access?` decides it: the
        user's own group rights (`GET /users/me`, once a poll), else those of its roles
        (`GET /roles`, once a poll and only when needed). Unsure means no."""
        try:
            group_id = int(record["group_id"])
        except (KeyError, TypeError, ValueError):
            return False
        me = self._me_record
        if me is None:
            return False
        if _changes_group(me.get("group_ids"), group_id):
            return True
        with self._listing_lock:
            if self._role_groups is None:
                self._role_groups = self._groups_of_roles(me)
            return group_id in self._role_groups

    def _groups_of_roles(self, me: Mapping[str, Any]) -> set[int]:
        role_ids = {int(r) for r in me.get("role_ids") or [] if str(r).isdigit()}
        if not role_ids:
            return set()
        try:
            roles = self.http.get_json(f"{API}/roles", {"page": 1, "per_page": LISTING_PAGE_SIZE}) or []
        except ConnectorError as exc:
            log.info("the API user's roles could not be read (%s): their group rights are not "
                     "used to answer from the time accounting list", exc)
            return set()
        groups: set[int] = set()
        for role in roles if isinstance(roles, list) else []:
            if (isinstance(role, Mapping) and role.get("id") in role_ids
                    and role.get("active", True) and isinstance(role.get("group_ids"), Mapping)):
                groups.update(int(g) for g in role["group_ids"]
                              if str(g).isdigit() and _changes_group(role["group_ids"], int(g)))
        return groups

    def extras(
        self, ticket_remote_id: str
    ) -> tuple[Sequence[RemoteExtra], Sequence[BookingProblem]]:
        """Booking lines of the internal notes, then the travel km and on-site fields.

        Notes written by the sidecar's own user are skipped: they report what was billed and
        must never be read back as new bookings. The fields come from the ticket's record in
        this run's search (or `ticket`); only a ticket not seen there is fetched.
        """
        ticket_id = int(ticket_remote_id)
        ticket = self._records.get(str(ticket_id)) or self.http.get_json(f"{API}/tickets/{ticket_id}")
        if not isinstance(ticket, Mapping):
            raise RemoteError(f"GET {API}/tickets/{ticket_id}: not a ticket record")
        articles = self.http.get_json(f"{API}/ticket_articles/by_ticket/{ticket_id}") or []
        me = self._my_id()
        extras: list[RemoteExtra] = []
        problems: list[BookingProblem] = []
        for article in sorted((a for a in articles if isinstance(a, Mapping)),
                              key=lambda a: int(a.get("id") or 0)):
            if not article.get("internal") or article.get("created_by_id") == me:
                continue
            booked_at = parse_time(article.get("created_at"))
            if booked_at is None:
                raise RemoteError(f"article {article.get('id')} has no created_at")
            found, bad = parse_note(
                note_text(str(article.get("body") or ""), article.get("content_type")),
                ticket_remote_id=str(ticket_id),
                source_id=f"article:{article.get('id')}",
                booked_at=booked_at,
                agent=self._agent(article),
            )
            extras += found
            problems += bad
        field_extras, field_problems = self._field_extras(ticket)
        return extras + field_extras, problems + field_problems

    def _field_extras(
        self, ticket: Mapping[str, Any]
    ) -> tuple[list[RemoteExtra], list[BookingProblem]]:
        """The structured fields: km driven (one travel line) and an on-site visit."""
        ticket_id = str(ticket.get("id"))
        km = ticket.get(FIELD_TRAVEL_KM)
        onsite = ticket.get(FIELD_ONSITE)
        if km in (None, "", 0, "0") and onsite is not True:
            return [], []
        booked_at = parse_time(ticket.get("last_close_at") or ticket.get("updated_at"))
        if booked_at is None:
            raise RemoteError(f"ticket {ticket_id} has no updated_at")
        owner = ticket.get("owner_id")
        agent = self._agent({"created_by_id": owner}) if owner not in (None, 1) else "unknown"
        extras: list[RemoteExtra] = []
        problems: list[BookingProblem] = []
        if km not in (None, "", 0, "0"):
            try:
                distance = Decimal(str(km))
            except InvalidOperation:
                distance = Decimal(-1)
            if distance > 0 and distance == distance.to_integral_value():
                extras.append(RemoteExtra(
                    remote_id=f"ticket:{ticket_id}:{FIELD_TRAVEL_KM}",
                    ticket_remote_id=ticket_id, kind="travel",
                    description=f"Fahrt / travel {distance} km", quantity=distance,
                    unit_cost=None, category=None, booked_at=booked_at, agent=agent,
                ))
            else:
                problems.append(BookingProblem(
                    ticket_id, f"ticket:{ticket_id}:{FIELD_TRAVEL_KM}", f"{FIELD_TRAVEL_KM} = {km}",
                    "travel km must be a positive whole number",
                ))
        if onsite is True:
            extras.append(RemoteExtra(
                remote_id=f"ticket:{ticket_id}:{FIELD_ONSITE}", ticket_remote_id=ticket_id,
                kind="visit", description=VISIT_DESCRIPTION, quantity=Decimal(1),
                unit_cost=None, category=None, booked_at=booked_at, agent=agent,
            ))
        return extras, problems

    def _my_id(self) -> int | None:
        """The API user's id (one `GET /users/me` per connector): its notes are the sidecar's."""
        if self._me is None:
            me = self.http.get_json(f"{API}/users/me")
            self._me = int(me["id"]) if isinstance(me, Mapping) and "id" in me else -1
            if isinstance(me, Mapping) and "id" in me and self._polling:
                self._me_record = me  # this poll's group rights, for the listing
        return self._me

    def ticket_url(self, ticket_remote_id: str) -> str:
        return f"{self.base_url}/#ticket/zoom/{ticket_remote_id}"

    # -- writing --------------------------------------------------------------------------

    def write_back(self, ticket_remote_id: str, change: WriteBack) -> bool:
        """Set status, reference and link, with at most one internal note, exactly once.

        One `PUT /tickets/{id}` with the fields and the note (`article`) together, without a
        read before it: when an earlier attempt may have landed, the outbox asks `remainder`
        first and writes only what is missing.
        """
        ticket_id = int(ticket_remote_id)
        fields = self._fields(change)
        payload: dict[str, Any] = dict(fields)
        if change.note_html:
            payload["article"] = {
                "type": "note",
                "internal": True,
                "content_type": "text/html",
                "subject": change.note_subject or f"ticketbill {change.marker}",
                "body": self._note_body(change),
            }
        # Not retried after a possible landing: a second attempt could add a second note.
        answer = self.http.put_json(f"{API}/tickets/{ticket_id}", payload,
                                    idempotent="article" not in payload)
        dropped = [key for key, value in fields.items()
                   if not isinstance(answer, Mapping) or answer.get(key) != value]
        if dropped:
            raise RemoteError(
                f"Zammad accepted the update of ticket {ticket_id} but did not store "
                f"{', '.join(dropped)}: the field is missing or not migrated yet (run "
                "`register`, then restart Zammad)",
                status=200,
            )
        self._remember_version(ticket_id, answer, with_note="article" in payload)
        return True

    def _remember_version(self, ticket_id: int, answer: Any, *, with_note: bool) -> None:
        """Record the `updated_at` our write gave the ticket (`written_version`), but only when
        nothing else changed since this run's search listed it: same time total, same state, one
        article more exactly when we added the note. Otherwise (a booking landed between the
        read and the write, or the ticket was not listed this run) the next poll reads it."""
        listed = self._records.get(str(ticket_id))
        written = parse_time(answer.get("updated_at")) if isinstance(answer, Mapping) else None
        if listed is None or written is None:
            return
        articles = int(listed.get("article_count") or 0) + with_note
        if (answer.get("time_unit") == listed.get("time_unit") and answer.get("state_id") == listed.get("state_id")
                and int(answer.get("article_count") or 0) == articles):
            self._written[str(ticket_id)] = written

    def written_version(self, ticket_remote_id: str) -> datetime | None:
        """The `updated_at` of the ticket after our last write in this process (`WrittenVersions`)."""
        return self._written.get(str(int(ticket_remote_id)))

    def remainder(self, ticket_remote_id: str, change: WriteBack) -> WriteBack | None:
        """The read-back after an uncertain failure: None if fields and note landed, else what
        is missing (a note that landed while the fields were dropped is not sent again)."""
        fields_done, note_done = self._landed(int(ticket_remote_id), change)
        if fields_done and (note_done or not change.note_html):
            return None
        return replace(change, note_subject=None, note_html=None) if note_done else change

    @staticmethod
    def _fields(change: WriteBack) -> dict[str, Any]:
        fields: dict[str, Any] = {FIELD_STATUS: change.billing_status}
        if change.invoice_reference is not None:
            fields[FIELD_REFERENCE] = change.invoice_reference
        if change.invoice_url is not None:
            fields[FIELD_URL] = change.invoice_url
        return fields

    def _landed(self, ticket_id: int, change: WriteBack) -> tuple[bool, bool]:
        """(fields already set, note with the marker already there); the reference field
        holding the marker proves both without reading the articles."""
        current = self.http.get_json(f"{API}/tickets/{ticket_id}")
        if not isinstance(current, Mapping):
            raise RemoteError(f"GET {API}/tickets/{ticket_id}: not a ticket record")
        if current.get(FIELD_REFERENCE) == change.marker:
            return True, True
        fields_done = all(current.get(key) == value for key, value in self._fields(change).items())
        return fields_done, self._marker_in_notes(ticket_id, change.marker)

    def _marker_in_notes(self, ticket_id: int, marker: str) -> bool:
        articles = self.http.get_json(f"{API}/ticket_articles/by_ticket/{ticket_id}") or []
        for article in articles:
            if not isinstance(article, Mapping) or not article.get("internal"):
                continue
            body = str(article.get("body") or "")
            if marker in body or marker in html.unescape(body):
                return True
        return False

    @staticmethod
    def _note_body(change: WriteBack) -> str:
        """The note, guaranteed to carry the marker (the read-before-write looks for it)."""
        body = change.note_html or ""
        if change.marker in body or change.marker in html.unescape(body):
            return body
        return f"{body}<p><small>ticketbill {html.escape(change.marker)}</small></p>"

    # -- mapping --------------------------------------------------------------------------

    def _reset_caches(self) -> None:
        """Names are cached per run: one lookup per organization, user and activity type."""
        self._organizations.clear()
        self._organizations_listed = False
        self._users.clear()
        self._records.clear()
        self._activity_types = None
        self._groups = None
        with self._listing_lock:
            self._listing, self._listing_tried = None, False
            self._me_record, self._role_groups = None, None

    def _search_records(self, answer: Any) -> list[Mapping[str, Any]]:
        """Both search shapes: a plain array (6.5+, or any `expand`) and `{tickets, assets}`."""
        if isinstance(answer, list):
            return answer
        if isinstance(answer, Mapping):
            ids = answer.get("tickets", answer.get("record_ids"))
            assets = answer.get("assets") or {}
            if isinstance(ids, list):
                self._prime_caches(assets)
                tickets = assets.get("Ticket") or {}
                missing = [i for i in ids if str(i) not in tickets]
                if missing:
                    raise RemoteError(f"search answer lacks assets for tickets {missing[:5]}")
                return [tickets[str(i)] for i in ids]
        raise RemoteError(f"unexpected ticket search answer from Zammad: {str(answer)[:200]}")

    def _prime_caches(self, assets: Mapping[str, Any]) -> None:
        for org_id, org in (assets.get("Organization") or {}).items():
            if isinstance(org, Mapping) and org.get("name"):
                self._organizations[int(org_id)] = org
        for user_id, user in (assets.get("User") or {}).items():
            if isinstance(user, Mapping):
                self._users[int(user_id)] = user

    def _ticket_record(
        self, record: Mapping[str, Any], closed_states: Mapping[int, str] | None
    ) -> RemoteTicket:
        ticket_id = record.get("id")
        if ticket_id is None:
            raise RemoteError(f"ticket record without id: {str(record)[:200]}")
        state = record.get("state")
        if not isinstance(state, str):
            state = (closed_states or {}).get(record.get("state_id") or -1)
            state = state or f"state {record.get('state_id')}"
        updated_at = parse_time(record.get("updated_at"))
        if updated_at is None:
            raise RemoteError(f"ticket {ticket_id} has no updated_at")
        group = record.get("group")
        if not isinstance(group, str) and record.get("group_id") is not None:
            group = self._group_name(int(record["group_id"]))
        return RemoteTicket(
            remote_id=str(ticket_id),
            number=str(record.get("number") or ticket_id),
            title=str(record.get("title") or ""),
            customer=self._customer(record),
            state=state,
            closed_at=parse_time(record.get("last_close_at") or record.get("close_at")),
            updated_at=updated_at,
            billing_status=record.get(FIELD_STATUS) or None,
            invoice_reference=record.get(FIELD_REFERENCE) or None,
            web_url=self.ticket_url(str(ticket_id)),
            category=record.get(FIELD_CATEGORY) or None,
            group=group,
        )

    def _customer(self, record: Mapping[str, Any]) -> RemoteCustomer | None:
        """Bill the ticket's organization, else the customer's primary organization.

        With `customer_fields` the organization's billing fields come along (one read per
        organization and run); without, an expanded record's organization name suffices.
        """
        org_id = record.get("organization_id")
        if not org_id and record.get("customer_id"):
            try:
                org_id = self._user(int(record["customer_id"])).get("organization_id")
            except NotFound:
                org_id = None
        if not org_id:
            return None
        org_id = int(org_id)
        if org_id not in self._organizations:
            expanded = record.get("organization")
            if (not self.customer_fields and isinstance(expanded, str)
                    and record.get("organization_id") == org_id):
                self._organizations[org_id] = {"name": expanded}
            else:
                self._organizations[org_id] = self._organization(org_id)
        org = self._organizations[org_id]
        return RemoteCustomer(remote_id=str(org_id),
                              name=str(org.get("name") or f"organization {org_id}"),
                              details=self._details(org) if self.customer_fields else None)

    def _organization(self, org_id: int) -> Mapping[str, Any]:
        """One organization with its billing fields. The first miss of a run lists them all
        (`GET /organizations`, ORGANIZATION_PAGE_SIZE a page): one request per 1,000
        organizations instead of one per organization, which an idle poll cannot afford."""
        if not self._organizations_listed:
            self._organizations_listed = True

            def fetch(page: int) -> Sequence[Mapping[str, Any]]:
                rows = self.http.get_json(f"{API}/organizations", {"page": page, "per_page": ORGANIZATION_PAGE_SIZE})
                if not isinstance(rows, list):
                    raise RemoteError(f"GET {API}/organizations: expected a list of organizations")
                return rows

            for org in self.http.paginate(fetch, per_page=ORGANIZATION_PAGE_SIZE):
                if isinstance(org, Mapping) and "id" in org:
                    self._organizations.setdefault(int(org["id"]), org)
            if org_id in self._organizations:
                return self._organizations[org_id]
        return self.http.get_json(f"{API}/organizations/{org_id}") or {}

    def customer(self, customer_remote_id: str) -> RemoteCustomer | None:
        """An organization with its billing fields (`CustomerReader`; read once a run)."""
        return self._customer({"organization_id": int(customer_remote_id)})

    @staticmethod
    def _details(org: Mapping[str, Any]) -> CustomerDetails | None:
        """The organization's billing fields; None while Zammad has none of them (no register
        yet, or the migration awaits its restart)."""
        if not any(column in org for column in ORGANIZATION_FIELDS):
            return None
        values = {field: (str(org[column]).strip() or None) if org.get(column) is not None
                  else None for column, field in ORGANIZATION_FIELDS.items()}
        return CustomerDetails(**values)

    def _user(self, user_id: int) -> Mapping[str, Any]:
        """One read per user and run, also when several threads want the same agent at once."""
        if user_id not in self._users:
            with self._users_lock:
                if user_id not in self._users:
                    self._users[user_id] = self.http.get_json(f"{API}/users/{user_id}") or {}
        return self._users[user_id]

    def _group_name(self, group_id: int) -> str | None:
        """Group names for plain (unexpanded) records; one `GET /groups` per run."""
        if self._groups is None:
            try:
                rows = self.http.get_json(f"{API}/groups") or []
            except AuthError:
                rows = []  # the group is informative only; no reason to stop the run
            self._groups = {int(r["id"]): str(r.get("name")) for r in rows if "id" in r}
        return self._groups.get(group_id)

    def _activity_name(self, type_id: int) -> str:
        if self._activity_types is None:
            types = self.http.get_json(f"{API}/time_accounting/types") or []
            self._activity_types = {int(t["id"]): str(t.get("name")) for t in types}
        return self._activity_types.get(type_id, f"type {type_id}")

    def _agent(self, row: Mapping[str, Any]) -> str:
        expanded = row.get("created_by")
        if isinstance(expanded, str) and expanded:
            return expanded
        user_id = row.get("created_by_id")
        if user_id is None:
            return "unknown"
        try:
            user = self._user(int(user_id))
        except NotFound:
            return f"user {user_id}"
        return str(user.get("login") or user.get("email") or f"user {user_id}")

    def _agent_name(self, row: Mapping[str, Any]) -> str | None:
        """First and last name of the booking agent (one cached user read per agent and run)."""
        user_id = row.get("created_by_id")
        if user_id is None:
            return None
        try:
            user = self._user(int(user_id))
        except NotFound:
            return None
        name = f"{user.get('firstname') or ''} {user.get('lastname') or ''}".strip()
        return name or None

    def _time_entry(self, row: Mapping[str, Any], ticket_id: int) -> RemoteTimeEntry:
        raw = row.get("time_unit")
        try:
            units = Decimal(str(raw))
        except InvalidOperation:
            raise RemoteError(
                f"time accounting {row.get('id')} of ticket {ticket_id}: time_unit {raw!r} "
                "is not a number"
            ) from None
        if not units.is_finite():
            raise RemoteError(f"time accounting {row.get('id')}: time_unit {raw!r} is not finite")
        activity = row.get("type")
        if not isinstance(activity, str):
            type_id = row.get("type_id")
            activity = self._activity_name(int(type_id)) if type_id is not None else None
        booked_at = parse_time(row.get("created_at"))
        if booked_at is None:
            raise RemoteError(f"time accounting {row.get('id')} has no created_at")
        return RemoteTimeEntry(
            remote_id=str(row.get("id")),
            ticket_remote_id=str(ticket_id),
            agent=self._agent(row),
            agent_name=self._agent_name(row),
            minutes=to_minutes(units, self.time_unit),
            booked_at=booked_at,
            activity=activity,
            remote_updated_at=parse_time(row.get("updated_at")),
        )
