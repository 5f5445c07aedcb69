"""Signing in: local accounts (Argon2id), the helpdesk account (Zammad sandbox, basic auth and
token) with the role mapped from helpdesk roles, sign-out, the demo's login, the translations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy import select
from web_fixtures import PASSWORD, UI, csrf_of

from addon import create_app
from addon.db import transaction
from addon.demo import demo_login
from addon.helpdesk_login import helpdesk_identity
from addon.models import AppUser
from addon.users import authenticate, role_for, update_user

TRANSLATIONS = Path(__file__).resolve().parents[2] / "addon" / "translations"
RULES = (("group:Buchhaltung", "accountant"), ("role:Admin", "admin"), ("role:Agent", "team_lead"))


def sign_in(client, login: str, password: str, method: str = "helpdesk"):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "method": method, "login": login, "password": password})


def test_passwords_are_argon2id_hashes_and_checked(ui: UI) -> None:
    with transaction(ui.sidecar.factory) as session:
        user = session.execute(select(AppUser).where(AppUser.login == "viewer")).scalar_one()
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert authenticate(session, "VIEWER", PASSWORD, datetime.now(UTC)) is not None
        assert authenticate(session, "viewer", PASSWORD + "x", datetime.now(UTC)) is None
        assert authenticate(session, "nobody", PASSWORD, datetime.now(UTC)) is None
        update_user(session, user, active=False)
        assert authenticate(session, "viewer", PASSWORD, datetime.now(UTC)) is None


def test_sign_out_ends_the_session(ui: UI) -> None:
    client = ui.client("accountant")
    assert client.get("/invoices").status_code == 200
    token = csrf_of(client.get("/invoices").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/invoices").status_code == 302


def test_the_last_admin_cannot_be_demoted(ui: UI) -> None:
    client = ui.client("admin")
    with ui.sidecar.factory() as session:
        admin = session.execute(select(AppUser).where(AppUser.login == "admin")).scalar_one()
    token = csrf_of(client.get("/admin/users").get_data(as_text=True))
    answer = client.post("/admin/users", data={"csrf_token": token, "action": "update", "user_id": admin.id,
                                               "role": "viewer", "active": "on"})
    assert answer.status_code == 422
    assert "last active admin" in answer.get_data(as_text=True)


def test_helpdesk_accounts_sign_in_with_the_mapped_role(ui: UI) -> None:
    settings = dataclasses.replace(ui.sidecar.settings, ui_helpdesk_roles=RULES)
    app = create_app(settings)
    agent = "anna.becker@nordlicht-it.example"
    client = app.test_client()
    assert sign_in(client, agent, "wrong").status_code == 401
    assert sign_in(client, agent, ui.sidecar.sandbox.agent_password).status_code == 302
    assert client.get("/drafts").status_code == 200  # team lead
    with ui.sidecar.factory() as session:
        user = session.execute(select(AppUser).where(AppUser.login == agent)).scalar_one()
        assert (user.source, user.role, user.password_hash) == ("helpdesk", "team_lead", None)
    by_token = app.test_client()
    assert sign_in(by_token, "", ui.sidecar.sandbox.admin_token).status_code == 302
    assert by_token.get("/admin/users").status_code == 200  # the sandbox admin has the Admin role
    customer = app.test_client()
    assert sign_in(customer, "admin", PASSWORD).status_code == 401  # a sidecar account is no helpdesk account
    app.extensions["ticketbill"].engine.dispose()


def test_role_rules_take_the_first_match_and_give_nothing_without_one(ui: UI) -> None:
    settings = dataclasses.replace(ui.sidecar.settings, ui_helpdesk_roles=RULES)
    identity = helpdesk_identity(settings, ui.sidecar.sandbox.admin_login, ui.sidecar.sandbox.admin_password)
    assert identity.roles == ("Admin", "Agent")
    assert role_for(identity, RULES) == "admin"
    assert role_for(identity, (("role:agent", "viewer"), ("role:Admin", "admin"))) == "viewer"
    assert role_for(identity, (("group:Buchhaltung", "accountant"),)) is None


def test_the_demo_login_gets_a_new_password_each_time(ui: UI) -> None:
    first = demo_login(ui.sidecar.factory)
    second = demo_login(ui.sidecar.factory)
    assert first[0] == second[0] == "demo" and first[1] != second[1]
    with transaction(ui.sidecar.factory) as session:
        assert authenticate(session, "demo", second[1], datetime.now(UTC)).role == "admin"
        assert authenticate(session, "demo", first[1], datetime.now(UTC)) is None


def test_the_german_catalogue_is_complete_and_compiled() -> None:
    with (TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        source = read_po(handle)
    with (TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        compiled = read_mo(handle)
    root = TRANSLATIONS.parents[1]
    method_map = [("addon/web/**.py", "python"), ("addon/helpdesk_login.py", "python"),
                  ("templates/web/**.html", "jinja2")]
    wanted = {message for _file, _line, message, _comments, _context in
              extract_from_dir(root, method_map, keywords={**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None})
              if isinstance(message, str)}
    assert len(wanted) > 300
    assert wanted <= {m.id for m in source if m.id and m.string}, "untranslated UI strings: run pybabel update"
    assert {m.id: m.string for m in source if m.id} == {m.id: m.string for m in compiled if m.id}
