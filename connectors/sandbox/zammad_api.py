"""HTTP layer of the Zammad sandbox: routes, auth, paging, response shapes, faults.

Why a hand-rolled werkzeug app instead of Flask: Zammad's behaviour at the HTTP edge is the
thing being imitated (403 without credentials, ``X-Failure`` headers, Rails-style nested query
parameters merged with the JSON body, silent page-size clamps, masked 500s, a 503 window while
"restarting"), so every response is built explicitly here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from connectors.sandbox.zammad_state import SandboxState
from connectors.sandbox.zammad_values import ApiError, not_found, parse_time, to_bool
from connectors.sandbox.zammad_webhooks import check_trigger, check_webhook

if TYPE_CHECKING:
    from connectors.sandbox.zammad import ZammadSandbox

API = "/api/v1"
LOGIN_FAILED = ("Login failed. Have you double-checked your credentials and completed the "
                "email verification step?")
JSON_TYPE = "application/json; charset=utf-8"
RESTART_PAGE = ("<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
                "<center><h1>503 Service Temporarily Unavailable</h1></center>"
                "<hr><center>nginx</center></body></html>\n")


# The columns of Zammad's webhooks and triggers tables, with their defaults.
WEBHOOK_COLUMNS = (("name", ""), ("endpoint", ""), ("signature_token", None), ("ssl_verify", True),
                   ("basic_auth_username", None), ("basic_auth_password", None),
                   ("pre_defined_webhook_type", None), ("customized_payload", False),
                   ("custom_payload", None), ("preferences", {}), ("note", None), ("active", True))
TRIGGER_COLUMNS = (("name", ""), ("condition", {}), ("perform", {}), ("activator", "action"),
                   ("execution_condition_mode", "selective"), ("disable_notification", True),
                   ("note", None), ("active", True))


def covers(granted: list[str], required: str) -> bool:
    """Zammad permission match: a parent covers children, ``admin.*`` means any admin.x."""
    if required.endswith(".*"):
        parent = required[:-2]
        return any(g == parent or g.startswith(parent + ".") for g in granted)
    return any(required == g or required.startswith(g + ".") for g in granted)


@dataclass
class Actor:
    """The authenticated caller: a user plus, for token auth, the token's permission list."""

    user: dict[str, Any]
    user_permissions: list[str]
    token_permissions: list[str] | None

    @property
    def id(self) -> int:
        return self.user["id"]

    def has(self, permission: str) -> bool:
        if not covers(self.user_permissions, permission):
            return False
        return self.token_permissions is None or covers(self.token_permissions, permission)

    def require(self, *permissions: str) -> None:
        """Any one permission suffices; the 403 text says whether token or user lacks it."""
        if any(self.has(p) for p in permissions):
            return
        if any(covers(self.user_permissions, p) for p in permissions):
            raise ForbiddenError("Token authorization failed.")
        raise ForbiddenError("User authorization failed.")

    @property
    def is_admin(self) -> bool:
        """Error masking looks at the user's roles, not at the token's list."""
        return covers(self.user_permissions, "admin")


class ForbiddenError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, message)


class UnauthorizedError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message)


def ruby_to_i(value: Any, default: int) -> int:
    """``String#to_i``: leading integer or 0; absent means the default."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    match = re.match(r"\s*([-+]?\d+)", str(value))
    return int(match.group(1)) if match else 0


def paginate(params: dict[str, Any], default: int, maximum: int) -> tuple[int, int]:
    """``CanPaginate``: limit = min(per_page || limit || default, max), 1-based page."""
    raw = params.get("per_page") if params.get("per_page") not in (None, "") else params.get(
        "limit")
    limit = min(ruby_to_i(raw, default), maximum)
    page = ruby_to_i(params.get("page"), 1)
    offset = (page - 1) * limit
    if limit < 0:
        raise ApiError(422, "PG::InvalidRowCountInLimitClause: ERROR:  LIMIT must not be "
                            "negative")
    if offset < 0:
        raise ApiError(422, "PG::InvalidRowCountInResultOffsetClause: ERROR:  OFFSET must not "
                            "be negative")
    return offset, limit


def nested_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rack's nested query parsing: ``a[b][c]=v`` and ``a[]=v``."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"^[^\[]+|\[([^\]]*)\]", key)
        head = key.split("[", 1)[0]
        tail = parts[1:] if "[" in key else []
        if not tail:
            result[head] = value
            continue
        node: Any = result
        keys = [head, *tail]
        for index, part in enumerate(keys):
            last = index == len(keys) - 1
            following = None if last else keys[index + 1]
            if isinstance(node, list):
                node.append(value)
                break
            if last:
                node[part] = value
            else:
                default: Any = [] if following == "" else {}
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = default
                node = node[part]
    return result


class ZammadApp:
    """The WSGI callable; state, clock, faults and persistence live on the sandbox."""

    def __init__(self, sandbox: ZammadSandbox) -> None:
        self.sandbox = sandbox
        self.url_map = Map([
            Rule(f"{API}/users/me", endpoint="users_me", methods=["GET"]),
            Rule(f"{API}/users", endpoint="users_index", methods=["GET"]),
            Rule(f"{API}/users/<rid>", endpoint="users_show", methods=["GET"]),
            Rule(f"{API}/roles", endpoint="roles_index", methods=["GET"]),
            Rule(f"{API}/organizations", endpoint="organizations_index", methods=["GET"]),
            Rule(f"{API}/organizations/<rid>", endpoint="organizations_show",
                 methods=["GET"]),
            Rule(f"{API}/organizations/<rid>", endpoint="organizations_update",
                 methods=["PUT"]),
            Rule(f"{API}/groups", endpoint="groups_index", methods=["GET"]),
            Rule(f"{API}/ticket_priorities", endpoint="priorities_index", methods=["GET"]),
            Rule(f"{API}/ticket_states", endpoint="states_index", methods=["GET"]),
            Rule(f"{API}/ticket_states/<rid>", endpoint="states_show", methods=["GET"]),
            Rule(f"{API}/tickets", endpoint="tickets_index", methods=["GET"]),
            Rule(f"{API}/tickets", endpoint="tickets_create", methods=["POST"]),
            Rule(f"{API}/tickets/search", endpoint="tickets_search", methods=["GET", "POST"]),
            Rule(f"{API}/tickets/<rid>", endpoint="tickets_show", methods=["GET"]),
            Rule(f"{API}/tickets/<rid>", endpoint="tickets_update", methods=["PUT"]),
            Rule(f"{API}/tickets/<rid>", endpoint="tickets_destroy", methods=["DELETE"]),
            Rule(f"{API}/ticket_merge/<rid>/<number>", endpoint="tickets_merge",
                 methods=["PUT"]),
            Rule(f"{API}/tags", endpoint="tags", methods=["GET"]),
            Rule(f"{API}/links", endpoint="links", methods=["GET"]),
            Rule(f"{API}/ticket_articles", endpoint="articles_create", methods=["POST"]),
            Rule(f"{API}/ticket_articles/<rid>", endpoint="articles_show", methods=["GET"]),
            Rule(f"{API}/ticket_articles/by_ticket/<rid>", endpoint="articles_by_ticket",
                 methods=["GET"]),
            Rule(f"{API}/tickets/<tid>/time_accountings", endpoint="ta_ticket_index",
                 methods=["GET"]),
            Rule(f"{API}/tickets/<tid>/time_accountings", endpoint="ta_ticket_create",
                 methods=["POST"]),
            Rule(f"{API}/tickets/<tid>/time_accountings/<rid>", endpoint="ta_ticket_show",
                 methods=["GET"]),
            Rule(f"{API}/tickets/<tid>/time_accountings/<rid>", endpoint="ta_update",
                 methods=["PUT"]),
            Rule(f"{API}/tickets/<tid>/time_accountings/<rid>", endpoint="ta_destroy",
                 methods=["DELETE"]),
            Rule(f"{API}/time_accountings", endpoint="ta_index", methods=["GET"]),
            Rule(f"{API}/time_accountings", endpoint="ta_create", methods=["POST"]),
            Rule(f"{API}/time_accountings/<rid>", endpoint="ta_show", methods=["GET"]),
            Rule(f"{API}/time_accountings/<rid>", endpoint="ta_update", methods=["PUT"]),
            Rule(f"{API}/time_accountings/<rid>", endpoint="ta_destroy", methods=["DELETE"]),
            Rule(f"{API}/time_accounting/types", endpoint="types_index", methods=["GET"]),
            Rule(f"{API}/time_accounting/types", endpoint="types_create", methods=["POST"]),
            Rule(f"{API}/time_accounting/types/<rid>", endpoint="types_update",
                 methods=["PUT"]),
            Rule(f"{API}/object_manager_attributes", endpoint="oma_index", methods=["GET"]),
            Rule(f"{API}/object_manager_attributes", endpoint="oma_create",
                 methods=["POST"]),
            Rule(f"{API}/object_manager_attributes/<rid>", endpoint="oma_show",
                 methods=["GET"]),
            Rule(f"{API}/object_manager_attributes/<rid>", endpoint="oma_update",
                 methods=["PUT"]),
            Rule(f"{API}/object_manager_attributes/<rid>", endpoint="oma_destroy",
                 methods=["DELETE"]),
            Rule(f"{API}/object_manager_attributes_list", endpoint="oma_list",
                 methods=["GET"]),
            Rule(f"{API}/object_manager_attributes_execute_migrations",
                 endpoint="oma_execute", methods=["POST"]),
            Rule(f"{API}/object_manager_attributes_discard_changes", endpoint="oma_discard",
                 methods=["POST"]),
            Rule(f"{API}/webhooks", endpoint="webhooks_index", methods=["GET"]),
            Rule(f"{API}/webhooks", endpoint="webhooks_create", methods=["POST"]),
            Rule(f"{API}/webhooks/<rid>", endpoint="webhooks_show", methods=["GET"]),
            Rule(f"{API}/webhooks/<rid>", endpoint="webhooks_update", methods=["PUT"]),
            Rule(f"{API}/webhooks/<rid>", endpoint="webhooks_destroy", methods=["DELETE"]),
            Rule(f"{API}/triggers", endpoint="triggers_index", methods=["GET"]),
            Rule(f"{API}/triggers", endpoint="triggers_create", methods=["POST"]),
            Rule(f"{API}/triggers/<rid>", endpoint="triggers_show", methods=["GET"]),
            Rule(f"{API}/triggers/<rid>", endpoint="triggers_update", methods=["PUT"]),
            Rule(f"{API}/triggers/<rid>", endpoint="triggers_destroy", methods=["DELETE"]),
            Rule(f"{API}/settings", endpoint="settings_index", methods=["GET"]),
            Rule(f"{API}/settings/<rid>", endpoint="settings_show", methods=["GET"]),
            Rule(f"{API}/settings/<rid>", endpoint="settings_update", methods=["PUT"]),
        ], strict_slashes=False)

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path.startswith("/__sandbox__"):
            response = self.sandbox.control.handle(request)
        else:
            response = self.handle_api(request)
        return response(environ, start_response)

    def handle_api(self, request: Request) -> Response:
        self.sandbox.record_request(request.method, request.full_path.rstrip("?"))
        if self.sandbox.latency_ms:
            time.sleep(self.sandbox.latency_ms / 1000)
        if self.sandbox.restarting():
            return Response(RESTART_PAGE, status=503, content_type="text/html")
        fault = self.sandbox.take_fault(request.method, request.path)
        if fault and fault["kind"] == "status":
            return fault_response(fault)
        if fault and fault["kind"] == "delay":
            self.sandbox.sleep(fault["seconds"])
        if fault and fault["kind"] == "reset" and not fault.get("after"):
            reset_connection(request)
        if fault and fault["kind"] == "vanish":
            if fault.get("into"):
                self.sandbox.merge_ticket(int(fault["ticket_id"]), int(fault["into"]))
            else:
                self.sandbox.delete_ticket(int(fault["ticket_id"]))
        with self.sandbox.lock:
            response = self._dispatch(request)
            if request.method in ("POST", "PUT", "DELETE") and response.status_code < 400:
                self.sandbox.persist()
        if fault and fault["kind"] == "hook":
            fault["callback"]()
        if fault and fault["kind"] == "reset":
            reset_connection(request)
        if fault and fault["kind"] == "slow":
            self.sandbox.sleep(fault["seconds"])
        if fault and fault["kind"] == "malformed":
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)] + b'",<!-- upstream reset')
        return response

    def _dispatch(self, request: Request) -> Response:
        actor: Actor | None = None
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            try:
                endpoint, args = adapter.match()
            except HTTPException:
                actor = self.authenticate(request)
                raise ApiError(404, f"No route matches [{request.method}] "
                                    f"{request.path}") from None
            actor = self.authenticate(request)
            params = self.params(request)
            handler = getattr(self, f"do_{endpoint}")
            status, body = handler(actor, params, **args)
            if body is None:
                return Response(b"", status=status, content_type=JSON_TYPE)
            return json_response(status, body)
        except ApiError as exc:
            return self.error_response(exc, actor)
        except Exception:  # an unexpected bug must look like Zammad's masked 500
            traceback.print_exc(file=sys.stderr)
            return self.error_response(ApiError(500, "internal error", masked=True), actor)

    def error_response(self, exc: ApiError, actor: Actor | None) -> Response:
        if exc.masked and not (actor and actor.is_admin):
            body: dict[str, Any] = {"error": f"Error ID {secrets.token_urlsafe(6)[:8]}: "
                                             "Please contact your administrator."}
        elif exc.masked:
            body = {"error": exc.message}
        else:
            body = {"error": exc.message, "error_human": exc.message}
        response = json_response(exc.status, body)
        if exc.status in (401, 403):
            response.headers["X-Failure"] = exc.message
        return response

    def params(self, request: Request) -> dict[str, Any]:
        """Rails merges query and JSON body parameters into one hash."""
        params = nested_params(list(request.args.items(multi=True)))
        if request.get_data():
            try:
                body = json.loads(request.get_data())
            except ValueError:
                raise ApiError(400, "Invalid JSON in request body") from None
            if isinstance(body, dict):
                params.update(body)
        if isinstance(params.get("condition"), str):
            try:
                params["condition"] = json.loads(params["condition"])
            except ValueError:
                raise ApiError(422, "Invalid condition, expected a hash") from None
        return params

    # -- authentication --------------------------------------------------------------

    def authenticate(self, request: Request) -> Actor:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if scheme in ("token", "bearer") and credential:
            actor = self._token_actor(scheme, credential)
        elif scheme == "basic" and credential:
            actor = self._basic_actor(credential)
        else:
            raise ForbiddenError("Authentication required")
        on_behalf = request.headers.get("From") or request.headers.get("X-On-Behalf-Of")
        if on_behalf:
            if not actor.has("admin.user"):
                raise ForbiddenError(
                    "Current user has no permission to use 'From'/'X-On-Behalf-Of'!")
            user = self.state.find_user(on_behalf)
            if user is None:
                raise ForbiddenError(f"No such user '{on_behalf}'")
            actor = Actor(user, self.state.user_permissions(user), None)
        return actor

    def _token_actor(self, scheme: str, credential: str) -> Actor:
        token_value = credential
        match = re.match(r"token=\"?([^\",]+)\"?", credential)
        if match:
            token_value = match.group(1)
        token = self.state.data["tokens"].get(token_value)
        if token is None:
            raise UnauthorizedError("Can't find User for Token" if scheme == "token"
                                    else "The provided token is invalid.")
        if not self.state.setting("api_token_access"):
            raise ForbiddenError("API token access disabled!")
        expires = parse_time(token.get("expires_at"))
        if expires and expires <= self.sandbox.now():
            raise UnauthorizedError("Not authorized (token expired)!")
        user = self.state.data["users"][token["user_id"]]
        if not user["active"]:
            raise UnauthorizedError(LOGIN_FAILED)
        token["last_used_at"] = self.state.now_iso()
        return Actor(user, self.state.user_permissions(user), list(token["permission"]))

    def _basic_actor(self, credential: str) -> Actor:
        try:
            login, _, password = base64.b64decode(credential).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UnauthorizedError("Invalid BasicAuth credentials") from None
        if not self.state.setting("api_password_access"):
            raise ForbiddenError("API password access disabled!")
        user = self.state.find_user(login)
        if user is None or not user.get("_password") or user["_password"] != password:
            raise UnauthorizedError("Invalid BasicAuth credentials")
        if not user["active"]:
            raise UnauthorizedError(LOGIN_FAILED)
        return Actor(user, self.state.user_permissions(user), None)

    # -- helpers ---------------------------------------------------------------------

    def _ticket_for(self, actor: Actor, rid: Any, write: bool = False) -> dict[str, Any]:
        """``TicketPolicy``: an agent needs group access ``read`` (``change`` to write)."""
        ticket = self.state.get("tickets", rid, "Ticket")
        if self._agent_access(actor, ticket, "change" if write else "read"):
            return ticket
        if not write and actor.has("ticket.customer") and self._customer_sees(actor, ticket):
            return ticket
        actor.require("ticket.agent")
        raise ForbiddenError("Not authorized")

    def _agent_access(self, actor: Actor, ticket: dict[str, Any], access: str) -> bool:
        """``user.group_access?(group_id, access)``; ``full`` covers every access. Without the
        ``group_access`` switch every agent may do everything (the sandbox's old default)."""
        if not actor.has("ticket.agent"):
            return False
        if not self.sandbox.group_access:
            return True
        return self.state.group_access(actor.user, ticket["group_id"], access)

    def _customer_sees(self, actor: Actor, ticket: dict[str, Any]) -> bool:
        if ticket["customer_id"] == actor.id:
            return True
        org = self.state.data["organizations"].get(actor.user["organization_id"] or 0)
        return bool(org and org["shared"] and ticket["organization_id"] == org["id"])

    def _visible_tickets(self, actor: Actor, tickets: list[dict[str, Any]]) -> list[dict]:
        """``TicketPolicy::ReadScope``: the agent's readable groups, or the customer's tickets."""
        actor.require("ticket.agent", "ticket.customer")
        return [t for t in tickets if self._agent_access(actor, t, "read")
                or (actor.has("ticket.customer") and self._customer_sees(actor, t))]

    def _assets(self, tickets: list[dict[str, Any]]) -> dict[str, Any]:
        state = self.state
        users: dict[str, Any] = {}
        orgs: dict[str, Any] = {}
        for ticket in tickets:
            for key in ("customer_id", "owner_id", "created_by_id", "updated_by_id"):
                user = state.data["users"].get(ticket[key] or 0)
                if user:
                    users[str(user["id"])] = state.user_json(user)
            org = state.data["organizations"].get(ticket["organization_id"] or 0)
            if org:
                orgs[str(org["id"])] = state.organization_json(org)
        assets: dict[str, Any] = {
            "Ticket": {str(t["id"]): state.ticket_with_ids(t) for t in tickets}}
        if users:
            assets["User"] = users
        if orgs:
            assets["Organization"] = orgs
        return assets

    def _generic_index(self, rows: list[dict[str, Any]], params: dict[str, Any],
                       render: Callable[[dict[str, Any]], dict[str, Any]],
                       table: str) -> list[dict[str, Any]]:
        """``model_index_render``: default 500, max 1000, sort_by/order_by, id asc."""
        offset, limit = paginate(params, 500, 1000)
        columns = set().union(*(r.keys() for r in rows)) if rows else {"id"}
        ordered = self.state.sort(rows, params.get("sort_by") or "id",
                                  params.get("order_by") or "asc", columns, table)
        return [render(r) for r in ordered[offset:offset + limit]]

    # -- users, organizations, groups ------------------------------------------------

    def do_users_me(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, self.state.user_json(actor.user, to_bool(params.get("expand", False)))

    def do_roles_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        """``RolesController#index`` (``model_index_render``): ticket.agent, admin.role or
        ticket.customer; each role with its ``group_ids`` access map (``HasGroups``)."""
        actor.require("ticket.agent", "admin.role", "ticket.customer")
        return 200, self._generic_index(list(self.state.data["roles"].values()), params,
                                        self.state.role_json, "roles")

    def do_users_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.user")
        expand = to_bool(params.get("expand", False))
        rows = list(self.state.data["users"].values())
        return 200, self._generic_index(rows, params,
                                        lambda u: self.state.user_json(u, expand), "users")

    def do_users_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        user = self.state.get("users", rid, "User")
        if user["id"] != actor.id:
            same_org = (actor.user["organization_id"] is not None
                        and actor.user["organization_id"] == user["organization_id"])
            if not same_org:
                actor.require("admin.*", "ticket.agent")
        return 200, self.state.user_json(user, to_bool(params.get("expand", False)))

    def do_organizations_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.organization")
        expand = to_bool(params.get("expand", False))
        rows = list(self.state.data["organizations"].values())
        return 200, self._generic_index(
            rows, params, lambda o: self.state.organization_json(o, expand), "organizations")

    def do_organizations_show(self, actor: Actor, params: dict[str, Any],
                              rid: str) -> tuple[int, Any]:
        org = self.state.get("organizations", rid, "Organization")
        if not (actor.has("ticket.agent") or actor.has("admin.organization")):
            if actor.user["organization_id"] == org["id"]:
                return 200, {k: org[k] for k in ("id", "name", "active")}
            actor.require("ticket.agent", "admin.organization")
        return 200, self.state.organization_json(org, to_bool(params.get("expand", False)))

    def do_organizations_update(self, actor: Actor, params: dict[str, Any],
                                rid: str) -> tuple[int, Any]:
        """``PUT /organizations/{id}``: core columns and migrated custom fields; unknown keys
        are dropped, as for tickets."""
        actor.require("ticket.agent", "admin.organization")
        org = self.state.update_organization(rid, params, actor.id)
        return 200, self.state.organization_json(org)

    def do_groups_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.group")
        return 200, self._generic_index(list(self.state.data["groups"].values()), params,
                                        self.state.columns, "groups")

    def do_priorities_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.ticket_priority", "ticket.customer")
        return 200, self._generic_index(list(self.state.data["priorities"].values()), params,
                                        self.state.columns, "ticket_priorities")

    # -- ticket states ---------------------------------------------------------------

    def _state_json(self, state: dict[str, Any], expand: bool) -> dict[str, Any]:
        result = self.state.columns(state)
        if expand:
            result["state_type"] = self.state.data["state_types"][state["state_type_id"]]["name"]
            if state["next_state_id"]:
                result["next_state"] = self.state.data["states"][state["next_state_id"]]["name"]
        return result

    def do_states_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.ticket_state", "ticket.customer")
        expand = to_bool(params.get("expand", False))
        return 200, self._generic_index(list(self.state.data["states"].values()), params,
                                        lambda s: self._state_json(s, expand), "ticket_states")

    def do_states_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("ticket.agent", "admin.ticket_state", "ticket.customer")
        state = self.state.get("states", rid, "Ticket::State")
        return 200, self._state_json(state, to_bool(params.get("expand", False)))

    # -- tickets ---------------------------------------------------------------------

    def do_tickets_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        offset, limit = paginate(params, 100, 100)
        tickets = sorted(self._visible_tickets(actor, list(self.state.data["tickets"].values())),
                         key=lambda t: t["id"])
        page = tickets[offset:offset + limit]
        if to_bool(params.get("expand", False)):
            return 200, [self.state.ticket_with_names(t) for t in page]
        if to_bool(params.get("full", False)):
            return 200, {"record_ids": [t["id"] for t in page], "assets": self._assets(page)}
        return 200, [self.state.columns(t) for t in page]

    def do_tickets_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        ticket = self._ticket_for(actor, rid)
        if to_bool(params.get("expand", False)):
            return 200, self.state.ticket_with_names(ticket)
        if to_bool(params.get("full", False)):
            return 200, {"id": ticket["id"], "assets": self._assets([ticket])}
        if to_bool(params.get("all", False)):
            ids = self.state.ticket_ids_of(ticket["id"])
            return 200, {"ticket_id": ticket["id"], "ticket_article_ids": ids["article_ids"],
                         "assets": self._assets([ticket]), "links": [],
                         "tags": list(ticket.get("_tags", []))}
        return 200, self.state.columns(ticket)

    def do_tickets_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "ticket.customer")
        if not actor.has("ticket.agent"):
            params = {**params, "customer_id": actor.id}
        ticket = self.state.create_ticket(params, actor.id)
        return 201, self._written_ticket(ticket, params)

    def do_tickets_update(self, actor: Actor, params: dict[str, Any],
                          rid: str) -> tuple[int, Any]:
        self._ticket_for(actor, rid, write=True)
        ticket = self.state.update_ticket(rid, params, actor.id)
        return 200, self._written_ticket(ticket, params)

    def _written_ticket(self, ticket: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """POST/PUT answer: ids by default, names with expand, assets with full."""
        if to_bool(params.get("expand", False)):
            return self.state.ticket_with_names(ticket)
        if to_bool(params.get("full", False)):
            return {"id": ticket["id"], "assets": self._assets([ticket])}
        return self.state.ticket_with_ids(ticket)

    def do_tickets_destroy(self, actor: Actor, params: dict[str, Any],
                           rid: str) -> tuple[int, Any]:
        actor.require("admin")
        self.state.delete_ticket(rid)
        return 200, None

    def do_tickets_merge(self, actor: Actor, params: dict[str, Any], rid: str,
                         number: str) -> tuple[int, Any]:
        """``PUT /ticket_merge/{source_id}/{target_number}``; failures are 200 too."""
        actor.require("ticket.agent")
        target = next((t for t in self.state.data["tickets"].values()
                       if t["number"] == number), None)
        if target is None:
            return 200, {"result": "failed",
                         "message": "The target ticket number could not be found."}
        source = self.state.data["tickets"].get(ruby_to_i(rid, 0))
        if source is None:
            return 200, {"result": "failed", "message": "The source ticket could not be found."}
        self.state.merge_ticket(source["id"], target["id"], actor.id)
        return 200, {"result": "success", "target_ticket": self.state.columns(target),
                     "source_ticket": self.state.columns(source)}

    def do_links(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        """``GET /links?link_object=Ticket&link_object_value=ID``: ``{"links": [...], "assets"}``
        (a merge is listed as ``parent`` on the merged ticket, pointing at the survivor)."""
        if params.get("link_object") != "Ticket":
            raise ApiError(422, f"Invalid link_object '{params.get('link_object')}'")
        ticket = self._ticket_for(actor, params.get("link_object_value"))
        links = self.state.links_of(ticket["id"])
        linked = [t for link in links if (t := self.state.data["tickets"].get(link["link_object_value"]))]
        return 200, {"links": links, "assets": self._assets(linked)}

    def do_tags(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        if params.get("object") != "Ticket":
            raise ApiError(422, f"Invalid object '{params.get('object')}'")
        ticket = self._ticket_for(actor, params.get("o_id"))
        return 200, {"tags": list(ticket.get("_tags", []))}

    def do_tickets_search(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("ticket.agent", "ticket.customer")
        offset, limit = paginate(params, 50, 200)
        page_number = ruby_to_i(params.get("page"), 1)
        term = params.get("term")
        query = params.get("query") if params.get("query") is not None else term
        results = self.state.search_tickets(str(query or ""), params.get("condition"),
                                            params.get("sort_by"), params.get("order_by"),
                                            actor.id, self.sandbox.tie_shuffle())
        results = self._visible_tickets(actor, results)
        if page_number > 1 and self.sandbox.take_search_loop():
            offset = 0  # fault injection: the backend repeats the first page
        elif self.sandbox.take_search_skip():
            offset += limit  # fault injection: the backend answers the next page instead
        page = results[offset:offset + limit]
        expand = to_bool(params.get("expand", False))
        full = to_bool(params.get("full", False))
        if not self.sandbox.version_at_least(6, 5):
            if expand:
                return 200, [self.state.ticket_with_names(t) for t in page]
            return 200, {"tickets": [t["id"] for t in page], "tickets_count": len(page),
                         "assets": self._assets(page)}
        # model_search_render (6.5+): only_total_count > full > expand > label/term > plain
        if to_bool(params.get("only_total_count", False)):
            return 200, {"total_count": len(results)}
        if full:
            return 200, {"record_ids": [t["id"] for t in page], "assets": self._assets(page),
                         "total_count": len(results)}
        rows: list[dict[str, Any]]
        if expand:
            rows = [self.state.ticket_with_names(t) for t in page]
        elif params.get("label") or term is not None:
            # A ticket has no fullname/name/email, so Zammad labels it with its id.
            rows = [{"id": t["id"], "label": t["id"], "value": t["id"]} for t in page]
        else:
            rows = [self.state.ticket_with_ids(t) for t in page]
        if to_bool(params.get("with_total_count", False)):
            return 200, {"records": rows, "total_count": len(results)}
        return 200, rows

    # -- articles --------------------------------------------------------------------

    def do_articles_by_ticket(self, actor: Actor, params: dict[str, Any],
                              rid: str) -> tuple[int, Any]:
        ticket = self._ticket_for(actor, rid)
        agent = actor.has("ticket.agent")
        rows = [a for a in self.state.rows_of("articles", "ticket_id", ticket["id"])
                if agent or not a["internal"]]
        if to_bool(params.get("full", False)):
            return 200, {"record_ids": [a["id"] for a in rows],
                         "assets": {"TicketArticle": {str(a["id"]): self.state.article_json(a)
                                                      for a in rows}}}
        # Plain and expand both render attributes_with_association_names.
        return 200, [self.state.article_json(a) for a in rows]

    def do_articles_show(self, actor: Actor, params: dict[str, Any],
                         rid: str) -> tuple[int, Any]:
        article = self.state.get("articles", rid, "Ticket::Article")
        self._ticket_for(actor, article["ticket_id"])
        if article["internal"] and not actor.has("ticket.agent"):
            raise ForbiddenError("Not authorized")
        return 200, self.state.article_json(article)

    def do_articles_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        self._ticket_for(actor, params.get("ticket_id"), write=not actor.has("ticket.customer"))
        if not actor.has("ticket.agent"):
            params = {**params, "internal": False,
                      "type": params.get("type") if params.get("type") in ("note", "web")
                      else "note"}
        article = self.state.create_article(params, actor.id)
        return 201, self.state.article_json(article)

    # -- time accounting -------------------------------------------------------------

    def _can_book(self, actor: Actor) -> None:
        if actor.has("admin.time_accounting"):
            return
        actor.require("admin.time_accounting", "ticket.agent")
        if not self.state.setting("time_accounting"):
            raise ForbiddenError("Not authorized (Time Accounting is not enabled)!")

    def _create_booking(self, actor: Actor, ticket_id: Any,
                        params: dict[str, Any]) -> tuple[int, Any]:
        self._ticket_for(actor, ticket_id, write=True)
        type_id = params.get("type_id")
        if type_id in (None, "") and params.get("type"):
            type_id = self.state._type_id_by_name(params["type"])
        booking = self.state.add_booking(ticket_id, params.get("time_unit"), actor.id,
                                         type_id=type_id,
                                         article_id=params.get("ticket_article_id"))
        return 201, self.state.booking_json(booking)

    def _booking(self, rid: Any, ticket_id: Any = None) -> dict[str, Any]:
        booking = self.state.get("time_accountings", rid, "Ticket::TimeAccounting")
        if ticket_id is not None and str(booking["ticket_id"]) != str(ticket_id):
            raise not_found("Ticket::TimeAccounting", rid)
        return booking

    def _may_list_bookings(self, actor: Actor, ticket: dict[str, Any]) -> None:
        """``Controllers::Ticket::TimeAccountingsControllerPolicy#index?``: ``TicketPolicy
        #update?``, i.e. group access ``change``; ``admin.time_accounting`` does not help."""
        actor.require("admin.time_accounting", "ticket.agent")
        if self.sandbox.group_access and not self._agent_access(actor, ticket, "change"):
            raise ForbiddenError("Not authorized")

    def do_ta_ticket_index(self, actor: Actor, params: dict[str, Any],
                           tid: str) -> tuple[int, Any]:
        ticket = self.state.get("tickets", tid, "Ticket")
        self._may_list_bookings(actor, ticket)
        expand = to_bool(params.get("expand", False))
        rows = list(self.state.rows_of("time_accountings", "ticket_id", ticket["id"]))
        return 200, self._generic_index(rows, params,
                                        lambda b: self.state.booking_json(b, expand),
                                        "ticket_time_accountings")

    def do_ta_ticket_show(self, actor: Actor, params: dict[str, Any], tid: str,
                          rid: str) -> tuple[int, Any]:
        self._may_list_bookings(actor, self.state.get("tickets", tid, "Ticket"))
        booking = self._booking(rid, tid)
        return 200, self.state.booking_json(booking, to_bool(params.get("expand", False)))

    def do_ta_ticket_create(self, actor: Actor, params: dict[str, Any],
                            tid: str) -> tuple[int, Any]:
        self.state.get("tickets", tid, "Ticket")
        self._can_book(actor)
        return self._create_booking(actor, tid, params)

    def do_ta_update(self, actor: Actor, params: dict[str, Any], rid: str,
                     tid: str | None = None) -> tuple[int, Any]:
        actor.require("admin.time_accounting")
        booking = self._booking(rid, tid)
        self.state.update_booking(booking, params)
        return 200, self.state.booking_json(booking)

    def do_ta_destroy(self, actor: Actor, params: dict[str, Any], rid: str,
                      tid: str | None = None) -> tuple[int, Any]:
        actor.require("admin.time_accounting")
        self.state.delete_booking(self._booking(rid, tid))
        return 200, {}

    def _global_bookings(self, actor: Actor, request: str) -> None:
        """The global routes (6.1+, ``config/routes/time_accounting.rb``) and their policy:
        ``Controllers::TimeAccountingsControllerPolicy#index?``/``#show?`` is
        ``admin_access? || agent_access?``, and without a ``ticket_id`` only the first can
        hold; ``permissions?`` swallows the reason, so Pundit answers its plain 403."""
        if not self.sandbox.version_at_least(6, 1):
            raise ApiError(404, f"No route matches [GET] {API}/{request}")
        if not actor.has("admin.time_accounting"):
            raise ForbiddenError("Not authorized")

    def do_ta_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        """``model_index_render`` over every row: default 500, max 1000, ``sort_by``/
        ``order_by`` lists (``updated_at,id`` + ``desc,desc``), ``id asc`` by default; no date
        filter. ``expand`` adds ``created_by`` and ``type`` as the per-ticket list does."""
        self._global_bookings(actor, "time_accountings")
        expand = to_bool(params.get("expand", False))
        rows = list(self.state.data["time_accountings"].values())
        return 200, self._generic_index(rows, params,
                                        lambda b: self.state.booking_json(b, expand),
                                        "ticket_time_accountings")

    def do_ta_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        self._global_bookings(actor, f"time_accountings/{rid}")
        return 200, self.state.booking_json(self._booking(rid),
                                            to_bool(params.get("expand", False)))

    def do_ta_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        if params.get("ticket_id") in (None, ""):
            actor.require("admin.time_accounting")
            raise ApiError(422, "Ticket can't be blank")
        self.state.get("tickets", params["ticket_id"], "Ticket")
        self._can_book(actor)
        return self._create_booking(actor, params["ticket_id"], params)

    def do_types_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.time_accounting")
        return 200, self._generic_index(list(self.state.data["time_accounting_types"].values()),
                                        params, self.state.columns,
                                        "ticket_time_accounting_types")

    def do_types_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.time_accounting")
        name = str(params.get("name") or "").strip()
        self._check_type_name(name, None)
        stamp = self.state.now_iso()
        tid = self.state.next_id("time_accounting_types")
        row = {"id": tid, "name": name, "note": params.get("note"),
               "active": to_bool(params.get("active", True)), "updated_by_id": actor.id,
               "created_by_id": actor.id, "created_at": stamp, "updated_at": stamp}
        self.state.data["time_accounting_types"][tid] = row
        return 201, row

    def do_types_update(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.time_accounting")
        row = self.state.get("time_accounting_types", rid, "Ticket::TimeAccounting::Type")
        if "name" in params:
            name = str(params["name"] or "").strip()
            self._check_type_name(name, row["id"])
            row["name"] = name
        if "note" in params:
            row["note"] = params["note"]
        if "active" in params:
            row["active"] = to_bool(params["active"])
        row["updated_by_id"] = actor.id
        row["updated_at"] = self.state.now_iso()
        return 200, row

    def _check_type_name(self, name: str, own_id: int | None) -> None:
        if not name:
            raise ApiError(422, "Name can't be blank")
        for other in self.state.data["time_accounting_types"].values():
            if other["id"] != own_id and other["name"].lower() == name.lower():
                raise ApiError(422, "Name has already been taken")

    # -- object manager --------------------------------------------------------------

    def do_oma_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.object")
        rows = sorted(self.state.data["object_attributes"].values(),
                      key=lambda a: (a["position"], a["name"]))
        return 200, [self.state.attribute_json(a) for a in rows]

    def do_oma_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.object")
        attr = self.state.get("object_attributes", rid, "ObjectManager::Attribute")
        result = self.state.attribute_json(attr)
        result["object_lookup_id"] = list(("Ticket", "User", "Organization", "Group")).index(
            result.pop("object")) + 1
        return 200, result

    def do_oma_list(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.object")
        return 200, {"objects": ["Ticket", "User", "Organization", "Group"]}

    def do_oma_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.object")
        return 201, self.state.attribute_json(self.state.create_attribute(params, actor.id))

    def do_oma_update(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.object")
        return 200, self.state.attribute_json(self.state.update_attribute(params, actor.id))

    def do_oma_destroy(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.object")
        attr = self.state.get("object_attributes", rid, "ObjectManager::Attribute")
        self.state.delete_attribute(attr)
        return 200, {}

    def do_oma_execute(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.object")
        if self.state.execute_migrations(self_restart=self.sandbox.auto_shutdown()):
            self.sandbox.begin_restart()
        return 200, {}

    def do_oma_discard(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.object")
        self.state.discard_changes()
        return 200, {}

    # -- webhooks and triggers -------------------------------------------------------

    def do_webhooks_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.webhook")
        return 200, self._generic_index(list(self.state.data["webhooks"].values()), params,
                                        self.state.columns, "webhooks")

    def do_webhooks_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.webhook")
        return 200, self.state.columns(self.state.get("webhooks", rid, "Webhook"))

    def do_webhooks_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.webhook")
        check_webhook(params)
        row = self.state.save_record("webhooks", params, dict(WEBHOOK_COLUMNS), actor.id)
        return 201, self.state.columns(row)

    def do_webhooks_update(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.webhook")
        row = self.state.get("webhooks", rid, "Webhook")
        check_webhook({**row, **params})
        return 200, self.state.columns(self.state.save_record(
            "webhooks", params, dict(WEBHOOK_COLUMNS), actor.id, row))

    def do_webhooks_destroy(self, actor: Actor, params: dict[str, Any],
                            rid: str) -> tuple[int, Any]:
        actor.require("admin.webhook")
        row = self.state.get("webhooks", rid, "Webhook")
        users = [t["name"] for t in self.state.data["triggers"].values()
                 if str(((t.get("perform") or {}).get("notification.webhook") or {})
                        .get("webhook_id")) == str(row["id"])]
        if users:
            raise ApiError(422, f"This object is referenced by other object(s) and thus cannot "
                                f"be deleted: Trigger / {users[0]}")
        del self.state.data["webhooks"][row["id"]]
        return 200, {}

    def do_triggers_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.trigger")
        return 200, self._generic_index(list(self.state.data["triggers"].values()), params,
                                        self.state.columns, "triggers")

    def do_triggers_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.trigger")
        return 200, self.state.columns(self.state.get("triggers", rid, "Trigger"))

    def do_triggers_create(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.trigger")
        check_trigger(params, list(self.state.data["triggers"].values()))
        row = self.state.save_record("triggers", params, dict(TRIGGER_COLUMNS), actor.id)
        return 201, self.state.columns(row)

    def do_triggers_update(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        actor.require("admin.trigger")
        row = self.state.get("triggers", rid, "Trigger")
        others = [t for t in self.state.data["triggers"].values() if t["id"] != row["id"]]
        check_trigger({**row, **params}, others)
        return 200, self.state.columns(self.state.save_record(
            "triggers", params, dict(TRIGGER_COLUMNS), actor.id, row))

    def do_triggers_destroy(self, actor: Actor, params: dict[str, Any],
                            rid: str) -> tuple[int, Any]:
        actor.require("admin.trigger")
        del self.state.data["triggers"][self.state.get("triggers", rid, "Trigger")["id"]]
        return 200, {}

    # -- settings --------------------------------------------------------------------

    def _setting_rows(self) -> list[dict[str, Any]]:
        return list(self.state.data["settings"].values())

    def _setting_json(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        return {"id": index, "name": row["name"], "title": row["name"].replace("_", " "),
                "area": row["area"], "options": {}, "state_current": {"value": row["value"]},
                "preferences": {"permission": row["permission"]}, "frontend": False}

    def _setting(self, actor: Actor, rid: str) -> tuple[int, dict[str, Any]]:
        actor.require("admin.*")
        rows = self._setting_rows()
        index = ruby_to_i(rid, 0)
        if not 1 <= index <= len(rows):
            raise not_found("Setting", rid)
        row = rows[index - 1]
        if row["permission"]:  # SettingPolicy: a setting without a permission is any admin's
            actor.require(*row["permission"])
        return index, row

    def do_settings_index(self, actor: Actor, params: dict[str, Any]) -> tuple[int, Any]:
        actor.require("admin.*")
        return 200, [self._setting_json(i, row)
                     for i, row in enumerate(self._setting_rows(), start=1)
                     if not row["permission"] or any(actor.has(p) for p in row["permission"])]

    def do_settings_show(self, actor: Actor, params: dict[str, Any], rid: str) -> tuple[int, Any]:
        index, row = self._setting(actor, rid)
        return 200, self._setting_json(index, row)

    def do_settings_update(self, actor: Actor, params: dict[str, Any],
                           rid: str) -> tuple[int, Any]:
        index, row = self._setting(actor, rid)
        current = params.get("state_current")
        if isinstance(current, dict) and "value" in current:
            row["value"] = current["value"]
        return 200, self._setting_json(index, row)


def json_response(status: int, body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    content_type=JSON_TYPE)


class ConnectionReset(ConnectionError):
    """Raised after the socket was reset; werkzeug takes a `ConnectionError` for a dropped
    client and ends the request quietly."""


def reset_connection(request: Request) -> None:
    """Abort the client's connection with a TCP RST (SO_LINGER 0), as a dying proxy would."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    raise ConnectionReset


def fault_response(fault: dict[str, Any]) -> Response:
    """What an overloaded or broken Zammad (or its proxy) answers."""
    status = fault["status"]
    if status == 429:
        response = Response("Retry later\n", status=429, content_type="text/plain")
    elif status in (502, 503, 504):
        response = Response(f"<html><body><h1>{status}</h1>upstream error</body></html>\n",
                            status=status, content_type="text/html")
    else:
        response = json_response(status, {"error": f"Error ID {secrets.token_hex(4)}: "
                                                   "Please contact your administrator."})
    if fault.get("retry_after") is not None:
        response.headers["Retry-After"] = str(fault["retry_after"])
    return response
