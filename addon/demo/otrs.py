"""`ticketbill demo --helpdesk otrs`: the whole flow against the built-in OTRS/Znuny sandbox.

The sandbox keeps its data in memory; its seed is pinned to the first demo run's date (stored
in the data directory), so a second run sees the same tickets and bills nothing new.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from addon.customers import import_customers
from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.demo import write_env_file
from addon.invoicing.issue import pdf_renderer
from addon.settings import Settings, load_settings
from addon.sync.jobs import RunResult, run_sync
from connectors import get_connector
from connectors.base import HelpdeskConnector
from connectors.sandbox.otrs import OTRSSandbox

CUSTOMERS = Path(__file__).with_name("otrs_customers.json")


def _seed_reference(data_dir: Path) -> datetime:
    marker = data_dir / "otrs-sandbox-reference.txt"
    if marker.exists():
        return datetime.fromisoformat(marker.read_text(encoding="utf-8").strip())
    reference = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    marker.write_text(reference.isoformat(), encoding="utf-8")
    return reference


def run_otrs_sync(data_dir: Path, seller: dict[str, str], public_url: str) -> tuple[
    Settings, HelpdeskConnector, RunResult, float
]:
    """Sandbox up → customers → register → one sync run; returns what the report needs."""
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    with OTRSSandbox.running(seed_reference=_seed_reference(data_dir)) as sandbox:
        environment = {
            "HELPDESK_KIND": "otrs",
            "HELPDESK_URL": f"{sandbox.url}/otrs",
            "HELPDESK_USER": sandbox.api_login,
            "HELPDESK_PASSWORD": sandbox.api_password,
            "DATA_DIR": str(data_dir),
            "PUBLIC_URL": public_url,
            **seller,
        }
        settings = load_settings(environment)
        write_env_file(data_dir, environment)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            import_customers(session, "otrs", CUSTOMERS)
        connector = get_connector(settings)
        report = connector.register()
        print(f"register: present {list(report.present)}")
        for problem in report.problems:
            print(f"register: to do: {problem}")
        result = run_sync(factory, connector, settings, pdf_renderer(settings))
        engine.dispose()
    return settings, connector, result, time.monotonic() - started
