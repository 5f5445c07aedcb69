"""The `ticketbill` command: init, register, sync, serve, demo, customers, invoices, runs.

Every command validates the settings first; a bad `.env` stops with one line naming the key
(exit code 2). `sync --once` exits 1 when the run failed, so cron and CI notice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from addon.db import make_engine, make_session_factory, transaction, upgrade
from addon.settings import Settings, SettingsError, settings_from_environment

log = logging.getLogger("ticketbill")


def _settings(ctx: click.Context) -> Settings:
    try:
        return settings_from_environment(ctx.obj["env_file"])
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        ctx.exit(2)
        raise  # unreachable; ctx.exit raises


def _guard(action: Callable[[], Any]) -> Any:
    """Turn helpdesk trouble into one clear line and exit code 1 instead of a traceback."""
    from connectors.base import ConnectorError

    try:
        return action()
    except ConnectorError as exc:
        click.echo(f"helpdesk error: {exc}", err=True)
        sys.exit(1)


@click.group()
@click.option("--env-file", type=click.Path(path_type=Path), default=None, help="Settings file (default .env).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
@click.pass_context
def main(ctx: click.Context, env_file: Path | None, verbose: bool) -> None:
    """ticketbill: turn booked helpdesk time into invoices."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["env_file"] = env_file


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the data directory and bring the database schema up to date."""
    settings = _settings(ctx)
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(settings.database_url))
    click.echo(f"database ready: {settings.database_url}")
    click.echo(f"invoices are stored in {settings.invoice_dir}")


@main.command()
@click.pass_context
def register(ctx: click.Context) -> None:
    """Create the billing fields in the helpdesk (idempotent)."""
    settings = _settings(ctx)
    from connectors import get_connector

    connector = get_connector(settings)
    click.echo(f"connected as {_guard(connector.check)}")
    report = _guard(connector.register)
    for name in report.created:
        click.echo(f"created: {name}")
    for name in report.present:
        click.echo(f"present: {name}")
    for problem in report.problems:
        click.echo(f"to do:   {problem}", err=True)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--once", is_flag=True, help="Run one sync and exit (else repeat every POLL_INTERVAL_SECONDS).")
@click.pass_context
def sync(ctx: click.Context, once: bool) -> None:
    """Poll closed tickets, bill them and write the results back."""
    settings = _settings(ctx)
    from addon.sync.scheduler import run_forever, sync_once

    if not once:
        run_forever(settings)
        return
    result = sync_once(settings)
    for key, value in sorted(result.counts.items()):
        click.echo(f"{key:>20}: {value}")
    if result.error:
        click.echo(f"sync failed: {result.error}", err=True)
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve invoice links and run the sync on schedule (one scheduler per deployment)."""
    settings = _settings(ctx)
    from addon.sync.scheduler import serve as serve_app

    serve_app(settings, host, port)


@main.command()
@click.option("--helpdesk", type=click.Choice(["zammad"]), default="zammad", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("instance/demo"), show_default=True)
@click.option("--keep-running", is_flag=True, help="Keep the sandbox and the sidecar up afterwards.")
def demo(helpdesk: str, data_dir: Path, keep_running: bool) -> None:
    """Run the whole flow against the built-in helpdesk sandbox and print the invoices."""
    from addon.demo import run_demo

    sys.exit(run_demo(helpdesk, data_dir.resolve(), keep_running))


@main.group()
def customers() -> None:
    """Customer billing data (address, VAT ID, rate)."""


@customers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def customers_import(ctx: click.Context, path: Path) -> None:
    """Import customers from a JSON file (see addon/customers.py for the format)."""
    from addon.customers import CustomerImportError, import_customers

    settings = _settings(ctx)
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    try:
        with transaction(make_session_factory(engine)) as session:
            result = import_customers(session, settings.helpdesk_kind, path)
    except CustomerImportError as exc:
        click.echo(f"import refused, nothing written: {exc}", err=True)
        sys.exit(2)
    click.echo(f"customers created: {result.created}, updated: {result.updated}")


@customers.command("list")
@click.pass_context
def customers_list(ctx: click.Context) -> None:
    """List customers with their helpdesk ids and whether billing data is complete."""
    from addon.models import Customer

    settings = _settings(ctx)
    with make_session_factory(make_engine(settings.database_url))() as session:
        for c in session.execute(select(Customer).order_by(Customer.name)).scalars():
            state = "ok" if c.configured else "no billing address"
            click.echo(f"{c.helpdesk:8} {c.remote_id:>8}  {c.name:40} {c.hourly_rate or '-':>8}  {state}")


@main.command("invoices")
@click.pass_context
def invoices_list(ctx: click.Context) -> None:
    """List issued invoices."""
    from addon.models import Invoice

    settings = _settings(ctx)
    with make_session_factory(make_engine(settings.database_url))() as session:
        for inv in session.execute(select(Invoice).order_by(Invoice.id)).scalars():
            issued = f"{inv.issued_at:%Y-%m-%d}"
            click.echo(f"{inv.number:16} {issued} {inv.customer.name:32} {inv.gross:>10}  {inv.pdf_path}")
if __name__ == "__main__":
    main()
