"""The people who use the sidecar's pages and API: accounts, roles, passwords, API tokens.

Roles are the sidecar's own (admin, team lead, accountant, viewer); what each may do is one
table (`PERMISSIONS`), read by the web layer's deny-by-default check. Passwords are hashed
with Argon2id (argon2-cffi): memory-hard, the Password Hashing Competition's winner and
OWASP's first recommendation; `check_needs_rehash` upgrades old hashes at the next sign-in
when the parameters are raised. People who sign in with their helpdesk account get a row with
`source = helpdesk` and no password here; their role comes from the helpdesk at each sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from addon.models import ApiToken, AppUser

ROLES = ("admin", "team_lead", "accountant", "viewer")

#: What each role may do. A view names one permission; a route without one is refused.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),  # overview, tickets, invoice list and PDFs, runs
    "drafts": frozenset({"admin", "team_lead"}),  # edit, approve, reject, move entries, credit lines
    "tickets.bill": frozenset({"admin", "team_lead"}),  # re-check a ticket that needs attention
    "runs.start": frozenset({"admin", "team_lead"}),
    "invoices.manage": frozenset({"admin", "accountant"}),  # cancel, payments, resend
    "files.xml": frozenset({"admin", "accountant"}),  # e-invoice XML downloads
    "exports": frozenset({"admin", "accountant"}),
    "config": frozenset({"admin"}),  # customers, contracts, rates, series, users, tokens
}

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# verified against when the login is unknown, so a wrong login costs as much as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A user or token request cannot be done; `field` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def may(role: str | None, permission: str) -> bool:
    """Whether `role` has `permission` (unknown permissions are nobody's)."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("password", f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _normal_login(login: str) -> str:
    value = login.strip().lower()
    if not value or len(value) > 200 or any(c.isspace() for c in value):
        raise UserError("login", "the login must be 1 to 200 characters without spaces")
    return value


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    return role


def create_user(session: Session, login: str, name: str, role: str, password: str | None, now: datetime,
                *, source: str = "local", email: str | None = None) -> AppUser:
    """A new account; local accounts need a password, helpdesk accounts have none here."""
    login = _normal_login(login)
    if session.execute(select(AppUser.id).where(AppUser.login == login)).first() is not None:
        raise UserError("login", f"there is already a user {login}")
    if source == "local" and not password:
        raise UserError("password", "a local account needs a password")
    user = AppUser(
        login=login, name=name.strip() or login, email=email, role=_check_role(role), source=source,
        password_hash=hash_password(password) if password else None, active=True, created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user: AppUser, *, name: str | None = None, role: str | None = None,
                active: bool | None = None, password: str | None = None) -> AppUser:
    """Change an account. The last active admin can neither lose the role nor be deactivated,
    so the configuration pages can never lock everybody out."""
    demoted = (role is not None and role != "admin") or active is False
    if user.role == "admin" and user.active and demoted and _active_admins(session) <= 1:
        raise UserError("role", "this is the last active admin; make another user admin first")
    if name is not None:
        user.name = name.strip() or user.login
    if role is not None:
        user.role = _check_role(role)
    if active is not None:
        user.active = active
    if password:
        if user.source != "local":
            raise UserError("password", "this user signs in with the helpdesk account; it has no password here")
        user.password_hash = hash_password(password)
    session.flush()
    return user


def _active_admins(session: Session) -> int:
    return session.execute(
        select(func.count()).select_from(AppUser).where(AppUser.role == "admin", AppUser.active.is_(True))
    ).scalar_one()


def authenticate(session: Session, login: str, password: str, now: datetime) -> AppUser | None:
    """The active local user with this login and password, else None (same cost either way)."""
    user = session.execute(
        select(AppUser).where(AppUser.login == login.strip().lower(), AppUser.source == "local")
    ).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


@dataclass(frozen=True)
class HelpdeskIdentity:
    """Who the helpdesk says signed in: login, display name, e-mail, role and group names."""

    login: str
    name: str
    email: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]


def role_for(identity: HelpdeskIdentity, rules: Iterable[tuple[str, str]]) -> str | None:
    """The sidecar role of a helpdesk user: the first rule that matches wins.

    A rule is (`role:<helpdesk role>` or `group:<helpdesk group>`, sidecar role), from the
    setting UI_HELPDESK_ROLES, e.g. `role:Admin=admin, group:Buchhaltung=accountant,
    role:Agent=team_lead`. Names compare case-insensitively. No match: no access.
    """
    roles = {r.casefold() for r in identity.roles}
    groups = {g.casefold() for g in identity.groups}
    for selector, role in rules:
        kind, _, name = selector.partition(":")
        if (kind == "role" and name.casefold() in roles) or (kind == "group" and name.casefold() in groups):
            return role
    return None


def sign_in_helpdesk_user(session: Session, identity: HelpdeskIdentity, role: str, now: datetime) -> AppUser:
    """The account of a helpdesk user, created at the first sign-in, its role refreshed at each.

    A local account with the same login is never taken over: the helpdesk must not be able to
    sign in as a sidecar-only admin.
    """
    login = _normal_login(identity.login)
    user = session.execute(select(AppUser).where(AppUser.login == login)).scalar_one_or_none()
    if user is None:
        user = create_user(session, login, identity.name, role, None, now, source="helpdesk", email=identity.email)
    elif user.source != "helpdesk":
        raise UserError("login", f"{login} is a local account of the sidecar; sign in with its password")
    elif not user.active:
        raise UserError("login", f"the account {login} is deactivated in the sidecar")
    user.role = _check_role(role)
    user.name = identity.name or user.name
    user.email = identity.email or user.email
    user.last_login_at = now
    session.flush()
    return user


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: AppUser, name: str, now: datetime) -> tuple[str, ApiToken]:
    """A new API token for `user`; the plain token is returned once and never stored."""
    if not name.strip():
        raise UserError("name", "give the token a name (what uses it)")
    token = f"tb_{secrets.token_urlsafe(32)}"
    row = ApiToken(user_id=user.id, name=name.strip()[:100], token_sha256=token_digest(token), created_at=now)
    session.add(row)
    session.flush()
    return token, row


def user_for_token(session: Session, token: str, now: datetime) -> AppUser | None:
    """The active user of a valid, not revoked token, else None."""
    row = session.execute(
        select(ApiToken).where(ApiToken.token_sha256 == token_digest(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not row.user.active:
        return None
    row.last_used_at = now
    return row.user


def revoke_token(session: Session, token_id: int, now: datetime) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise UserError("token", f"there is no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row
