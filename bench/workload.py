"""A large MSP's month, seeded: customers with monthly contracts, closed tickets, time entries.

Used by `bench/perf.py`. `build(sandbox, ...)` replaces the Zammad sandbox's tickets with
`tickets` tickets closed in the month before `today`, spread over `customers` organizations
(one customer contact each) and booked by the sandbox's agents with `entries` time entries in
all (each with the internal note an agent writes in the UI). The records are written straight
into the sandbox's state, as its seed is: loading 30,000 bookings through the REST API would
measure the sandbox, not ticketbill. `customer_file` and `contract_document` give the billing
data and one monthly time-and-material contract per customer, so the first run issues one
monthly invoice with an activity report per customer.

Deterministic: the same arguments give the same data (seeded `random.Random`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.sandbox.zammad import ZammadSandbox
from connectors.sandbox.zammad_seed import decimal_string, iso

SEED = 15
ACTIVITY_TYPE_IDS = (1, 2, 3)  # the sandbox's Remote, Vor-Ort, Notfall
MINUTES = (10, 15, 20, 30, 45, 60, 90, 120)
FIRST_NUMBER = 500_000


@dataclass(frozen=True)
class Workload:
    """What was generated: sizes, and the organization ids (= customer remote ids)."""

    tickets: int
    entries: int
    organizations: tuple[int, ...]
    month: str


def previous_month(today: date) -> tuple[datetime, datetime]:
    """The first moment of last month and of this month (UTC)."""
    first = today.replace(day=1)
    start = (first - timedelta(days=1)).replace(day=1)
    return datetime.combine(start, time(0), tzinfo=UTC), datetime.combine(first, time(0), tzinfo=UTC)


def build(sandbox: ZammadSandbox, *, tickets: int, entries: int, customers: int, today: date,
          seed: int = SEED) -> Workload:
    """Fill the sandbox with the month's work (see the module docstring)."""
    rng = random.Random(seed)
    start, end = previous_month(today)
    days = (end - start).days
    with sandbox.lock:
        state = sandbox.state
        data = state.data
        for table in ("tickets", "articles", "time_accountings"):
            data[table].clear()
        data["links"] = []
        agents = sorted(uid for uid, user in data["users"].items() if 2 in user["role_ids"] and uid != 2)
        at = iso(start - timedelta(days=30))
        orgs: list[int] = []
        contacts: dict[int, int] = {}
        for n in range(customers):
            oid = state.next_id("organizations")
            data["organizations"][oid] = {
                "id": oid, "name": f"Kunde {n + 1:04d} GmbH", "shared": True, "domain": f"kunde{n + 1}.example",
                "domain_assignment": False, "active": True, "vip": False, "note": "", "updated_by_id": 1,
                "created_by_id": 1, "created_at": at, "updated_at": at,
            }
            uid = state.next_id("users")
            user = dict(data["users"][agents[0]])
            user.update(id=uid, organization_id=oid, login=f"kontakt@kunde{n + 1}.example",
                        email=f"kontakt@kunde{n + 1}.example", firstname="Kontakt", lastname=f"{n + 1}",
                        role_ids=[3], group_ids={}, organization_ids=[], _password=None)
            data["users"][uid] = user
            orgs.append(oid)
            contacts[oid] = uid
        # every ticket gets at least one entry; the rest land on random tickets
        per_ticket = [1] * tickets
        for _ in range(max(0, entries - tickets)):
            per_ticket[rng.randrange(tickets)] += 1
        closed_state = state.closed_state_ids()[0]
        for n in range(tickets):
            tid = state.next_id("tickets")
            oid = orgs[n % customers]
            agent = rng.choice(agents)
            created = start + timedelta(days=rng.randrange(days - 1), hours=rng.randrange(7, 16),
                                        minutes=rng.randrange(60))
            ticket: dict[str, Any] = {
                "id": tid, "group_id": 1, "priority_id": 2, "state_id": closed_state, "organization_id": oid,
                "number": str(FIRST_NUMBER + n), "title": f"Störung {n}: Arbeitsplatz und Drucker",
                "owner_id": agent, "customer_id": contacts[oid], "note": None,
                "first_response_at": iso(created + timedelta(hours=1)), "first_response_escalation_at": None,
                "close_at": None, "close_escalation_at": None, "last_close_at": None,
                "update_escalation_at": None, "last_contact_at": iso(created),
                "last_contact_agent_at": iso(created), "last_contact_customer_at": iso(created),
                "last_owner_update_at": None, "create_article_type_id": 1, "create_article_sender_id": 2,
                "article_count": 0, "escalation_at": None, "pending_time": None, "type": None,
                "time_unit": "0", "preferences": {}, "updated_by_id": agent, "created_by_id": contacts[oid],
                "created_at": iso(created), "updated_at": iso(created), "checklist_id": None, "_tags": [],
            }
            data["tickets"][tid] = ticket
            total = 0
            moment = created
            for _ in range(per_ticket[n]):
                moment += timedelta(minutes=rng.randrange(20, 240))
                minutes = rng.choice(MINUTES)
                stamp = iso(min(moment, end - timedelta(hours=2)))
                aid, bid = state.next_id("articles"), state.next_id("time_accountings")
                data["articles"][aid] = {
                    "id": aid, "ticket_id": tid, "type_id": 10, "sender_id": 1, "from": "Agent", "to": None,
                    "cc": None, "subject": "Arbeitszeit", "reply_to": None, "message_id": None,
                    "message_id_md5": None, "in_reply_to": None, "content_type": "text/plain",
                    "references": None, "body": "Arbeitszeit gebucht.", "internal": True, "preferences": {},
                    "updated_by_id": agent, "created_by_id": agent, "origin_by_id": None,
                    "created_at": stamp, "updated_at": stamp,
                }
                data["time_accountings"][bid] = {
                    "id": bid, "ticket_id": tid, "ticket_article_id": aid, "time_unit": str(minutes),
                    "type_id": rng.choice(ACTIVITY_TYPE_IDS), "created_by_id": agent, "created_at": stamp,
                    "updated_at": stamp,
                }
                ticket["article_count"] += 1
                total += minutes
            closed = iso(min(moment + timedelta(hours=1), end - timedelta(hours=1)))
            ticket.update(time_unit=decimal_string(Decimal(total)), close_at=closed, last_close_at=closed,
                          updated_at=closed)
    return Workload(tickets, sum(per_ticket), tuple(orgs), f"{start:%Y-%m}")


def customer_file(workload: Workload, target: Path) -> Path:
    """The customers import: complete billing data for every organization, German invoices."""
    customers = [
        {"remote_id": str(oid), "name": f"Kunde {n + 1:04d} GmbH", "legal_name": f"Kunde {n + 1:04d} GmbH",
         "street": f"Hafenstraße {n % 90 + 1}", "postcode": f"{20000 + n % 999:05d}", "city": "Hamburg",
         "country": "DE", "customer_number": f"K-{30000 + n}", "email": f"rechnung@kunde{n + 1}.example"}
        for n, oid in enumerate(workload.organizations)
    ]
    document = {"default_rate": "95.00", "internal_activities": ["Intern"], "customers": customers}
    target.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return target


def contract_document(workload: Workload) -> dict[str, Any]:
    """One monthly time-and-material contract per customer, valid from the benchmark month."""
    return {"contracts": [
        {"code": f"MSP-{oid}", "customer": str(oid), "kind": "time_and_material", "trigger": "monthly",
         "valid_from": f"{workload.month}-01", "rounding": {"scope": "entry", "mode": "up", "increment": 15},
         "rates": [{"activity": "Vor-Ort", "rate": "110.00"}, {"rate": "95.00"}]}
        for oid in workload.organizations
    ]}
