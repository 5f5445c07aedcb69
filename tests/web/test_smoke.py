"""Every page renders for the admin on the scenario data (no template error), in both languages."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from web_fixtures import UI

from addon.invoicing.snapshot import InvoiceSnapshot
from addon.models import Customer, Invoice


@pytest.mark.parametrize("language", ["de", "en"])
def test_pages_render_for_the_admin(ui: UI, language: str) -> None:
    client = ui.client("admin")
    with ui.sidecar.factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number.is_not(None))).scalars().first()
        draft = session.execute(select(Invoice).where(Invoice.state == "draft")).scalars().first()
        customer = session.execute(select(Customer)).scalars().first()
    paths = ["/", "/tickets", "/drafts", "/invoices", "/exports", "/runs", "/admin/customers", "/admin/contracts",
             "/admin/contracts/new", "/admin/rates", "/admin/catalogue", "/admin/series", "/admin/users", "/runs/live",
             f"/drafts/{draft.id}", f"/invoices/{invoice.id}", f"/admin/customers/{customer.id}",
             *(f"/tickets/{ticket_id}" for ticket_id in ui.tickets.values())]
    for path in paths:
        answer = client.get(path, headers={"Accept": "text/html", "Accept-Language": language})
        assert answer.status_code == 200, (path, answer.get_data(as_text=True)[-3000:])
        assert path == "/runs/live" or f'<html lang="{language}">' in answer.get_data(as_text=True)


def test_each_export_downloads_or_says_why_not(ui: UI) -> None:
    """The three export forms: a file for a period with documents, a message for an empty one."""
    client = ui.client("admin")
    with ui.sidecar.factory() as session:
        # the printed (local) issue dates: from 23:00 UTC on, Berlin's date is already the next day
        days = [InvoiceSnapshot.from_json(i.snapshot).issue_date
                for i in session.execute(select(Invoice).where(Invoice.number.is_not(None)))
                .scalars()]
    period = {"from": min(days).isoformat(), "to": max(days).isoformat()}
    for kind, mimetype, starts in (("csv", "application/zip", b"PK"), ("gdpdu", "application/zip", b"PK")):
        answer = client.post(f"/exports/{kind}", data={**period, "csrf_token": ui.token(client, "/exports")})
        assert answer.status_code == 200 and answer.mimetype == mimetype, kind
        assert answer.get_data().startswith(starts)
    empty = {"from": "2001-01-01", "to": "2001-01-31", "csrf_token": ui.token(client, "/exports")}
    answer = client.post("/exports/gdpdu", data=empty, follow_redirects=True, headers={"Accept-Language": "en"})
    assert answer.status_code == 200 and "nothing written" in answer.get_data(as_text=True)
