"""Sign-in (sidecar account or helpdesk account), sign-out, language."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from addon.helpdesk_login import HelpdeskLoginError, helpdesk_identity, helpdesk_login_supported
from addon.models import AppUser
from addon.users import UserError, authenticate, role_for, sign_in_helpdesk_user
from addon.web.ui import LANGUAGES, limiter
from addon.web.ui.access import SessionUser, public, requires
from addon.web.ui.common import now, settings, writing

bp = Blueprint("auth", __name__)


class SignInForm(FlaskForm):
    method = StringField(default="local")  # local | helpdesk (radio buttons in the template)
    login = StringField(validators=[Optional(), Length(max=200)])
    password = PasswordField(validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a sign-in link must not bounce the user to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or urlparse(target).netloc:
        return url_for("overview.index")
    return target


def _login_limit() -> str:
    return settings().ui_login_rate_limit


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    """Sign in with a sidecar account or, when configured, with the helpdesk account."""
    if current_user.is_authenticated:
        return redirect(url_for("overview.index"))
    form = SignInForm()
    helpdesk = helpdesk_login_supported(settings())
    error = None
    if form.validate_on_submit():
        with writing() as db:
            user: AppUser | None = None
            if form.method.data == "helpdesk" and helpdesk:
                try:
                    identity = helpdesk_identity(settings(), form.login.data or "", form.password.data or "")
                    role = role_for(identity, settings().ui_helpdesk_roles)
                    if role is None:
                        error = _("Your helpdesk roles and groups give no access to billing.")
                    else:
                        user = sign_in_helpdesk_user(db, identity, role, now())
                except (HelpdeskLoginError, UserError) as exc:
                    error = str(exc)
            else:
                user = authenticate(db, form.login.data or "", form.password.data or "", now())
                if user is None:
                    error = _("Login or password is wrong, or the account is deactivated.")
            if user is not None:
                session.clear()  # a fresh session on sign-in (no fixation)
                login_user(SessionUser.of(user))
                return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        error = _("Enter login and password.")
    status = 401 if error else 200
    return render_template("web/login.html", form=form, helpdesk=helpdesk, error=error), status


@bp.post("/logout")
@requires("view")
def logout() -> ResponseReturnValue:
    """Sign out; the session cookie is emptied."""
    logout_user()
    session.clear()
    flash(_("Signed out."), "ok")
    return redirect(url_for("auth.login"))


@bp.post("/language")
@public
def language() -> ResponseReturnValue:
    """Switch the UI language (remembered on the account when signed in)."""
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session["language"] = chosen
        if current_user.is_authenticated:
            with writing() as db:
                user = db.get(AppUser, current_user.id)
                if user is not None:
                    user.language = chosen
    return redirect(_safe_next(request.form.get("next")))
