"""The global time accounting list as Zammad 6.1+ serves it, and what a row change does to its
ticket (`TimeAccountingsController#index`, `Controllers::TimeAccountingsControllerPolicy`,
`Ticket::TimeAccounting.update_ticket`)."""

from __future__ import annotations

from decimal import Decimal

from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox

NEWEST_FIRST = {"sort_by": "updated_at,id", "order_by": "desc,desc"}


def test_newest_update_first_with_the_id_breaking_ties(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.set_now("2030-01-01T00:00:00Z")
    same = [sandbox.book_time(2, 5, article=False) for _ in range(3)]  # one timestamp
    sandbox.advance(60)
    edited = admin.put(f"/time_accountings/{same[0]['id']}", json={"time_unit": 7}).json()
    rows = admin.get("/time_accountings", params={**NEWEST_FIRST, "per_page": 1000}).json()
    assert rows[0]["id"] == edited["id"] and rows[0]["updated_at"] == "2030-01-01T00:01:00.000Z"
    assert [r["id"] for r in rows[1:3]] == [same[2]["id"], same[1]["id"]]
    stamps = [r["updated_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    pages = [admin.get("/time_accountings", params={**NEWEST_FIRST, "per_page": 7, "page": p}).json()
             for p in range(1, 1 + (len(rows) + 6) // 7)]
    assert [r["id"] for page in pages for r in page] == [r["id"] for r in rows]


def test_rows_have_the_per_ticket_lists_fields(admin: Client) -> None:
    row = admin.get("/tickets/2/time_accountings", params={"expand": True}).json()[0]
    listed = admin.get("/time_accountings", params={"expand": True, "per_page": 1000}).json()
    assert next(r for r in listed if r["id"] == row["id"]) == row
    assert {"id", "ticket_id", "ticket_article_id", "time_unit", "type_id", "created_by_id",
            "created_at", "updated_at", "created_by"} <= set(row)
    plain = admin.get("/time_accountings", params={"per_page": 1}).json()[0]
    assert "created_by" not in plain and isinstance(plain["time_unit"], str)


def test_paging_is_clamped_at_1000(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.set_now("2030-01-01T00:00:00Z")
    total = len(admin.get("/time_accountings", params={"per_page": 1000}).json())
    for _ in range(1001 - total):
        sandbox.book_time(2, 1, article=False)
    assert len(admin.get("/time_accountings", params={"per_page": 5000}).json()) == 1000
    assert len(admin.get("/time_accountings").json()) == 500, "the default page"
    assert len(admin.get("/time_accountings", params={"per_page": 1000, "page": 2}).json()) == 1


def test_only_admin_time_accounting_lists_every_row(sandbox: ZammadSandbox, admin: Client,
                                                    agent: Client) -> None:
    refused = agent.get("/time_accountings")  # the admin user's token with only ticket.agent
    assert (refused.status_code, refused.json()["error"]) == (403, "Not authorized")
    assert agent.get("/time_accountings/1").status_code == 403
    anna = Client(sandbox, sandbox.agent_user_token)  # admin.time_accounting on the token only
    assert anna.get("/time_accountings").json()["error"] == "Not authorized"
    sandbox.set_group_access(2, 2, None)  # no group right at all: the listing still shows it all
    listed = {r["ticket_id"] for r in admin.get("/time_accountings", params={"per_page": 1000}).json()}
    with sandbox.lock:
        group_two = {t["id"] for t in sandbox.state.data["tickets"].values() if t["group_id"] == 2}
        booked = {b["ticket_id"] for b in sandbox.state.data["time_accountings"].values()}
    assert group_two & booked and group_two & booked <= listed
    anna.session.close()


def test_before_6_1_there_is_no_global_list(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.version = "6.0"
    missing = admin.get("/time_accountings")
    assert missing.status_code == 404
    assert missing.json()["error"] == "No route matches [GET] /api/v1/time_accountings"


def test_roles_show_their_group_rights(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.set_role_group_access(2, 2, ["read", "change"])
    roles = {r["name"]: r for r in admin.get("/roles").json()}
    assert roles["Agent"]["group_ids"] == {"2": ["read", "change"]}
    assert roles["Admin"]["group_ids"] == {}
    assert "_permissions" not in roles["Agent"]
    sandbox.set_group_access(2, 2, ["read"])  # the user's own right: read only
    ticket = sandbox.create_ticket("Über die Rolle", group_id=2)
    assert admin.get(f"/tickets/{ticket['id']}/time_accountings").status_code == 200
    assert admin.put(f"/tickets/{ticket['id']}", json={"title": "x"}).status_code == 200


def test_every_row_change_bumps_its_ticket_by_default(sandbox: ZammadSandbox, admin: Client) -> None:
    ticket = sandbox.create_ticket("Standard")
    sandbox.advance(60)
    row = admin.post(f"/tickets/{ticket['id']}/time_accountings", json={"time_unit": 0}).json()
    assert sandbox.ticket(ticket["id"])["updated_at"] == row["created_at"]
    sandbox.advance(60)
    retyped = admin.put(f"/time_accountings/{row['id']}", json={"type_id": 2}).json()
    assert sandbox.ticket(ticket["id"])["updated_at"] == retyped["updated_at"]
    admin.delete(f"/time_accountings/{row['id']}")
    assert sandbox.ticket(ticket["id"])["time_unit"] is None


def test_strict_resum_saves_the_ticket_only_when_its_total_changes(
    sandbox: ZammadSandbox, admin: Client
) -> None:
    sandbox.strict_resum = True
    ticket = sandbox.create_ticket("Streng")
    created = sandbox.ticket(ticket["id"])["updated_at"]
    sandbox.advance(60)
    zero = admin.post(f"/tickets/{ticket['id']}/time_accountings", json={"time_unit": 0}).json()
    assert sandbox.ticket(ticket["id"])["updated_at"] == created, "a booking of 0 changes nothing"
    assert sandbox.ticket(ticket["id"])["time_unit"] is None
    sandbox.advance(60)
    row = admin.post(f"/tickets/{ticket['id']}/time_accountings", json={"time_unit": 30}).json()
    booked = sandbox.ticket(ticket["id"])
    assert (booked["time_unit"], booked["updated_at"]) == ("30.0", row["created_at"])
    sandbox.advance(60)
    retyped = admin.put(f"/time_accountings/{row['id']}", json={"type_id": 2}).json()
    assert retyped["updated_at"] > row["updated_at"], "the row itself moves"
    assert sandbox.ticket(ticket["id"])["updated_at"] == booked["updated_at"], "its ticket does not"
    sandbox.advance(60)
    unchanged = admin.put(f"/time_accountings/{row['id']}", json={"type_id": 2}).json()
    assert unchanged["updated_at"] == retyped["updated_at"], "nothing changed: nothing saved"
    sandbox.advance(60)
    admin.put(f"/time_accountings/{row['id']}", json={"time_unit": 45})
    assert sandbox.ticket(ticket["id"])["updated_at"] > booked["updated_at"]
    admin.delete(f"/time_accountings/{zero['id']}")
    admin.delete(f"/time_accountings/{row['id']}")
    assert Decimal(sandbox.ticket(ticket["id"])["time_unit"]) == 0
    assert sandbox.ticket(ticket["id"])["time_unit"] == "0.0"
