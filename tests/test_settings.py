"""Settings: valid input gives a frozen object; each bad key gives one line naming it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from addon.settings import SettingsError, load_settings

VALID = {
    "HELPDESK_KIND": "zammad",
    "HELPDESK_URL": "https://zammad.example.com/",
    "HELPDESK_TOKEN": "secret-token",
    "SELLER_NAME": "Muster IT GmbH",
    "SELLER_STREET": "Musterstraße 1",
    "SELLER_POSTCODE": "10115",
    "SELLER_CITY": "Berlin",
    "SELLER_VAT_ID": "DE136695976",
    "SELLER_IBAN": "DE89 3704 0044 0532 0130 00",
}


def test_valid_settings_are_frozen_and_normalised(tmp_path: Path) -> None:
    settings = load_settings({**VALID, "DATA_DIR": str(tmp_path)})
    assert settings.helpdesk_url == "https://zammad.example.com"
    assert settings.seller.iban == "DE89370400440532013000"
    assert settings.database_url == f"sqlite:///{tmp_path / 'ticketbill.sqlite'}"
    assert settings.vat_rate == Decimal("19")
    assert settings.helpdesk_time_unit == "minute"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.helpdesk_url = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        ({"HELPDESK_URL": "htp:/broken"}, "HELPDESK_URL", "not an http(s) URL"),
        ({"HELPDESK_URL": ""}, "HELPDESK_URL", "missing"),
        ({"HELPDESK_TOKEN": ""}, "HELPDESK_TOKEN", "missing"),
        ({"HELPDESK_KIND": "jira"}, "HELPDESK_KIND", "not one of"),
        ({"SELLER_IBAN": "DE00 1234"}, "SELLER_IBAN", "not a valid IBAN"),
        ({"SELLER_VAT_ID": "DE123"}, "SELLER_VAT_ID", "not a valid EU VAT ID"),
        ({"SELLER_VAT_ID": ""}, "SELLER_VAT_ID", "SELLER_TAX_NUMBER"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE", "IANA"),
        ({"POLL_INTERVAL_SECONDS": "often"}, "POLL_INTERVAL_SECONDS", "whole number"),
        ({"POLL_INTERVAL_SECONDS": "1"}, "POLL_INTERVAL_SECONDS", "at least 10"),
        ({"INVOICE_NUMBER_PATTERN": "RE-{YYYY}"}, "INVOICE_NUMBER_PATTERN", "{seq}"),
        ({"INVOICE_NUMBER_PATTERN": "RE {seq}"}, "INVOICE_NUMBER_PATTERN", "DATEV"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL", "neither"),
        ({"VAT_RATE": "neunzehn"}, "VAT_RATE", "not a number"),
        ({"HELPDESK_TIME_UNIT": "day"}, "HELPDESK_TIME_UNIT", "not one of"),
    ],
)
def test_bad_key_is_named(change: dict[str, str], key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**VALID, **change})
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{key}: ")


def test_tax_number_alone_is_enough() -> None:
    settings = load_settings({**VALID, "SELLER_VAT_ID": "", "SELLER_TAX_NUMBER": "30/123/45678"})
    assert settings.seller.vat_id is None
    assert settings.seller.tax_number == "30/123/45678"


def test_cli_reports_bad_env_in_one_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in {**VALID, "HELPDESK_URL": "nonsense"}.items()))
    result = subprocess.run(
        [sys.executable, "-m", "addon.cli", "--env-file", str(env_file), "sync", "--once"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: HELPDESK_URL: 'nonsense' is not an http(s) URL with a host"


def test_small_business_and_logo(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n")
    settings = load_settings({**VALID, "SELLER_SMALL_BUSINESS": "ja", "INVOICE_LOGO": str(logo)})
    assert settings.small_business is True
    assert settings.invoice_logo == logo.resolve()
    with pytest.raises(SettingsError, match=r"INVOICE_LOGO: .* does not exist"):
        load_settings({**VALID, "INVOICE_LOGO": str(tmp_path / "missing.png")})
    with pytest.raises(SettingsError, match="SELLER_SMALL_BUSINESS"):
        load_settings({**VALID, "SELLER_SMALL_BUSINESS": "maybe"})
