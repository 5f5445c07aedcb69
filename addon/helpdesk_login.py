"""Sign in with the helpdesk account: the helpdesk checks the credentials, ticketbill maps roles.

The password is sent to the helpdesk's API once (Zammad: `GET /api/v1/users/me?expand=true`
with HTTP basic auth, or with a personal access token) and never stored. The answer names the
user's roles and groups; `addon.users.role_for` turns them into a sidecar role by the
UI_HELPDESK_ROLES rules. Zammad is supported; for OTRS/Znuny and RT the sidecar's own accounts
are used (their APIs give no role or group list to an agent's own credentials).
"""

from __future__ import annotations

import requests

from addon.settings import Settings
from addon.users import HelpdeskIdentity

TIMEOUT = 10


class HelpdeskLoginError(Exception):
    """The helpdesk refused the credentials or could not be asked; the message says which."""


def helpdesk_login_supported(settings: Settings) -> bool:
    """Whether this deployment offers helpdesk sign-in (Zammad with role rules configured)."""
    return settings.helpdesk_kind == "zammad" and bool(settings.ui_helpdesk_roles)


def helpdesk_identity(settings: Settings, login: str, password: str) -> HelpdeskIdentity:
    """Ask the helpdesk who this is. An empty login means `password` is a personal access token."""
    if not helpdesk_login_supported(settings):
        raise HelpdeskLoginError("sign-in with the helpdesk account is not configured here")
    if not password:
        raise HelpdeskLoginError("enter your helpdesk password or token")
    headers = {"Accept": "application/json"}
    auth: tuple[str, str] | None = None
    if login.strip():
        auth = (login.strip(), password)
    else:
        headers["Authorization"] = f"Token token={password}"
    try:
        response = requests.get(f"{settings.helpdesk_url}/api/v1/users/me", params={"expand": "true"},
                                headers=headers, auth=auth, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise HelpdeskLoginError(f"the helpdesk could not be reached ({type(exc).__name__})") from exc
    if response.status_code in (401, 403):
        raise HelpdeskLoginError("the helpdesk did not accept these credentials")
    if response.status_code != 200:
        raise HelpdeskLoginError(f"the helpdesk answered HTTP {response.status_code}")
    try:
        user = response.json()
    except ValueError as exc:
        raise HelpdeskLoginError("the helpdesk's answer is not JSON") from exc
    if not isinstance(user, dict) or not user.get("login") or user.get("active") is False:
        raise HelpdeskLoginError("the helpdesk account is unknown or inactive")
    groups = user.get("groups") or {}
    name = " ".join(part for part in (user.get("firstname"), user.get("lastname")) if part) or str(user["login"])
    return HelpdeskIdentity(
        login=str(user["login"]),
        name=name,
        email=user.get("email") or None,
        roles=tuple(str(r) for r in user.get("roles") or ()),
        groups=tuple(str(g) for g in (groups if isinstance(groups, dict | list) else ())),
    )
