"""Every page renders for the admin on the scenario data (no template error, German and English)."""

from __future__ import annotations

from web_fixtures import UI


def test_pages_render_for_the_admin(ui: UI) -> None:
    client = ui.client("admin")
    for path in ("/", "/tickets", "/drafts", "/invoices", "/exports", "/runs", "/admin/customers",
                 "/admin/contracts", "/admin/contracts/new", "/admin/rates", "/admin/catalogue", "/admin/series",
                 "/admin/users", "/runs/live"):
        answer = client.get(path, headers={"Accept": "text/html"})
        assert answer.status_code == 200, (path, answer.get_data(as_text=True)[-3000:])
