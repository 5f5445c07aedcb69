"""Tickets: shapes, paging clamps, both search shapes, conditions, updates."""

from __future__ import annotations

import re
from typing import Any

import pytest
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def closed_condition(**extra: Any) -> dict[str, Any]:
    return {"ticket.state_id": {"operator": "is", "value": ["4"]}, **extra}


def test_plain_ticket_is_columns_only(admin: Client) -> None:
    ticket = admin.get("/tickets/5").json()
    assert isinstance(ticket["id"], int)
    assert isinstance(ticket["number"], str)
    assert STAMP.match(ticket["created_at"]) and STAMP.match(ticket["updated_at"])
    assert isinstance(ticket["time_unit"], str) and "." in ticket["time_unit"]
    assert "article_ids" not in ticket and "state" not in ticket
    # ticket 5 was closed, reopened and closed again: close_at stays the first close
    assert ticket["close_at"] < ticket["last_close_at"]


def test_expand_adds_names_and_ids(admin: Client) -> None:
    ticket = admin.get("/tickets/5", params={"expand": "true"}).json()
    assert ticket["state"] == "closed"
    assert ticket["group"] in ("Users", "Service")
    assert ticket["customer"].endswith(".example")
    assert ticket["organization"]
    assert ticket["article_ids"] and ticket["ticket_time_accounting_ids"]
    assert "ticket_time_accounting" not in ticket  # dropped while non-empty


def test_ticket_states_expand_and_merged_is_not_closed(admin: Client) -> None:
    states = admin.get("/ticket_states", params={"expand": "true"}).json()
    types = {s["name"]: s["state_type"] for s in states}
    assert types["closed"] == "closed"
    assert types["merged"] == "merged"
    pending_close = next(s for s in states if s["name"] == "pending close")
    assert pending_close["next_state"] == "closed"
    plain = admin.get("/ticket_states").json()
    assert "state_type" not in plain[0]


def test_ticket_index_clamps_to_100(sandbox: ZammadSandbox, admin: Client) -> None:
    for index in range(75):
        sandbox.create_ticket(f"Bulk {index}")
    assert len(admin.get("/tickets").json()) == 100
    assert len(admin.get("/tickets", params={"per_page": 500}).json()) == 100
    second = admin.get("/tickets", params={"per_page": 100, "page": 2}).json()
    assert len(second) == 15
    assert [t["id"] for t in admin.get("/tickets", params={"per_page": 3}).json()] == [1, 2, 3]


def test_search_clamps_to_200_and_defaults_to_50(sandbox: ZammadSandbox, admin: Client) -> None:
    for index in range(180):
        sandbox.create_ticket(f"Bulk {index}")
    assert len(admin.post("/tickets/search", json={"query": "*"}).json()) == 50
    big = admin.post("/tickets/search", json={"query": "Bulk", "per_page": 500}).json()
    assert len(big) == 180
    everything = admin.get("/tickets/search", params={"limit": 1000}).json()
    assert len(everything) == 200


def test_search_shape_65_plain_array(admin: Client) -> None:
    result = admin.post("/tickets/search", json={"condition": closed_condition(),
                                                  "per_page": 5}).json()
    assert isinstance(result, list) and len(result) == 5
    assert "article_ids" in result[0] and "state" not in result[0]


def test_search_shape_64_tickets_and_assets(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.version = "6.4"
    result = admin.post("/tickets/search", json={"condition": closed_condition(),
                                                  "per_page": 5}).json()
    assert set(result) == {"tickets", "tickets_count", "assets"}
    assert result["tickets_count"] == 5 == len(result["tickets"])
    first = str(result["tickets"][0])
    assert result["assets"]["Ticket"][first]["id"] == int(first)
    assert "User" in result["assets"]
    expanded = admin.post("/tickets/search", json={"condition": closed_condition(),
                                                    "expand": True}).json()
    assert isinstance(expanded, list) and expanded[0]["state"] == "closed"


def test_search_full_and_total_count_on_65(admin: Client) -> None:
    body = {"condition": closed_condition(), "per_page": 4}
    full = admin.post("/tickets/search", json={**body, "full": True}).json()
    total = admin.post("/tickets/search", json={**body, "only_total_count": True}).json()
    assert len(full["record_ids"]) == 4
    assert full["total_count"] == total["total_count"] > 4
    assert set(full["assets"]["Ticket"]) == {str(i) for i in full["record_ids"]}


def test_condition_closed_and_updated_after(admin: Client) -> None:
    all_closed = admin.post("/tickets/search", json={"condition": closed_condition(),
                                                      "per_page": 200}).json()
    cut = sorted(t["updated_at"] for t in all_closed)[len(all_closed) // 2]
    recent = admin.post("/tickets/search", json={
        "condition": closed_condition(**{"ticket.updated_at": {
            "operator": "after (absolute)", "value": cut}}),
        "sort_by": "updated_at", "order_by": "asc", "per_page": 200}).json()
    assert recent and all(t["updated_at"] >= cut and t["state_id"] == 4 for t in recent)
    stamps = [t["updated_at"] for t in recent]
    assert stamps == sorted(stamps)
    older = admin.post("/tickets/search", json={"condition": closed_condition(**{
        "ticket.last_close_at": {"operator": "before (absolute)", "value": cut}}),
        "per_page": 200}).json()
    assert all(t["last_close_at"] <= cut for t in older)


def test_nested_and_or_conditions(admin: Client) -> None:
    condition = {"operator": "AND", "conditions": [
        {"name": "ticket.state_id", "operator": "is not", "value": ["4", "5"]},
        {"operator": "OR", "conditions": [
            {"name": "ticket.organization_id", "operator": "is any of", "value": ["1"]},
            {"name": "ticket.organization_id", "operator": "is", "value": ["2"]},
        ]},
    ]}
    result = admin.post("/tickets/search", json={"condition": condition}).json()
    assert result
    assert all(t["state_id"] not in (4, 5) and t["organization_id"] in (1, 2) for t in result)
    not_set = admin.post("/tickets/search", json={"condition": {
        "ticket.close_at": {"operator": "not set"}}}).json()
    is_set = admin.post("/tickets/search", json={"condition": {
        "ticket.close_at": {"operator": "is set"}}, "per_page": 200}).json()
    assert len(not_set) + len(is_set) == 40
    none_of = admin.post("/tickets/search", json={"condition": {
        "ticket.organization_id": {"operator": "is none of", "value": ["1", "2"]}}}).json()
    assert all(t["organization_id"] == 3 for t in none_of)


def test_contains_and_query_like_without_field_syntax(admin: Client) -> None:
    contains = admin.post("/tickets/search", json={"condition": {
        "ticket.title": {"operator": "contains", "value": "drucker"}}}).json()
    assert contains and all("drucker" in t["title"].lower() for t in contains)
    by_number = admin.get("/tickets/search", params={"query": "31005"}).json()
    assert [t["id"] for t in by_number] == [5]
    assert admin.get("/tickets/search", params={"query": "state.name:closed"}).json() == []
    invalid = admin.post("/tickets/search", json={"condition": {
        "ticket.state_id": {"operator": "resembles", "value": ["4"]}}})
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "Invalid condition, operator 'resembles' is invalid"


def test_unknown_sort_column_is_a_500(sandbox: ZammadSandbox, admin: Client) -> None:
    agent_user = Client(sandbox, sandbox.agent_user_token)
    masked = agent_user.get("/tickets/search", params={"query": "a", "sort_by": "nope"})
    assert masked.status_code == 500
    assert re.match(r"^Error ID \S+: Please contact your administrator\.$",
                    masked.json()["error"])
    agent_user.session.close()
    plain = admin.get("/tickets/search", params={"query": "a", "sort_by": "nope"})
    assert plain.status_code == 500 and "nope" in plain.json()["error"]


def test_put_drops_unknown_keys_and_bumps_updated_at(sandbox: ZammadSandbox,
                                                      admin: Client) -> None:
    sandbox.set_now("2026-01-02T03:04:05.678Z")
    before = admin.get("/tickets/2").json()
    response = admin.put("/tickets/2", json={"billing_status": "invoiced", "bogus": 1,
                                             "number": "1", "title": "Neuer Titel"})
    assert response.status_code == 200
    body = response.json()
    assert "billing_status" not in body and "bogus" not in body
    assert body["number"] == before["number"] and body["title"] == "Neuer Titel"
    assert body["updated_at"] == "2026-01-02T03:04:05.678Z"
    assert "article_ids" in body and "ticket_time_accounting_ids" in body


def test_put_with_article_and_state_lookup(sandbox: ZammadSandbox, admin: Client) -> None:
    ticket_id = sandbox.create_ticket("Neu", organization_id=2)["id"]
    body = admin.put(f"/tickets/{ticket_id}", json={
        "state": "closed",
        "article": {"body": "<p>Rechnung <a href='https://x.example/1'>1</a></p>",
                    "content_type": "text/html", "type": "note", "internal": True}}).json()
    assert body["state_id"] == 4 and body["close_at"] == body["last_close_at"]
    assert len(body["article_ids"]) == 2
    note = admin.get(f"/ticket_articles/by_ticket/{ticket_id}").json()[-1]
    assert note["internal"] is True and 'target="_blank"' in note["body"]
    bad = admin.put(f"/tickets/{ticket_id}", json={"state": "closd"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "No lookup value found for 'state': \"closd\""
    bad_id = admin.put(f"/tickets/{ticket_id}", json={"group_id": 99})
    assert bad_id.json()["error"] == "Invalid value for param 'group_id': 99"


def test_reclose_keeps_close_at(sandbox: ZammadSandbox) -> None:
    ticket_id = sandbox.create_ticket("Zweimal")["id"]
    first = sandbox.close_ticket(ticket_id, at="2026-02-01T10:00:00Z")
    sandbox.reopen_ticket(ticket_id, at="2026-02-02T10:00:00Z")
    second = sandbox.close_ticket(ticket_id, at="2026-02-03T10:00:00Z")
    assert first["close_at"] == second["close_at"] == "2026-02-01T10:00:00.000Z"
    assert second["last_close_at"] == "2026-02-03T10:00:00.000Z"


def test_create_ticket_via_api(admin: Client) -> None:
    response = admin.post("/tickets", json={
        "title": "Per API", "group": "Users", "customer": "heike.hansen@baeckerei-hansen.example",
        "article": {"body": "Hallo", "type": "note", "internal": False}})
    assert response.status_code == 201
    ticket = response.json()
    assert ticket["organization_id"] == 1 and ticket["state_id"] == 1
    assert len(ticket["article_ids"]) == 1
    missing = admin.post("/tickets", json={"group": "Users"})
    assert missing.status_code == 422


@pytest.mark.parametrize("page", ["0", "-1"])
def test_negative_offset_is_rejected(admin: Client, page: str) -> None:
    assert admin.get("/tickets/search", params={"query": "a", "page": page}).status_code == 422


def test_get_search_with_rails_nested_condition(sandbox: ZammadSandbox, admin: Client) -> None:
    params = [("condition[ticket.state_id][operator]", "is"),
              ("condition[ticket.state_id][value][]", "1"),
              ("condition[ticket.state_id][value][]", "2"),
              ("sort_by", "id"), ("order_by", "asc")]
    result = admin.get("/tickets/search", params=params).json()
    assert result and all(t["state_id"] in (1, 2) for t in result)
    method, path = sandbox.requests_seen[-1]
    assert method == "GET" and path.startswith("/api/v1/tickets/search?condition")


def test_relative_and_today_operators(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.set_now("2025-07-01T00:00:00Z")
    week = admin.post("/tickets/search", json={"condition": {"ticket.created_at": {
        "operator": "within last (relative)", "value": {"value": 7, "range": "day"}}}}).json()
    assert week and all(t["created_at"] >= "2025-06-24" for t in week)
    ticket_id = sandbox.create_ticket("Heute")["id"]
    today = admin.post("/tickets/search", json={"condition": {"ticket.created_at": {
        "operator": "today"}}}).json()
    assert [t["id"] for t in today] == [ticket_id]


def test_with_total_count_term_and_bad_order(admin: Client) -> None:
    wrapped = admin.post("/tickets/search", json={"query": "a", "per_page": 2,
                                                   "with_total_count": True}).json()
    assert len(wrapped["records"]) == 2 and wrapped["total_count"] > 2
    labels = admin.get("/tickets/search", params={"term": "31005"}).json()
    assert labels == [{"id": 5, "label": 5, "value": 5}]
    bad = admin.get("/tickets/search", params={"query": "a", "sort_by": "id",
                                               "order_by": "sideways"})
    assert bad.status_code == 500 and "Please use 'asc' or 'desc'" in bad.json()["error"]


def test_write_responses_honour_expand_and_merge_failures(admin: Client) -> None:
    expanded = admin.put("/tickets/4", params={"expand": "true"}, json={"priority": "3 high"})
    assert expanded.json()["priority"] == "3 high"
    failed = admin.put("/ticket_merge/4/99999")
    assert failed.status_code == 200
    assert failed.json() == {"result": "failed",
                             "message": "The target ticket number could not be found."}


def test_unstable_ties_reorder_equal_sort_keys_per_request(sandbox: ZammadSandbox,
                                                            admin: Client) -> None:
    """PostgreSQL returns rows tying on every sort column in no fixed order; `id` fixes it.

    As Zammad's SqlHelper#get_order, a sort column without its own order is dropped."""
    sandbox.unstable_ties = True
    closed = [str(i) for i in sandbox.closed_state_ids()]

    def ids(sort_by: str, order_by: str) -> list[int]:
        answer = admin.post("/tickets/search", json={
            "condition": {"ticket.state_id": {"operator": "is", "value": closed}},
            "sort_by": sort_by, "order_by": order_by, "per_page": 200}).json()
        return [t["id"] for t in answer]

    with sandbox.lock:
        for ticket in sandbox.state.data["tickets"].values():
            ticket["updated_at"] = "2025-06-30T10:00:00.000Z"
    by_time = [ids("updated_at", "asc") for _ in range(3)]
    assert len({tuple(order) for order in by_time}) > 1
    assert ids("updated_at,id", "asc,asc") == sorted(by_time[0])
    assert len({tuple(ids("updated_at,id", "asc")) for _ in range(3)}) > 1  # id dropped
