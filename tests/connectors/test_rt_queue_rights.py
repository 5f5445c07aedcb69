"""RTConnector against a scripted RT 5 for what the CI instance cannot show: a user whose
rights are all granted on queues (none globally).

The answers are the shapes the real RT 5.0.3 gives such a user (checked against the CI RT and
RT's REST2 source): collections without `total` (RT counts only for a global right), custom
fields invisible to the `/customfields` search but listed by `GET /queue/{id}` under
`TicketCustomFields`, and 403 for a field's values. The integration tests run the same
connector as the README's least-privileged user against the real RT.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.base import NoAccess, RemoteError
from connectors.rt import ACTIVITY_FIELD, CATEGORY_FIELD, GLOBAL_RIGHTS, QUEUE_RIGHTS, RTConnector

API = "/REST/2.0"


class QueueRightsRT:
    """A few REST2 routes as RT answers a user with queue-level rights on queue 3 only."""

    def __init__(self, field_names: tuple[str, ...]) -> None:
        self.fields = {str(7 + i): name for i, name in enumerate(field_names)}
        self.requests: list[tuple[str, str]] = []
        self.rules = Map([
            Rule(f"{API}/rt", endpoint="rt"),
            Rule(f"{API}/queues/all", endpoint="queues"),
            Rule(f"{API}/queue/<name>", endpoint="queue"),
            Rule(f"{API}/customfields", endpoint="customfields"),
            Rule(f"{API}/customfield", endpoint="create_field"),
            Rule(f"{API}/customfield/<cf_id>/values", endpoint="values"),
            Rule(f"{API}/ticket/<ticket_id>/history", endpoint="history"),
            Rule(f"{API}/ticket/<ticket_id>", endpoint="ticket"),
            Rule(f"{API}/user/<name>", endpoint="user"),
        ])
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((request.method, request.path))
        endpoint, args = self.rules.bind_to_environ(environ).match()
        status, body = getattr(self, endpoint)(request, **args)
        return Response(json.dumps(body), status=status,
                        content_type="application/json; charset=utf-8")(environ, start_response)

    @staticmethod
    def _page(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", 20))
        chunk = items[(page - 1) * per_page: page * per_page]
        return {"count": len(chunk), "page": page, "per_page": per_page, "items": chunk,
                "total": None, "pages": None}

    def rt(self, request: Request) -> tuple[int, Any]:
        return 200, {"Version": "5.0.3+dfsg-3~deb12u7", "Plugins": []}

    def queues(self, request: Request) -> tuple[int, Any]:
        return 200, self._page(request, [{"type": "queue", "id": "3"}])

    def queue(self, request: Request, name: str) -> tuple[int, Any]:
        if name not in ("3", "Acme GmbH"):
            return 403, {"message": "Forbidden"}
        cfs = [{"type": "customfield", "id": cf_id, "ref": "customfield", "name": cf_name}
               for cf_id, cf_name in self.fields.items()]
        return 200, {"id": 3, "Name": "Acme GmbH", "TicketCustomFields": cfs}

    def customfields(self, request: Request) -> tuple[int, Any]:
        return 200, self._page(request, [])  # no global SeeCustomField: the search is empty

    def create_field(self, request: Request) -> tuple[int, Any]:
        return 201, {"id": "99", "type": "customfield"}

    def values(self, request: Request, cf_id: str) -> tuple[int, Any]:
        return 403, {"message": "Forbidden"}

    def history(self, request: Request, ticket_id: str) -> tuple[int, Any]:
        # 45 minutes worked, but the correspond with 15 of them was followed by mail the user
        # may not see (no ShowOutgoingEmail): RT's page ends short, the 15 never show.
        rows = [{"id": "90", "Type": "Create", "TimeTaken": "0", "Creator": {"id": "agent1"},
                 "Created": "2026-11-02T09:00:00Z", "ObjectId": ticket_id},
                {"id": "91", "Type": "Comment", "TimeTaken": "30", "Creator": {"id": "agent1"},
                 "Created": "2026-11-02T10:00:00Z", "ObjectId": ticket_id}]
        return 200, self._page(request, rows)

    def ticket(self, request: Request, ticket_id: str) -> tuple[int, Any]:
        return 200, {"id": int(ticket_id), "TimeWorked": "45", "Status": "resolved",
                     "Queue": {"id": "3", "type": "queue", "Name": "Acme GmbH"},
                     "CustomFields": []}

    def user(self, request: Request, name: str) -> tuple[int, Any]:
        return 200, {"Name": name, "RealName": "Agent One", "Privileged": 1}


@pytest.fixture
def fake_rt() -> Iterator[QueueRightsRT]:
    fake = QueueRightsRT(("Billing Status", "Invoice Number", "Invoice URL"))
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_register_finds_fields_a_queue_right_shows_and_never_duplicates_them(
    fake_rt: QueueRightsRT,
) -> None:
    connector = RTConnector(fake_rt.url, token="1-20-0123456789abcdef", queues=("Acme GmbH",))
    report = connector.register()
    assert ("POST", f"{API}/customfield") not in fake_rt.requests
    assert report.created == ()
    assert report.present == ("custom field 'Billing Status' (id 7)",
                              "custom field 'Invoice Number' (id 8)",
                              "custom field 'Invoice URL' (id 9)")
    # The Select's values are hidden from a queue-level right: named, not added blindly.
    assert len(report.problems) == 1 and "SeeCustomField" in report.problems[0]
    assert "global" in report.problems[0]
    assert connector.custom_field_ids() == {"status": "7", "reference": "8", "url": "9"}


def test_check_reads_the_visible_queues_not_the_total(fake_rt: QueueRightsRT) -> None:
    """RT leaves `total` null for a queue-level SeeQueue; the queue is there all the same."""
    connector = RTConnector(fake_rt.url, token="1-20-0123456789abcdef")
    assert connector.check().startswith("RT 5.0.3")


def test_check_names_a_queue_it_cannot_see(fake_rt: QueueRightsRT) -> None:
    connector = RTConnector(fake_rt.url, token="1-20-0123456789abcdef", queues=("Secret",))
    with pytest.raises(RemoteError, match="lacks SeeQueue"):
        connector.check()


def test_rights_lists_are_what_the_readme_and_rt_up_name() -> None:
    """One list of rights: README, .ci/rt-up.sh and the connector's messages agree."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Install next to Request Tracker 5"):]
    section = section[: section.index("\n## ", 3)]
    script = (root / ".ci" / "rt-up.sh").read_text(encoding="utf-8")
    assert f'BILLING_QUEUE_RIGHTS="{" ".join(QUEUE_RIGHTS)}"' in script
    assert f'BILLING_GLOBAL_RIGHTS="{" ".join(GLOBAL_RIGHTS)}"' in script
    for right in (*QUEUE_RIGHTS, *GLOBAL_RIGHTS):
        assert f"`{right}`" in section, right
    connector = RTConnector("http://rt.test", token="1-1-x", category_field=CATEGORY_FIELD,
                            activity_field=ACTIVITY_FIELD)  # the fields from_settings registers
    for spec in connector.fields:
        assert f'"{spec.name}"' in section, spec.name


def test_bookings_rt_hides_make_the_ticket_unreadable_not_a_short_invoice(
    fake_rt: QueueRightsRT,
) -> None:
    connector = RTConnector(fake_rt.url, token="1-20-0123456789abcdef")
    with pytest.raises(NoAccess) as failure:
        connector.time_entries("42")
    assert "add up to 30 minutes, the ticket has 45" in str(failure.value)
    assert "ShowOutgoingEmail" in str(failure.value) and "'Acme GmbH'" in str(failure.value)
