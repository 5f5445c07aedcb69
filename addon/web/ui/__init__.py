"""The sidecar's own pages: server-rendered Flask + Jinja, German and English.

Well-kept extensions instead of hand-written equivalents: Flask-Login (sessions), Flask-WTF
(CSRF on every form and htmx request, field-level form errors), Flask-Limiter (rate-limited
sign-in), Flask-Babel (de/en, locale-aware numbers and dates). One blueprint per area; views
stay thin and call the same service functions as the CLI. The browser gets two vendored
scripts (htmx for partial updates, uPlot for charts) and no build step.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, request, session
from flask_babel import Babel, get_locale
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from addon.settings import Settings
from addon.web.ui import format as fmt
from addon.web.ui.access import SELF_AUTHENTICATED_BLUEPRINTS, SessionUser, check_access

LANGUAGES = ("de", "en")
TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"

csrf = CSRFProtect()
limiter = Limiter(get_remote_address, storage_uri="memory://", default_limits=[])
login_manager = LoginManager()
log = logging.getLogger(__name__)


def secret_key(settings: Settings) -> str:
    """SECRET_KEY, or a random key created once in DATA_DIR/secret_key (mode 0600), so a
    deployment never runs on a guessable default and sessions survive a restart."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    try:
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip()
    except OSError as exc:
        # serve must keep running (and /readyz say why) when DATA_DIR is unusable; sessions
        # then last until the next restart only
        log.warning("cannot keep the session key in %s (%s); using one for this process only", path, exc)
        return secrets.token_hex(32)


def select_locale() -> str:
    """The user's chosen language, else this browser session's, else the browser's, else German."""
    if current_user.is_authenticated and current_user.language in LANGUAGES:
        return str(current_user.language)
    if session.get("language") in LANGUAGES:
        return str(session["language"])
    return request.accept_languages.best_match(LANGUAGES) or "de"


def init_ui(app: Flask, settings: Settings) -> None:
    """Wire the extensions, the access check and the page blueprints into `app`."""
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
    )
    # SESSION_COOKIE_SECURE is the deployment's (set with an https PUBLIC_URL); keep remember-me off.
    # The access check runs first, so a refused request is refused for its role, not its token.
    app.before_request(check_access)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    Babel(app, locale_selector=select_locale, timezone_selector=lambda: settings.timezone)

    @login_manager.user_loader
    def load_user(user_id: str) -> SessionUser | None:
        from addon.models import AppUser

        with app.extensions["ticketbill"].sessions() as db:
            user = db.get(AppUser, int(user_id)) if user_id.isdigit() else None
            return SessionUser.of(user) if user is not None and user.active else None

    fmt.register(app)
    from addon.web.ui.terms import term, unit

    app.jinja_env.globals["term"] = term  # a global, so imported macros see it too
    app.jinja_env.filters["unit"] = unit

    from addon.web.ui import admin, api, auth, drafts, exports, invoices, overview, runs, tickets

    for module in (auth, overview, tickets, drafts, invoices, exports, runs, admin):
        app.register_blueprint(module.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # bearer tokens, no cookies: nothing for a forged request to ride on
    for name in SELF_AUTHENTICATED_BLUEPRINTS:
        if name in app.blueprints:
            csrf.exempt(app.blueprints[name])

    @app.context_processor
    def globals_for_templates() -> dict[str, Any]:
        from addon.users import may

        role = current_user.role if current_user.is_authenticated else None
        return {"may": lambda permission: may(role, permission), "get_locale": get_locale,
                "languages": LANGUAGES, "helpdesk_kind": settings.helpdesk_kind}
