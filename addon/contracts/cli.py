"""CLI commands for contracts, monthly invoices and contingents (registered in addon/cli.py).

    ticketbill contracts import FILE [--apply-from DATE]   validate the whole file, then write
    ticketbill contracts preview FILE --apply-from DATE   the known time that would change terms
    ticketbill contracts export [FILE]  the stored configuration in the import format
    ticketbill contracts list           one line per contract
    ticketbill contracts show CODE      one contract as JSON
    ticketbill invoice-period --period 2026-10 [--customer ID]
    ticketbill contingents [--customer ID] [--period YYYY-MM]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from addon.db import migrated, transaction
from addon.settings import Settings, SettingsError, settings_from_environment


def _settings(ctx: click.Context) -> Settings:
    try:
        return settings_from_environment((ctx.find_root().obj or {}).get("env_file"))
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        ctx.exit(2)
        raise


@contextmanager
def _factory(settings: Settings) -> Iterator[Any]:
    """The migrated database of these settings (data directory created first)."""
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    with migrated(settings.database_url) as factory:
        yield factory


@click.group()
def contracts() -> None:
    """Contracts, rate rules and agents (JSON import/export; see addon/contracts/__init__.py)."""


APPLY_FROM = click.option(
    "--apply-from", "apply_from", type=click.DateTime(["%Y-%m-%d"]), default=None,
    help="Also bill time ticketbill already holds (unbilled, on or after this day) under these contracts.")


@contracts.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@APPLY_FROM
@click.option("--yes", is_flag=True, help="With --apply-from: apply without asking after the preview.")
@click.pass_context
def contracts_import(ctx: click.Context, path: Path, apply_from: datetime | None, yes: bool) -> None:
    """Import contracts from a JSON file; a bad entry writes nothing and names the key.

    New contracts bill the time that arrives from now on; time already invoiced is never billed
    again. With --apply-from the preview of the known time that changes terms is shown first.
    """
    from addon.contracts import ContractImportError, import_document, read_document
    from addon.contracts.preview import preview_import

    settings = _settings(ctx)
    day = apply_from.date() if apply_from else None
    try:
        document = read_document(path)
        with _factory(settings) as factory, transaction(factory) as session:
            if day is not None:
                preview = preview_import(session, settings, settings.helpdesk_kind, document, day)
                for line in preview.lines():
                    click.echo(line)
                if preview.entries and not yes and not click.confirm("apply the contracts to this time?"):
                    click.echo("nothing imported")
                    return
            result = import_document(session, settings.helpdesk_kind, document, apply_from=day)
    except ContractImportError as exc:
        click.echo(f"import refused, nothing written: {exc}", err=True)
        sys.exit(2)
    click.echo(f"contracts created: {result.created}, updated: {result.updated}; "
               f"agents: {result.agents}; shared rate rules: {result.rates}")


@contracts.command("preview")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@APPLY_FROM
@click.pass_context
def contracts_preview(ctx: click.Context, path: Path, apply_from: datetime | None) -> None:
    """List the unbilled time an import (with --apply-from) would bill under new terms; writes nothing."""
    from addon.contracts import ContractImportError, read_document
    from addon.contracts.preview import preview_import

    settings = _settings(ctx)
    try:
        document = read_document(path)
        with _factory(settings) as factory, factory() as session:
            preview = preview_import(session, settings, settings.helpdesk_kind, document,
                                     apply_from.date() if apply_from else None)
    except ContractImportError as exc:
        click.echo(f"import refused, nothing written: {exc}", err=True)
        sys.exit(2)
    for line in preview.lines():
        click.echo(line)


@contracts.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_context
def contracts_export(ctx: click.Context, path: Path | None) -> None:
    """Write the stored contracts in the import format (to PATH, else to stdout)."""
    from addon.contracts import export_document

    with _factory(_settings(ctx)) as factory, factory() as session:
        text = json.dumps(export_document(session), indent=2, ensure_ascii=False)
    if path is None:
        click.echo(text)
    else:
        path.write_text(text + "\n", encoding="utf-8")
        click.echo(f"written: {path}")


@contracts.command("list")
@click.pass_context
def contracts_list(ctx: click.Context) -> None:
    """One line per contract: code, customer, kind, trigger, validity, assignment."""
    from addon.models import Contract

    with _factory(_settings(ctx)) as factory, factory() as session:
        rows = session.execute(select(Contract).order_by(Contract.code)).scalars().all()
        if not rows:
            click.echo("no contracts: every customer is billed time and material at its hourly rate")
        for c in rows:
            valid = f"{c.valid_from or '…'}–{c.valid_until or '…'}"
            assigned = ", ".join(f"{a.kind} {a.value}" for a in c.assignments) or "all tickets"
            click.echo(f"{c.code:20} {c.customer.remote_id:>6} {c.customer.name[:28]:28} {c.kind:17} "
                       f"{c.trigger:10} {valid:23} {assigned}")


@contracts.command("show")
@click.argument("code")
@click.pass_context
def contracts_show(ctx: click.Context, code: str) -> None:
    """One contract as JSON, in the import format."""
    from addon.contracts import contract_json
    from addon.models import Contract

    with _factory(_settings(ctx)) as factory, factory() as session:
        row = session.execute(select(Contract).where(Contract.code == code)).scalar_one_or_none()
        if row is None:
            click.echo(f"no contract {code!r} (see `ticketbill contracts list`)", err=True)
            sys.exit(1)
        click.echo(json.dumps(contract_json(session, row), indent=2, ensure_ascii=False))


def _check_period(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from addon.billing.periods import is_period

    if value is not None and not is_period(value):
        raise click.BadParameter(f"{value!r} is not a month YYYY-MM")
    return value


@click.command("invoice-period")
@click.option("--period", required=True, callback=_check_period, help="The month to bill, YYYY-MM.")
@click.option("--customer", "remote_id", default=None, help="Only this customer (helpdesk organization id).")
@click.pass_context
def invoice_period_command(ctx: click.Context, period: str, remote_id: str | None) -> None:
    """Issue the collective invoices of one month for contracts billed monthly."""
    from addon.contracts.periods import invoice_period
    from addon.invoicing.issue import pdf_renderer

    settings = _settings(ctx)
    with _factory(settings) as factory:
        outcomes = invoice_period(factory, settings, pdf_renderer(settings), period, datetime.now(UTC), remote_id)
    if not outcomes:
        click.echo("no customer with a monthly contract" + (f" and helpdesk id {remote_id}" if remote_id else ""))
    for o in outcomes:
        click.echo(f"{o.customer[:34]:34} {o.outcome:16} {o.invoice or '':16} {o.detail}")
    if any(o.outcome == "failed" for o in outcomes):
        sys.exit(1)


@click.command("contingents")
@click.option("--customer", "remote_id", default=None, help="Only this customer (helpdesk organization id).")
@click.option("--period", callback=_check_period, default=None, help="Month YYYY-MM (default: this month).")
@click.pass_context
def contingents_command(ctx: click.Context, remote_id: str | None, period: str | None) -> None:
    """Retainer usage per contract: "7:45 h of 10:00 h used this month"."""
    from addon.contracts.ledger import contingent_report

    settings = _settings(ctx)
    with _factory(settings) as factory, transaction(factory) as session:
        lines = contingent_report(session, settings, datetime.now(UTC), remote_id, period)
    for line in lines or ["no retainer contracts"]:
        click.echo(line)


COMMANDS = (contracts, invoice_period_command, contingents_command)
