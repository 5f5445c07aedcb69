"""Every registered connector implements `HelpdeskConnector`, by structure and by signature.

A connector that drifts from the protocol (a renamed parameter, a missing method) would only
fail at run time inside the sync; this test makes the convention a checked rule.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from addon.settings import Settings, load_settings
from connectors import REGISTRY, get_connector
from connectors.base import BookingReader, ConnectorError, HelpdeskConnector

PROTOCOL_METHODS = (
    "check", "register", "closed_tickets_since", "changed_tickets_since", "time_entries", "ticket",
    "write_back", "ticket_url",
)
# Connectors that already read bookings besides time (`BookingReader`); OTRS is to follow.
BOOKING_READERS = ("zammad", "rt")


def settings_for(kind: str) -> Settings:
    env = {
        "HELPDESK_KIND": "zammad",
        "HELPDESK_URL": "http://127.0.0.1:9/",
        "HELPDESK_TOKEN": "protocol-test-token",
        "HELPDESK_USER": "billing",
        "HELPDESK_PASSWORD": "protocol-test-password",
        "SELLER_NAME": "Nordlicht IT GmbH",
        "SELLER_STREET": "Hafenstraße 1",
        "SELLER_POSTCODE": "20095",
        "SELLER_CITY": "Hamburg",
        "SELLER_TAX_NUMBER": "22/815/08151",
        "SELLER_IBAN": "DE89370400440532013000",
    }
    return dataclasses.replace(load_settings(env), helpdesk_kind=kind)


def _parameters(function: object) -> list[tuple[str, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind) for p in signature.parameters.values()]


def test_registry_is_not_empty() -> None:
    assert "zammad" in REGISTRY


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_connector_implements_protocol(kind: str) -> None:
    connector_class = REGISTRY[kind]
    connector = get_connector(settings_for(kind))
    assert isinstance(connector, connector_class)
    assert isinstance(connector, HelpdeskConnector)
    assert connector.kind == kind
    for name in PROTOCOL_METHODS:
        expected = _parameters(getattr(HelpdeskConnector, name))
        actual = _parameters(getattr(connector_class, name))
        assert actual == expected, f"{connector_class.__name__}.{name} signature drifted"


@pytest.mark.parametrize("kind", BOOKING_READERS)
def test_connector_reads_bookings(kind: str) -> None:
    connector_class = REGISTRY[kind]
    connector = get_connector(settings_for(kind))
    assert isinstance(connector, BookingReader)
    expected = _parameters(BookingReader.extras)
    actual = _parameters(connector_class.extras)
    assert actual == expected, f"{connector_class.__name__}.extras signature drifted"


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_connector_builds_from_settings_without_network(kind: str) -> None:
    settings = settings_for(kind)
    connector = REGISTRY[kind].from_settings(settings)
    base = settings.public_url if kind == "api" else "http://127.0.0.1:9"  # pushed: status is read here
    assert connector.ticket_url("42").startswith(base)
    assert "42" in connector.ticket_url("42")


def test_unknown_kind_names_the_available_connectors() -> None:
    settings = settings_for("zammad")
    settings = dataclasses.replace(settings, helpdesk_kind="jira")
    with pytest.raises(ConnectorError, match=r"available: .*zammad"):
        get_connector(settings)
