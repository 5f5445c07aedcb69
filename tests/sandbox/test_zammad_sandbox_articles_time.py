"""Articles and time accounting: defaults, sanitising, string decimals, permissions."""

from __future__ import annotations

import requests
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox


def test_article_defaults_names_and_html_rewrite(admin: Client) -> None:
    response = admin.post("/ticket_articles", json={
        "ticket_id": 2, "content_type": "text/html", "subject": "Billing",
        "body": 'Rechnung <a href="https://billing.example/inv/1" target="x">1</a>'
                "<script>alert(1)</script>"})
    assert response.status_code == 201
    article = response.json()
    assert article["type"] == "note" and article["sender"] == "Agent"
    assert article["internal"] is False
    assert article["created_by"] == "ticketbill@nordlicht-it.example"
    assert article["attachments"] == []
    assert article["body"] == ('Rechnung <a href="https://billing.example/inv/1" '
                               'rel="nofollow noreferrer noopener" target="_blank" '
                               'title="https://billing.example/inv/1">1</a>')
    same = admin.post("/ticket_articles", json={
        "ticket_id": 2, "content_type": "text/html",
        "body": '<a href="https://x.example/">https://x.example</a> <a>leer</a>'}).json()
    assert same["body"] == ('<a href="https://x.example/" rel="nofollow noreferrer noopener" '
                            'target="_blank">https://x.example</a> leer')


def test_article_body_is_required(admin: Client) -> None:
    response = admin.post("/ticket_articles", json={"ticket_id": 2, "subject": "x"})
    assert response.status_code == 422
    assert response.json()["error"] == "Need at least an 'article body' field."


def test_articles_by_ticket_is_unpaged_and_bumps_updated_at(sandbox: ZammadSandbox,
                                                           admin: Client) -> None:
    for index in range(12):
        sandbox.book_time(2, 5 + index)
    sandbox.set_now("2030-01-01T00:00:00Z")
    articles = admin.get("/ticket_articles/by_ticket/2", params={"per_page": 3}).json()
    assert len(articles) > 12
    assert all(a["ticket_id"] == 2 for a in articles)
    admin.post("/ticket_articles", json={"ticket_id": 2, "body": "x", "internal": True})
    assert admin.get("/tickets/2").json()["updated_at"] == "2030-01-01T00:00:00.000Z"


def test_time_unit_is_a_string_with_a_decimal(admin: Client) -> None:
    before = admin.get("/tickets/2").json()["time_unit"]
    created = admin.post("/tickets/2/time_accountings", json={"time_unit": 15, "type_id": 2})
    assert created.status_code == 201
    row = created.json()
    assert row["time_unit"] == "15.0" and row["type_id"] == 2 and row["created_by_id"] == 2
    assert row["ticket_article_id"] is None
    fraction = admin.post("/tickets/2/time_accountings", json={"time_unit": "7.25"}).json()
    assert fraction["time_unit"] == "7.25"
    after = admin.get("/tickets/2").json()["time_unit"]
    assert float(after) == float(before) + 22.25
    one = admin.get(f"/tickets/2/time_accountings/{row['id']}").json()
    assert one == row
    assert admin.get(f"/tickets/3/time_accountings/{row['id']}").status_code == 404
    expanded = admin.get("/tickets/2/time_accountings", params={"expand": True}).json()
    assert expanded[-1]["created_by"] == "ticketbill@nordlicht-it.example"
    assert all(isinstance(r["time_unit"], str) for r in expanded)


def test_time_accounting_paging_and_global_list(admin: Client) -> None:
    rows = admin.get("/time_accountings", params={"per_page": 5000}).json()
    assert 140 <= len(rows) <= 170
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    page2 = admin.get("/time_accountings", params={"per_page": 10, "page": 2}).json()
    assert [r["id"] for r in page2] == [r["id"] for r in rows[10:20]]
    newest = admin.get("/time_accountings", params={"sort_by": "id", "order_by": "desc",
                                                    "per_page": 1}).json()
    assert newest[0]["id"] == rows[-1]["id"]


def test_time_accounting_permissions(sandbox: ZammadSandbox, admin: Client,
                                     agent: Client) -> None:
    assert agent.get("/tickets/2/time_accountings").status_code == 200
    assert agent.post("/tickets/2/time_accountings", json={"time_unit": 5}).status_code == 201
    assert agent.get("/time_accountings").status_code == 403
    assert agent.put("/tickets/2/time_accountings/1", json={"time_unit": 1}).status_code == 403
    sandbox.set_setting("time_accounting", False)
    blocked = agent.post("/tickets/2/time_accountings", json={"time_unit": 5})
    assert blocked.status_code == 403
    assert blocked.json()["error"] == "Not authorized (Time Accounting is not enabled)!"
    assert admin.post("/tickets/2/time_accountings", json={"time_unit": 5}).status_code == 201


def test_admin_edits_and_deletes_rows(admin: Client) -> None:
    row = admin.post("/tickets/2/time_accountings", json={"time_unit": 30}).json()
    edited = admin.put(f"/tickets/2/time_accountings/{row['id']}", json={"time_unit": 45}).json()
    assert edited["time_unit"] == "45.0" and edited["created_at"] == row["created_at"]
    assert admin.delete(f"/tickets/2/time_accountings/{row['id']}").json() == {}
    assert admin.get(f"/time_accountings/{row['id']}").status_code == 404


def test_activity_types(admin: Client, sandbox: ZammadSandbox) -> None:
    types = admin.get("/time_accounting/types").json()
    assert [t["name"] for t in types] == ["Remote", "Vor-Ort", "Notfall", "Intern", "Fahrt"]
    created = admin.post("/time_accounting/types", json={"name": "Schulung"})
    assert created.status_code == 201
    duplicate = admin.post("/time_accounting/types", json={"name": "schulung"})
    assert duplicate.status_code == 422
    renamed = admin.put(f"/time_accounting/types/{created.json()['id']}",
                        json={"active": False}).json()
    assert renamed["active"] is False
    assert admin.delete(f"/time_accounting/types/{created.json()['id']}").status_code == 404
    by_name = admin.post("/tickets/2/time_accountings", json={"time_unit": 5, "type": "Fahrt"})
    assert by_name.json()["type_id"] == 5
    bad = requests.post(sandbox.api_url + "/tickets/2/time_accountings", timeout=5,
                        json={"time_unit": 5, "type_id": 99},
                        headers={"Authorization": f"Token token={sandbox.admin_token}"})
    assert bad.status_code == 422


def test_organizations_and_users(admin: Client) -> None:
    orgs = admin.get("/organizations").json()
    assert len(orgs) == 3 and all(o["member_ids"] for o in orgs)
    first = admin.get("/organizations/1", params={"expand": True}).json()
    assert first["name"] == "Bäckerei Hansen GmbH" and first["members"]
    user = admin.get(f"/users/{first['member_ids'][0]}").json()
    assert user["organization_id"] == 1 and user["organization_ids"] == []
    assert len(admin.get("/organizations", params={"per_page": 2}).json()) == 2


def test_group_access_decides_what_an_agent_reads_writes_and_books(sandbox: ZammadSandbox,
                                                                  admin: Client) -> None:
    """TicketPolicy: read → search and show; change → update and the time accounting list
    (Controllers::Ticket::TimeAccountingsControllerPolicy#index? is TicketPolicy#update?)."""
    ticket = sandbox.create_ticket("Gruppe Service", group_id=2)
    sandbox.set_group_access(2, 2, ["read"])
    assert admin.get(f"/tickets/{ticket['id']}").status_code == 200
    found = admin.post("/tickets/search", json={"condition": {
        "ticket.id": {"operator": "is", "value": [str(ticket["id"])]}}}).json()
    assert [t["id"] for t in found] == [ticket["id"]]
    listing = admin.get(f"/tickets/{ticket['id']}/time_accountings")
    assert (listing.status_code, listing.json()["error"]) == (403, "Not authorized")
    assert admin.put(f"/tickets/{ticket['id']}", json={"title": "x"}).status_code == 403
    sandbox.set_group_access(2, 2, None)
    assert admin.get(f"/tickets/{ticket['id']}").status_code == 403
    hidden = admin.post("/tickets/search", json={"condition": {
        "ticket.id": {"operator": "is", "value": [str(ticket["id"])]}}}).json()
    assert hidden == []
    sandbox.set_group_access(2, 2, ["full"])
    assert admin.get(f"/tickets/{ticket['id']}/time_accountings").status_code == 200
    sandbox.set_group_access(2, 2, None)
    sandbox.group_access = False  # the switch off: every agent may do everything
    assert admin.get(f"/tickets/{ticket['id']}/time_accountings").status_code == 200
