"""The settings of the invoice lifecycle: cancellation numbers, DATEV, SMTP delivery."""

from __future__ import annotations

import pytest

from addon.settings import SettingsError, load_settings

BASE = {
    "HELPDESK_KIND": "zammad", "HELPDESK_URL": "http://helpdesk.test", "HELPDESK_TOKEN": "t",
    "SELLER_NAME": "Nordlicht IT-Service GmbH", "SELLER_STREET": "Hafenstraße 12", "SELLER_POSTCODE": "20457",
    "SELLER_CITY": "Hamburg", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.cancellation_number_pattern == "ST-{YYYY}-{seq:05}"
    assert (settings.datev_consultant_number, settings.datev_client_number) == (None, None)
    assert (settings.datev_account_length, settings.datev_chart, settings.datev_fiscal_year_start) == (4, "SKR03",
                                                                                                      "01-01")
    assert settings.datev_default_debtor is None
    assert settings.smtp_host is None  # delivery off


def test_values_are_read_and_normalised() -> None:
    settings = load_settings({
        **BASE, "CANCELLATION_NUMBER_PATTERN": "STORNO-{YY}{MM}-{seq:04}", "DATEV_CONSULTANT_NUMBER": "29098",
        "DATEV_CLIENT_NUMBER": "55003", "DATEV_ACCOUNT_LENGTH": "5", "DATEV_CHART": "skr04",
        "DATEV_FISCAL_YEAR_START": "7-1", "DATEV_DEFAULT_DEBTOR": "100000", "SMTP_HOST": "mail.example.com",
        "SMTP_PORT": "465", "SMTP_SECURITY": "SSL", "SMTP_USER": "billing", "SMTP_PASSWORD": "hunter2-smtp",
        "SELLER_EMAIL": "buchhaltung@nordlicht.example",
    })
    assert settings.cancellation_number_pattern == "STORNO-{YY}{MM}-{seq:04}"
    assert (settings.datev_consultant_number, settings.datev_client_number) == (29098, 55003)
    assert (settings.datev_account_length, settings.datev_chart, settings.datev_fiscal_year_start) == (5, "SKR04",
                                                                                                      "07-01")
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("mail.example.com", 465, "ssl")
    assert settings.smtp_sender == "buchhaltung@nordlicht.example"  # falls back to the seller's address
    assert "hunter2-smtp" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        ({"CANCELLATION_NUMBER_PATTERN": "ST-{YYYY}"}, "CANCELLATION_NUMBER_PATTERN", "no {seq}"),
        ({"CANCELLATION_NUMBER_PATTERN": "ST {seq}"}, "CANCELLATION_NUMBER_PATTERN", "DATEV"),
        ({"CANCELLATION_NUMBER_PATTERN": "ST-{year}-{seq}"}, "CANCELLATION_NUMBER_PATTERN", "not a valid pattern"),
        ({"DATEV_CONSULTANT_NUMBER": "12"}, "DATEV_CONSULTANT_NUMBER", "1001"),
        ({"DATEV_CLIENT_NUMBER": "abc"}, "DATEV_CLIENT_NUMBER", "not a number"),
        ({"DATEV_ACCOUNT_LENGTH": "9"}, "DATEV_ACCOUNT_LENGTH", "4 to 8"),
        ({"DATEV_CHART": "SKR07"}, "DATEV_CHART", "not one of"),
        ({"DATEV_FISCAL_YEAR_START": "13-01"}, "DATEV_FISCAL_YEAR_START", "month and day"),
        ({"DATEV_DEFAULT_DEBTOR": "12ab"}, "DATEV_DEFAULT_DEBTOR", "personal account"),
        ({"SMTP_HOST": "mail.example.com"}, "SMTP_SENDER", "missing"),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY", "not one of"),
        ({"SMTP_PORT": "0"}, "SMTP_PORT", "at least 1"),
    ],
)
def test_bad_values_are_named(change: dict[str, str], key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, **change})
    assert caught.value.key == key
    assert fragment in str(caught.value)
