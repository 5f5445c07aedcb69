"""ticketbill: the billing sidecar.

The package itself imports nothing heavy, so the pure billing core (`addon.billing`) can be
imported without Flask or SQLAlchemy. The app factory lives in `addon.app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Any = None) -> Flask:
    """Build the Flask app (see `addon.app.create_app`)."""
    from addon.app import create_app as build

    return build(settings)
