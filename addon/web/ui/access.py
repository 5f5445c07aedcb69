"""Who may reach which route: deny by default.

Every view declares one permission (`@requires("drafts")`) or is explicitly `@public`; the
app-wide `check_access` hook refuses any route that declares neither, so a route added later
without a decision is closed, not open. Pages want a session (anonymous browsers are sent to
the sign-in page); the JSON API wants a bearer token (anonymous: 401). A signed-in user whose
role lacks the permission gets 403. Routes with their own authentication (the push API's
token, the invoice links in tickets with their random access key) are public here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import UserMixin, current_user

from addon.models import AppUser
from addon.users import PERMISSIONS, may, user_for_token

PUBLIC = "public"
F = TypeVar("F", bound=Callable[..., Any])

#: Blueprints that authenticate every request themselves (push API: PUSH_API_TOKEN; Zammad's
#: webhook: the HMAC signature over the body). No session cookie rides on them, so no CSRF either.
SELF_AUTHENTICATED_BLUEPRINTS = frozenset({"push", "zammad_hook"})


@dataclass(frozen=True)
class SessionUser(UserMixin):  # type: ignore[misc]
    """The signed-in user as Flask-Login sees it, loaded once per request."""

    id: int
    login: str
    name: str
    role: str
    language: str | None
    source: str

    def get_id(self) -> str:
        return str(self.id)

    @classmethod
    def of(cls, user: AppUser) -> SessionUser:
        return cls(user.id, user.login, user.name, user.role, user.language, user.source)


def requires(permission: str) -> Callable[[F], F]:
    """Declare the permission a view needs (see addon.users.PERMISSIONS)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def mark(view: F) -> F:
        view._permission = permission  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Declare a view that needs no session (sign-in page, static files, access-key links)."""
    view._permission = PUBLIC  # type: ignore[attr-defined]
    return view


def permission_of(app: Flask, endpoint: str | None) -> str | None:
    """The permission an endpoint declares; None: it declares none (and is refused)."""
    if endpoint is None:
        return PUBLIC  # no route: let the 404 through
    if endpoint == "static" or endpoint.split(".", 1)[0] in SELF_AUTHENTICATED_BLUEPRINTS:
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, "_permission", None)


def is_api_request() -> bool:
    return request.path.startswith("/api/v1/")


def _api_user() -> SessionUser | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    from addon.db import transaction

    with transaction(current_app.extensions["ticketbill"].sessions) as session:
        user = user_for_token(session, header[7:].strip(), datetime.now(UTC))
        return SessionUser.of(user) if user is not None else None


def acting_user() -> SessionUser | None:
    """The user of this request: the token's for the API, the session's for pages."""
    if is_api_request():
        return g.get("api_user")
    return current_user if current_user.is_authenticated else None  # type: ignore[no-any-return]


def actor() -> str:
    """The audit-log actor of this request, e.g. `web:anna` or `api:anna`."""
    user = acting_user()
    assert user is not None
    return f"{'api' if is_api_request() else 'web'}:{user.login}"


def check_access() -> ResponseReturnValue | None:
    """The before-request hook: refuse what the user may not reach."""
    permission = permission_of(current_app, request.endpoint)
    if permission == PUBLIC:
        return None
    if is_api_request():
        g.api_user = _api_user()
        if g.api_user is None:
            return jsonify({"error": "missing or invalid API token (Authorization: Bearer …)"}), 401
        user: Any = g.api_user
    else:
        if not current_user.is_authenticated:
            if request.headers.get("HX-Request"):
                return "", 401, {"HX-Redirect": url_for("auth.login")}
            if request.accept_mimetypes.best == "application/json":
                return jsonify({"error": "sign in first"}), 401
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        user = current_user
    if permission is None or not may(user.role, permission):
        if is_api_request() or request.accept_mimetypes.best == "application/json":
            return jsonify({"error": "your role may not do this"}), 403
        from flask import render_template

        return render_template("web/forbidden.html"), 403
    return None
