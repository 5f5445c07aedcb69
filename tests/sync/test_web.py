"""The sidecar's HTTP surface: the invoice link written into the ticket serves the PDF without
a session (its access key is the credential); run reports need one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import select
from sync_fixtures import Sidecar, closed_ticket

from addon import create_app
from addon.models import Invoice
from addon.users import create_user


def test_invoice_link_from_the_ticket_serves_the_pdf(sidecar: Sidecar, tmp_path: Path) -> None:
    sidecar.import_customers(tmp_path, [1])
    ticket_id = closed_ticket(sidecar.sandbox, "Drucker", 1, [(30, 3, 1)])
    result = sidecar.run()
    assert result.ok, result.error
    link = sidecar.sandbox.ticket(ticket_id)["billing_invoice_url"]
    app = create_app(sidecar.settings)
    client = app.test_client()

    with client.get(urlparse(link).path) as response:
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        served = response.get_data()
    with sidecar.factory() as session:
        invoice = session.execute(select(Invoice)).scalar_one()
    assert served == Path(invoice.pdf_path).read_bytes()
    wrong_key = urlparse(link).path.replace(invoice.access_key, "x" * len(invoice.access_key))
    assert client.get(wrong_key).status_code == 404

    assert client.get("/runs").status_code == 302  # run reports need a session (issue 16)
    with sidecar.factory() as session, session.begin():
        create_user(session, "lead", "Team Lead", "team_lead", "a long password", datetime.now(UTC))
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"csrf_token": token, "login": "lead", "password": "a long password"}
                       ).status_code == 302
    runs = client.get("/runs").get_json()
    assert runs[0]["id"] == result.run_id
    assert runs[0]["successful"] is True
    assert runs[0]["counts"]["invoiced"] == 1
    one = client.get(f"/runs/{result.run_id}").get_json()
    assert one["ready"] is True and one["error"] is None
    assert client.get("/runs/999999").status_code == 404
    assert client.get("/healthz").get_json() == {"status": "ok"}
    app.extensions["ticketbill"].engine.dispose()
