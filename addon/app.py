"""The Flask app factory. The scheduler is never started here (see addon.sync.scheduler)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

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
    # every body, pages' forms and APIs alike; the push API checks its token before reading one
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    _behind_proxy(app, settings)

    from addon.health import HelpdeskProbe
    from addon.web import bp
    from addon.web.health import bp as health_bp
    from addon.web.push import bp as push_bp
    from addon.web.ui import init_ui
    from addon.web.zammad_hook import bp as zammad_hook_bp

    polled = settings.helpdesk_kind != "api"
    app.extensions["ticketbill.helpdesk_probe"] = HelpdeskProbe(settings.helpdesk_url) if polled else None
    app.register_blueprint(bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(push_bp)
    app.register_blueprint(zammad_hook_bp)
    init_ui(app, settings)  # the pages, sign-in and the deny-by-default access check
    return app


def _behind_proxy(app: Flask, settings: Settings) -> None:
    """Trust X-Forwarded-For/-Proto/-Host/-Port/-Prefix from exactly `TRUSTED_PROXY_HOPS`
    proxies (none by default: without a proxy a client could forge them), and send cookies
    only over TLS when the sidecar is published over https."""
    hops = settings.trusted_proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops,  # type: ignore[method-assign]
                                x_prefix=hops)
    secure = settings.public_url.startswith("https://")
    app.config.update(SESSION_COOKIE_SECURE=secure, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PREFERRED_URL_SCHEME="https" if secure else "http")
