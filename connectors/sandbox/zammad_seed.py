"""Deterministic demo data for the Zammad sandbox.

Why a generator and not a fixture file: the demo passes *today* as reference date, so the two
months of history must be laid out relative to it, yet be identical for the same date (seeded
random generator). The data shows the cases billing must handle: bookings at night and on
weekends (surcharges), an internal activity type (not billable), a negative correction, a
ticket closed twice (``close_at`` != ``last_close_at``), open tickets, and one ticket merged into
another whose time rows stay on the merged source (a real Zammad quirk).

The result is the sandbox's plain state dict (see ``connectors.sandbox.zammad``): records keyed
by integer id, timestamps as Zammad renders them (``2025-06-24T10:46:58.554Z``). Keys starting
with ``_`` are sandbox-internal (passwords, permissions, tags) and never rendered.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

DEFAULT_REFERENCE_DATE = date(2025, 7, 1)
RNG_SEED = 4711

ADMIN_TOKEN = "sandbox-admin-token"
AGENT_TOKEN = "sandbox-agent-token"
AGENT_USER_TOKEN = "sandbox-agent-user-token"
ADMIN_LOGIN = "ticketbill@nordlicht-it.example"
ADMIN_PASSWORD = "sandbox-admin-password"
AGENT_PASSWORD = "sandbox-agent-password"

ROLES = {
    1: {"name": "Admin", "permissions": ["admin", "user_preferences", "report"]},
    2: {"name": "Agent", "permissions": ["ticket.agent", "chat.agent", "user_preferences"]},
    3: {"name": "Customer", "permissions": ["ticket.customer", "user_preferences"]},
}

STATE_TYPES = {1: "new", 2: "open", 3: "pending reminder", 4: "pending action", 5: "closed",
               6: "merged"}
# id: (name, state_type_id, next_state_id, ignore_escalation, default_create, default_follow_up)
STATES = {
    1: ("new", 1, None, False, True, False),
    2: ("open", 2, None, False, False, True),
    3: ("pending reminder", 3, None, True, False, False),
    4: ("closed", 5, None, True, False, False),
    5: ("merged", 6, None, True, False, False),
    6: ("pending close", 4, 4, True, False, False),
}
PRIORITIES = {1: "1 low", 2: "2 normal", 3: "3 high"}
GROUPS = {1: "Users", 2: "Service"}
ARTICLE_TYPES = {1: "email", 5: "phone", 10: "note", 11: "web"}
ARTICLE_SENDERS = {1: "Agent", 2: "Customer", 3: "System"}
TIME_ACCOUNTING_TYPES = {
    1: ("Remote", "Fernwartung"),
    2: ("Vor-Ort", "Einsatz beim Kunden (On-site)"),
    3: ("Notfall", "Notfalleinsatz außerhalb der Servicezeiten (Emergency)"),
    4: ("Intern", "Interne Tätigkeit, nicht abrechenbar (Internal)"),
    5: ("Fahrt", "Anfahrt (Travel)"),
}

AGENTS = [
    ("Anna", "Becker"),
    ("Jonas", "Schulz"),
    ("Lena", "Hoffmann"),
    ("Tobias", "Wagner"),
]
ORGANIZATIONS = [
    ("Bäckerei Hansen GmbH", "baeckerei-hansen.example", [("Heike", "Hansen"), ("Uwe", "Kruse")]),
    ("Müller & Söhne Maschinenbau KG", "mueller-maschinenbau.example",
     [("Petra", "Müller"), ("Stefan", "Brandt"), ("Karin", "Vogel")]),
    ("Kanzlei Richter & Partner mbB", "kanzlei-richter.example",
     [("Dr. Martin", "Richter"), ("Sabine", "Lehmann")]),
]
TITLES = [
    "Drucker im 2. OG druckt nicht", "VPN-Verbindung bricht ständig ab",
    "Neuen Arbeitsplatz für Auszubildende einrichten", "Outlook synchronisiert Kalender nicht",
    "Server-Backup in der Nacht fehlgeschlagen", "Firewall-Freigabe für Kassensystem",
    "E-Mail-Postfach voll", "Kassensystem startet nicht", "WLAN im Lager instabil",
    "Lizenzverlängerung Microsoft 365", "Passwort-Reset Buchhaltung",
    "Netzwerkdrucker Empfang einrichten", "DATEV-Update installieren", "Notebook austauschen",
    "Telefonanlage: Rufumleitung einrichten", "Virenwarnung auf PC am Empfang",
    "Datenbank-Server sehr langsam", "Zugang für neuen Mitarbeiter", "Monitor flackert",
    "NAS-Festplatte meldet Fehler", "Scanner am Kopierer einrichten",
    "CAD-Workstation friert ein", "Homeoffice-Zugang einrichten", "SSL-Zertifikat abgelaufen",
]
NOTES = {
    1: "Per Fernwartung analysiert und behoben.",
    2: "Vor Ort beim Kunden gearbeitet.",
    3: "Notfalleinsatz außerhalb der Servicezeiten.",
    4: "Interne Dokumentation und Abstimmung im Team.",
    5: "Anfahrt zum Kunden.",
}


def iso(moment: datetime) -> str:
    """Render a moment the way Rails does: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def decimal_string(value: Decimal) -> str:
    """Zammad's decimal(6,2) as JSON: a string with at least one decimal place ("15.0")."""
    quantized = value.quantize(Decimal("0.01"))
    text = format(quantized.normalize(), "f")
    return text if "." in text else text + ".0"


def _user(uid: int, login: str, first: str, last: str, *, roles: list[int],
          organization_id: int | None, at: str, password: str | None = None) -> dict[str, Any]:
    return {
        "id": uid, "organization_id": organization_id, "login": login, "firstname": first,
        "lastname": last, "email": login if "@" in login else "", "image": None, "web": "",
        "phone": "", "fax": "", "mobile": "", "department": "", "street": "", "zip": "",
        "city": "", "country": "", "address": "", "vip": False, "verified": False,
        "active": True, "note": "", "last_login": None, "source": None, "login_failed": 0,
        "out_of_office": False, "preferences": {}, "updated_by_id": 1, "created_by_id": 1,
        "created_at": at, "updated_at": at, "role_ids": roles, "organization_ids": [],
        "group_ids": {str(g): ["full"] for g in GROUPS} if 2 in roles else {},
        "_password": password,
    }


# The organization billing fields as `ticketbill register` creates them (as if the admin had
# registered already): column, display, maxlength, input type.
ORGANIZATION_BILLING_FIELDS = (
    ("billing_legal_name", "Rechnungsname (leer: Name) / Legal name", 200, "text"),
    ("billing_street", "Rechnungsanschrift: Straße / Billing street", 200, "text"),
    ("billing_postcode", "PLZ / Postcode", 20, "text"),
    ("billing_city", "Ort / City", 100, "text"),
    ("billing_country", "Land (ISO, z. B. DE) / Country code", 2, "text"),
    ("billing_vat", "USt-IdNr. / VAT ID", 20, "text"),
    ("billing_customer_number", "Kundennummer / Customer number", 50, "text"),
    ("billing_email", "Rechnungs-E-Mail / Invoice e-mail", 200, "email"),
    ("billing_leitweg", "Leitweg-ID (öffentliche Auftraggeber)", 100, "text"),
)
# Billing data two demo organisations keep in Zammad (the third has none: JSON import).
ORGANIZATION_BILLING_DATA = {
    1: {"billing_street": "Große Bergstraße 143", "billing_postcode": "22767",
        "billing_city": "Hamburg", "billing_country": "DE", "billing_vat": "DE342366712",
        "billing_customer_number": "K-10001", "billing_email": "buchhaltung@baeckerei-hansen.example"},
    2: {"billing_legal_name": "Müller & Söhne Maschinenbau KG", "billing_street": "Industriestraße 7",
        "billing_postcode": "21079", "billing_city": "Hamburg", "billing_country": "DE",
        "billing_vat": "DE676122202", "billing_customer_number": "K-10002",
        "billing_email": "rechnungen@mueller-maschinenbau.example"},
}


def _billing_attributes(at: str, first_id: int) -> list[dict[str, Any]]:
    shown = {"-all-": {"shown": True, "required": False}}
    return [{
        "id": first_id + index, "object": "Organization", "name": name, "display": display,
        "data_type": "input",
        "data_option": {"type": kind, "maxlength": length, "default": "", "null": True},
        "data_option_new": {}, "editable": True, "active": True,
        "screens": {"create": shown, "edit": shown, "view": {"-all-": {"shown": True}}},
        "to_create": False, "to_migrate": False, "to_delete": False, "to_config": False,
        "position": 1600 + index, "created_by_id": 2, "updated_by_id": 2,
        "created_at": at, "updated_at": at,
    } for index, (name, display, length, kind) in enumerate(ORGANIZATION_BILLING_FIELDS)]


def _builtin_attributes(at: str) -> list[dict[str, Any]]:
    """The non-editable core attributes Zammad lists next to custom ones."""
    rows = [
        ("Ticket", "title", "Title", "input", {"type": "text", "maxlength": 200, "null": False}),
        ("Ticket", "customer_id", "Customer", "user_autocompletion", {"relation": "User"}),
        ("Ticket", "organization_id", "Organization", "autocompletion_ajax_customer_organization",
         {"relation": "Organization"}),
        ("Ticket", "group_id", "Group", "tree_select", {"relation": "Group", "default": ""}),
        ("Ticket", "owner_id", "Owner", "select", {"relation": "User", "default": ""}),
        ("Ticket", "state_id", "State", "select", {"relation": "TicketState", "default": 2}),
        ("Ticket", "pending_time", "Pending till", "datetime", {"future": True, "past": False}),
        ("Ticket", "priority_id", "Priority", "select", {"relation": "TicketPriority",
                                                         "default": 2}),
        ("Ticket", "tags", "Tags", "tag", {"type": "text", "null": True}),
        ("User", "login", "Login", "input", {"type": "text", "maxlength": 100}),
        ("User", "firstname", "First name", "input", {"type": "text", "maxlength": 150}),
        ("User", "lastname", "Last name", "input", {"type": "text", "maxlength": 150}),
        ("User", "email", "Email", "input", {"type": "email", "maxlength": 150}),
        ("User", "organization_id", "Organization", "autocompletion_ajax",
         {"relation": "Organization"}),
        ("Organization", "name", "Name", "input", {"type": "text", "maxlength": 150}),
        ("Organization", "domain", "Domain", "input", {"type": "text", "maxlength": 150}),
        ("Organization", "note", "Note", "richtext", {"maxlength": 5000}),
        ("Group", "name", "Name", "input", {"type": "text", "maxlength": 150}),
    ]
    result = []
    for position, (obj, name, display, data_type, option) in enumerate(rows, start=1):
        result.append({
            "id": position, "object": obj, "name": name, "display": display,
            "data_type": data_type, "data_option": {"null": True, **option},
            "data_option_new": {}, "editable": False, "active": True, "screens": {},
            "to_create": False, "to_migrate": False, "to_delete": False, "to_config": False,
            "position": position * 10, "created_by_id": 1, "updated_by_id": 1,
            "created_at": at, "updated_at": at,
        })
    return result


def _settings() -> dict[str, dict[str, Any]]:
    """Settings the sidecar reads; `permission` mirrors each setting's preferences."""
    entries = [
        ("product_name", "System::Branding", "Zammad Sandbox", ["admin.branding"]),
        ("fqdn", "System::Base", "zammad.sandbox.local", ["admin.system"]),
        ("timezone_default", "System::Base", "Europe/Berlin", ["admin.system"]),
        ("api_token_access", "API::Base", True, ["admin.api"]),
        ("api_password_access", "API::Base", True, ["admin.api"]),
        ("time_accounting", "Web::Base", True, ["admin.time_accounting"]),
        ("time_accounting_types", "Web::Base", True, ["admin.time_accounting"]),
        ("time_accounting_type_default", "Web::Base", "", ["admin.time_accounting"]),
        ("time_accounting_unit", "Web::Base", "minute", ["admin.time_accounting"]),
        ("time_accounting_unit_custom", "Web::Base", "", ["admin.time_accounting"]),
        ("time_accounting_selector", "Web::Base", {"condition": {}}, ["admin.time_accounting"]),
        ("ticket_hook", "Ticket::Base", "Ticket#", ["admin.ticket"]),
        # 6.5+: processes shut down (and get restarted) after a migration; no permission
        ("auto_shutdown", "Core::WebApp", True, []),
    ]
    return {
        name: {"name": name, "area": area, "value": value, "permission": permission}
        for name, area, value, permission in entries
    }


def build_seed(reference_date: date | None = None, rng_seed: int = RNG_SEED) -> dict[str, Any]:
    """Build the complete demo state with history in the two months before `reference_date`."""
    reference_date = reference_date or DEFAULT_REFERENCE_DATE
    rng = random.Random(rng_seed)
    end = datetime.combine(reference_date, time(0, 0), tzinfo=UTC)
    origin = end - timedelta(days=400)
    origin_iso = iso(origin)

    users: dict[int, dict[str, Any]] = {
        1: _user(1, "-", "", "", roles=[], organization_id=None, at=origin_iso),
        2: _user(2, ADMIN_LOGIN, "Ticketbill", "Abrechnung", roles=[1, 2],
                 organization_id=None, at=origin_iso, password=ADMIN_PASSWORD),
    }
    users[1]["active"] = False
    agent_ids = []
    for first, last in AGENTS:
        uid = len(users) + 1
        login = f"{first.lower()}.{last.lower()}@nordlicht-it.example"
        users[uid] = _user(uid, login, first, last, roles=[2], organization_id=None,
                           at=origin_iso, password=AGENT_PASSWORD)
        agent_ids.append(uid)

    organizations: dict[int, dict[str, Any]] = {}
    customers_by_org: dict[int, list[int]] = {}
    for oid, (name, domain, people) in enumerate(ORGANIZATIONS, start=1):
        organizations[oid] = {
            "id": oid, "name": name, "shared": True, "domain": domain,
            "domain_assignment": False, "active": True, "vip": False, "note": "",
            "updated_by_id": 1, "created_by_id": 1, "created_at": origin_iso,
            "updated_at": origin_iso,
            **{name: ORGANIZATION_BILLING_DATA.get(oid, {}).get(name)
               for name, *_ in ORGANIZATION_BILLING_FIELDS},
        }
        customers_by_org[oid] = []
        for first, last in people:
            uid = len(users) + 1
            local = f"{first.split()[-1]}.{last}".lower()
            local = local.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
            users[uid] = _user(uid, f"{local}@{domain}", first, last, roles=[3],
                               organization_id=oid, at=origin_iso)
            customers_by_org[oid].append(uid)

    # Plan the tickets: creation time on a working day, two months back.
    plans = []
    for index in range(40):
        org_id = rng.choice(list(organizations))
        # The open ones are recent.
        days_back = rng.randint(2, 9) if index >= 35 else rng.randint(12, 60)
        created = end - timedelta(days=days_back)
        while created.weekday() >= 5:
            created -= timedelta(days=1)
        created = created.replace(hour=rng.randint(7, 15), minute=rng.randint(0, 59),
                                  second=rng.randint(0, 59),
                                  microsecond=rng.randint(0, 999) * 1000)
        plans.append({"org": org_id, "created": created, "open": index >= 35,
                      "title": rng.choice(TITLES)})
    plans.sort(key=lambda plan: plan["created"])

    tickets: dict[int, dict[str, Any]] = {}
    events: list[tuple[datetime, str, dict[str, Any]]] = []
    for tid, plan in enumerate(plans, start=1):
        owner = rng.choice(agent_ids)
        customer = rng.choice(customers_by_org[plan["org"]])
        created: datetime = plan["created"]
        tickets[tid] = {
            "id": tid, "group_id": rng.choice([1, 1, 2]),
            "priority_id": rng.choice([2, 2, 2, 1, 3]), "state_id": 2,
            "organization_id": plan["org"], "number": str(31000 + tid), "title": plan["title"],
            "owner_id": owner, "customer_id": customer, "note": None,
            "first_response_at": None, "first_response_escalation_at": None,
            "close_at": None, "close_escalation_at": None, "last_close_at": None,
            "update_escalation_at": None, "last_contact_at": iso(created),
            "last_contact_agent_at": None, "last_contact_customer_at": iso(created),
            "last_owner_update_at": None, "create_article_type_id": 1,
            "create_article_sender_id": 2, "article_count": 0, "escalation_at": None,
            "pending_time": None, "type": None, "time_unit": None, "preferences": {},
            "updated_by_id": customer, "created_by_id": customer, "created_at": iso(created),
            "updated_at": iso(created), "checklist_id": None,
            "_tags": [],
        }
        events.append((created, "article", {
            "ticket_id": tid, "type_id": 1, "sender_id": 2, "by": customer, "internal": False,
            "subject": plan["title"], "content_type": "text/plain",
            "body": f"Hallo,\n\n{plan['title']}. Bitte um Unterstützung.\n\nViele Grüße",
        }))
        moment = latest = created
        count = rng.choices([2, 3, 4, 5, 6], weights=[2, 3, 3, 3, 1])[0]
        for _ in range(count):
            moment += timedelta(hours=rng.randint(1, 40), minutes=rng.randint(0, 59))
            special = rng.random() < 0.12
            if special and rng.random() < 0.5:
                days_to_saturday = (5 - moment.weekday()) % 7
                moment = (moment + timedelta(days=days_to_saturday)).replace(
                    hour=rng.randint(9, 16))
            elif special:
                moment = moment.replace(hour=rng.choice([21, 22, 23]))
            elif moment.hour < 7 or moment.hour > 18 or moment.weekday() >= 5:
                if moment.hour > 18:  # never move a booking before the previous one
                    moment += timedelta(days=1)
                moment = moment.replace(hour=rng.randint(8, 17))
                while moment.weekday() >= 5:
                    moment += timedelta(days=1)
            moment = max(moment, latest + timedelta(minutes=5))
            latest = moment
            if moment >= end - timedelta(hours=2):
                break
            type_id = 3 if special else rng.choices([1, 2, 4, 5], weights=[12, 5, 2, 2])[0]
            minutes = Decimal(rng.choice([15, 15, 30, 30, 30, 45, 60, 60, 90, 120, 10, 20]))
            agent = owner if rng.random() < 0.7 else rng.choice(agent_ids)
            events.append((moment, "booking", {
                "ticket_id": tid, "by": agent, "type_id": type_id, "time_unit": minutes,
            }))
        tickets[tid]["_last"] = latest
        tickets[tid]["_open"] = plan["open"]

    # One negative correction, as Zammad officially recommends for mistakes: the agent takes
    # back 15 minutes of their own first booking on the ticket (same activity type).
    correction_ticket = 3
    booked_at, corrected = next((moment, data) for moment, kind, data in events
                                if kind == "booking" and data["ticket_id"] == correction_ticket)
    events.append((booked_at + timedelta(minutes=30), "booking", {
        "ticket_id": correction_ticket, "by": corrected["by"],
        "type_id": corrected["type_id"], "time_unit": Decimal(-15),
        "body": "Korrektur: 15 Minuten zu viel gebucht.",
    }))
    for tid, ticket in tickets.items():
        last = ticket.pop("_last")
        if ticket.pop("_open"):
            continue
        closed = last + timedelta(hours=rng.randint(1, 20), minutes=rng.randint(0, 59))
        closed = min(closed, end - timedelta(minutes=rng.randint(5, 60)))
        events.append((closed, "close", {"ticket_id": tid}))
        if tid == 5:  # reopened by the customer and closed again
            events.append((closed + timedelta(days=1), "reopen", {"ticket_id": tid}))
            events.append((closed + timedelta(days=1, hours=3), "close", {"ticket_id": tid}))

    events.sort(key=lambda event: (event[0], event[1] != "article"))
    articles: dict[int, dict[str, Any]] = {}
    bookings: dict[int, dict[str, Any]] = {}
    for moment, kind, data in events:
        ticket = tickets[data["ticket_id"]]
        stamp = iso(moment)
        if kind == "close":
            ticket["state_id"] = 4
            ticket["close_at"] = ticket["close_at"] or stamp
            ticket["last_close_at"] = stamp
            ticket["updated_by_id"] = ticket["owner_id"]
        elif kind == "reopen":
            ticket["state_id"] = 2
            ticket["updated_by_id"] = ticket["customer_id"]
        else:
            if kind == "booking":
                type_name = TIME_ACCOUNTING_TYPES[data["type_id"]][0]
                data = {**data, "type_id_booking": data["type_id"], "type_id": 10,
                        "sender_id": 1, "internal": True, "subject": f"Zeit: {type_name}",
                        "content_type": "text/plain",
                        "body": data.get("body") or NOTES[data["type_id"]]}
            aid = len(articles) + 1
            by = data["by"]
            author = users[by]
            articles[aid] = {
                "id": aid, "ticket_id": ticket["id"], "type_id": data["type_id"],
                "sender_id": data["sender_id"],
                "from": f"{author['firstname']} {author['lastname']}".strip(),
                "to": None, "cc": None, "subject": data["subject"], "reply_to": None,
                "message_id": None, "message_id_md5": None, "in_reply_to": None,
                "content_type": data["content_type"], "references": None,
                "body": data["body"], "internal": data["internal"], "preferences": {},
                "updated_by_id": by, "created_by_id": by, "origin_by_id": None,
                "created_at": stamp, "updated_at": stamp,
            }
            ticket["article_count"] += 1
            if kind == "booking":
                bid = len(bookings) + 1
                bookings[bid] = {
                    "id": bid, "ticket_id": ticket["id"], "ticket_article_id": aid,
                    "time_unit": decimal_string(data["time_unit"]),
                    "type_id": data["type_id_booking"], "created_by_id": by,
                    "created_at": stamp, "updated_at": stamp,
                }
                total = Decimal(ticket["time_unit"] or "0") + data["time_unit"]
                ticket["time_unit"] = decimal_string(total)
                ticket["first_response_at"] = ticket["first_response_at"] or stamp
                ticket["last_contact_agent_at"] = stamp
                ticket["updated_by_id"] = by
        ticket["updated_at"] = stamp

    # Leave the open tickets in varied non-closed states.
    open_ids = [tid for tid, ticket in tickets.items() if ticket["close_at"] is None]
    for tid, state_id in zip(open_ids, [1, 2, 2, 3, 2], strict=False):
        tickets[tid]["state_id"] = state_id
        if state_id == 3:
            tickets[tid]["pending_time"] = iso(end + timedelta(days=3))

    merges: list[tuple[int, int]] = []
    _merge_in_seed(tickets, articles, merges, source_id=7, target_id=next(
        tid for tid in range(8, 41) if tickets[tid]["organization_id"]
        == tickets[7]["organization_id"]))

    states = {
        sid: {"id": sid, "state_type_id": st, "name": name, "next_state_id": nxt,
              "ignore_escalation": ign, "default_create": dc, "default_follow_up": df,
              "note": None, "active": True, "updated_by_id": 1, "created_by_id": 1,
              "created_at": origin_iso, "updated_at": origin_iso}
        for sid, (name, st, nxt, ign, dc, df) in STATES.items()
    }
    simple = {"updated_by_id": 1, "created_by_id": 1, "created_at": origin_iso,
              "updated_at": origin_iso}
    _book_onsite_extras(tickets, articles, bookings)

    links: dict[str, Any] = {}
    for source_id, target_id in merges:
        add_merge_link(links, source_id, target_id)
    return {
        "schema": 1,
        "links": links["links"],
        "reference_date": reference_date.isoformat(),
        "frozen_now": None,
        "roles": {rid: {"id": rid, "name": role["name"], "_permissions": role["permissions"],
                        "active": True, **simple} for rid, role in ROLES.items()},
        "users": users,
        "organizations": organizations,
        "groups": {gid: {"id": gid, "name": name, "active": True, "note": None, **simple}
                   for gid, name in GROUPS.items()},
        "priorities": {pid: {"id": pid, "name": name, "default_create": pid == 2,
                             "active": True, "note": None, **simple}
                       for pid, name in PRIORITIES.items()},
        "state_types": {tid: {"id": tid, "name": name} for tid, name in STATE_TYPES.items()},
        "states": states,
        "article_types": {tid: {"id": tid, "name": name} for tid, name in ARTICLE_TYPES.items()},
        "article_senders": {sid: {"id": sid, "name": name}
                            for sid, name in ARTICLE_SENDERS.items()},
        "tickets": tickets,
        "articles": articles,
        "time_accountings": bookings,
        "time_accounting_types": {
            tid: {"id": tid, "name": name, "note": note, "active": True, **simple}
            for tid, (name, note) in TIME_ACCOUNTING_TYPES.items()
        },
        "object_attributes": {row["id"]: row for row in (
            *_builtin_attributes(origin_iso),
            *_billing_attributes(origin_iso, len(_builtin_attributes(origin_iso)) + 1))},
        "settings": _settings(),
        "tokens": {
            ADMIN_TOKEN: {"user_id": 2, "name": "ticketbill sidecar", "expires_at": None,
                          "permission": ["ticket.agent", "admin.time_accounting",
                                         "admin.object", "admin.webhook", "admin.trigger",
                                         "admin.organization", "admin.user", "admin.system",
                                         "admin.api", "admin.ticket"]},
            AGENT_TOKEN: {"user_id": 2, "name": "agent only", "expires_at": None,
                          "permission": ["ticket.agent"]},
            AGENT_USER_TOKEN: {"user_id": agent_ids[0], "name": "Anna (agent user)",
                               "expires_at": None,
                               "permission": ["ticket.agent", "admin.time_accounting"]},
        },
    }


#: A public-sector buyer, added by the demo (`add_public_sector`) so that every demo run issues
#: XRechnung files too. Not part of the base seed: the sandbox's own tests keep their 40
#: tickets and three organizations.
PUBLIC_ORGANIZATION = ("Bezirksamt Hamburg-Nord", "bezirksamt-nord.example", ("Jan", "Petersen"))
PUBLIC_TICKETS = ("Fachverfahren startet nicht nach Update", "Scanner in der Meldestelle einrichten")


class SeedState(Protocol):
    """What `add_public_sector` needs of the sandbox state: its records and fresh ids."""

    data: dict[str, Any]

    def next_id(self, table: str) -> int: ...


def add_public_sector(state: SeedState, reference_date: date, rng_seed: int = RNG_SEED) -> bool:
    """Add the public buyer's organization, contact and two closed tickets with remote
    bookings in the weeks before `reference_date`, unless it is there already (a second demo
    run reads the state file back). Returns whether anything was added. The caller holds the
    sandbox lock and persists."""
    data = state.data
    name, domain, (first, last) = PUBLIC_ORGANIZATION
    if any(org["name"] == name for org in data["organizations"].values()):
        return False
    rng = random.Random(rng_seed + 4)
    end = datetime.combine(reference_date, time(0, 0), tzinfo=UTC)
    at = iso(end - timedelta(days=400))
    agent_ids = sorted(uid for uid, user in data["users"].items()
                       if user["login"].endswith("@nordlicht-it.example") and 2 in user["role_ids"]
                       and uid != 2)
    oid = state.next_id("organizations")
    data["organizations"][oid] = {
        "id": oid, "name": name, "shared": True, "domain": domain, "domain_assignment": False,
        "active": True, "vip": False, "note": "", "updated_by_id": 1, "created_by_id": 1,
        "created_at": at, "updated_at": at,
    }
    customer = state.next_id("users")
    data["users"][customer] = _user(customer, f"{first}.{last}@{domain}".lower(), first, last, roles=[3],
                                    organization_id=oid, at=at)
    for offset, title in enumerate(PUBLIC_TICKETS):
        tid = state.next_id("tickets")
        agent = rng.choice(agent_ids)
        created = (end - timedelta(days=20 - 7 * offset)).replace(hour=9, minute=rng.randint(0, 59))
        while created.weekday() >= 5:
            created -= timedelta(days=1)
        closed = created + timedelta(hours=6)
        ticket = {
            "id": tid, "group_id": 1, "priority_id": 2, "state_id": 4, "organization_id": oid,
            "number": str(31000 + tid), "title": title, "owner_id": agent, "customer_id": customer,
            "note": None, "first_response_at": iso(created + timedelta(hours=1)),
            "first_response_escalation_at": None, "close_at": iso(closed), "close_escalation_at": None,
            "last_close_at": iso(closed), "update_escalation_at": None, "last_contact_at": iso(created),
            "last_contact_agent_at": iso(created + timedelta(hours=2)), "last_contact_customer_at": iso(created),
            "last_owner_update_at": None, "create_article_type_id": 1, "create_article_sender_id": 2,
            "article_count": 0, "escalation_at": None, "pending_time": None, "type": None, "time_unit": "0",
            "preferences": {}, "updated_by_id": agent, "created_by_id": customer, "created_at": iso(created),
            "updated_at": iso(closed), "checklist_id": None, "_tags": [],
        }
        data["tickets"][tid] = ticket
        total = Decimal(0)
        for hours, minutes in ((1, rng.choice([30, 45, 60])), (3, rng.choice([15, 30]))):
            stamp = iso(created + timedelta(hours=hours))
            aid, bid = state.next_id("articles"), state.next_id("time_accountings")
            author = data["users"][agent]
            data["articles"][aid] = {
                "id": aid, "ticket_id": tid, "type_id": 10, "sender_id": 1,
                "from": f"{author['firstname']} {author['lastname']}", "to": None, "cc": None,
                "subject": "Zeit: Remote", "reply_to": None, "message_id": None, "message_id_md5": None,
                "in_reply_to": None, "content_type": "text/plain", "references": None, "body": NOTES[1],
                "internal": True, "preferences": {}, "updated_by_id": agent, "created_by_id": agent,
                "origin_by_id": None, "created_at": stamp, "updated_at": stamp,
            }
            data["time_accountings"][bid] = {
                "id": bid, "ticket_id": tid, "ticket_article_id": aid, "time_unit": str(minutes), "type_id": 1,
                "created_by_id": agent, "created_at": stamp, "updated_at": stamp}
            total += minutes
            ticket["article_count"] += 1
        ticket["time_unit"] = decimal_string(total)
    return True


# What technicians write into the note of an on-site booking (the syntax of
# connectors/bookings.py): travel with its price per km, and the material they brought.
ONSITE_EXTRAS = (
    "Fahrt: 24 km à 0,30 €\nMaterial: 2 × Patchkabel 3 m à 4,90 € [Hardware]",
    "Fahrt: 2 × 18 km à 0,30 €\nMaterial: SSD 1 TB à 87,40 € [Hardware]",
    "Material: Netzwerkdose Cat6 à 12,50 €",
)


def _book_onsite_extras(tickets: dict[int, dict[str, Any]], articles: dict[int, dict[str, Any]],
                        bookings: dict[int, dict[str, Any]]) -> None:
    """Add travel and material lines to the notes of the first on-site bookings on closed
    tickets of the time-and-material customers (organizations 1 and 2), without touching the
    random sequence, so every other record of the seed stays as it was."""
    onsite = [b for b in sorted(bookings.values(), key=lambda b: b["id"])
              if b["type_id"] == 2 and Decimal(b["time_unit"]) > 0 and tickets[b["ticket_id"]]["state_id"] == 4
              and tickets[b["ticket_id"]]["organization_id"] in (1, 2)]
    for booking, lines in zip(onsite, ONSITE_EXTRAS, strict=False):
        article = articles[booking["ticket_article_id"]]
        article["body"] = f"{article['body']}\n{lines}"


def add_merge_link(data: dict[str, Any], source_id: int, target_id: int) -> None:
    """``Ticket#merge_to``'s link (``Link.add``): type ``parent``, source the surviving ticket,
    target the merged one; kept in ``data["links"]`` and served by ``GET /api/v1/links``."""
    data.setdefault("links", []).append({"link_type": "parent", "source": target_id, "target": source_id})


def _merge_in_seed(tickets: dict[int, dict[str, Any]], articles: dict[int, dict[str, Any]],
                   merges: list[tuple[int, int]], *, source_id: int, target_id: int) -> None:
    """Merge like ``Ticket#merge_to``: articles move, time rows stay, source becomes merged;
    the (source, target) pair becomes the merge link."""
    for article in articles.values():
        if article["ticket_id"] == source_id:
            article["ticket_id"] = target_id
            tickets[target_id]["article_count"] += 1
    source = tickets[source_id]
    source["article_count"] = 0
    source["state_id"] = 5
    stamp = max(source["updated_at"], tickets[target_id]["updated_at"])
    source["updated_at"] = stamp
    tickets[target_id]["updated_at"] = stamp
    merges.append((source_id, target_id))
