"""Object Manager rules: which attribute names and ``data_option`` hashes Zammad accepts.

Why separate: registering custom fields is where a sidecar most often meets 422s (``*_id``
names, reserved words, missing ``default``/``maxlength``), so the rules of
``ObjectManager::Attribute#check_name`` and ``DataOptionValidator`` are kept together here.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.sandbox.zammad_values import ApiError

RESERVED_NAMES = {
    "destroy", "true", "false", "integer", "select", "drop", "create", "alter", "index", "table",
    "varchar", "blob", "date", "datetime", "timestamp", "url", "icon", "initials", "avatar",
    "permission", "validate", "subscribe", "unsubscribe", "translate", "search", "_type", "_doc",
    "_id", "id", "action", "scope", "constructor",
}
MODEL_NAMES = {
    "Ticket": {"title", "number", "type", "note", "state", "priority", "group", "owner",
               "customer", "organization", "article", "articles", "attribute", "tags"},
    "User": {"login", "email", "firstname", "lastname", "note", "organization", "roles",
             "attribute", "password", "fullname"},
    "Organization": {"name", "note", "members", "domain", "attribute", "shared"},
    "Group": {"name", "note", "users", "attribute"},
}
OBJECT_TABLES = {"Ticket": "tickets", "User": "users", "Organization": "organizations",
                 "Group": "groups"}
DATA_TYPES = {"input", "select", "multiselect", "tree_select", "multi_tree_select", "checkbox",
              "boolean", "integer", "datetime", "date", "textarea", "richtext",
              "user_autocompletion", "autocompletion_ajax"}
SELECT_TYPES = {"select", "multiselect", "tree_select", "multi_tree_select", "checkbox"}
INPUT_TYPES = {"text", "password", "tel", "fax", "email", "url"}
INT_LIMIT = 2147483647


def option_keys(options: Any) -> list[Any]:
    if isinstance(options, dict):
        return list(options)
    keys: list[Any] = []
    for item in options or []:  # tree options: [{"name","value","children"}]
        if isinstance(item, dict):
            keys.append(item.get("value"))
            keys.extend(option_keys(item.get("children")))
    return keys


def check_name(obj: str, name: str) -> None:
    """``ObjectManager::Attribute#check_name``."""
    errors = []
    if re.search(r".+?_(id|ids)$", name):
        errors.append("Name can't be used because *_id and *_ids are not allowed")
    if re.search(r"\s", name):
        errors.append("Name spaces are not allowed")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        errors.append("Name Only letters from a-z because numbers from 0-9 and _ are allowed")
    if not re.search(r"[a-z]", name):
        errors.append("Name At least one letters is needed")
    if name in RESERVED_NAMES:
        errors.append("Name attribute is a reserved word")
    elif name in MODEL_NAMES[obj]:
        errors.append(f"Name {name} already exists")
    if errors:
        raise ApiError(422, ", ".join(errors))


def default_options(data_type: str, option: dict[str, Any]) -> dict[str, Any]:
    """Controller defaults (``null: true``, ``default: ""`` for input/select, ``options``)."""
    result = dict(option)
    result.setdefault("null", True)
    if data_type in SELECT_TYPES:
        result.setdefault("nulloption", True)
        result.setdefault("maxlength", 255)
    if data_type == "boolean" and isinstance(result.get("options"), dict):
        result["options"] = {("true" if k in (True, "true") else "false"
                              if k in (False, "false") else k): v
                             for k, v in result["options"].items()}
    if data_type == "boolean" and result.get("default") in ("true", "false"):
        result["default"] = result["default"] == "true"
    return result


def check_data_option(data_type: str, option: dict[str, Any]) -> None:
    """``DataOptionValidator``: the keys each type must have."""
    def fail(text: str) -> None:
        raise ApiError(422, f"Data option {text}")

    if data_type == "input":
        if option.get("type") not in INPUT_TYPES:
            fail(f"must have {'/'.join(sorted(INPUT_TYPES))} for :type")
        if not isinstance(option.get("maxlength"), int) or isinstance(option["maxlength"], bool):
            fail("must have integer for :maxlength")
    elif data_type in ("textarea", "richtext"):
        if not isinstance(option.get("maxlength"), int):
            fail("must have integer for :maxlength")
    elif data_type in SELECT_TYPES:
        if "default" not in option:
            fail("must have value for :default")
        if option.get("options") is None and not option.get("relation"):
            fail("must have non-nil value for either :options or :relation")
    elif data_type == "boolean":
        if "default" not in option:
            fail("must have boolean value for :default")
        if not isinstance(option.get("options"), dict):
            fail("must have non-nil value for :options")
    elif data_type == "integer":
        for key in ("min", "max"):
            number = option.get(key)
            if not isinstance(number, int) or isinstance(number, bool):
                fail(f"must have integer for :{key}")
            if abs(number) > INT_LIMIT:
                fail(f"must be within the 32 bit range for :{key}")
        if option["min"] > option["max"]:
            fail("must have smaller :min than :max")
    elif data_type == "datetime":
        for key in ("future", "past"):
            if not isinstance(option.get(key), bool):
                fail(f"must have boolean value for :{key}")
