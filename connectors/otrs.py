"""OTRS / Znuny connector: the GenericInterface REST web service mapped onto `connectors.base`.

Facts this module relies on (see shared/reference/otrs-api.md):
- URL form `<base>/<alias>/nph-genericinterface.pl/Webservice/<Name>/<Route>`; the alias is
  `/otrs/` on OTRS and Znuny 6, `/znuny/` on fresh Znuny 7, and the routes depend on which YAML
  the admin imported (classic `GET /Ticket` search vs. the Znuny example `POST /Ticket/Search`),
  so base path, web service name and route table are configuration. By default (`auto`) the
  search route is found on first contact: OTRS 6.0 ships only the classic YAML, where the
  example route is HTTP 500 "HTTP::REST Error while determine Operation".
- Operation errors come back as HTTP 200 with `{"Error": {"ErrorCode", "ErrorMessage"}}`; an
  unknown route is HTTP 500 text/plain. Non-existent tickets answer `TicketGet.AccessDenied`.
- Every call authenticates on its own (SessionID from `POST /Session`, or on Znuny 6.5+ the
  `X-OTRS-Header-UserLogin/Password` headers); bodies need `Content-Type: application/json`.
- TicketSearch has no offset, only `Limit` (default 500); an empty result is `{}`; ids are
  strings. `StateType` must be the lowercase type name `closed`. `TicketChangeTime*` is
  history-based (any history row in the window, our own write-back included).
- Accounted time is `TimeUnit` per article (who: the article's creator, when: its create time);
  the unit is whatever the organisation agreed on (Znuny's dropdown input stores seconds).
- Dynamic fields cannot be created through the API; TicketGet lists only fields with a value.
- `IsVisibleForCustomer` defaults to 1 on TicketUpdate: the internal note sends 0 explicitly.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from connectors.base import (
    BILLING_CATEGORY_LABELS,
    BILLING_STATUS_LABELS,
    TIME_UNITS,
    AuthError,
    BookingProblem,
    ConnectorError,
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
from connectors.bookings import note_text, parse_note
from connectors.http import MASKING, HttpClient
from connectors.otrs_scripts import customer_companies_script, dynamic_fields_script

if TYPE_CHECKING:
    from addon.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GI_PATH = "/otrs/nph-genericinterface.pl"
DEFAULT_WEBSERVICE = "GenericTicketConnectorREST"
OTRS_DATE = "%Y-%m-%d %H:%M:%S"
SEARCH_LIMIT = 500  # SysConfig GenericInterface::Operation::TicketSearch###SearchLimit default
GET_BATCH = 20  # TicketGet takes "1,2,3": one request per 20 tickets without articles
MIN_WINDOW = timedelta(seconds=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# Operation -> (HTTP method, route). Routes are matched by Znuny per web service YAML.
ROUTE_SETS: dict[str, dict[str, tuple[str, str]]] = {
    # var/webservices/examples/GenericTicketConnectorREST.yml (Znuny >= 6.1, offered in the UI)
    "examples": {
        "SessionCreate": ("POST", "/Session"),
        "SessionGet": ("GET", "/Session/:SessionID"),
        "TicketCreate": ("POST", "/Ticket"),
        "TicketGet": ("GET", "/Ticket/:TicketID"),
        "TicketSearch": ("POST", "/Ticket/Search"),
        "TicketUpdate": ("PATCH", "/Ticket/:TicketID"),
    },
    # development/webservices/GenericTicketConnectorREST.yml (OTRS 6, pyotrs, older docs)
    "classic": {
        "SessionCreate": ("POST", "/Session"),
        "SessionGet": ("GET", "/Session/:SessionID"),
        "TicketCreate": ("POST", "/Ticket"),
        "TicketGet": ("GET", "/Ticket/:TicketID"),
        "TicketSearch": ("GET", "/Ticket"),
        "TicketUpdate": ("PATCH", "/Ticket/:TicketID"),
    },
}
ROUTE_CHOICES = ("auto", *ROUTE_SETS)
AUTH_MODES = ("session", "header")
ZOOM_SCREEN = "Ticket::Frontend::AgentTicketZoom###DynamicField"
NOTE_SCREEN = "Ticket::Frontend::AgentTicketNote###DynamicField"
# Ticket-level errors that Znuny also gives for tickets that do not exist.
GONE_CODES = ("AccessDenied", "NotValidTicketID", "NotTicketData", "WrongStructure")
AUTH_CODES = ("NoPermission",)  # besides AuthFail/SessionInvalid (SessionRejected)


class SessionRejected(AuthError):
    """`AuthFail`/`SessionInvalid`: wrong credentials or an expired session (log in again)."""


@dataclass(frozen=True)
class FieldSpec:
    """One billing dynamic field as the Znuny console imports it."""

    role: str
    name: str
    label: str
    field_type: str
    object_type: str = "Ticket"
    possible_values: Mapping[str, str] | None = None
    link: str | None = None

    def definition(self, order: int) -> dict[str, Any]:
        config: dict[str, Any] = {"DefaultValue": ""}
        if self.field_type == "Dropdown":
            config.update(
                PossibleValues=dict(self.possible_values or {}),
                PossibleNone="1",
                TranslatableValues="0",
                TreeView="0",
                Link="",
            )
        else:
            config.update(Link=self.link or "", RegExList=[])
        return {
            "Name": self.name,
            "Label": self.label,
            "FieldType": self.field_type,
            "ObjectType": self.object_type,
            "FieldOrder": order,
            "ValidID": 1,
            "InternalField": 0,
            "Config": config,
        }


def _no_route(exc: RemoteError) -> bool:
    """Znuny's answer for a route the web service lacks: HTTP 500 "... determine Operation"."""
    return exc.status == 500 and "determine Operation" in exc.body


def _otrs_date(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime(OTRS_DATE)


def _parse_date(raw: Any, zone: ZoneInfo) -> datetime | None:
    if not raw or not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip(), OTRS_DATE).replace(tzinfo=zone).astimezone(UTC)
    except ValueError:
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _df_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """Dynamic field values of a ticket or article, from either shape Znuny/OTRS use.

    TicketGet gives `DynamicField: [{"Name", "Value"}]`; some configurations (and webhook
    payloads) give flat `DynamicField_<Name>` keys. `null` values (OTRS 6) mean "no value".
    """
    values: dict[str, Any] = {}
    for entry in _as_list(record.get("DynamicField")):
        if (
            isinstance(entry, Mapping)
            and entry.get("Name")
            and entry.get("Value") not in (None, "")
        ):
            values[str(entry["Name"])] = entry["Value"]
    for key, value in record.items():
        if key.startswith("DynamicField_") and value not in (None, "", []):
            values.setdefault(key[len("DynamicField_") :], value)
    return values


def _df_names(record: Mapping[str, Any]) -> set[str]:
    """Every dynamic field a TicketGet record lists, with or without a value.

    A listed name proves the field exists: OTRS 6 lists all ticket fields (null when empty),
    Znuny lists ticket fields with a value and all article fields (null when empty).
    """
    names = {
        str(entry["Name"])
        for entry in _as_list(record.get("DynamicField"))
        if isinstance(entry, Mapping) and entry.get("Name")
    }
    names.update(key[len("DynamicField_") :] for key in record if key.startswith("DynamicField_"))
    return names


def _display_name(sender: str) -> str:
    """`"Alice Agent" <a@x>` → Alice Agent; GI notes carry the bare name; an address alone
    names nobody (`parseaddr` would read a bare name as an address)."""
    sender = sender.strip()
    if "<" in sender:
        return parseaddr(sender)[0].strip()
    return "" if "@" in sender else sender.strip('"').strip()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value in (None, "") else str(value)


def split_helpdesk_url(url: str) -> tuple[str, str, str | None]:
    """(`scheme://host[:port]`, GenericInterface path, web service name or None) from a URL.

    Accepts the bare host (`https://otrs.example`), the alias (`https://host/znuny`) or the
    full web service URL an admin copies from the Znuny UI.
    """
    parts = urlsplit(url.rstrip("/"))
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    marker = "/nph-genericinterface.pl"
    if marker in path:
        gi_path, _, rest = path.partition(marker)
        segments = [s for s in rest.split("/") if s]
        webservice = segments[1] if len(segments) >= 2 and segments[0] == "Webservice" else None
        return base, gi_path + marker, webservice
    if path:
        return base, path + marker, None
    return base, DEFAULT_GI_PATH, None


class OTRSConnector:
    """The sync's view of one OTRS 6 / Znuny 6.x-7.x system through its GenericInterface.

    One instance per helpdesk; not thread-safe (the session id is cached and renewed on
    `AuthFail`, which Znuny answers for expired sessions).
    """

    kind = "otrs"

    def __init__(
        self,
        base_url: str,
        *,
        user: str,
        password: str,
        webservice: str | None = None,
        gi_path: str | None = None,
        routes: str | Mapping[str, tuple[str, str]] = "auto",
        auth: str = "session",
        time_unit: str = "minute",
        overlap_seconds: int = 120,
        otrs_timezone: str = "UTC",
        search_limit: int = SEARCH_LIMIT,
        history_start: datetime = EPOCH,
        status_field: str = "BillingStatus",
        reference_field: str = "InvoiceNumber",
        url_field: str = "InvoiceURL",
        category_field: str = "BillingCategory",
        activity_field: str | None = "BillingActivity",
        data_dir: Path | str | None = None,
        agent_logins: Mapping[int, str] | None = None,
        http: HttpClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        **http_options: Any,
    ) -> None:
        if not user or not password:
            raise ValueError("OTRS/Znuny needs an agent login and password (no API tokens)")
        if auth not in AUTH_MODES:
            raise ValueError(f"auth {auth!r} is not one of {', '.join(AUTH_MODES)}")
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
        if isinstance(routes, str):
            if routes not in ROUTE_CHOICES:
                raise ValueError(f"routes {routes!r} is not one of {', '.join(ROUTE_CHOICES)}")
            table = dict(ROUTE_SETS["examples" if routes == "auto" else routes])
        else:
            table = {**ROUTE_SETS["examples"], **routes}
        #: the route set in use: "examples", "classic", "custom", or None until detected
        self.route_set: str | None = (
            None if routes == "auto" else routes if isinstance(routes, str) else "custom"
        )
        if search_limit < 1:
            raise ValueError("search_limit must be positive")
        host, url_gi_path, url_webservice = split_helpdesk_url(base_url)
        self.base_url = host
        self.gi_path = "/" + (gi_path or url_gi_path).strip("/")
        self.webservice = webservice or url_webservice or DEFAULT_WEBSERVICE
        self.routes = table
        self.auth = auth
        self.user = user
        self._password = password
        self.time_unit = time_unit
        self.overlap = timedelta(seconds=overlap_seconds)
        self.zone = ZoneInfo(otrs_timezone)
        self.search_limit = search_limit
        self.history_start = history_start
        self.fields = (
            FieldSpec(
                "status",
                status_field,
                "Abrechnung / Billing status",
                "Dropdown",
                possible_values=BILLING_STATUS_LABELS,
            ),
            FieldSpec("reference", reference_field, "Rechnungsnummer / Invoice number", "Text"),
            FieldSpec(
                "url",
                url_field,
                "Rechnung (Link) / Invoice link",
                "Text",
                link=f"[% Data.DynamicField_{url_field} %]",
            ),
            FieldSpec(
                "category",
                category_field,
                "Abrechnungsart / Billing category",
                "Dropdown",
                possible_values=BILLING_CATEGORY_LABELS,
            ),
        )
        self.activity_field = activity_field
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.now = now
        self.service_url = f"{self.base_url}{self.gi_path}/Webservice/{self.webservice}"
        headers = {"Content-Type": "application/json"}
        if auth == "header":
            headers["X-OTRS-Header-UserLogin"] = user
            headers["X-OTRS-Header-Password"] = password
        if http is None:
            http = HttpClient(
                self.service_url, headers=headers, secrets=(password,), **http_options
            )
        else:
            http.session.headers.update(headers)
            MASKING.add(password)
        self.http = http
        self._session_id: str | None = None
        self._logins: dict[int, str] = dict(agent_logins or {})
        self._names: dict[int, str] = {}
        self._my_id: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OTRSConnector:
        """Build from the frozen settings (the HELPDESK_OTRS_* keys of .env); `overrides` win."""
        if not settings.helpdesk_user or not settings.helpdesk_password:
            raise ConnectorError(
                "HELPDESK_USER and HELPDESK_PASSWORD: OTRS/Znuny has no API tokens; "
                "set the login and password of the billing agent"
            )
        options: dict[str, Any] = {
            "user": settings.helpdesk_user,
            "password": settings.helpdesk_password,
            "time_unit": settings.helpdesk_time_unit,
            "overlap_seconds": settings.sync_overlap_seconds,
            "data_dir": settings.data_dir,
            "routes": settings.otrs_routes,
            "auth": settings.otrs_auth,
            "otrs_timezone": settings.otrs_timezone,
        }
        if settings.otrs_webservice:
            options["webservice"] = settings.otrs_webservice
        if settings.otrs_activity_field:
            options["activity_field"] = settings.otrs_activity_field
        if settings.otrs_agent_logins:
            options["agent_logins"] = dict(settings.otrs_agent_logins)
        options.update(overrides)
        return cls(settings.helpdesk_url, **options)

    # -- the GenericInterface call ---------------------------------------------------------

    def _login(self) -> str:
        method, route = self.routes["SessionCreate"]
        answer = self._send(
            "SessionCreate", method, route, {"UserLogin": self.user, "Password": self._password}
        )
        session_id = answer.get("SessionID")
        if not isinstance(session_id, str) or not session_id:
            raise RemoteError(
                "SessionCreate: answer has no SessionID", status=200, body=json.dumps(answer)[:500]
            )
        MASKING.add(session_id)
        self._session_id = session_id
        return session_id

    def call(
        self,
        operation: str,
        data: Mapping[str, Any] | None = None,
        ticket_id: str | int | None = None,
    ) -> dict[str, Any]:
        """One operation: route lookup, authentication, error mapping; the decoded answer.

        Session mode logs in lazily and once more when Znuny says the session is gone. With
        `routes="auto"` the first search finds the route set: the Znuny example route, else
        the classic one of OTRS 6 (the only route the two sets name differently that the
        connector uses).
        """
        if operation != "TicketSearch" or self.route_set is not None:
            return self._call(operation, data, ticket_id)
        try:
            answer = self._call(operation, data, ticket_id)
        except RemoteError as exc:
            if not _no_route(exc):
                raise
            example = exc
        else:
            self.route_set = "examples"
            return answer
        self.routes = {**self.routes, "TicketSearch": ROUTE_SETS["classic"]["TicketSearch"]}
        try:
            answer = self._call(operation, data, ticket_id)
        except RemoteError as exc:
            if not _no_route(exc):
                raise
            self.routes = {**self.routes, "TicketSearch": ROUTE_SETS["examples"]["TicketSearch"]}
            raise RemoteError(
                f"web service {self.webservice} has neither the Znuny example search route "
                "POST /Ticket/Search nor the classic GET /Ticket of OTRS 6; import the web "
                "service as the README says, or check HELPDESK_OTRS_WEBSERVICE and the "
                f"TicketSearch route under Admin → Web Services → {self.webservice}",
                status=500,
                body=example.body,
            ) from None
        self.route_set = "classic"
        log.info("web service %s uses the classic routes (OTRS 6 YAML)", self.webservice)
        return answer

    def _call(
        self,
        operation: str,
        data: Mapping[str, Any] | None = None,
        ticket_id: str | int | None = None,
    ) -> dict[str, Any]:
        try:
            method, pattern = self.routes[operation]
        except KeyError:
            raise ConnectorError(f"no route configured for operation {operation}") from None
        payload = dict(data or {})
        if ticket_id is not None and ":TicketID" not in pattern:
            payload["TicketID"] = str(ticket_id)
        for attempt in (1, 2):
            route = pattern.replace(":TicketID", str(ticket_id))
            if ":SessionID" in route:
                route = route.replace(":SessionID", self._session_id or self._login())
            if self.auth == "header":
                return self._send(operation, method, route, payload)
            session_id = self._session_id or self._login()
            try:
                return self._send(operation, method, route, {**payload, "SessionID": session_id})
            except SessionRejected:  # expired session; a permission error is not retried
                self._session_id = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _send(
        self, operation: str, method: str, route: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            if method == "GET":
                answer = self.http.request_json(method, route, params=payload)
            else:
                # Reads and logins may repeat; a TicketUpdate/TicketCreate may not.
                idempotent = operation in ("TicketSearch", "SessionCreate", "TicketGet")
                answer = self.http.request_json(
                    method, route, json_body=payload, idempotent=idempotent
                )
        except RemoteError as exc:
            if _no_route(exc):
                raise RemoteError(
                    f"{operation}: web service {self.webservice} has no route {method} {route} "
                    "(wrong route set or base path? see HELPDESK_OTRS_ROUTES)",
                    status=500,
                    body=exc.body,
                ) from None
            raise
        if not isinstance(answer, Mapping):
            raise RemoteError(
                f"{operation}: expected a JSON object from {self.webservice}",
                status=200,
                body=json.dumps(answer)[:500],
            )
        error = answer.get("Error")
        if error:
            raise self._error(operation, error)
        return dict(answer)

    def _error(self, operation: str, error: Any) -> ConnectorError:
        code = str(error.get("ErrorCode", "")) if isinstance(error, Mapping) else ""
        message = str(error.get("ErrorMessage", "")) if isinstance(error, Mapping) else str(error)
        text = MASKING.mask(f"{operation}: {code or 'error'}: {message}")
        suffix = code.rpartition(".")[2]
        header_hint = (" (OTRS 6 ignores X-OTRS-Header logins: use HELPDESK_OTRS_AUTH=session"
                       " there)") if self.auth == "header" else ""
        if suffix in ("AuthFail", "SessionInvalid"):
            return SessionRejected(text + header_hint)
        if header_hint and suffix == "MissingParameter" and "UserLogin" in message:
            return AuthError(text + header_hint)  # the headers never reached the operation
        if suffix in AUTH_CODES or (suffix == "AccessDenied" and operation != "TicketGet"):
            return AuthError(text)
        if operation == "TicketGet" and suffix in GONE_CODES:
            return NotFound(f"{text} (the ticket does not exist, or {self.user} may not see it)")
        return RemoteError(text, status=200, body=json.dumps(error)[:500])

    # -- identity and registration --------------------------------------------------------

    def check(self) -> str:
        """Log in (session mode) and run one search: proves URL, web service and permissions."""
        if self.auth == "session":
            self._session_id = None
        self._search({"Limit": 1})
        return (
            f"{self.user} at {self.service_url} "
            f"({'session' if self.auth == 'session' else 'header'} auth, {self.route_set} routes)"
        )

    @property
    def field_specs(self) -> tuple[FieldSpec, ...]:
        """The dynamic fields ticketbill needs, the activity field last if configured."""
        specs = list(self.fields)
        if self.activity_field:
            specs.append(
                FieldSpec(
                    "activity",
                    self.activity_field,
                    "Tätigkeit / Activity",
                    "Text",
                    object_type="Article",
                )
            )
        return tuple(specs)

    def dynamic_field_yaml(self) -> str:
        """The `Admin::DynamicField::Import` file for our fields, screens included.

        Written as JSON, which is valid YAML and parsed by Znuny's YAML::XS loader, so no YAML
        writer is needed and the file is byte-for-byte reproducible.
        """
        specs = self.field_specs
        document = {
            "DynamicFields": {s.name: s.definition(9000 + i) for i, s in enumerate(specs)},
            "DynamicFieldScreens": {
                s.name: ({ZOOM_SCREEN: 1} if s.object_type == "Ticket" else {NOTE_SCREEN: 1})
                for s in specs
            },
        }
        header = (
            "# ticketbill billing fields for OTRS/Znuny; import as the OTRS system user:\n"
            "#   bin/otrs.Console.pl Admin::DynamicField::Import <this file>\n"
        )
        return header + json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    def dynamic_field_script(self, path: str) -> str:
        """The Perl script that creates the fields on OTRS 6.0 (no Import command there).

        The same definitions as the YAML; `path` is only quoted in the script's usage line.
        """
        specs = self.field_specs
        fields = [s.definition(9000 + i) for i, s in enumerate(specs)]
        screens: dict[str, list[str]] = {}
        for spec in specs:
            screens.setdefault(ZOOM_SCREEN if spec.object_type == "Ticket" else NOTE_SCREEN,
                               []).append(spec.name)
        return dynamic_fields_script(fields, screens, path)

    def admin_commands(self, yaml_path: str) -> list[str]:
        """Console commands that create the fields and show them in ticket zoom."""
        commands = [f"bin/otrs.Console.pl Admin::DynamicField::Import {yaml_path}"]
        for spec in self.field_specs:
            screen = ZOOM_SCREEN if spec.object_type == "Ticket" else NOTE_SCREEN
            commands.append(
                "bin/otrs.Console.pl Admin::DynamicField::ScreenConfig "
                f"--dynamic-field {spec.name} "
                f"--screen '{screen}' --set-mode 1"
            )
        return commands

    def register(self) -> RegistrationReport:
        """Write the field YAML to the data dir and verify that Znuny knows every field.

        No API creates dynamic fields, so a missing field is a problem naming the console
        commands. Existence is proven read-only: TicketGet lists fields that hold a value; for
        the others a search filtering the field on an impossible value must find nothing while
        the same search without the filter finds a ticket (Znuny ignores unknown field names).
        """
        yaml_path = "ticketbill-dynamic-fields.yml"
        script_path = "otrs-dynamic-fields.pl"
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            target = self.data_dir / "otrs-dynamic-fields.yml"
            target.write_text(self.dynamic_field_yaml(), encoding="utf-8")
            yaml_path = str(target)
            script = self.data_dir / "otrs-dynamic-fields.pl"
            script_path = str(script)
            script.write_text(self.dynamic_field_script(script_path), encoding="utf-8")
            companies = self.data_dir / "otrs-customer-companies.pl"
            companies.write_text(customer_companies_script(str(companies)), encoding="utf-8")
        present: list[str] = []
        unverified: list[str] = []
        missing: list[str] = []
        seen, saw_article = self._fields_seen_on_tickets()
        baseline = self._search({"Limit": 1}) if self._search_uses_body() else []
        nonce = f"ticketbill-probe-{secrets.token_hex(6)}"
        for spec in self.field_specs:
            if spec.name in seen:
                present.append(spec.name)
            elif spec.object_type != "Ticket":
                # Every article lists every article field; TicketSearch ignores them.
                (missing if saw_article else unverified).append(spec.name)
            elif not self._search_uses_body() or not baseline:
                unverified.append(spec.name)
            elif self._search({"Limit": 1, f"DynamicField_{spec.name}": {"Equals": nonce}}):
                missing.append(spec.name)  # an unknown field name is ignored: hits come back
            else:
                present.append(spec.name)
        problems: list[str] = []
        if missing or unverified:
            commands = (
                "; ".join(self.admin_commands(yaml_path))
                + f" (OTRS 6.0, which lacks Admin::DynamicField::Import: perl {script_path})"
            )
            if missing:
                problems.append(
                    f"dynamic fields missing in {self.webservice}: {', '.join(missing)}. "
                    f"The API cannot create them; as the OTRS system user run: {commands}"
                )
            if unverified:
                if not self._search_uses_body():
                    reason = "the classic GET search route cannot filter on dynamic fields"
                elif not baseline:
                    reason = "no ticket is visible yet"
                else:
                    reason = "article fields show only on articles, and no article is visible"
                problems.append(
                    f"could not verify dynamic fields {', '.join(unverified)} ({reason}); "
                    f"if they are missing, run: {commands}"
                )
        return RegistrationReport(created=(), present=tuple(present), problems=tuple(problems))

    def _fields_seen_on_tickets(self) -> tuple[set[str], bool]:
        """Our field names listed on the 20 latest tickets, and whether any had an article."""
        names: set[str] = set()
        saw_article = False
        wanted = {spec.name for spec in self.field_specs}
        ids = self._search({"Limit": 20, "SortBy": "Changed", "OrderBy": "Down"})
        # Article fields are listed (null when empty) on every article: one per ticket will do.
        for ticket in self._get_tickets(ids, first_article=True):
            names.update(_df_names(ticket))
            for article in _as_list(ticket.get("Article")):
                if isinstance(article, Mapping):
                    saw_article = True
                    names.update(_df_names(article))
            if wanted <= names:
                break
        return names & wanted, saw_article

    # -- reading --------------------------------------------------------------------------

    def _search_uses_body(self) -> bool:
        return self.routes["TicketSearch"][0] != "GET"

    def _search(self, criteria: Mapping[str, Any]) -> list[int]:
        answer = self.call("TicketSearch", criteria)
        ids = answer.get("TicketID")  # absent (`{}`) when nothing matched
        result: list[int] = []
        for raw in _as_list(ids):
            try:
                result.append(int(raw))
            except (TypeError, ValueError):
                raise RemoteError(
                    f"TicketSearch: ticket id {raw!r} is not a number",
                    status=200,
                    body=json.dumps(answer)[:500],
                ) from None
        return result

    def _closed_ids_between(
        self, start: datetime, end: datetime, open_end: bool, state_types: tuple[str, ...] | None = ("closed",)
    ) -> set[int]:
        """Closed tickets with a history row in the whole seconds [start, end], both inclusive
        (tickets of `state_types`; None: of any state).

        TicketSearch has no offset: a full answer (== Limit) may hide more tickets, so the
        window is halved into [start, middle] and [middle + 1 s, end] until each part fits;
        the parts never overlap, as Znuny's Newer/Older bounds are both inclusive. A single
        full second is read from both ends of the ticket-number order (up to 2 x Limit). `open_end`
        leaves the newest part unbounded, so a Znuny clock ahead of ours loses nothing.
        """
        criteria: dict[str, Any] = {
            **({"StateType": list(state_types)} if state_types else {}),
            "TicketChangeTimeNewerDate": _otrs_date(start, self.zone),
            "Limit": self.search_limit,
            "SortBy": "TicketNumber",  # unique: a total order for the two-ended read below
            "OrderBy": "Up",
        }
        if not open_end:
            criteria["TicketChangeTimeOlderDate"] = _otrs_date(end, self.zone)
        ids = self._search(criteria)
        if len(ids) < self.search_limit:
            return set(ids)
        if end <= start:
            if open_end:  # the open newest part: bound it at "now" and look again
                return self._closed_ids_between(start, start, False, state_types) | self._closed_ids_between(
                    start + MIN_WINDOW, start + MIN_WINDOW, True, state_types
                )
            # One second, a full answer: the same search from the other end of the (unique)
            # ticket number order. If both halves meet, together they are the whole set.
            other = self._search({**criteria, "OrderBy": "Down"})
            if set(ids) & set(other):
                return set(ids) | set(other)
            raise RemoteError(
                f"TicketSearch: more than {self.search_limit} closed tickets changed within "
                f"the second {_otrs_date(start, self.zone)}; raise the search limit"
            )
        half = int((end - start).total_seconds()) // 2
        middle = start + timedelta(seconds=half)
        return self._closed_ids_between(start, middle, False, state_types) | self._closed_ids_between(
            middle + MIN_WINDOW, end, open_end, state_types
        )

    def _get_tickets(
        self, ids: Sequence[int], *, first_article: bool = False
    ) -> list[dict[str, Any]]:
        """TicketGet in batches ("1,2,3"), without articles or with only the first one.

        A ticket deleted or merged since the search fails its whole batch (AccessDenied), so
        that batch is fetched again one by one and the vanished ticket is skipped.
        """
        tickets: list[dict[str, Any]] = []
        params: dict[str, Any] = {"DynamicFields": 1, "Extended": 1}
        if first_article:
            params.update(AllArticles=1, ArticleLimit=1)
        for index in range(0, len(ids), GET_BATCH):
            chunk = ids[index : index + GET_BATCH]
            try:
                answer = self.call("TicketGet", params, ticket_id=",".join(map(str, chunk)))
            except NotFound:
                if len(chunk) == 1:
                    log.info("ticket %s vanished between search and fetch", chunk[0])
                    continue
                for ticket_id in chunk:
                    tickets.extend(self._get_tickets([ticket_id], first_article=first_article))
                continue
            tickets.extend(t for t in _as_list(answer.get("Ticket")) if isinstance(t, Mapping))
        for record in tickets:
            self._learn_logins(record)
        return tickets

    def _ticket_record(self, ticket_remote_id: str, *, articles: bool) -> dict[str, Any]:
        try:
            ticket_id = int(ticket_remote_id)
        except ValueError:
            raise NotFound(f"ticket {ticket_remote_id!r}: OTRS ticket ids are numbers") from None
        params = {"DynamicFields": 1, "Extended": 1, "AllArticles": 1 if articles else 0}
        answer = self.call("TicketGet", params, ticket_id=ticket_id)
        records = [t for t in _as_list(answer.get("Ticket")) if isinstance(t, Mapping)]
        if not records:
            raise NotFound(f"TicketGet: ticket {ticket_id} returned no data")
        self._learn_logins(records[0])
        return dict(records[0])

    def _window(self, cursor: datetime | None) -> tuple[datetime, datetime]:
        start = (cursor - self.overlap) if cursor is not None else self.history_start
        start = start.astimezone(UTC).replace(microsecond=0)
        end = self.now().astimezone(UTC).replace(microsecond=0)
        return min(start, end), end

    def closed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Closed tickets with any change at or after `cursor - overlap`, oldest change first."""
        start, end = self._window(cursor)
        ids = sorted(self._closed_ids_between(start, end, True))
        # The search asked for StateType closed; a reopen between search and fetch drops it.
        tickets = [
            self._remote_ticket(t) for t in self._get_tickets(ids) if t.get("StateType") == "closed"
        ]
        tickets.sort(key=lambda t: (t.updated_at, int(t.remote_id)))
        yield from tickets

    def changed_tickets_since(self, cursor: datetime | None) -> Iterator[RemoteTicket]:
        """Tickets of any state with a change at or after `cursor - overlap`, oldest first.

        `TicketMerge` moves the merged ticket's articles and `time_accounting` rows to the
        surviving ticket (article ids unchanged), so merged time arrives with the survivor
        under the same entry ids; the merged ticket itself reports `merged` and no time.
        The ticket-level `TimeUnit` says whether an open ticket has time at all.
        """
        start, end = self._window(cursor)
        ids = sorted(self._closed_ids_between(start, end, True, None))
        tickets = []
        for record in self._get_tickets(ids):
            kind = str(record.get("StateType") or "")
            if kind == "removed":
                continue
            state_type = kind if kind in ("closed", "merged") else "open"
            ticket = self._remote_ticket(record)
            tickets.append(replace(
                ticket, state_type=state_type, merged_into="" if state_type == "merged" else None,
                has_time=self._units(record.get("TimeUnit"), f"ticket {ticket.remote_id}") != 0))
        tickets.sort(key=lambda t: (t.updated_at, int(t.remote_id)))
        yield from tickets

    def ticket(self, ticket_remote_id: str) -> RemoteTicket:
        return self._remote_ticket(self._ticket_record(ticket_remote_id, articles=False))

    def _remote_ticket(self, record: Mapping[str, Any]) -> RemoteTicket:
        ticket_id = str(record.get("TicketID"))
        values = _df_values(record)
        customer_id = record.get("CustomerID")
        customer = (
            RemoteCustomer(remote_id=str(customer_id), name=str(customer_id))
            if customer_id not in (None, "")
            else None
        )
        changed = _parse_date(record.get("Changed"), self.zone)
        if changed is None:
            raise RemoteError(
                f"TicketGet: ticket {ticket_id} has no readable Changed time", status=200
            )
        return RemoteTicket(
            remote_id=ticket_id,
            number=str(record.get("TicketNumber") or ticket_id),
            title=str(record.get("Title") or ""),
            customer=customer,
            state=str(record.get("State") or ""),
            closed_at=_parse_date(record.get("Closed"), self.zone),  # present with Extended=1
            updated_at=changed,
            billing_status=_scalar(values.get(self.fields[0].name)),
            invoice_reference=_scalar(values.get(self.fields[1].name)),
            web_url=self.ticket_url(ticket_id),
            category=_scalar(values.get(self.fields[3].name)),  # unset: billing's default
            group=_scalar(record.get("Queue")),
        )

    def time_entries(self, ticket_remote_id: str) -> Sequence[RemoteTimeEntry]:
        """One entry per article with a non-zero `TimeUnit`, plus any time without an article.

        TicketGet shows time only summed per article; the article's creator and create time
        are the booking's agent and date. Time booked without an article (console, merges,
        corrections) shows only in the ticket total: it becomes one entry on the ticket owner,
        so no minute is lost.
        """
        record = self._ticket_record(ticket_remote_id, articles=True)
        ticket_id = str(record.get("TicketID"))
        ticket_values = _df_values(record)
        self._learn_names(record)
        entries: list[RemoteTimeEntry] = []
        article_total = Decimal(0)
        for article in _as_list(record.get("Article")):
            if not isinstance(article, Mapping):
                continue
            units = self._units(article.get("TimeUnit"), f"article {article.get('ArticleID')}")
            if units == 0:
                continue
            article_total += units
            created = _parse_date(article.get("CreateTime"), self.zone)
            if created is None:
                raise RemoteError(
                    f"TicketGet: article {article.get('ArticleID')} of ticket {ticket_id} has "
                    "no readable CreateTime",
                    status=200,
                )
            entries.append(
                RemoteTimeEntry(
                    remote_id=f"article-{article.get('ArticleID')}",
                    ticket_remote_id=ticket_id,
                    agent=self._article_agent(article),
                    agent_name=self._names.get(_int(article.get("CreateBy"))),
                    minutes=self._minutes(units),
                    booked_at=created,
                    activity=self._activity(_df_values(article), ticket_values),
                    remote_updated_at=_parse_date(article.get("ChangeTime"), self.zone) or created,
                )
            )
        total = self._units(record.get("TimeUnit"), f"ticket {ticket_id}")
        rest = total - article_total
        if rest != 0:
            changed = _parse_date(record.get("Changed"), self.zone) or self.now()
            entries.append(
                RemoteTimeEntry(
                    remote_id=f"ticket-{ticket_id}-without-article",
                    ticket_remote_id=ticket_id,
                    agent=str(record.get("Owner") or "unknown"),
                    agent_name=self._names.get(_int(record.get("OwnerID"))),
                    minutes=self._minutes(rest),
                    booked_at=_parse_date(record.get("Closed"), self.zone) or changed,
                    activity=self._activity({}, ticket_values),
                    remote_updated_at=changed,
                )
            )
        return entries

    def _minutes(self, units: Decimal) -> Decimal:
        return to_minutes(units, self.time_unit)

    def _units(self, raw: Any, where: str) -> Decimal:
        if raw in (None, ""):
            return Decimal(0)
        try:
            return Decimal(str(raw).replace(",", "."))
        except InvalidOperation:
            raise RemoteError(
                f"TicketGet: TimeUnit {raw!r} of {where} is not a number", status=200
            ) from None

    def _activity(
        self, article_values: Mapping[str, Any], ticket_values: Mapping[str, Any]
    ) -> str | None:
        if not self.activity_field:
            return None
        return _scalar(article_values.get(self.activity_field)) or _scalar(
            ticket_values.get(self.activity_field)
        )

    def _article_agent(self, article: Mapping[str, Any]) -> str:
        """The booking agent's login, from the article's creator (`CreateBy`, a user id).

        `From` is no help: an article created with a customer user carries the customer's
        address although an agent wrote it. No operation maps user ids to logins, but every
        ticket names its owner and responsible agent with id and login, so an unknown id is
        looked up through one search for a ticket that user owns (or is responsible for).
        """
        try:
            user_id = int(article.get("CreateBy"))
        except (TypeError, ValueError):
            return "unknown"
        return self._login_of(user_id)

    def _learn_names(self, record: Mapping[str, Any]) -> None:
        """Agents' full names from the `From` of their internal notes, for the invoice.

        No operation returns user data, but Znuny and OTRS write the author's full name into
        the `From` of an agent's note ("Alice Agent", or `"Alice Agent" <alice@…>` from the
        web UI). Only internal agent articles count, and not a ticket's first article: a
        reply's `From` is the queue's system address, and the first article of a ticket made
        through the API carries the customer's (seen on Znuny 6.5: SenderType agent, channel
        Internal, `From` "Cust One" <cust1@…>).
        """
        for article in _as_list(record.get("Article")):
            if (
                not isinstance(article, Mapping)
                or article.get("SenderType") != "agent"
                or str(article.get("ArticleNumber")) == "1"
            ):
                continue
            channel = article.get("CommunicationChannel")
            if channel != "Internal" and not (
                channel is None and str(article.get("CommunicationChannelID")) == "3"
            ):  # OTRS 6 gives only the id; 3 is the internal channel
                continue
            user_id = _int(article.get("CreateBy"))
            name = _display_name(str(article.get("From") or ""))
            if user_id is not None and name:
                self._names.setdefault(user_id, name)

    def _learn_logins(self, record: Mapping[str, Any]) -> None:
        for id_key, login_key in (("OwnerID", "Owner"), ("ResponsibleID", "Responsible")):
            user_id, login = record.get(id_key), record.get(login_key)
            if isinstance(login, str) and login:
                try:
                    self._logins.setdefault(int(user_id), login)
                except (TypeError, ValueError):
                    continue

    def _login_of(self, user_id: int) -> str:
        if user_id in self._logins:
            return self._logins[user_id]
        for criterion in ("OwnerIDs", "ResponsibleIDs"):
            ids = self._search({criterion: [user_id], "Limit": 1})
            if ids:
                for record in self._get_tickets(ids[:1]):
                    self._learn_logins(record)
                if user_id in self._logins:
                    return self._logins[user_id]
        # Deterministic fallback; configure `agent_logins` for agents who own no ticket.
        self._logins[user_id] = f"user {user_id}"
        return self._logins[user_id]

    def extras(
        self, ticket_remote_id: str
    ) -> tuple[Sequence[RemoteExtra], Sequence[BookingProblem]]:
        """Booking lines (`connectors.bookings`) in the ticket's internal notes.

        Only articles hidden from the customer count (what the customer sees is a reply, not a
        booking). Notes by the connector's own agent are its invoice notes and are skipped.
        Znuny returns HTML notes as their plain-text rendering; `note_text` handles both.
        """
        record = self._ticket_record(ticket_remote_id, articles=True)
        ticket_id = str(record.get("TicketID"))
        me = self._own_user_id()
        extras: list[RemoteExtra] = []
        problems: list[BookingProblem] = []
        for article in _as_list(record.get("Article")):
            if not isinstance(article, Mapping) or str(article.get("IsVisibleForCustomer")) != "0":
                continue
            if str(article.get("CreateBy")) == str(me):
                continue
            booked_at = _parse_date(article.get("CreateTime"), self.zone)
            if booked_at is None:
                raise RemoteError(
                    f"TicketGet: article {article.get('ArticleID')} of ticket "
                    f"{ticket_id} has no readable CreateTime",
                    status=200,
                )
            found, bad = parse_note(
                note_text(str(article.get("Body") or ""), str(article.get("ContentType") or "")),
                ticket_remote_id=ticket_id,
                source_id=f"article:{article.get('ArticleID')}",
                booked_at=booked_at,
                agent=self._article_agent(article),
            )
            extras += found
            problems += bad
        return extras, problems

    def _own_user_id(self) -> int:
        """The connector agent's user id, from SessionGet (one login per connector)."""
        if self._my_id is None:
            data = self.call("SessionGet")
            values = {
                str(item.get("Key")): item.get("Value")
                for item in _as_list(data.get("SessionData"))
                if isinstance(item, Mapping)
            }
            try:
                self._my_id = int(str(values.get("UserID")))
            except ValueError:
                raise RemoteError("SessionGet: no UserID in the session data", status=200) from None
            self._logins.setdefault(self._my_id, str(values.get("UserLogin") or self.user))
            if values.get("UserFullname"):
                self._names.setdefault(self._my_id, str(values["UserFullname"]))
        return self._my_id

    def ticket_url(self, ticket_remote_id: str) -> str:
        alias = self.gi_path.rsplit("/", 1)[0]
        return f"{self.base_url}{alias}/index.pl?Action=AgentTicketZoom;TicketID={ticket_remote_id}"

    # -- writing --------------------------------------------------------------------------

    def write_back(self, ticket_remote_id: str, change: WriteBack) -> bool:
        """Set the billing fields and add one internal note, unless the marker is there.

        Read before write: the note (subject or body containing `change.marker`) proves an
        earlier write landed, even if the run crashed before recording it. Field values that
        already match are not sent again (each write adds history and bumps `Changed`).
        """
        record = self._ticket_record(ticket_remote_id, articles=True)
        current = _df_values(record)
        wanted: dict[str, str] = {self.fields[0].name: change.billing_status}
        if change.invoice_reference is not None:
            wanted[self.fields[1].name] = change.invoice_reference
        if change.invoice_url is not None:
            wanted[self.fields[2].name] = change.invoice_url
        fields = [
            {"Name": name, "Value": value}
            for name, value in wanted.items()
            if _scalar(current.get(name)) != value
        ]
        wants_note = change.note_subject is not None or change.note_html is not None
        # Only our own internal notes count: a customer mail quoting the invoice number is not
        # proof that the note was written.
        me = str(self._own_user_id()) if wants_note else ""
        note_present = any(
            isinstance(article, Mapping)
            and str(article.get("IsVisibleForCustomer")) == "0"
            and str(article.get("CreateBy")) == me
            and (
                change.marker in str(article.get("Subject") or "")
                or change.marker in str(article.get("Body") or "")
            )
            for article in _as_list(record.get("Article"))
        )
        if not wants_note:
            note_present = _scalar(current.get(self.fields[1].name)) == change.marker or not fields
        if note_present and not fields:
            return False
        body: dict[str, Any] = {}
        if fields:
            body["DynamicField"] = fields
        if wants_note and not note_present:
            body["Article"] = self._note(change)
        if not body:
            return False
        answer = self.call("TicketUpdate", body, ticket_id=int(record["TicketID"]))
        if (
            wants_note
            and not note_present
            and not (answer.get("ArticleID") or answer.get("ArticleIDs"))
        ):
            raise RemoteError(
                f"TicketUpdate: ticket {ticket_remote_id}: no article created",
                status=200,
                body=json.dumps(answer)[:500],
            )
        return True

    @staticmethod
    def _note(change: WriteBack) -> dict[str, Any]:
        subject = (change.note_subject or f"ticketbill: {change.billing_status}")[:150]
        if change.marker not in subject:
            subject = f"{subject} [{change.marker}]"  # Znuny keeps 200 characters of a subject
        if change.note_html is not None:
            body, content_type = change.note_html, "text/html; charset=utf-8"
        else:
            body, content_type = subject, "text/plain; charset=utf-8"
        if change.marker not in body:
            body += (
                f"\n\n{change.marker}"
                if content_type.startswith("text/plain")
                else f"<p>{change.marker}</p>"
            )
        return {
            "CommunicationChannel": "Internal",
            "IsVisibleForCustomer": 0,  # Znuny's default is 1: the customer would see it
            "SenderType": "agent",
            "Subject": subject,
            "Body": body,
            "ContentType": content_type,
            "NoAgentNotify": 1,
            "HistoryComment": "%%ticketbill",
        }


def _main(argv: Sequence[str]) -> int:
    """`python -m connectors.otrs dynamic-fields-yaml|dynamic-field-names|dynamic-fields-script
    [PREFIX]` (for .ci/znuny-up.sh); PREFIX names the fields PREFIXBillingStatus and so on."""
    command, *rest = list(argv) or [""]
    prefix = rest[0] if len(rest) == 1 and rest[0].isalnum() else ""
    if len(rest) > 1 or (rest and not prefix):
        command = ""
    names = {} if not prefix else {
        "status_field": f"{prefix}BillingStatus", "reference_field": f"{prefix}InvoiceNumber",
        "url_field": f"{prefix}InvoiceURL", "category_field": f"{prefix}BillingCategory",
        "activity_field": f"{prefix}BillingActivity",
    }
    connector = OTRSConnector("http://127.0.0.1", user="-", password="-", **names)
    if command == "dynamic-fields-yaml":
        sys.stdout.write(connector.dynamic_field_yaml())
        return 0
    if command == "dynamic-field-names":
        sys.stdout.write("".join(f"{spec.name}\n" for spec in connector.field_specs))
        return 0
    if command == "dynamic-fields-script":
        sys.stdout.write(connector.dynamic_field_script("otrs-dynamic-fields.pl"))
        return 0
    sys.stderr.write("usage: python -m connectors.otrs "
                     "dynamic-fields-yaml|dynamic-field-names|dynamic-fields-script [PREFIX]\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
