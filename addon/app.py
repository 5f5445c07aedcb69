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
    app = Flask(__name__, template_folder="../templates")
    app.extensions["ticketbill"] = Sidecar(settings, engine, make_session_factory(engine))

    from addon.web import bp
    from addon.web.push import bp as push_bp
    from addon.web.zammad_hook import bp as zammad_hook_bp

    app.register_blueprint(bp)
    app.register_blueprint(push_bp)
    app.register_blueprint(zammad_hook_bp)
    return app
