"""The Zammad sandbox's data and its domain rules, free of HTTP.

Why separate from the routes: the same operations (create a ticket, book time, close, merge,
delete, register an attribute) are reached through the REST API *and* through the Python test
helpers on ``ZammadSandbox``; both must apply Zammad's rules identically (``close_at`` set once,
``last_close_at`` on every close, ticket ``time_unit`` kept as the sum of its rows, unknown
update keys dropped, select values validated, attributes invisible until migrated).

All records live in one plain dict (JSON-serialisable after key conversion) so the whole
sandbox can be saved to and restored from a file.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.sandbox.zammad_attributes import (
    DATA_TYPES,
    OBJECT_TABLES,
    SELECT_TYPES,
    check_data_option,
    check_name,
    default_options,
    option_keys,
)
from connectors.sandbox.zammad_html import sanitize_html
from connectors.sandbox.zammad_seed import add_merge_link, decimal_string, iso
from connectors.sandbox.zammad_selector import evaluate
from connectors.sandbox.zammad_values import (
    ApiError,
    not_found,
    parse_decimal,
    parse_time,
    to_bool,
)

TABLES = (
    "roles", "users", "organizations", "groups", "priorities", "state_types", "states",
    "article_types", "article_senders", "tickets", "articles", "time_accountings",
    "time_accounting_types", "object_attributes", "webhooks", "triggers",
)
# Ticket columns a PUT may change (``param_cleanup`` keeps real columns; derived and
# bookkeeping columns are ignored, as Zammad ignores number/created_at/updated_at/*_by_id).
TICKET_WRITABLE = ("group_id", "priority_id", "state_id", "organization_id", "title",
                   "owner_id", "customer_id", "note", "pending_time", "type", "preferences")
TICKET_LOOKUPS = {"state": "states", "group": "groups", "priority": "priorities",
                  "customer": "users", "owner": "users", "organization": "organizations"}
ID_TABLES = {"group_id": "groups", "priority_id": "priorities", "state_id": "states",
             "organization_id": "organizations", "owner_id": "users", "customer_id": "users"}


class SandboxState:
    """The records plus the operations that change them (callers hold the lock)."""

    def __init__(self, data: dict[str, Any], clock: Callable[[], datetime]) -> None:
        self.data = data
        self.clock = clock
        counters = data.setdefault("counters", {})
        for table in TABLES:
            data.setdefault(table, {})  # state files from before webhooks/triggers existed
            counters.setdefault(table, max(data[table], default=0) + 1)
        #: called after each ticket update with (ticket, changed columns): the triggers
        self.on_ticket_change: Callable[[dict[str, Any], set[str]], None] | None = None
        #: bumped when rows move between tickets (a merge): the per-ticket index is rebuilt
        self._moves = 0
        #: the ``strict_resum`` switch (see ``resum``)
        self.strict_resum = False
        self._index: dict[str, tuple[tuple[int, int, int, int], dict[Any, list[dict[str, Any]]]]] = {}

    # -- per-ticket lookups --------------------------------------------------------------

    def rows_of(self, table: str, key: str, value: Any) -> list[dict[str, Any]]:
        """The rows of `table` whose `key` column is `value`, in id order.

        Why an index: a search page renders 200 tickets with their article and booking ids,
        and scanning every row per ticket made the sandbox, not the client, the bottleneck of
        a 5,000-ticket benchmark. The index is rebuilt whenever the table gained or lost rows
        (length, id counter) or rows moved to another ticket (`_moves`), so callers never see
        a stale answer.
        """
        rows = self.data[table]
        name = f"{table}.{key}"
        fingerprint = (id(rows), len(rows), self.data["counters"][table], self._moves)
        cached = self._index.get(name)
        if cached is None or cached[0] != fingerprint:
            groups: dict[Any, list[dict[str, Any]]] = {}
            for row_id in sorted(rows):
                groups.setdefault(rows[row_id][key], []).append(rows[row_id])
            cached = (fingerprint, groups)
            self._index[name] = cached
        return cached[1].get(value, [])

    # -- persistence -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The state with string keys, as written to a state file."""
        result = copy.deepcopy(self.data)
        for table in TABLES:
            result[table] = {str(key): value for key, value in result[table].items()}
        return result

    @classmethod
    def from_json(cls, raw: dict[str, Any], clock: Callable[[], datetime]) -> SandboxState:
        """Restore a state written by `to_json`."""
        data = dict(raw)
        for table in TABLES:
            data[table] = {int(key): value for key, value in raw.get(table, {}).items()}
        return cls(data, clock)

    # -- basics ------------------------------------------------------------------------

    def table(self, name: str) -> dict[int, dict[str, Any]]:
        return self.data[name]

    def now_iso(self) -> str:
        return iso(self.clock())

    def next_id(self, table: str) -> int:
        """Ids are never reused, even after a hard delete (database sequences)."""
        value = self.data["counters"][table]
        self.data["counters"][table] = value + 1
        return value

    def get(self, table: str, record_id: Any, model: str) -> dict[str, Any]:
        try:
            return self.data[table][int(record_id)]
        except (KeyError, ValueError, TypeError):
            raise not_found(model, record_id) from None

    def setting(self, name: str) -> Any:
        return self.data["settings"][name]["value"]

    def user_permissions(self, user: dict[str, Any]) -> list[str]:
        perms: list[str] = []
        for role_id in user["role_ids"]:
            perms.extend(self.data["roles"][role_id]["_permissions"])
        return perms

    def user_label(self, user_id: int | None) -> str | None:
        """How ``attributes_with_association_names`` names a user: the login."""
        if user_id is None or user_id not in self.data["users"]:
            return None
        return self.data["users"][user_id]["login"]

    def state_type(self, state_id: int) -> str:
        state = self.data["states"][state_id]
        return self.data["state_types"][state["state_type_id"]]["name"]

    def closed_state_ids(self) -> list[int]:
        return [sid for sid in self.data["states"] if self.state_type(sid) == "closed"]

    def find_user(self, value: Any) -> dict[str, Any] | None:
        """A user by id, login or email (lookups by name, `From` header, basic auth)."""
        users = self.data["users"]
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return users.get(int(value))
        text = str(value).lower()
        for user in users.values():
            if user["login"].lower() == text or (user["email"] or "").lower() == text:
                return user
        return None

    # -- rendering ---------------------------------------------------------------------

    @staticmethod
    def columns(record: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in record.items() if not key.startswith("_")}

    def ticket_ids_of(self, ticket_id: int) -> dict[str, list[int]]:
        return {
            "article_ids": [a["id"] for a in self.rows_of("articles", "ticket_id", ticket_id)],
            "ticket_time_accounting_ids": [
                b["id"] for b in self.rows_of("time_accountings", "ticket_id", ticket_id)],
        }

    def ticket_with_ids(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """``attributes_with_association_ids``: the columns plus the ``*_ids`` arrays."""
        result = self.columns(ticket)
        result.update(self.ticket_ids_of(ticket["id"]))
        return result

    def ticket_with_names(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """``attributes_with_association_names``: ids plus the related records' names."""
        result = self.ticket_with_ids(ticket)
        org = self.data["organizations"].get(ticket["organization_id"] or 0)
        names = {
            "group": self.data["groups"][ticket["group_id"]]["name"],
            "state": self.data["states"][ticket["state_id"]]["name"],
            "priority": self.data["priorities"][ticket["priority_id"]]["name"],
            "owner": self.user_label(ticket["owner_id"]),
            "customer": self.user_label(ticket["customer_id"]),
            "organization": org["name"] if org else None,
            "created_by": self.user_label(ticket["created_by_id"]),
            "updated_by": self.user_label(ticket["updated_by_id"]),
            "create_article_type": self.data["article_types"].get(
                ticket["create_article_type_id"] or 0, {}).get("name"),
            "create_article_sender": self.data["article_senders"].get(
                ticket["create_article_sender_id"] or 0, {}).get("name"),
        }
        result.update({key: value for key, value in names.items() if value is not None})
        # has_many without names is dropped unless empty (Zammad quirk).
        if not result["article_ids"]:
            result["articles"] = []
        if not result["ticket_time_accounting_ids"]:
            result["ticket_time_accounting"] = []
        return result

    def user_json(self, user: dict[str, Any], expand: bool = False) -> dict[str, Any]:
        result = self.columns(user)
        if expand:
            result["roles"] = [self.data["roles"][r]["name"] for r in user["role_ids"]]
            org = self.data["organizations"].get(user["organization_id"] or 0)
            if org:
                result["organization"] = org["name"]
            result["organizations"] = [self.data["organizations"][o]["name"]
                                       for o in user["organization_ids"]]
        return result

    def role_json(self, role: dict[str, Any]) -> dict[str, Any]:
        """``attributes_with_association_ids`` of a role: its columns and its ``group_ids``
        access map (``HasGroups``: empty while the role is inactive)."""
        result = self.columns(role)
        result["group_ids"] = dict(role.get("group_ids") or {}) if role.get("active", True) else {}
        return result

    def group_access(self, user: dict[str, Any], group_id: int, access: str) -> bool:
        """``HasGroups#group_access?``: the user's own group permissions, then those of its
        active roles (``HasRoles#role_access?``); ``full`` covers every access."""
        grants = [(user.get("group_ids") or {}).get(str(group_id)) or []]
        for role_id in user.get("role_ids") or []:
            role = self.data["roles"].get(role_id) or {}
            if role.get("active", True):
                grants.append((role.get("group_ids") or {}).get(str(group_id)) or [])
        return any("full" in granted or access in granted for granted in grants)

    def organization_json(self, org: dict[str, Any], expand: bool = False) -> dict[str, Any]:
        result = self.columns(org)
        members = sorted(u["id"] for u in self.data["users"].values()
                         if u["organization_id"] == org["id"])
        result["member_ids"] = members
        result["secondary_member_ids"] = sorted(
            u["id"] for u in self.data["users"].values() if org["id"] in u["organization_ids"])
        if expand:
            result["members"] = [self.data["users"][m]["login"] for m in members]
        return result

    def article_json(self, article: dict[str, Any]) -> dict[str, Any]:
        """Articles always come back with names (unlike tickets), plus attachments."""
        result = self.columns(article)
        booking = next(iter(self.rows_of("time_accountings", "ticket_article_id", article["id"])), None)
        result.update({
            "attachments": [],
            "type": self.data["article_types"][article["type_id"]]["name"],
            "sender": self.data["article_senders"][article["sender_id"]]["name"],
            "created_by": self.user_label(article["created_by_id"]),
            "updated_by": self.user_label(article["updated_by_id"]),
            "time_unit": booking["time_unit"] if booking else None,
        })
        return result

    def booking_json(self, booking: dict[str, Any], expand: bool = False) -> dict[str, Any]:
        result = self.columns(booking)
        if expand:
            result["created_by"] = self.user_label(booking["created_by_id"])
            type_row = self.data["time_accounting_types"].get(booking["type_id"] or 0)
            if type_row:
                result["type"] = type_row["name"]
        return result

    # -- tickets -----------------------------------------------------------------------

    def ticket_columns(self) -> set[str]:
        """The ``tickets`` table columns right now (core plus migrated custom fields)."""
        sample = next(iter(self.data["tickets"].values()), None)
        base = {k for k in sample if not k.startswith("_")} if sample else set()
        base.update(TICKET_WRITABLE)
        base.update(self.migrated_columns("Ticket"))
        base.update(("id", "number", "created_at", "updated_at", "close_at", "last_close_at",
                     "time_unit", "article_count", "created_by_id", "updated_by_id"))
        return base

    def migrated_columns(self, obj: str) -> list[str]:
        """Custom columns the running "processes" know: migrated, and restarted since."""
        waiting = {name for kind, name, _ in self.data.get("restart_pending", []) if kind == obj}
        return [a["name"] for a in self.data["object_attributes"].values()
                if a["object"] == obj and a["editable"] and not a["to_create"]
                and a["name"] not in waiting]

    def _resolve_lookups(self, params: dict[str, Any]) -> dict[str, Any]:
        """``"state":"closed"`` → ``state_id``; unknown names give Zammad's 422 text."""
        resolved = dict(params)
        for key, table in TICKET_LOOKUPS.items():
            if key not in params or f"{key}_id" in params:
                continue
            value = params[key]
            if table == "users":
                record = self.find_user(value)
            else:
                record = next((r for r in self.data[table].values()
                               if str(r.get("name")) == str(value)), None)
            if record is None:
                raise ApiError(422, f"No lookup value found for '{key}': {_inspect(value)}")
            resolved[f"{key}_id"] = record["id"]
        return resolved

    def _check_ids(self, values: dict[str, Any]) -> None:
        for key, table in ID_TABLES.items():
            if key not in values or values[key] is None:
                continue
            try:
                ok = int(values[key]) in self.data[table]
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ApiError(422, f"Invalid value for param '{key}': {values[key]}")
            values[key] = int(values[key])

    def _custom_values(self, params: dict[str, Any], obj: str = "Ticket") -> dict[str, Any]:
        """Values for migrated custom fields, validated like Core Workflow does."""
        values: dict[str, Any] = {}
        known = set(self.migrated_columns(obj))
        attrs = {a["name"]: a for a in self.data["object_attributes"].values()
                 if a["object"] == obj and a["name"] in known}
        for name, attr in attrs.items():
            if name not in params:
                continue
            values[name] = self._cast_custom(attr, params[name])
        return values

    @staticmethod
    def _cast_custom(attr: dict[str, Any], value: Any) -> Any:
        data_type = attr["data_type"]
        option = attr["data_option"]
        name = attr["name"]
        if value is None or value == "":
            return None if data_type != "boolean" else option.get("default")
        if data_type in SELECT_TYPES:
            allowed = {str(k) for k in option_keys(option.get("options"))}
            items = value if isinstance(value, list) else [value]
            for item in items:
                if str(item) not in allowed:
                    raise ApiError(422, f"Invalid value '{item}' for field '{name}'!")
            return items if data_type.startswith("multi") else str(value)
        if data_type == "boolean":
            return to_bool(value)
        if data_type == "integer":
            try:
                return int(value)
            except (TypeError, ValueError):
                raise ApiError(422, f"Invalid value '{value}' for field '{name}'!") from None
        if data_type in ("datetime", "date"):
            moment = parse_time(value)
            return iso(moment) if data_type == "datetime" and moment else str(value)[:10]
        text = str(value)
        limit = option.get("maxlength")
        if isinstance(limit, int) and len(text) > limit:
            raise ApiError(422, f"PG::StringDataRightTruncation: ERROR:  value too long for "
                                f"type character varying({limit})")
        return text

    def _check_required(self, ticket: dict[str, Any]) -> None:
        """A field required for agents on the edit screen blocks every API update."""
        for attr in self.data["object_attributes"].values():
            if attr["object"] != "Ticket" or attr["name"] not in set(self.migrated_columns("Ticket")):
                continue
            screen = attr.get("screens", {}).get("edit", {})
            rule = screen.get("ticket.agent") or screen.get("-all-") or {}
            if rule.get("required") and ticket.get(attr["name"]) in (None, "", []):
                raise ApiError(422, f"Missing required value for field '{attr['name']}'!")

    def _apply_state(self, ticket: dict[str, Any], new_state_id: int, stamp: str) -> None:
        """``Ticket::SetsCloseTime``: close_at once, last_close_at on every close."""
        if new_state_id == ticket["state_id"]:
            return
        ticket["state_id"] = new_state_id
        if self.state_type(new_state_id) == "closed":
            ticket["close_at"] = ticket["close_at"] or stamp
            ticket["last_close_at"] = stamp

    def create_ticket(self, params: dict[str, Any], actor_id: int) -> dict[str, Any]:
        """``POST /tickets``: title, group and customer are required; article optional."""
        values = self._resolve_lookups(params)
        for field in ("title", "group_id", "customer_id"):
            if values.get(field) in (None, ""):
                raise ApiError(422, f"Missing required value for field '{field}'!")
        self._check_ids(values)
        customer = self.data["users"][values["customer_id"]]
        stamp = self.now_iso()
        tid = self.next_id("tickets")
        default_state = next(s["id"] for s in self.data["states"].values()
                             if s["default_create"])
        ticket: dict[str, Any] = {
            "id": tid, "group_id": values["group_id"],
            "priority_id": values.get("priority_id") or 2, "state_id": default_state,
            "organization_id": values.get("organization_id") or customer["organization_id"],
            "number": str(31000 + tid), "title": str(values["title"]),
            "owner_id": values.get("owner_id") or 1, "customer_id": customer["id"],
            "note": values.get("note"), "first_response_at": None,
            "first_response_escalation_at": None, "close_at": None,
            "close_escalation_at": None, "last_close_at": None, "update_escalation_at": None,
            "last_contact_at": None, "last_contact_agent_at": None,
            "last_contact_customer_at": None, "last_owner_update_at": None,
            "create_article_type_id": None, "create_article_sender_id": None,
            "article_count": 0, "escalation_at": None,
            "pending_time": values.get("pending_time"), "type": values.get("type"),
            "time_unit": None, "preferences": values.get("preferences") or {},
            "updated_by_id": actor_id, "created_by_id": actor_id, "created_at": stamp,
            "updated_at": stamp, "checklist_id": None,
        }
        for name in self.migrated_columns("Ticket"):
            ticket[name] = self._initial_value(name)
        ticket.update(self._custom_values(params))
        ticket["_tags"] = []
        self.data["tickets"][tid] = ticket
        if values.get("state_id"):
            self._apply_state(ticket, values["state_id"], stamp)
        article = params.get("article")
        if isinstance(article, dict) and article:
            created = self.create_article({**article, "ticket_id": tid}, actor_id)
            ticket["create_article_type_id"] = created["type_id"]
            ticket["create_article_sender_id"] = created["sender_id"]
        return ticket

    def _initial_value(self, name: str) -> Any:
        attr = self.attribute_by_name("Ticket", name)
        if attr and attr["data_type"] == "boolean":
            return attr["data_option"].get("default")
        return None

    def update_ticket(self, ticket_id: Any, params: dict[str, Any],
                      actor_id: int) -> dict[str, Any]:
        """``PUT /tickets/{id}``: unknown keys dropped, lookups and selects validated."""
        ticket = self.get("tickets", ticket_id, "Ticket")
        before = dict(ticket)
        values = self._resolve_lookups(params)
        changes = {key: values[key] for key in TICKET_WRITABLE if key in values}
        self._check_ids(changes)
        changes.update(self._custom_values(params))
        candidate = {**ticket, **changes}
        self._check_required(candidate)
        stamp = self.now_iso()
        new_state = changes.pop("state_id", None)
        ticket.update(changes)
        if new_state is not None:
            self._apply_state(ticket, new_state, stamp)
        ticket["updated_by_id"] = actor_id
        ticket["updated_at"] = stamp
        article = params.get("article")
        if isinstance(article, dict) and article:
            self.create_article({**article, "ticket_id": ticket["id"]}, actor_id)
        if self.on_ticket_change is not None:
            changed = {f"ticket.{key}" for key in ticket if ticket.get(key) != before.get(key)}
            self.on_ticket_change(ticket, changed)
        return ticket

    def webhook_payload(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """``TriggerWebhookJob::RecordPayload`` for a trigger without an article: the ticket
        with names, keys sorted, users/organization/group/priority as nested objects."""
        record = self.ticket_with_names(ticket)
        hidden = {"_password", "password", "preferences", "group_ids", "last_login",
                  "login_failed"}
        for key, table in (("owner", "users"), ("customer", "users"), ("created_by", "users"),
                           ("updated_by", "users"), ("organization", "organizations"),
                           ("group", "groups"), ("priority", "priorities")):
            row = self.data[table].get(ticket.get(f"{key}_id") or 0)
            if row is not None:
                record[key] = {k: v for k, v in self.columns(row).items() if k not in hidden}
        return {"ticket": dict(sorted(record.items())), "article": {}}

    # -- webhooks and triggers -------------------------------------------------------

    def save_record(self, table: str, params: dict[str, Any], columns: dict[str, Any],
                    actor_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create (`record` None) or update a webhook or trigger row with its bookkeeping."""
        stamp = self.now_iso()
        if record is None:
            record = {"id": self.next_id(table), **columns, "created_by_id": actor_id,
                      "created_at": stamp}
            self.data[table][record["id"]] = record
        for key in columns:
            if key in params:
                record[key] = params[key]
        record.update(updated_by_id=actor_id, updated_at=stamp)
        return record

    def update_organization(self, org_id: Any, params: dict[str, Any],
                            actor_id: int) -> dict[str, Any]:
        """Name, note, shared, active and the migrated custom fields; the rest is dropped."""
        org = self.get("organizations", org_id, "Organization")
        for key in ("name", "note", "shared", "active", "vip", "domain"):
            if key in params:
                org[key] = params[key]
        org.update(self._custom_values(params, "Organization"))
        org["updated_by_id"] = actor_id
        org["updated_at"] = self.now_iso()
        return org

    def touch(self, ticket: dict[str, Any], actor_id: int | None = None) -> None:
        ticket["updated_at"] = self.now_iso()
        if actor_id is not None:
            ticket["updated_by_id"] = actor_id

    def delete_ticket(self, ticket_id: Any) -> None:
        """Hard delete with its articles and time rows, as ``DELETE /tickets/{id}`` does."""
        ticket = self.get("tickets", ticket_id, "Ticket")
        tid = ticket["id"]
        del self.data["tickets"][tid]
        self.data["links"] = [link for link in self.data.get("links", [])  # Link.remove_all
                              if tid not in (link["source"], link["target"])]
        for table in ("articles", "time_accountings"):
            rows = self.data[table]
            for rid in [r["id"] for r in rows.values() if r["ticket_id"] == tid]:
                del rows[rid]

    def merge_ticket(self, source_id: Any, target_id: Any, actor_id: int) -> None:
        """``Ticket#merge_to``: articles move to the target, time rows stay on the source."""
        source = self.get("tickets", source_id, "Ticket")
        target = self.get("tickets", target_id, "Ticket")
        if source["id"] == target["id"]:
            raise ApiError(422, "Can't merge ticket with itself!")
        if self.state_type(source["state_id"]) == "merged":
            raise ApiError(422, "Object already exists!")
        for article in self.data["articles"].values():
            if article["ticket_id"] == source["id"]:
                article["ticket_id"] = target["id"]
                target["article_count"] += 1
        self._moves += 1
        source["article_count"] = 0
        merged_state = next(sid for sid in self.data["states"]
                            if self.state_type(sid) == "merged")
        source["state_id"] = merged_state
        add_merge_link(self.data, source["id"], target["id"])
        self.touch(source, actor_id)
        self.touch(target, actor_id)

    def links_of(self, ticket_id: int) -> list[dict[str, Any]]:
        """``Link.list(link_object: 'Ticket', link_object_value: id)``: the ticket's links as the
        other side sees them. Zammad stores a merge as link type ``parent`` from the surviving
        ticket (source) to the merged one (target): the merged ticket lists the survivor with
        ``parent``, the survivor lists the merged ticket with ``child``."""
        mapped = {"normal": "normal", "parent": "child", "child": "parent"}
        found = []
        for link in self.data.get("links", []):
            if link["source"] == ticket_id:
                found.append({"link_type": mapped[link["link_type"]], "link_object": "Ticket",
                              "link_object_value": link["target"]})
            if link["target"] == ticket_id:
                found.append({"link_type": link["link_type"], "link_object": "Ticket",
                              "link_object_value": link["source"]})
        return found

    # -- articles ----------------------------------------------------------------------

    def create_article(self, params: dict[str, Any], actor_id: int,
                       created_at: str | None = None) -> dict[str, Any]:
        """``CreatesTicketArticles``: body required, note/Agent/internal=false defaults."""
        ticket = self.get("tickets", params.get("ticket_id"), "Ticket")
        if not params.get("body"):
            raise ApiError(422, "Need at least an 'article body' field.")
        actor = self.data["users"][actor_id]
        is_agent = any(p.startswith("ticket.agent") for p in self.user_permissions(actor))
        type_row = self._lookup_named("article_types", params, "type", "note")
        sender_row = self._lookup_named("article_senders", params, "sender",
                                        "Agent" if is_agent else "Customer")
        content_type = params.get("content_type") or "text/plain"
        body = str(params["body"])
        if content_type == "text/html":
            body = sanitize_html(body)
        internal = to_bool(params.get("internal", False)) if is_agent else False
        stamp = created_at or self.now_iso()
        aid = self.next_id("articles")
        article = {
            "id": aid, "ticket_id": ticket["id"], "type_id": type_row["id"],
            "sender_id": sender_row["id"],
            "from": params.get("from") or f"{actor['firstname']} {actor['lastname']}".strip(),
            "to": params.get("to"), "cc": params.get("cc"), "subject": params.get("subject"),
            "reply_to": None, "message_id": None, "message_id_md5": None, "in_reply_to": None,
            "content_type": content_type, "references": None, "body": body,
            "internal": internal, "preferences": params.get("preferences") or {},
            "updated_by_id": actor_id, "created_by_id": actor_id, "origin_by_id": None,
            "created_at": stamp, "updated_at": stamp,
        }
        self.data["articles"][aid] = article
        ticket["article_count"] += 1
        if params.get("time_unit") not in (None, ""):
            type_id = params.get("accounted_time_type_id")
            if params.get("accounted_time_type") and not type_id:
                type_id = self._type_id_by_name(params["accounted_time_type"])
            self.add_booking(ticket["id"], params["time_unit"], actor_id, type_id=type_id,
                             article_id=aid, created_at=stamp)
        self.touch(ticket, actor_id)
        ticket["updated_at"] = max(ticket["updated_at"], stamp)
        return article

    def _lookup_named(self, table: str, params: dict[str, Any], key: str,
                      default: str) -> dict[str, Any]:
        if params.get(f"{key}_id"):
            return self.get(table, params[f"{key}_id"], key.capitalize())
        name = params.get(key) or default
        row = next((r for r in self.data[table].values() if r["name"] == name), None)
        if row is None:
            raise ApiError(422, f"No lookup value found for '{key}': {_inspect(name)}")
        return row

    # -- time accounting ---------------------------------------------------------------

    def _type_id_by_name(self, name: str) -> int:
        for row in self.data["time_accounting_types"].values():
            if row["name"].lower() == str(name).lower():
                return row["id"]
        raise ApiError(422, f"No lookup value found for 'type': {_inspect(name)}")

    def add_booking(self, ticket_id: Any, time_unit: Any, actor_id: int, *,
                    type_id: Any = None, article_id: Any = None,
                    created_at: str | None = None) -> dict[str, Any]:
        """One ``ticket_time_accountings`` row; the ticket's ``time_unit`` is re-summed."""
        ticket = self.get("tickets", ticket_id, "Ticket")
        amount = parse_decimal(time_unit, "time_unit")
        if type_id not in (None, ""):
            if int(type_id) not in self.data["time_accounting_types"]:
                raise ApiError(422, f"Invalid value for param 'type_id': {type_id}")
            type_id = int(type_id)
        else:
            default = self.setting("time_accounting_type_default")
            type_id = int(default) if str(default).isdigit() else None
        if article_id not in (None, ""):
            article = self.data["articles"].get(int(article_id))
            if article is None or article["ticket_id"] != ticket["id"]:
                raise ApiError(422, f"Invalid value for param 'ticket_article_id': {article_id}")
            article_id = int(article_id)
        else:
            article_id = None
        stamp = created_at or self.now_iso()
        bid = self.next_id("time_accountings")
        booking = {
            "id": bid, "ticket_id": ticket["id"], "ticket_article_id": article_id,
            "time_unit": decimal_string(amount), "type_id": type_id,
            "created_by_id": actor_id, "created_at": stamp, "updated_at": stamp,
        }
        self.data["time_accountings"][bid] = booking
        self.resum(ticket)
        return booking

    def update_booking(self, booking: dict[str, Any], params: dict[str, Any]) -> None:
        """``update!``: ``updated_at`` moves only when a value changed; ``after_save`` re-sums."""
        before = dict(booking)
        if "time_unit" in params:
            booking["time_unit"] = decimal_string(parse_decimal(params["time_unit"], "time_unit"))
        if "type_id" in params:
            type_id = params["type_id"]
            if type_id is not None and int(type_id) not in self.data["time_accounting_types"]:
                raise ApiError(422, f"Invalid value for param 'type_id': {type_id}")
            booking["type_id"] = None if type_id is None else int(type_id)
        if booking != before:
            booking["updated_at"] = self.now_iso()
        self.resum(self.data["tickets"][booking["ticket_id"]])

    def delete_booking(self, booking: dict[str, Any]) -> None:
        del self.data["time_accountings"][booking["id"]]
        ticket = self.data["tickets"].get(booking["ticket_id"])
        if ticket:
            self.resum(ticket)

    def resum(self, ticket: dict[str, Any]) -> None:
        """Recalculate the ticket's cached total after a row was saved or deleted.

        Zammad (``Ticket::TimeAccounting.update_ticket``, ``after_save``/``after_destroy``)
        saves the ticket, moving its ``updated_at``, only when the sum of its rows differs from
        its ``time_unit`` (nil counting as 0): a booking of 0, or a change of the activity type
        alone, leaves the ticket as it was, and after its last row is deleted the total is
        "0.0". That is the ``strict_resum`` switch; by default the sandbox bumps the ticket on
        every row change (and a ticket without rows has no total), as its tests expect."""
        rows = [Decimal(b["time_unit"]) for b in self.rows_of("time_accountings", "ticket_id", ticket["id"])]
        total = sum(rows, Decimal(0))
        if self.strict_resum:
            if Decimal(ticket["time_unit"] or 0) == total:
                return
            ticket["time_unit"] = decimal_string(total)
        else:
            ticket["time_unit"] = decimal_string(total) if rows else None
        self.touch(ticket)

    # -- search ------------------------------------------------------------------------

    def search_tickets(self, query: str, condition: Any, sort_by: str | None,
                       order_by: str | None, user_id: int,
                       shuffle: random.Random | None = None) -> list[dict[str, Any]]:
        """The SQL search path: LIKE over title/number/articles, selector, order.

        `shuffle` imitates PostgreSQL, which returns rows that tie on every sort column in
        no particular order (and in another one on the next request).
        """
        text = (query or "").replace("*", "").strip().lower()
        tickets = list(self.data["tickets"].values())
        if text:
            matching_articles = {
                a["ticket_id"] for a in self.data["articles"].values()
                if any(text in str(a.get(f) or "").lower()
                       for f in ("body", "from", "to", "subject"))
            }
            tickets = [t for t in tickets if text in t["title"].lower()
                       or text in t["number"].lower() or t["id"] in matching_articles]
        if condition:
            if not isinstance(condition, dict):
                raise ApiError(422, "Invalid condition, expected a hash")
            columns = self.ticket_columns()
            tickets = [t for t in tickets
                       if self._matches(t, condition, columns, user_id)]
        return self.sort(tickets, sort_by or "updated_at", order_by or "desc",
                         self.ticket_columns(), "tickets", shuffle)

    def sort(self, rows: list[dict[str, Any]], sort_by: str, order_by: str,
             columns: Iterable[str], table: str,
             shuffle: random.Random | None = None) -> list[dict[str, Any]]:
        """ORDER BY like PostgreSQL (NULLS LAST ascending); unknown column is a DB error.

        As Zammad's ``SqlHelper#get_order`` does, a sort column without an order of its own
        (``sort_by=updated_at,id&order_by=asc``) is left out. Ties keep id order, or a
        random one with ``shuffle``.
        """
        keys = [k.strip() for k in str(sort_by).split(",") if k.strip()]
        orders = [o.strip().lower() for o in str(order_by).split(",") if o.strip()] or ["asc"]
        column_set = set(columns)
        for key in keys:
            if key not in column_set:  # SqlHelper#get_sort_by raises a RuntimeError
                raise ApiError(500, f"Found invalid column '{key}' for sorting.", masked=True)
        for order in orders:
            if order not in ("asc", "desc"):
                raise ApiError(500, f"Found invalid order by value {order}. Please use 'asc' "
                                    "or 'desc'.", masked=True)
        if shuffle is None:
            result = sorted(rows, key=lambda r: r["id"])
        else:
            result = list(rows)
            shuffle.shuffle(result)
        for key, order in reversed(list(zip(keys, orders, strict=False))):
            result.sort(key=lambda r, k=key: _sort_key(r.get(k)), reverse=order == "desc")
        return result

    def _matches(self, ticket: dict[str, Any], selector: dict[str, Any],
                 columns: set[str], user_id: int) -> bool:
        if "conditions" in selector and "operator" in selector:
            return self._match_group(ticket, selector, columns, user_id)
        return all(self._match_one(ticket, name, spec, columns, user_id)
                   for name, spec in selector.items())

    def _match_group(self, ticket: dict[str, Any], group: dict[str, Any],
                     columns: set[str], user_id: int) -> bool:
        results = []
        for item in group.get("conditions") or []:
            if "conditions" in item:
                results.append(self._match_group(ticket, item, columns, user_id))
            else:
                results.append(self._match_one(ticket, item.get("name", ""), item, columns,
                                               user_id))
        operator = str(group["operator"]).upper()
        if operator == "AND":
            return all(results)
        if operator == "OR":
            return any(results)
        if operator == "NOT":
            return not any(results)
        raise ApiError(422, f"Invalid condition, operator '{group['operator']}' is invalid")

    def _attribute_value(self, ticket: dict[str, Any], name: str, columns: set[str]) -> Any:
        table, _, attribute = name.partition(".")
        if table == "ticket":
            if attribute == "tags":
                return ticket.get("_tags", [])
            if attribute not in columns:
                raise ApiError(500, f"PG::UndefinedColumn: ERROR:  column tickets.{attribute} "
                                    f"does not exist", masked=True)
            return ticket.get(attribute)
        related = {"customer": ("users", ticket["customer_id"]),
                   "owner": ("users", ticket["owner_id"]),
                   "organization": ("organizations", ticket["organization_id"]),
                   "ticket_state": ("states", ticket["state_id"])}
        if table not in related:
            raise ApiError(422, f"Invalid condition, unknown attribute '{name}'")
        source, record_id = related[table]
        record = self.data[source].get(record_id or 0)
        return record.get(attribute) if record else None

    def _match_one(self, ticket: dict[str, Any], name: str, spec: Any, columns: set[str],
                   user_id: int) -> bool:
        if not isinstance(spec, dict) or "operator" not in spec:
            raise ApiError(422, f"Invalid condition for '{name}'")
        operator = str(spec["operator"])
        value = spec.get("value")
        actual = self._attribute_value(ticket, name, columns)
        pre = spec.get("pre_condition")
        if pre == "current_user.id":
            value = [user_id]
        elif pre == "current_user.organization_id":
            value = [self.data["users"][user_id]["organization_id"]]
        elif pre == "not_set":
            value = None
        return evaluate(operator, actual, value, self.clock())

    # -- object manager ----------------------------------------------------------------

    def attribute_by_name(self, obj: str, name: str) -> dict[str, Any] | None:
        return next((a for a in self.data["object_attributes"].values()
                     if a["object"] == obj and a["name"] == name), None)

    def attribute_json(self, attr: dict[str, Any]) -> dict[str, Any]:
        result = self.columns(attr)
        result["deletable"] = bool(attr["editable"])
        return result

    def create_attribute(self, params: dict[str, Any], actor_id: int) -> dict[str, Any]:
        """``POST /object_manager_attributes``: name rules, per-type data_option checks."""
        obj = params.get("object")
        if obj not in OBJECT_TABLES:
            raise ApiError(422, f"uninitialized constant {obj}")
        name = str(params.get("name") or "").lower()
        if self.attribute_by_name(obj, name):
            raise ApiError(422, "already exists")
        check_name(obj, name)
        data_type = params.get("data_type")
        if data_type not in DATA_TYPES:
            raise ApiError(422, f"Invalid data_type param '{data_type}'")
        option = default_options(data_type, params.get("data_option") or {})
        check_data_option(data_type, option)
        positions = [a["position"] for a in self.data["object_attributes"].values()]
        stamp = self.now_iso()
        aid = self.next_id("object_attributes")
        attr = {
            "id": aid, "object": obj, "name": name,
            "display": params.get("display") or name, "data_type": data_type,
            "data_option": option, "data_option_new": {}, "editable": True,
            "active": to_bool(params.get("active", True)),
            "screens": params.get("screens") or {}, "to_create": True, "to_migrate": True,
            "to_delete": False, "to_config": False,
            "position": int(params.get("position") or max(positions, default=0) + 1),
            "created_by_id": actor_id, "updated_by_id": actor_id, "created_at": stamp,
            "updated_at": stamp,
        }
        self.data["object_attributes"][aid] = attr
        return attr

    def update_attribute(self, params: dict[str, Any], actor_id: int) -> dict[str, Any]:
        """``PUT``: looked up by object+name in the body; changes wait in data_option_new."""
        attr = self.attribute_by_name(str(params.get("object")),
                                      str(params.get("name") or "").lower())
        if attr is None:
            raise ApiError(422, "does not exist")
        if not attr["editable"]:
            raise ApiError(422, "Attribute not editable!")
        if params.get("data_type") and params["data_type"] != attr["data_type"]:
            raise ApiError(422, "Can't be changed data_type of attribute. Drop the attribute "
                                "and recreate it with new data_type.")
        if "data_option" in params:
            option = default_options(attr["data_type"], params["data_option"] or {})
            check_data_option(attr["data_type"], option)
            if attr["to_create"]:
                attr["data_option"] = option
            else:
                attr["data_option_new"] = option
                attr["to_config"] = True
        for key in ("display", "screens", "position"):
            if key in params:
                attr[key] = params[key]
        if "active" in params:
            attr["active"] = to_bool(params["active"])
        attr["updated_by_id"] = actor_id
        attr["updated_at"] = self.now_iso()
        return attr

    def delete_attribute(self, attr: dict[str, Any]) -> None:
        if not attr["editable"]:
            raise ApiError(422, "Attribute not editable!")
        if attr["to_create"]:
            del self.data["object_attributes"][attr["id"]]
        else:
            attr["to_delete"] = True
            attr["to_migrate"] = True

    def pending_migrations(self) -> bool:
        return any(a["to_create"] or a["to_migrate"] or a["to_delete"] or a["to_config"]
                   for a in self.data["object_attributes"].values())

    def execute_migrations(self, self_restart: bool = True) -> bool:
        """Apply every pending change system-wide; True when columns changed (restart).

        Without ``self_restart`` (Zammad's ``auto_shutdown`` off) the columns exist but the
        running processes keep their old column cache: new columns stay out of every answer
        and writes to them are dropped until ``apply_restart``.
        """
        changed = False
        for attr in list(self.data["object_attributes"].values()):
            if attr["to_create"] and not self_restart:
                default = (attr["data_option"].get("default")
                           if attr["data_type"] == "boolean" else None)
                self.data.setdefault("restart_pending", []).append(
                    [attr["object"], attr["name"], default])
                attr.update(to_create=False, to_migrate=False, to_config=False)
                changed = True
                continue
            rows = self.data[OBJECT_TABLES[attr["object"]]].values()
            if attr["to_delete"]:
                for row in rows:
                    row.pop(attr["name"], None)
                del self.data["object_attributes"][attr["id"]]
                changed = True
                continue
            if attr["to_create"]:
                default = (attr["data_option"].get("default")
                           if attr["data_type"] == "boolean" else None)
                for row in rows:
                    row.setdefault(attr["name"], default)
                changed = True
            if attr["to_config"] and attr["data_option_new"]:
                attr["data_option"] = attr["data_option_new"]
                attr["data_option_new"] = {}
            attr.update(to_create=False, to_migrate=False, to_config=False)
        return changed

    def apply_restart(self) -> bool:
        """What a restart of Zammad does to the column cache; True when something changed."""
        pending = self.data.pop("restart_pending", [])
        for obj, name, default in pending:
            for row in self.data[OBJECT_TABLES[obj]].values():
                row.setdefault(name, default)
        return bool(pending)

    def discard_changes(self) -> None:
        for attr in list(self.data["object_attributes"].values()):
            if attr["to_create"]:
                del self.data["object_attributes"][attr["id"]]
                continue
            attr.update(to_migrate=False, to_delete=False, to_config=False,
                        data_option_new={})


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    return (0, str(value))


def _inspect(value: Any) -> str:
    """Ruby's ``inspect`` for the lookup error text."""
    return f'"{value}"' if isinstance(value, str) else str(value)


