"""Conformance: the third-party `zammad_py` client works against the sandbox unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zammad_py import ZammadAPI
from zammad_py.api import Object

from connectors.sandbox.zammad import ZammadSandbox


@pytest.fixture
def client(sandbox: ZammadSandbox) -> Iterator[ZammadAPI]:
    api = ZammadAPI(url=sandbox.url + "/api/v1/", http_token=sandbox.admin_token)
    yield api
    api.session.close()


def test_users_me_and_user_find(client: ZammadAPI) -> None:
    me = client.user.me()
    assert me["login"] == "ticketbill@nordlicht-it.example"
    assert client.user.find(3)["lastname"] == "Becker"


def test_ticket_all_pages_with_expand(client: ZammadAPI) -> None:
    page = client.ticket.all()
    assert len(page) == 10 and page[0]["state"]  # expand=true adds names
    seen = [t["id"] for t in page]
    while not page.is_last_page():
        page = page.next_page()
        seen.extend(t["id"] for t in page)
    assert seen == list(range(1, 41))


def test_ticket_find_search_and_articles(client: ZammadAPI) -> None:
    ticket = client.ticket.find(5)
    assert ticket["number"] == "31005"
    found = client.ticket.search("31005")
    assert [t["id"] for t in found] == [5] and found[0]["state"] == "closed"
    assert found.is_last_page()
    articles = client.ticket.articles(5)
    assert articles and all(a["ticket_id"] == 5 and a["sender"] for a in articles)


def test_states_organizations_and_article_create(client: ZammadAPI) -> None:
    states = {s["name"] for s in client.ticket_state.all()}
    assert {"new", "open", "closed", "merged"} <= states
    assert client.organization.find(2)["name"] == "Müller & Söhne Maschinenbau KG"
    article = client.ticket_article.create({"ticket_id": 4, "body": "Notiz", "internal": True})
    assert article["ticket_id"] == 4 and article["type"] == "note"
    assert article["id"] in [a["id"] for a in client.ticket.articles(4)]


def test_update_and_error_bodies(client: ZammadAPI) -> None:
    updated = client.ticket.update(4, {"title": "Geändert"})
    assert updated["title"] == "Geändert"
    with pytest.raises(Exception, match="Couldn't find Ticket"):
        client.ticket.find(999)


def test_object_execute_migrations(sandbox: ZammadSandbox, client: ZammadAPI) -> None:
    objects = Object(connection=client)
    objects.create({"object": "Ticket", "name": "invoice_ref", "display": "Invoice",
                    "data_type": "input", "data_option": {"type": "text", "maxlength": 80},
                    "screens": {}})
    assert objects.execute_migrations() == {}
    assert "invoice_ref" in client.ticket.find(1)
