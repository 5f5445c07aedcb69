"""The sandbox's faults, one after another on one installation, each ending in a clean state.

For every fault: new work is booked, the fault is armed, a run meets it (and may fail, which
is fine: it must fail honestly), the fault clears, the outbox is made due (what an admin does
with `ticketbill outbox --retry-now`), a clean run follows, and then `ticketbill verify`
passes, every booked minute is on exactly one invoice and no note exists twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from harness_kit import Deployment, Zygote, assert_money_and_notes, book_closed, sandbox, zygote

from addon.db import transaction
from addon.invoicing.render_pdf import render_pdf
from addon.settings import settings_from_environment
from addon.sync.jobs import RunResult, run_sync
from addon.sync.writeback import retry_now
from connectors.sandbox.zammad import ZammadSandbox
from connectors.zammad import ZammadConnector

__all__ = ["sandbox", "zygote"]  # fixtures


@dataclass(frozen=True)
class Fault:
    """A named fault: `arm` books the work it hits and switches the sandbox fault on."""

    name: str
    arm: Callable[[ZammadSandbox], None]


def one(sb: ZammadSandbox, title: str) -> int:
    return book_closed(sb, title, 1, [30, 15])


def at_one_timestamp(sb: ZammadSandbox, title: str) -> None:
    """201 open tickets without time and one billable closed ticket, all updated in the same
    millisecond: more than a search page (200) shares the timestamp, so the connector pages
    by number there, where a repeated or skipped page can happen."""
    sb.advance(600)
    for n in range(201):
        sb.create_ticket(f"{title} {n}", organization_id=2)
    ticket = sb.create_ticket(title, organization_id=1)
    sb.book_time(ticket["id"], 20, agent_id=3, type_id=1)
    sb.close_ticket(ticket["id"])


def vanish(sb: ZammadSandbox, into: bool) -> None:
    gone = one(sb, "Verschwindet")
    target = one(sb, "Bleibt") if into else None
    sb.vanish_next(gone, path=f"/tickets/{gone}/time_accountings", into=target)


FAULTS = (
    Fault("500 on the search", lambda sb: (one(sb, "500"), sb.fail_next(1, 500, path="/tickets/search"))),
    Fault("502 on time entries", lambda sb: (t := one(sb, "502"), sb.fail_next(10, 502, path=f"/tickets/{t}/time"))),
    Fault("503 on the write-back", lambda sb: (t := one(sb, "503"),
                                               sb.fail_next(10, 503, path=f"/tickets/{t}", method="PUT"))),
    Fault("504 on the write-back", lambda sb: (t := one(sb, "504"),
                                               sb.fail_next(1, 504, path=f"/tickets/{t}", method="PUT"))),
    Fault("429 with Retry-After", lambda sb: (one(sb, "429"), sb.rate_limit_next(10, 1, path="/tickets/search"))),
    Fault("timeout on time entries", lambda sb: (t := one(sb, "Timeout"),
                                                 sb.delay_next(10, 0.8, path=f"/tickets/{t}/time"))),
    Fault("write completes after the timeout", lambda sb: (t := one(sb, "Langsam"),
                                                          sb.slow_next(1, 0.8, path=f"/tickets/{t}", method="PUT"))),
    Fault("connection reset", lambda sb: (one(sb, "Reset"), sb.reset_next(10, path="/tickets/search"))),
    Fault("reset after the write", lambda sb: (t := one(sb, "Reset danach"),
                                               sb.reset_next(1, path=f"/tickets/{t}", method="PUT", after=True))),
    Fault("truncated JSON", lambda sb: (t := one(sb, "Abgeschnitten"),
                                        sb.malformed_next(10, path=f"/tickets/{t}/time"))),
    Fault("repeated search page", lambda sb: (at_one_timestamp(sb, "Wiederholt"), sb.repeat_search_page(1))),
    Fault("skipped search page", lambda sb: (at_one_timestamp(sb, "Übersprungen"), sb.skip_search_page(1))),
    Fault("updated_at three days ahead", lambda sb: (sb.set_now(sb.now() + timedelta(days=3)), one(sb, "Zukunft"),
                                                     sb.set_now(sb.now() - timedelta(days=3, minutes=30)))),
    Fault("ticket deleted mid-run", lambda sb: vanish(sb, into=False)),
    Fault("ticket merged mid-run", lambda sb: vanish(sb, into=True)),
)


def test_every_fault_ends_clean(sandbox: ZammadSandbox, zygote: Zygote, database_url: str, tmp_path: Path) -> None:
    deployment = Deployment(sandbox, database_url, tmp_path)
    settings = settings_from_environment(deployment.env_file)
    connector = ZammadConnector(sandbox.url, token=sandbox.admin_token, read_timeout=0.5, sleep=lambda _s: None,
                                booking_fields=True, customer_fields=True)

    def run() -> RunResult:
        return run_sync(deployment.factory, connector, settings, render_pdf)

    failed_runs = 0
    try:
        for fault in FAULTS:
            fault.arm(sandbox)
            met = run()
            failed_runs += not met.ok
            sandbox.clear_faults()
            time.sleep(1.0)  # a slow write still landing completes
            with transaction(deployment.factory) as session:
                retry_now(session)
            clean = run()
            assert clean.ok, f"{fault.name}: {clean.error}"
            assert_money_and_notes(deployment, zygote)
        counted = assert_money_and_notes(deployment, zygote)
    finally:
        deployment.close()
    print(f"helpdesk faults: {len(FAULTS)} kinds, {failed_runs} runs failed honestly, each ended clean; {counted}")
