"""Helpdesk connectors and their registry.

`REGISTRY` maps a `HELPDESK_KIND` to the connector class; each class has a
`from_settings(settings)` classmethod, so the sidecar builds its connector from the validated
settings alone. Adding a helpdesk means one module plus one entry here (and
`tests/connectors/test_protocol.py` checks it against `HelpdeskConnector`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import ConnectorError, HelpdeskConnector
from connectors.otrs import OTRSConnector
from connectors.push import PushConnector
from connectors.rt import RTConnector
from connectors.zammad import ZammadConnector

if TYPE_CHECKING:
    from addon.settings import Settings

REGISTRY: dict[str, type] = {
    "zammad": ZammadConnector,
    "rt": RTConnector,
    "otrs": OTRSConnector,
    "api": PushConnector,
}


def get_connector(settings: Settings) -> HelpdeskConnector:
    """The connector for `settings.helpdesk_kind`, built from the settings."""
    try:
        connector_class = REGISTRY[settings.helpdesk_kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConnectorError(
            f"no connector for helpdesk kind {settings.helpdesk_kind!r} (available: {known})"
        ) from None
    connector: HelpdeskConnector = connector_class.from_settings(settings)
    return connector
