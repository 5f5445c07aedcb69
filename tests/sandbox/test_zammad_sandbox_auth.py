"""Auth and error shapes exactly as Zammad answers them."""

from __future__ import annotations

import requests
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox


def test_no_credentials_is_403_not_401(anonymous: Client) -> None:
    response = anonymous.get("/tickets/1")
    assert response.status_code == 403
    assert response.json() == {"error": "Authentication required",
                               "error_human": "Authentication required"}
    assert response.headers["X-Failure"] == "Authentication required"


def test_unknown_token_is_401(sandbox: ZammadSandbox) -> None:
    response = requests.get(sandbox.api_url + "/users/me", timeout=5,
                            headers={"Authorization": "Token token=nope"})
    assert response.status_code == 401
    assert response.json()["error"] == "Can't find User for Token"
    assert response.json()["error_human"] == "Can't find User for Token"
    assert response.headers["X-Failure"] == "Can't find User for Token"


def test_token_bearer_and_basic_auth_all_identify_the_user(sandbox: ZammadSandbox) -> None:
    token = requests.get(sandbox.api_url + "/users/me", timeout=5,
                         headers={"Authorization": f"Token token={sandbox.admin_token}"})
    bearer = requests.get(sandbox.api_url + "/users/me", timeout=5,
                          headers={"Authorization": f"Bearer {sandbox.admin_token}"})
    basic = requests.get(sandbox.api_url + "/users/me", timeout=5,
                         auth=(sandbox.admin_login, sandbox.admin_password))
    assert token.json()["id"] == bearer.json()["id"] == basic.json()["id"] == 2
    assert "_password" not in token.json() and "password" not in token.json()


def test_wrong_basic_password_and_expired_token(sandbox: ZammadSandbox) -> None:
    wrong = requests.get(sandbox.api_url + "/users/me", timeout=5,
                         auth=(sandbox.admin_login, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "Invalid BasicAuth credentials"
    with sandbox.lock:
        sandbox.state.data["tokens"]["old"] = {"user_id": 2, "permission": ["ticket.agent"],
                                               "expires_at": "2020-01-01T00:00:00.000Z"}
    expired = requests.get(sandbox.api_url + "/users/me", timeout=5,
                           headers={"Authorization": "Token token=old"})
    assert expired.status_code == 401
    assert expired.json()["error"] == "Not authorized (token expired)!"


def test_token_lacking_permission_vs_user_lacking_permission(
        sandbox: ZammadSandbox, agent: Client) -> None:
    token_short = agent.get("/time_accounting/types")
    assert token_short.status_code == 403
    assert token_short.json()["error"] == "Token authorization failed."
    assert token_short.headers["X-Failure"] == "Token authorization failed."
    user_short = requests.get(sandbox.api_url + "/object_manager_attributes", timeout=5,
                              headers={"Authorization":
                                       f"Token token={sandbox.agent_user_token}"})
    assert user_short.status_code == 403
    assert user_short.json()["error"] == "User authorization failed."
    # the agent-only token still reads tickets
    assert agent.get("/tickets/1").status_code == 200


def test_not_found_uses_the_rails_message(admin: Client) -> None:
    response = admin.get("/tickets/999")
    assert response.status_code == 404
    assert response.json() == {"error": "Couldn't find Ticket with 'id'=999",
                               "error_human": "Couldn't find Ticket with 'id'=999"}
    assert admin.get("/organizations/77").json()["error"] == (
        "Couldn't find Organization with 'id'=77")


def test_settings_need_admin_and_expose_the_unit(admin: Client, agent: Client) -> None:
    settings = {row["name"]: row["state_current"]["value"]
                for row in admin.get("/settings").json()}
    assert settings["time_accounting_unit"] == "minute"
    assert settings["time_accounting"] is True
    assert agent.get("/settings").status_code == 403


def test_on_behalf_of_switches_the_user(sandbox: ZammadSandbox, admin: Client) -> None:
    me = admin.get("/users/me", headers={"From": "anna.becker@nordlicht-it.example"}).json()
    assert me["login"] == "anna.becker@nordlicht-it.example"
    unknown = admin.get("/users/me", headers={"X-On-Behalf-Of": "nobody"})
    assert unknown.status_code == 403
    assert unknown.json()["error"] == "No such user 'nobody'"
