"""The Flask app factory. The scheduler is never started here (see addon.sync.scheduler)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from addon.db import make_engine, make_session_factory
from addon.settings import Settings, settings_from_environment


@dataclass(frozen=True)
class Sidecar:
    """What the web layer needs: settings and a session factory."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app. The scheduler is started by `ticketbill serve` only, never here:
    a forking WSGI server would otherwise run every job once per worker."""
    settings = settings or settings_from_environment()
    engine = make_engine(settings.database_url)
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.extensions["ticketbill"] = Sidecar(settings, engine, make_session_factory(engine))

    from addon.web import bp
    from addon.web.push import bp as push_bp
    from addon.web.ui import init_ui

    app.register_blueprint(bp)
    app.register_blueprint(push_bp)
    init_ui(app, settings)  # the pages, sign-in and the deny-by-default access check
    return app
