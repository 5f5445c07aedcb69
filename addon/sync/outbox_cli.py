"""`ticketbill outbox`: what the outbox still owes the helpdesk and the mail server.

Write-backs never give up (addon.sync.writeback); this command makes the backlog visible
(counts by state, the oldest pending row, rows in doubt, the last error) and, with
`--retry-now`, lets an admin whose helpdesk is back skip the remaining backoff.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from addon.db import migrated, transaction
from addon.sync.writeback import backlog
from addon.sync.writeback import retry_now as make_due


@click.command("outbox")
@click.option("--retry-now", is_flag=True, help="Make every pending row due at the next run (skips the backoff).")
@click.pass_context
def outbox_command(ctx: click.Context, retry_now: bool) -> None:
    """Show the outbox backlog (pending, in doubt, done, gone); exit 1 while rows are pending."""
    from addon.settings import SettingsError, settings_from_environment

    try:
        settings = settings_from_environment((ctx.find_root().obj or {}).get("env_file"))
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    with migrated(settings.database_url) as factory:
        if retry_now:
            with transaction(factory) as session:
                click.echo(f"{make_due(session)} row(s) due at the next run")
        with factory() as session:
            state = backlog(session)
    for line in state.lines(datetime.now(UTC)):
        click.echo(line)
    if state.pending:
        sys.exit(1)
