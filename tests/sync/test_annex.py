"""Issue 11, defect 6: the activity report (annex) lists every booking once with its booked
minutes, also when a surcharge window splits it into two invoice lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sync_fixtures import Sidecar
from test_contracts_helpers import ANNA, JONAS, REMOTE, import_contracts, pdf_text, run_at
from verified import assert_verified

from addon.models import BilledEntry, Invoice, TimeEntry

NIGHT = {"code": "HANSEN-NACHT", "customer": "1", "rates": [{"rate": "89.00"}],
         "surcharges": [{"name": "Nacht", "kind": "night", "from": "20:00", "to": "06:00", "percent": "25"}]}


def test_an_entry_split_at_the_night_boundary_is_listed_once(sidecar: Sidecar, tmp_path: Path) -> None:
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    import_contracts(sidecar, {"contracts": [NIGHT]})
    ticket = sb.create_ticket("Server-Umzug", organization_id=1)
    sb.set_now(datetime(2026, 11, 5, 20, 0, tzinfo=UTC))  # 21:00 in Hamburg: 19:00–21:00 worked
    sb.book_time(ticket["id"], 120, agent_id=ANNA, type_id=REMOTE)
    sb.set_now(datetime(2026, 11, 6, 9, 0, tzinfo=UTC))
    sb.book_time(ticket["id"], 25, agent_id=JONAS, type_id=REMOTE)
    sb.close_ticket(ticket["id"])

    assert run_at(sidecar, datetime(2026, 11, 6, 12, 0, tzinfo=UTC)).ok

    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
        assert len(invoice.lines) == 2  # 60 + 30 min at 89.00, 60 min at 111.25 (night)
        annex = json.loads(invoice.snapshot or "{}")["annex"]
        booked = session.execute(select(TimeEntry.minutes).join(BilledEntry, BilledEntry.entry_id == TimeEntry.id)
                                 .where(BilledEntry.invoice_id == invoice.id)).scalars().all()
    assert sorted((Decimal(a["raw_minutes"]), Decimal(a["billed_minutes"])) for a in annex) == [
        (Decimal(25), Decimal(30)), (Decimal(120), Decimal(120))]
    assert sum(Decimal(a["raw_minutes"]) for a in annex) == sum(booked) == Decimal(145)
    assert f"Summe Ticket {ticket['number']}\n 2:25\n 2:30" in pdf_text(invoice.pdf_path or "")  # booked 2:25
    assert_verified(sidecar.factory, sidecar.settings)
