"""Custom fields: validation, to_create until migrated, the restart window."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox

BILLING_STATUS = {
    "object": "Ticket", "name": "billing_status", "display": "Billing status",
    "data_type": "select", "active": True,
    "data_option": {"options": {"open": "Open", "invoiced": "Invoiced", "free": "Free"},
                    "default": "open", "null": True},
    "screens": {"edit": {"ticket.agent": {"shown": True, "required": False}}},
}


def test_attribute_needs_migration_before_it_is_a_column(admin: Client) -> None:
    created = admin.post("/object_manager_attributes", json=BILLING_STATUS)
    assert created.status_code == 201
    assert created.json()["to_create"] is True
    listed = [a for a in admin.get("/object_manager_attributes").json()
              if a["object"] == "Ticket" and a["name"] == "billing_status"]
    assert listed and listed[0]["to_create"] is True
    assert "billing_status" not in admin.get("/tickets/1").json()
    dropped = admin.put("/tickets/1", json={"billing_status": "invoiced"})
    assert dropped.status_code == 200 and "billing_status" not in dropped.json()

    assert admin.post("/object_manager_attributes_execute_migrations").json() == {}
    migrated = next(a for a in admin.get("/object_manager_attributes").json()
                    if a["name"] == "billing_status")
    assert migrated["to_create"] is False and migrated["to_migrate"] is False
    assert admin.get("/tickets/1").json()["billing_status"] is None

    invalid = admin.put("/tickets/1", json={"billing_status": "paid"})
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "Invalid value 'paid' for field 'billing_status'!"
    ok = admin.put("/tickets/1", json={"billing_status": "invoiced"})
    assert ok.json()["billing_status"] == "invoiced"
    found = admin.post("/tickets/search", json={"condition": {
        "ticket.billing_status": {"operator": "is", "value": ["invoiced"]}}}).json()
    assert [t["id"] for t in found] == [1]
    assert admin.post("/object_manager_attributes", json=BILLING_STATUS).json() == {
        "error": "already exists", "error_human": "already exists"}


def test_execute_migrations_restarts_the_server() -> None:
    with ZammadSandbox.running(restart_seconds=0.4) as sandbox:
        headers = {"Authorization": f"Token token={sandbox.admin_token}"}
        api = sandbox.api_url
        requests.post(api + "/object_manager_attributes", json=BILLING_STATUS,
                      headers=headers, timeout=5)
        assert requests.post(api + "/object_manager_attributes_execute_migrations",
                             headers=headers, timeout=5).status_code == 200
        during = requests.get(api + "/tickets/1", headers=headers, timeout=5)
        assert during.status_code == 503
        assert during.headers["Content-Type"].startswith("text/html")
        time.sleep(0.45)
        after = requests.get(api + "/tickets/1", headers=headers, timeout=5)
        assert after.status_code == 200 and "billing_status" in after.json()


def test_execute_without_pending_changes_does_not_restart() -> None:
    with ZammadSandbox.running(restart_seconds=5) as sandbox:
        headers = {"Authorization": f"Token token={sandbox.admin_token}"}
        requests.post(sandbox.api_url + "/object_manager_attributes_execute_migrations",
                      headers=headers, timeout=5)
        assert requests.get(sandbox.api_url + "/tickets/1", headers=headers,
                            timeout=5).status_code == 200


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "invoice_id"}, "*_id and *_ids are not allowed"),
    ({"name": "invoice_ids"}, "*_id and *_ids are not allowed"),
    ({"name": "Invoice Ref"}, "spaces are not allowed"),
    ({"name": "rechnung-nr"}, "Only letters from a-z"),
    ({"name": "select"}, "reserved word"),
    ({"name": "title"}, "already exists"),
    ({"name": "note"}, "note already exists"),
    ({"name": "article"}, "article already exists"),
    ({"object": "Organisation"}, "uninitialized constant Organisation"),
    ({"data_type": "colour"}, "Invalid data_type param 'colour'"),
    ({"data_option": {"options": {"a": "A"}}}, "must have value for :default"),
    ({"data_type": "input", "data_option": {"type": "text"}}, ":maxlength"),
    ({"data_type": "input", "data_option": {"type": "html", "maxlength": 5}}, ":type"),
    ({"data_type": "boolean", "data_option": {"default": True}}, ":options"),
    ({"data_type": "integer", "data_option": {"min": 5, "max": 1}}, "smaller :min"),
    ({"data_type": "integer", "data_option": {"min": 0}}, ":max"),
])
def test_attribute_validation(admin: Client, changes: dict[str, Any], message: str) -> None:
    response = admin.post("/object_manager_attributes", json={**BILLING_STATUS, **changes})
    assert response.status_code == 422
    assert message in response.json()["error"]


def test_valid_types_are_accepted(admin: Client) -> None:
    payloads = [
        {"name": "invoice_ref", "data_type": "input",
         "data_option": {"type": "text", "maxlength": 120}},
        {"name": "billable", "data_type": "boolean",
         "data_option": {"default": "true", "options": {"true": "Ja", "false": "Nein"}}},
        {"name": "invoice_count", "data_type": "integer",
         "data_option": {"min": 0, "max": 999, "default": 0}},
    ]
    for payload in payloads:
        assert admin.post("/object_manager_attributes",
                          json={**BILLING_STATUS, **payload}).status_code == 201
    admin.post("/object_manager_attributes_execute_migrations")
    ticket = admin.get("/tickets/1").json()
    assert ticket["invoice_ref"] is None and ticket["billable"] is True
    assert admin.put("/tickets/1", json={"invoice_count": "3"}).json()["invoice_count"] == 3


def test_update_by_object_and_name_and_delete(admin: Client) -> None:
    created = admin.post("/object_manager_attributes", json=BILLING_STATUS).json()
    admin.post("/object_manager_attributes_execute_migrations")
    changed = admin.put("/object_manager_attributes/999999", json={
        **BILLING_STATUS, "data_option": {"options": {"open": "O", "done": "D"},
                                          "default": "open"}}).json()
    assert changed["id"] == created["id"] and changed["to_config"] is True
    assert "done" in changed["data_option_new"]["options"]
    missing = admin.put("/object_manager_attributes/1", json={**BILLING_STATUS, "name": "nope"})
    assert missing.status_code == 422 and missing.json()["error"] == "does not exist"
    admin.post("/object_manager_attributes_execute_migrations")
    assert admin.put("/tickets/1", json={"billing_status": "done"}).status_code == 200
    assert admin.delete(f"/object_manager_attributes/{created['id']}").json() == {}
    flagged = next(a for a in admin.get("/object_manager_attributes").json()
                   if a["name"] == "billing_status")
    assert flagged["to_delete"] is True
    admin.post("/object_manager_attributes_execute_migrations")
    assert "billing_status" not in admin.get("/tickets/1").json()


def test_required_edit_field_blocks_updates(admin: Client) -> None:
    admin.post("/object_manager_attributes", json={
        **BILLING_STATUS,
        "screens": {"edit": {"ticket.agent": {"shown": True, "required": True}}}})
    admin.post("/object_manager_attributes_execute_migrations")
    blocked = admin.put("/tickets/1", json={"title": "x"})
    assert blocked.status_code == 422
    assert blocked.json()["error"] == "Missing required value for field 'billing_status'!"


def test_without_auto_shutdown_a_migration_needs_a_manual_restart(sandbox: ZammadSandbox,
                                                                    admin: Client) -> None:
    """Zammad 6.5+ with auto_shutdown off: the column exists, the processes do not know it."""
    sandbox.set_setting("auto_shutdown", False)
    created = admin.post("/object_manager_attributes", json={
        "object": "Ticket", "name": "billing_probe", "display": "Probe", "data_type": "input",
        "data_option": {"type": "text", "maxlength": 20}, "screens": {}})
    assert created.status_code == 201
    assert admin.post("/object_manager_attributes_execute_migrations", json={}).status_code == 200
    assert not sandbox.restarting()
    attr = next(a for a in admin.get("/object_manager_attributes").json()
                if a["name"] == "billing_probe")
    assert not attr["to_create"] and not attr["to_migrate"]
    admin.put("/tickets/1", json={"billing_probe": "x"})
    assert "billing_probe" not in admin.get("/tickets/1").json()  # dropped, not stored
    sandbox.restart()
    sandbox.clear_faults()
    admin.put("/tickets/1", json={"billing_probe": "x"})
    assert admin.get("/tickets/1").json()["billing_probe"] == "x"
