"""Settings: read once from the environment and `.env`, validated into a frozen object.

Why one frozen object: every later layer receives plain, already-checked values, so a typo in
`.env` stops the program at start-up with one line naming the key, instead of failing halfway
through a billing run. Customer, contract and rate data are *not* settings; they live in the
database (see `addon.models`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat

from connectors.base import TIME_UNITS

HELPDESK_KINDS = ("zammad", "otrs", "rt", "api")
#: Settings fields that never appear in a repr, a log line or an error message.
SECRET_FIELDS = frozenset({"helpdesk_token", "helpdesk_password", "push_api_token", "smtp_password", "secret_key",
                           "zammad_signature_token"})
#: The API path each connector appends itself; a HELPDESK_URL ending in it would double it.
API_SUFFIXES = {"zammad": "/api/v1", "rt": "/REST/2.0"}
#: greedy up to the last @ of the URL: a password with an unencoded @ is masked whole
_URL_PASSWORD = re.compile(r"(//[^/:@\s]*:)\S*@")


def mask_url(url: str) -> str:
    """`url` with the password of its user part replaced by `***` (`scheme://user:***@host`)."""
    return _URL_PASSWORD.sub(r"\1***@", url)


class SettingsError(ValueError):
    """A setting is missing or malformed; `str()` is the one line shown to the admin."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Seller:
    """The invoicing company's legal data, printed on every invoice (§14 Abs. 4 UStG)."""

    name: str
    street: str
    postcode: str
    city: str
    country: str
    vat_id: str | None
    tax_number: str | None
    iban: str
    bic: str | None
    bank: str | None
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class Settings:
    """Everything the sidecar reads from its environment. Built by `load_settings` only."""

    helpdesk_kind: str
    helpdesk_url: str
    helpdesk_token: str | None
    helpdesk_user: str | None
    helpdesk_password: str | None
    helpdesk_time_unit: str
    database_url: str
    data_dir: Path
    public_url: str
    poll_interval_seconds: int
    sync_overlap_seconds: int
    #: helpdesk requests in flight at once while fetching bookings and writing back
    #: (HELPDESK_CONCURRENCY): round trips overlap instead of adding up
    helpdesk_concurrency: int
    timezone: str
    invoice_number_pattern: str
    invoice_language: str
    vat_rate: Decimal
    payment_terms_days: int
    seller: Seller
    rt_customer_source: str = "queue"
    rt_customer_field: str = "Customer"
    rt_queues: tuple[str, ...] = ()
    rt_timezone: str = "UTC"
    rt_closed_statuses: tuple[str, ...] = ("resolved",)
    #: processes that render and validate the monthly pass's documents ahead (RENDER_WORKERS;
    #: 0: one per core); about 330-370 MiB each at peak, Saxon included (bench.perf)
    render_workers: int = 0
    otrs_webservice: str | None = None
    otrs_routes: str = "auto"
    otrs_auth: str = "session"
    otrs_timezone: str = "UTC"
    otrs_activity_field: str | None = None
    otrs_agent_logins: dict[int, str] = field(default_factory=dict)
    push_api_token: str | None = field(default=None, repr=False)
    #: signs Zammad's webhook to this sidecar (the ticket-closed fast path); None: no webhook
    zammad_signature_token: str | None = field(default=None, repr=False)
    #: § 19 UStG: invoices without VAT and with the exemption note (category E)
    small_business: bool = False
    #: a PNG/JPEG printed top right on every invoice (the seller's letterhead logo)
    invoice_logo: Path | None = None
    cancellation_number_pattern: str = "ST-{YYYY}-{seq:05}"
    datev_consultant_number: int | None = None
    datev_client_number: int | None = None
    datev_account_length: int = 4
    datev_chart: str = "SKR03"
    #: First day of the fiscal year as MM-DD (DATEV header field 13).
    datev_fiscal_year_start: str = "01-01"
    datev_default_debtor: str | None = None
    #: E-mail delivery of issued invoices is on only when smtp_host is set.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_sender: str | None = None
    #: The customer-facing ticket URL with {number}, e.g. a customer portal; the PDF links a
    #: ticket only then (agent URLs of the helpdesk are never printed for customers).
    customer_ticket_url: str | None = None
    #: A deployment's own invoice templates (DIR/invoice/<name>.html), chosen per customer.
    invoice_template_dir: Path | None = None
    #: Number series of activity reports (documents of no-charge work, not invoices).
    activity_report_number_pattern: str = "LN-{YYYY}-{seq:05}"
    #: How many reverse proxies in front of `serve` set X-Forwarded-For/-Proto/-Host (0: none,
    #: the headers are ignored, since a client could forge them).
    trusted_proxy_hops: int = 0
    #: signs the web UI's session cookies (SECRET_KEY); None: a random key kept in DATA_DIR/secret_key
    secret_key: str | None = field(default=None, repr=False)
    #: sign-in with the helpdesk account: (role:<name> | group:<name>, sidecar role) rules, first
    #: match wins (UI_HELPDESK_ROLES); empty: only the sidecar's own accounts can sign in
    ui_helpdesk_roles: tuple[tuple[str, str], ...] = ()
    #: Flask-Limiter rate of sign-in attempts per client address (UI_LOGIN_RATE_LIMIT)
    ui_login_rate_limit: str = "5 per minute; 30 per hour"
    #: the largest request body accepted (MAX_REQUEST_BYTES; 413 beyond): a pushed ticket with
    #: thousands of entries fits, a body meant to exhaust memory does not
    max_request_bytes: int = 2 * 1024 * 1024

    @property
    def invoice_dir(self) -> Path:
        return self.data_dir / "invoices"

    def __repr__(self) -> str:
        """Every field, but secrets as `***` and the database URL without its password: a
        settings object ends up in tracebacks and debug logs, its secrets must not."""
        shown = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in SECRET_FIELDS and value is not None:
                text = "'***'"
            elif isinstance(value, str):  # any URL may carry user:password@
                text = repr(mask_url(value))
            else:
                text = repr(value)
            shown.append(f"{spec.name}={text}")
        return f"Settings({', '.join(shown)})"


def _required(env: Mapping[str, str], key: str) -> str:
    value = (env.get(key) or "").strip()
    if not value:
        raise SettingsError(key, "is missing (see .env.example)")
    return value


def _optional(env: Mapping[str, str], key: str) -> str | None:
    value = (env.get(key) or "").strip()
    return value or None


def _url(env: Mapping[str, str], key: str, default: str | None = None) -> str:
    raw = (env.get(key) or "").strip() or default
    if raw is None:
        raise SettingsError(key, "is missing (see .env.example)")
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(key, f"{mask_url(raw)!r} is not an http(s) URL with a host")
    return raw.rstrip("/")


def _helpdesk_url(env: Mapping[str, str], kind: str) -> str:
    """The helpdesk's base URL; the API path is the connector's business, not the admin's."""
    url = _url(env, "HELPDESK_URL", "http://127.0.0.1" if kind == "api" else None)
    suffix = API_SUFFIXES.get(kind)
    if suffix and url.lower().endswith(suffix.lower()):
        raise SettingsError("HELPDESK_URL", f"{url!r} ends in {suffix}: drop {suffix}, ticketbill adds it itself")
    return url


def _int(env: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = (env.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(key, f"{raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(key, f"must be at least {minimum}, got {value}")
    return value


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], default: str | None) -> str:
    raw = (env.get(key) or "").strip().lower() or default
    if raw is None:
        raise SettingsError(key, f"is missing; one of {', '.join(choices)}")
    if raw not in choices:
        raise SettingsError(key, f"{raw!r} is not one of {', '.join(choices)}")
    return raw


def _timezone(env: Mapping[str, str], key: str, default: str = "Europe/Berlin") -> str:
    raw = (env.get(key) or "").strip() or default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(key, f"{raw!r} is not an IANA time zone such as Europe/Berlin") from None
    return raw


def _number_pattern(env: Mapping[str, str], key: str, default: str = "RE-{YYYY}-{seq:05}") -> str:
    raw = (env.get(key) or "").strip() or default
    if "{seq" not in raw:
        raise SettingsError(key, f"{raw!r} has no {{seq}} placeholder")
    try:
        sample = raw.format(YYYY="2026", YY="26", MM="01", seq=1)
    except (KeyError, ValueError, IndexError) as exc:
        raise SettingsError(key, f"{raw!r} is not a valid pattern ({exc})") from None
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$&%*+-/")
    if not set(sample) <= allowed or len(sample) > 36:
        raise SettingsError(key, f"{raw!r} must give at most 36 of A-Z a-z 0-9 $&%*+-/ (DATEV Belegfeld 1)")
    return raw


def _seller(env: Mapping[str, str]) -> Seller:
    vat_id = _optional(env, "SELLER_VAT_ID")
    tax_number = _optional(env, "SELLER_TAX_NUMBER")
    if vat_id is None and tax_number is None:
        raise SettingsError("SELLER_VAT_ID", "is missing and so is SELLER_TAX_NUMBER; §14 UStG needs one")
    if vat_id is not None:
        vat_id = vat_id.replace(" ", "").upper()
        if not stdnum_vat.is_valid(vat_id):
            raise SettingsError("SELLER_VAT_ID", f"{vat_id!r} is not a valid EU VAT ID")
    iban = _required(env, "SELLER_IBAN").replace(" ", "").upper()
    if not stdnum_iban.is_valid(iban):
        raise SettingsError("SELLER_IBAN", f"{iban!r} is not a valid IBAN (checksum or length)")
    country = (_optional(env, "SELLER_COUNTRY") or "DE").upper()
    if len(country) != 2 or not country.isalpha():
        raise SettingsError("SELLER_COUNTRY", f"{country!r} is not an ISO 3166 two-letter code")
    return Seller(
        name=_required(env, "SELLER_NAME"),
        street=_required(env, "SELLER_STREET"),
        postcode=_required(env, "SELLER_POSTCODE"),
        city=_required(env, "SELLER_CITY"),
        country=country,
        vat_id=vat_id,
        tax_number=tax_number,
        iban=iban,
        bic=_optional(env, "SELLER_BIC"),
        bank=_optional(env, "SELLER_BANK"),
        email=_optional(env, "SELLER_EMAIL"),
        phone=_optional(env, "SELLER_PHONE"),
    )


def _names(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = (env.get(key) or "").strip()
    return tuple(part.strip() for part in raw.split(",") if part.strip()) if raw else default


def _fiscal_year_start(env: Mapping[str, str], key: str) -> str:
    raw = (env.get(key) or "").strip() or "01-01"
    try:
        month, day = (int(part) for part in raw.split("-"))
        date(2025, month, day)
    except ValueError:
        raise SettingsError(key, f"{raw!r} is not a month and day such as 01-01 or 07-01") from None
    return f"{month:02d}-{day:02d}"


def _optional_int(env: Mapping[str, str], key: str, low: int, high: int) -> int | None:
    raw = (env.get(key) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(key, f"{raw!r} is not a number from {low} to {high}")
    return int(raw)


def _debtor(env: Mapping[str, str], key: str) -> str | None:
    raw = _optional(env, key)
    if raw is not None and (not raw.isdigit() or not 5 <= len(raw) <= 9):
        raise SettingsError(key, f"{raw!r} is not a DATEV personal account (5 to 9 digits)")
    return raw


def _smtp_sender(env: Mapping[str, str], host: str | None) -> str | None:
    sender = _optional(env, "SMTP_SENDER") or _optional(env, "SELLER_EMAIL")
    if host is not None and (sender is None or "@" not in sender):
        raise SettingsError("SMTP_SENDER", "is missing or not an e-mail address (needed with SMTP_HOST)")
    return sender


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if raw in ("", "0", "false", "no", "nein"):
        return False
    if raw in ("1", "true", "yes", "ja"):
        return True
    raise SettingsError(key, f"{raw!r} is not true or false")


def _image(env: Mapping[str, str], key: str) -> Path | None:
    raw = _optional(env, key)
    if raw is None:
        return None
    path = Path(raw).expanduser().resolve()
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise SettingsError(key, f"{raw!r} is not a .png or .jpg file")
    if not path.is_file():
        raise SettingsError(key, f"{path} does not exist")
    return path


def _ticket_url(env: Mapping[str, str], key: str) -> str | None:
    value = _optional(env, key)
    if value is None:
        return None
    if "{number}" not in value or not value.startswith(("https://", "http://")):
        raise SettingsError(key, f"{value!r} must be an http(s) URL containing {{number}}")
    return value


def _directory(env: Mapping[str, str], key: str) -> Path | None:
    value = _optional(env, key)
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise SettingsError(key, f"{value!r} is not a directory")
    return path


def _push_token(env: Mapping[str, str], key: str) -> str | None:
    token = _optional(env, key)
    if token is not None and len(token) < 24:
        raise SettingsError(key, "is too short; use at least 24 random characters (e.g. openssl rand -hex 24)")
    return token


def _agent_logins(env: Mapping[str, str], key: str) -> dict[int, str]:
    """`2=billing,4=bob` → {2: "billing", 4: "bob"}: OTRS user ids the API cannot resolve."""
    result: dict[int, str] = {}
    for pair in _names(env, key, ()):
        user_id, _, login = pair.partition("=")
        if not user_id.strip().isdigit() or not login.strip():
            raise SettingsError(key, f"{pair!r} is not user-id=login, e.g. 4=bob")
        result[int(user_id)] = login.strip()
    return result


UI_ROLES = ("admin", "team_lead", "accountant", "viewer")  # addon.users.ROLES (settings import nothing above)


def _helpdesk_roles(env: Mapping[str, str], key: str) -> tuple[tuple[str, str], ...]:
    """`role:Admin=admin, group:Buchhaltung=accountant` → ((selector, role), ...) in order."""
    rules = []
    for pair in _names(env, key, ()):
        selector, _, role = pair.rpartition("=")
        kind, _, name = selector.strip().partition(":")
        if kind not in ("role", "group") or not name.strip():
            raise SettingsError(key, f"{pair!r} is not role:<helpdesk role>=<role> or group:<helpdesk group>=<role>")
        if role.strip() not in UI_ROLES:
            raise SettingsError(key, f"{pair!r}: {role.strip()!r} is not one of {', '.join(UI_ROLES)}")
        rules.append((f"{kind}:{name.strip()}", role.strip()))
    return tuple(rules)


def _secret_key(env: Mapping[str, str], key: str) -> str | None:
    value = _optional(env, key)
    if value is not None and len(value) < 32:
        raise SettingsError(key, "is too short; use at least 32 random characters (e.g. openssl rand -hex 32)")
    return value


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    """DATABASE_URL, parsed as SQLAlchemy will parse it; no error line ever holds its password.

    Why so careful: an unencoded `@` or `/` in the password makes the rest of the password
    look like the host, and every later error ("cannot resolve host …") would print it.
    """
    url = _optional(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'ticketbill.sqlite'}"
    if not url.startswith(("sqlite:", "postgresql")):
        raise SettingsError("DATABASE_URL", f"{mask_url(url)!r} is neither sqlite:/// nor postgresql://")
    if url.startswith("sqlite:"):
        return url
    rest = url.partition("://")[2]
    userinfo = rest.rpartition("@")[0]
    if rest.count("@") > 1 or any(c in userinfo for c in "/?#"):
        raise SettingsError("DATABASE_URL", "the password holds an unencoded @, /, ? or #: write them as "
                                            "%40, %2F, %3F and %23")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise SettingsError("DATABASE_URL", f"{mask_url(url)!r} is not a database URL "
                                            "(postgresql+psycopg://user:password@host:port/database)") from None
    return url


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate `env` into `Settings`; raise `SettingsError` naming the first bad key."""
    kind = _choice(env, "HELPDESK_KIND", HELPDESK_KINDS, None)
    token = _optional(env, "HELPDESK_TOKEN")
    user = _optional(env, "HELPDESK_USER")
    password = _optional(env, "HELPDESK_PASSWORD")
    if kind == "api" and not _optional(env, "PUSH_API_TOKEN"):
        raise SettingsError("PUSH_API_TOKEN", "is missing; HELPDESK_KIND=api receives tickets through the push API")
    if kind != "api" and token is None and (user is None or password is None):
        raise SettingsError("HELPDESK_TOKEN", "is missing (or set HELPDESK_USER and HELPDESK_PASSWORD)")
    data_dir = Path(_optional(env, "DATA_DIR") or "instance").expanduser().resolve()
    database_url = _database_url(env, data_dir)
    vat_raw = _optional(env, "VAT_RATE") or "19"
    try:
        vat_rate = Decimal(vat_raw)
    except InvalidOperation:
        raise SettingsError("VAT_RATE", f"{vat_raw!r} is not a number") from None
    if not Decimal(0) <= vat_rate < Decimal(100):
        raise SettingsError("VAT_RATE", f"{vat_raw!r} must be a percentage from 0 to 99")
    return Settings(
        helpdesk_kind=kind,
        helpdesk_url=_helpdesk_url(env, kind),
        helpdesk_token=token,
        helpdesk_user=user,
        helpdesk_password=password,
        helpdesk_time_unit=_choice(env, "HELPDESK_TIME_UNIT", tuple(TIME_UNITS), "minute"),
        database_url=database_url,
        data_dir=data_dir,
        public_url=_url(env, "PUBLIC_URL", "http://127.0.0.1:8400"),
        poll_interval_seconds=_int(env, "POLL_INTERVAL_SECONDS", 300, 10),
        sync_overlap_seconds=_int(env, "SYNC_OVERLAP_SECONDS", 120, 0),
        helpdesk_concurrency=_int(env, "HELPDESK_CONCURRENCY", 4, 1),
        timezone=_timezone(env, "TIMEZONE"),
        invoice_number_pattern=_number_pattern(env, "INVOICE_NUMBER_PATTERN"),
        invoice_language=_choice(env, "INVOICE_LANGUAGE", ("de", "en"), "de"),
        vat_rate=vat_rate,
        payment_terms_days=_int(env, "PAYMENT_TERMS_DAYS", 14, 0),
        seller=_seller(env),
        rt_customer_source=_choice(env, "RT_CUSTOMER_SOURCE", ("queue", "custom_field", "requestor_domain"), "queue"),
        rt_customer_field=_optional(env, "RT_CUSTOMER_FIELD") or "Customer",
        rt_queues=_names(env, "RT_QUEUES", ()),
        rt_timezone=_timezone(env, "RT_TIMEZONE", "UTC"),
        rt_closed_statuses=_names(env, "RT_CLOSED_STATUSES", ("resolved",)),
        render_workers=_int(env, "RENDER_WORKERS", 0, 0),
        otrs_webservice=_optional(env, "HELPDESK_OTRS_WEBSERVICE"),
        otrs_routes=_choice(env, "HELPDESK_OTRS_ROUTES", ("auto", "examples", "classic"), "auto"),
        otrs_auth=_choice(env, "HELPDESK_OTRS_AUTH", ("session", "header"), "session"),
        otrs_timezone=_timezone(env, "HELPDESK_OTRS_TIMEZONE", "UTC"),
        otrs_activity_field=_optional(env, "HELPDESK_OTRS_ACTIVITY_FIELD"),
        otrs_agent_logins=_agent_logins(env, "HELPDESK_OTRS_AGENT_LOGINS"),
        push_api_token=_push_token(env, "PUSH_API_TOKEN"),
        zammad_signature_token=_push_token(env, "ZAMMAD_WEBHOOK_SECRET"),
        small_business=_flag(env, "SELLER_SMALL_BUSINESS"),
        invoice_logo=_image(env, "INVOICE_LOGO"),
        cancellation_number_pattern=_number_pattern(env, "CANCELLATION_NUMBER_PATTERN", "ST-{YYYY}-{seq:05}"),
        datev_consultant_number=_optional_int(env, "DATEV_CONSULTANT_NUMBER", 1001, 9_999_999),
        datev_client_number=_optional_int(env, "DATEV_CLIENT_NUMBER", 1, 99_999),
        datev_account_length=_optional_int(env, "DATEV_ACCOUNT_LENGTH", 4, 8) or 4,
        datev_chart=_choice(env, "DATEV_CHART", ("skr03", "skr04"), "skr03").upper(),
        datev_fiscal_year_start=_fiscal_year_start(env, "DATEV_FISCAL_YEAR_START"),
        datev_default_debtor=_debtor(env, "DATEV_DEFAULT_DEBTOR"),
        smtp_host=(smtp_host := _optional(env, "SMTP_HOST")),
        smtp_port=_int(env, "SMTP_PORT", 587, 1),
        smtp_security=_choice(env, "SMTP_SECURITY", ("plain", "starttls", "ssl"), "starttls"),
        smtp_user=_optional(env, "SMTP_USER"),
        smtp_password=_optional(env, "SMTP_PASSWORD"),
        smtp_sender=_smtp_sender(env, smtp_host),
        customer_ticket_url=_ticket_url(env, "CUSTOMER_TICKET_URL"),
        invoice_template_dir=_directory(env, "INVOICE_TEMPLATE_DIR"),
        activity_report_number_pattern=_number_pattern(env, "ACTIVITY_REPORT_NUMBER_PATTERN", "LN-{YYYY}-{seq:05}"),
        trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0, 0),
        secret_key=_secret_key(env, "SECRET_KEY"),
        ui_helpdesk_roles=_helpdesk_roles(env, "UI_HELPDESK_ROLES"),
        ui_login_rate_limit=_optional(env, "UI_LOGIN_RATE_LIMIT") or "5 per minute; 30 per hour",
        max_request_bytes=_int(env, "MAX_REQUEST_BYTES", 2 * 1024 * 1024, 64 * 1024),
    )


def settings_from_environment(dotenv_path: Path | None = None) -> Settings:
    """Merge `.env` (if present) under the process environment and validate.

    The process environment wins, so a deployment can override single keys without editing
    the file. A file named explicitly (`--env-file`, `TICKETBILL_ENV_FILE`) must exist: a typo
    there would otherwise run the command against the wrong (or no) configuration.
    """
    named = dotenv_path or (Path(os.environ["TICKETBILL_ENV_FILE"]) if os.environ.get("TICKETBILL_ENV_FILE") else None)
    if named is not None and not named.is_file():
        raise SettingsError("--env-file" if dotenv_path else "TICKETBILL_ENV_FILE", f"{named} does not exist")
    path = named or Path(".env")
    try:
        values = dotenv_values(path) if path.exists() else {}
    except OSError as exc:
        raise SettingsError(str(path), f"cannot be read ({exc.strerror})") from None
    merged: dict[str, str] = {k: v for k, v in values.items() if v is not None}
    merged.update(os.environ)
    return load_settings(merged)
