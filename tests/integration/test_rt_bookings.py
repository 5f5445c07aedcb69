"""What agents book in a real RT 5 besides time: category, activity, materials, travel, visits.

Runs against the RT that `bash .ci/rt-up.sh` starts. The agent works as in RT's web UI, over
REST 2 with their own login: sets the ticket's Billing Category and Activity, comments with
booked time and booking lines, replies to the customer. Field names carry the session tag, so
registration really creates them in every session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest
from rt_fixtures import *  # noqa: F403  (the RT fixtures, used by name)
from rt_fixtures import RTDesk

from connectors.base import BILLING_CATEGORIES, BookingProblem, BookingReader, NotFound, RemoteExtra
from connectors.bookings import VISIT_DESCRIPTION
from connectors.rt import DEFAULT_ACTIVITY_TYPES, RTConnector

pytestmark = pytest.mark.integration


def field_names(rt_desk: RTDesk, prefix: str) -> dict[str, str]:
    return {
        "status_field": rt_desk.name(f"{prefix} Status"),
        "invoice_field": rt_desk.name(f"{prefix} Invoice"),
        "invoice_url_field": rt_desk.name(f"{prefix} URL"),
        "category_field": rt_desk.name(f"{prefix} Category"),
        "activity_field": rt_desk.name(f"{prefix} Activity"),
    }


@pytest.fixture(scope="module")
def bookings_rt(make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk) -> RTConnector:
    connector = make_rt_connector(**field_names(rt_desk, "Bk"))
    report = connector.register()
    assert report.ok, report.problems
    rt_desk.created_custom_fields.extend(connector.custom_field_ids().values())
    return connector


def comment(rt_desk: RTDesk, ticket: str, agent: str, content: str, *, minutes: int = 0,
            content_type: str = "text/plain", kind: str = "comment") -> dict[str, str]:
    """Post as `agent`; return the transaction RT recorded (id and creation time)."""
    rt_desk.call("POST", f"/ticket/{ticket}/{kind}", agent=agent, json={
        "Content": content, "ContentType": content_type, "TimeTaken": minutes})
    mine = [t for t in rt_desk.history(ticket)
            if t["Type"] == kind.capitalize() and t["Creator"]["id"] == agent]
    return max(mine, key=lambda t: int(t["id"]))


def test_register_twice_creates_then_changes_nothing(
    make_rt_connector: Callable[..., RTConnector], rt_desk: RTDesk
) -> None:
    names = field_names(rt_desk, "Twice")
    connector = make_rt_connector(**names)
    first = connector.register()
    rt_desk.created_custom_fields.extend(connector.custom_field_ids().values())
    assert first.ok, first.problems
    created_fields = [c for c in first.created if c.startswith("custom field")]
    assert len(created_fields) == 5
    assert any(names["category_field"] in c for c in created_fields)
    assert any(names["activity_field"] in c for c in created_fields)
    assert (f"values of {names['category_field']!r}: {', '.join(BILLING_CATEGORIES)}"
            in first.created)
    assert (f"values of {names['activity_field']!r}: {', '.join(DEFAULT_ACTIVITY_TYPES)}"
            in first.created)

    again = make_rt_connector(**names).register()
    assert again.ok, again.problems
    assert again.created == ()
    assert len(again.present) == 8  # five fields, values of three Select fields
    ids = connector.custom_field_ids()
    values = rt_desk.call("GET", f"/customfield/{ids['activity']}/values")["items"]
    assert [v["name"] for v in values] == list(DEFAULT_ACTIVITY_TYPES)
    values = rt_desk.call("GET", f"/customfield/{ids['category']}/values")["items"]
    assert [v["name"] for v in values] == list(BILLING_CATEGORIES)


def test_agent_bookings_come_back_exactly(
    bookings_rt: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    assert isinstance(bookings_rt, BookingReader)
    category, activity = bookings_rt.category_field, bookings_rt.activity_field
    assert category and activity
    ticket = rt_desk.create_ticket(rt_queues["acme"], "Server tauscht Platten", agent="agent1")
    messages = rt_desk.call("PUT", f"/ticket/{ticket}", agent="agent1", json={
        "CustomFields": {category: "warranty", activity: "Vor-Ort"}})
    assert rt_desk.custom_fields(ticket)[category] == ["warranty"], messages
    note = comment(rt_desk, ticket, "agent1", minutes=90, content=(
        "Platten getauscht, RAID neu aufgebaut.\n"
        "Material: 2 × SSD 1 TB à 87,40 € [Hardware]\n"
        "Material: 3 Patchkabel à 4,90\n"
        "Fahrt: 38 km\n"
        "Vor-Ort: ja\n"))
    html = comment(rt_desk, ticket, "agent2", content_type="text/html",
                   content="<p>Nachtrag</p><p>Material: 1 × Maus à 19,-</p>")
    comment(rt_desk, ticket, "agent1", kind="correspond",
            content="Material: 1 × Gratis-Maus à 0 (the customer sees replies: no booking)")
    rt_desk.resolve(ticket)

    found = bookings_rt.ticket(ticket)
    assert found.category == "warranty"
    entries = bookings_rt.time_entries(ticket)
    assert [(e.remote_id, e.agent, e.minutes, e.activity) for e in entries] == [
        (note["id"], "agent1", Decimal(90), "Vor-Ort")]

    extras, problems = bookings_rt.extras(ticket)
    at = datetime.fromisoformat(note["Created"].replace("Z", "+00:00"))
    html_at = datetime.fromisoformat(html["Created"].replace("Z", "+00:00"))
    source = f"transaction:{note['id']}"
    assert list(extras) == [
        RemoteExtra(f"{source}:2", ticket, "material", "SSD 1 TB", Decimal(2), Decimal("87.40"),
                    "Hardware", at, "agent1"),
        RemoteExtra(f"{source}:4", ticket, "travel", "Fahrt 38 km", Decimal(38), None, None, at,
                    "agent1"),
        RemoteExtra(f"{source}:5", ticket, "visit", VISIT_DESCRIPTION, Decimal(1), None, None, at,
                    "agent1"),
        RemoteExtra(f"transaction:{html['id']}:2", ticket, "material", "Maus", Decimal(1),
                    Decimal(19), None, html_at, "agent2"),
    ]
    assert list(problems) == [BookingProblem(
        ticket, source, "Material: 3 Patchkabel à 4,90",
        "quantity unclear in '3 Patchkabel': write the count with '×' or 'x', e.g. "
        "'3 × Patchkabel'")]
    assert bookings_rt.extras(ticket) == (extras, problems), "re-read: same ids"


def test_category_unset_is_none_and_activity_stays_empty(
    bookings_rt: RTConnector, rt_desk: RTDesk, rt_queues: dict[str, str]
) -> None:
    ticket = rt_desk.create_ticket(rt_queues["globex"], "Ohne Kategorie", agent="agent2")
    rt_desk.book(ticket, "agent2", 15)
    assert bookings_rt.ticket(ticket).category is None  # billing reads "not set" as billable
    assert [e.activity for e in bookings_rt.time_entries(ticket)] == [None]
    assert bookings_rt.extras(ticket) == ([], [])


def test_extras_of_a_missing_ticket(bookings_rt: RTConnector) -> None:
    with pytest.raises(NotFound):
        bookings_rt.extras("99999999")
