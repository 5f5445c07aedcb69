"""What agents book in Zammad besides time, end to end over HTTP against the Zammad sandbox.

The agent acts through the REST API with their own token, as the Zammad UI does: sets the
billing category and the travel/on-site fields, writes an internal note in the note syntax and
books time with an activity type. The connector must return exactly those records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from connectors.base import BookingProblem, BookingReader, NotFound, RemoteExtra, WriteBack
from connectors.bookings import VISIT_DESCRIPTION
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import (
    ATTRIBUTES,
    BOOKING_ATTRIBUTES,
    DEFAULT_ACTIVITY_TYPES,
    FIELD_CATEGORY,
    FIELD_ONSITE,
    FIELD_TRAVEL_KM,
    ZammadConnector,
)

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
ALL_FIELDS = tuple(spec["name"] for spec in ATTRIBUTES + BOOKING_ATTRIBUTES)


@pytest.fixture
def sandbox() -> Iterator[ZammadSandbox]:
    """Seeded sandbox as a fresh install: activity types off, 'Notfall' deactivated."""
    with ZammadSandbox.running(restart_seconds=0) as sb:
        sb.set_now(NOW)
        sb.set_setting("time_accounting_types", False)
        with sb.lock:
            for row in sb.state.data["time_accounting_types"].values():
                if row["name"] == "Notfall":
                    row["active"] = False
        yield sb


def connect(sb: ZammadSandbox, **kwargs: Any) -> ZammadConnector:
    kwargs.setdefault("token", sb.admin_token)
    kwargs.setdefault("booking_fields", True)
    kwargs.setdefault("activity_types", DEFAULT_ACTIVITY_TYPES)
    return ZammadConnector(sb.url, sleep=lambda s: None, registration_poll_seconds=0.01, **kwargs)


def writes(sb: ZammadSandbox) -> list[tuple[str, str]]:
    return [(m, p) for m, p in sb.requests_seen if m in ("POST", "PUT", "DELETE")]


def as_agent(sb: ZammadSandbox, method: str, path: str, body: dict[str, Any]) -> requests.Response:
    """A call with Anna's own token, as her browser would make it."""
    return requests.request(method, f"{sb.api_url}{path}", json=body, timeout=10,
                            headers={"Authorization": f"Token token={sb.agent_user_token}"})


def test_register_creates_fields_types_and_setting_then_changes_nothing(
    sandbox: ZammadSandbox,
) -> None:
    connector = connect(sandbox, activity_types=("Remote", "vor-ort", "Notfall", "Werkstatt"))
    first = connector.register()
    assert first.ok, first.problems
    assert first.created == (
        *ALL_FIELDS,
        "setting time_accounting_types (switched on)",
        "activity type 'Notfall' (reactivated)",
        "activity type 'Werkstatt'",
    )
    assert first.present == ("setting time_accounting", "activity type 'Remote'",
                             "activity type 'Vor-Ort'")
    ticket = sandbox.ticket(1)
    assert set(ALL_FIELDS) <= set(ticket)
    assert ticket[FIELD_ONSITE] is False
    with sandbox.lock:
        attrs = {a["name"]: a for a in sandbox.state.data["object_attributes"].values()}
        types = [t for t in sandbox.state.data["time_accounting_types"].values()]
        setting = sandbox.state.setting("time_accounting_types")
    category = attrs[FIELD_CATEGORY]
    assert category["data_type"] == "select"
    assert list(category["data_option"]["options"]) == [
        "billable", "internal", "warranty", "goodwill", "covered"]
    assert category["data_option"]["default"] == "billable"
    assert category["screens"]["create_middle"]["ticket.agent"] == {"shown": True,
                                                                    "required": False}
    assert attrs[FIELD_TRAVEL_KM]["data_type"] == "integer"
    assert attrs[FIELD_ONSITE]["data_type"] == "boolean"
    assert setting is True
    names = [t["name"].casefold() for t in types]
    assert sorted(names) == sorted({*names}), "no type twice"
    assert "werkstatt" in names and all(t["active"] for t in types)

    before = len(writes(sandbox))
    second = connect(sandbox, activity_types=("Remote", "vor-ort", "Notfall", "Werkstatt"))
    again = second.register()
    assert again.ok, again.problems
    assert again.created == ()
    assert again.present == (*ALL_FIELDS, "setting time_accounting",
                             "setting time_accounting_types",
                             "activity type 'Remote'", "activity type 'Vor-Ort'",
                             "activity type 'Notfall'", "activity type 'Werkstatt'")
    assert len(writes(sandbox)) == before, "a second registration must change nothing"


def test_register_without_time_accounting_admin_says_what_to_do(sandbox: ZammadSandbox) -> None:
    with sandbox.lock:
        sandbox.state.data["tokens"]["objects-only"] = {
            "user_id": 2, "name": "objects only", "expires_at": None,
            "permission": ["ticket.agent", "admin.object"]}
    report = connect(sandbox, token="objects-only").register()
    assert report.created == ALL_FIELDS, "the fields do not depend on the settings permission"
    assert len(report.problems) == 1
    assert "admin.time_accounting" in report.problems[0]
    assert "Remote, Vor-Ort, Notfall, Intern, Fahrt" in report.problems[0]


def test_bare_constructor_registers_only_the_billing_fields(sandbox: ZammadSandbox) -> None:
    report = ZammadConnector(sandbox.url, token=sandbox.admin_token, sleep=lambda s: None,
                             registration_poll_seconds=0.01).register()
    assert report.created == tuple(spec["name"] for spec in ATTRIBUTES)


def test_activity_type_names_must_be_unique_case_insensitively(sandbox: ZammadSandbox) -> None:
    with pytest.raises(ValueError, match="case-insensitively"):
        connect(sandbox, activity_types=("Remote", "remote"))


def test_agent_bookings_come_back_exactly(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox)
    assert connector.register().ok
    assert isinstance(connector, BookingReader)
    with sandbox.lock:
        anna_id = sandbox.state.data["tokens"][sandbox.agent_user_token]["user_id"]
        anna = sandbox.state.data["users"][anna_id]["login"]
        vor_ort = next(t["id"] for t in sandbox.state.data["time_accounting_types"].values()
                       if t["name"] == "Vor-Ort")
    ticket_id = sandbox.create_ticket("Server tauscht Platten", organization_id=1)["id"]

    # The agent sets the category and the structured fields, as in the ticket sidebar.
    answer = as_agent(sandbox, "PUT", f"/tickets/{ticket_id}",
                      {FIELD_CATEGORY: "warranty", FIELD_TRAVEL_KM: 38, FIELD_ONSITE: True})
    assert answer.status_code == 200, answer.text
    # An internal note with the booking lines, and 90 minutes as "Vor-Ort" in the time dialog.
    note = as_agent(sandbox, "POST", "/ticket_articles", {
        "ticket_id": ticket_id, "type": "note", "internal": True, "content_type": "text/html",
        "subject": "Einsatz", "time_unit": "90", "accounted_time_type_id": vor_ort,
        "body": "<div>Platten getauscht, RAID neu aufgebaut.</div>"
                "<div>Material: 2 × SSD 1 TB à 87,40 € [Hardware]</div>"
                "<div>Material: 3 Patchkabel à 4,90</div>"
                "<div>Fahrt: 12 km (Umweg Lager)</div>",
    })
    assert note.status_code == 201, note.text
    note_id = note.json()["id"]
    # A reply the customer sees is not a booking, whatever it says.
    public = as_agent(sandbox, "POST", "/ticket_articles", {
        "ticket_id": ticket_id, "type": "note", "internal": False,
        "body": "Material: 1 × Gratis-Maus à 0"})
    assert public.status_code == 201, public.text
    sandbox.close_ticket(ticket_id)
    # The sidecar's own note (it lists what it billed) is never read back as bookings.
    assert connector.write_back(str(ticket_id), WriteBack(
        billing_status="needs_attention", marker="attention-1",
        note_html="<p>Material: 9 × Fehler à 1,00</p>"))

    ticket = connector.ticket(str(ticket_id))
    assert ticket.category == "warranty"
    entries = connector.time_entries(str(ticket_id))
    assert [(e.agent, e.minutes, e.activity) for e in entries] == [(anna, Decimal(90), "Vor-Ort")]

    extras, problems = connector.extras(str(ticket_id))
    closed_at = sandbox.ticket(ticket_id)["last_close_at"]
    assert closed_at == "2025-07-01T12:00:00.000Z"
    assert list(extras) == [
        RemoteExtra(f"article:{note_id}:2", str(ticket_id), "material", "SSD 1 TB", Decimal(2),
                    Decimal("87.40"), "Hardware", NOW, anna),
        RemoteExtra(f"article:{note_id}:4", str(ticket_id), "travel", "Fahrt 12 km (Umweg Lager)",
                    Decimal(12), None, None, NOW, anna),
        RemoteExtra(f"ticket:{ticket_id}:{FIELD_TRAVEL_KM}", str(ticket_id), "travel",
                    "Fahrt / travel 38 km", Decimal(38), None, None, NOW, "unknown"),
        RemoteExtra(f"ticket:{ticket_id}:{FIELD_ONSITE}", str(ticket_id), "visit",
                    VISIT_DESCRIPTION, Decimal(1), None, None, NOW, "unknown"),
    ]
    assert list(problems) == [BookingProblem(
        str(ticket_id), f"article:{note_id}", "Material: 3 Patchkabel à 4,90",
        "quantity unclear in '3 Patchkabel': write the count with '×' or 'x', e.g. "
        "'3 × Patchkabel'")]
    assert connector.extras(str(ticket_id)) == (extras, problems), "re-read: same ids"


def test_field_extras_name_the_owner(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox)
    assert connector.register().ok
    with sandbox.lock:
        anna_id = sandbox.state.data["tokens"][sandbox.agent_user_token]["user_id"]
        anna = sandbox.state.data["users"][anna_id]["login"]
    ticket_id = sandbox.create_ticket("Drucker vor Ort", organization_id=1, owner_id=anna_id)["id"]
    assert as_agent(sandbox, "PUT", f"/tickets/{ticket_id}", {FIELD_TRAVEL_KM: 20}).ok
    extras, problems = connector.extras(str(ticket_id))
    assert [(e.kind, e.quantity, e.agent) for e in extras] == [("travel", Decimal(20), anna)]
    assert problems == []


def test_a_category_outside_the_list_is_refused_by_zammad(sandbox: ZammadSandbox) -> None:
    assert connect(sandbox).register().ok
    answer = as_agent(sandbox, "PUT", "/tickets/1", {FIELD_CATEGORY: "free"})
    assert answer.status_code == 422
    assert "Invalid value 'free' for field 'billing_category'" in answer.text


def test_category_empty_until_set(sandbox: ZammadSandbox) -> None:
    connector = connect(sandbox)
    assert connector.register().ok
    assert connector.ticket("1").category is None  # billing reads "not set" as billable


def test_extras_of_a_missing_ticket(sandbox: ZammadSandbox) -> None:
    with pytest.raises(NotFound):
        connect(sandbox).extras("99999")


def test_notes_without_registration_are_still_read(sandbox: ZammadSandbox) -> None:
    connector = ZammadConnector(sandbox.url, token=sandbox.admin_token)
    ticket_id = sandbox.create_ticket("Nur Notiz", organization_id=1)["id"]
    answer = as_agent(sandbox, "POST", "/ticket_articles", {
        "ticket_id": ticket_id, "internal": True, "body": "Vor-Ort: ja\nFahrt: 5 km"})
    assert answer.status_code == 201
    extras, problems = connector.extras(str(ticket_id))
    assert [(e.kind, e.quantity) for e in extras] == [("visit", Decimal(1)),
                                                     ("travel", Decimal(5))]
    assert problems == []


def test_register_during_an_endless_restart_reports_instead_of_raising(
    sandbox: ZammadSandbox,
) -> None:
    sandbox.restart_seconds = 3600
    connector = ZammadConnector(sandbox.url, token=sandbox.admin_token, sleep=lambda s: None,
                                registration_poll_seconds=1, registration_wait_seconds=2,
                                booking_fields=True, activity_types=DEFAULT_ACTIVITY_TYPES)
    report = connector.register()
    assert report.created == ALL_FIELDS
    assert "not visible on tickets" in report.problems[0]
    assert "activity types not registered: Zammad did not answer" in report.problems[1]
