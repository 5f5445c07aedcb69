"""Settings: read once from the environment and `.env`, validated into a frozen object.

Why one frozen object: every later layer receives plain, already-checked values, so a typo in
`.env` stops the program at start-up with one line naming the key, instead of failing halfway
through a billing run. Customer, contract and rate data are *not* settings; they live in the
database (see `addon.models`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat

HELPDESK_KINDS = ("zammad", "otrs", "rt")
TIME_UNITS = {"minute": Decimal(1), "hour": Decimal(60), "quarter": Decimal(15), "second": Decimal(1) / 60}


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

    @property
    def minutes_per_time_unit(self) -> Decimal:
        """How many minutes one booked helpdesk time unit stands for."""
        return TIME_UNITS[self.helpdesk_time_unit]

    @property
    def invoice_dir(self) -> Path:
        return self.data_dir / "invoices"


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
        raise SettingsError(key, f"{raw!r} is not an http(s) URL with a host")
    return raw.rstrip("/")


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


def _number_pattern(env: Mapping[str, str], key: str) -> str:
    raw = (env.get(key) or "").strip() or "RE-{YYYY}-{seq:05}"
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


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate `env` into `Settings`; raise `SettingsError` naming the first bad key."""
    kind = _choice(env, "HELPDESK_KIND", HELPDESK_KINDS, None)
    token = _optional(env, "HELPDESK_TOKEN")
    user = _optional(env, "HELPDESK_USER")
    password = _optional(env, "HELPDESK_PASSWORD")
    if token is None and (user is None or password is None):
        raise SettingsError("HELPDESK_TOKEN", "is missing (or set HELPDESK_USER and HELPDESK_PASSWORD)")
    data_dir = Path(_optional(env, "DATA_DIR") or "instance").expanduser().resolve()
    database_url = _optional(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'ticketbill.sqlite'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise SettingsError("DATABASE_URL", f"{database_url!r} is neither sqlite:/// nor postgresql://")
    vat_raw = _optional(env, "VAT_RATE") or "19"
    try:
        vat_rate = Decimal(vat_raw)
    except InvalidOperation:
        raise SettingsError("VAT_RATE", f"{vat_raw!r} is not a number") from None
    if not Decimal(0) <= vat_rate < Decimal(100):
        raise SettingsError("VAT_RATE", f"{vat_raw!r} must be a percentage from 0 to 99")
    return Settings(
        helpdesk_kind=kind,
        helpdesk_url=_url(env, "HELPDESK_URL"),
        helpdesk_token=token,
        helpdesk_user=user,
        helpdesk_password=password,
        helpdesk_time_unit=_choice(env, "HELPDESK_TIME_UNIT", tuple(TIME_UNITS), "minute"),
        database_url=database_url,
        data_dir=data_dir,
        public_url=_url(env, "PUBLIC_URL", "http://127.0.0.1:8400"),
        poll_interval_seconds=_int(env, "POLL_INTERVAL_SECONDS", 300, 10),
        sync_overlap_seconds=_int(env, "SYNC_OVERLAP_SECONDS", 120, 0),
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
    )


def settings_from_environment(dotenv_path: Path | None = None) -> Settings:
    """Merge `.env` (if present) under the process environment and validate.

    The process environment wins, so a deployment can override single keys without editing
    the file.
    """
    path = dotenv_path or Path(os.environ.get("TICKETBILL_ENV_FILE", ".env"))
    merged: dict[str, str] = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}
    merged.update(os.environ)
    return load_settings(merged)
