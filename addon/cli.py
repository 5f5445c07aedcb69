"""The `ticketbill` command: init, register, sync, serve, demo, customers, invoices, runs.

Every command validates the settings first; a bad `.env` stops with one line naming the key
(exit code 2). `sync --once` exits 1 when the run failed, so cron and CI notice. Expected
failures — the helpdesk or the database unreachable, refused credentials, a data directory
that is not writable — print one line saying what to check (exit code 1); a traceback only
with `--debug`, for anything else too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from addon import gc_tuning
from addon.db import migrate, migrated, transaction
from addon.errors import describe, describe_connector_error, probe_tcp
from addon.settings import Settings, SettingsError, mask_url, settings_from_environment
from connectors.http import MASKING, MaskingFormatter

log = logging.getLogger("ticketbill")


class GuardedGroup(click.Group):
    """Turns an exception escaping a command into one line on stderr and exit code 1.

    Known operational failures get their actionable wording from `addon.errors`; anything
    else is named with its type and the hint to run again with `--debug`, which lets the
    exception (and its traceback) through instead.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            state = ctx.obj or {}
            if state.get("debug"):
                raise
            settings: Settings | None = state.get("settings") or _settings_of(state)
            line = describe(exc, settings.database_url if settings else None)
            if line is None:
                first = (str(exc).strip().splitlines() or [""])[0]
                line = f"error: {type(exc).__name__}: {first} (run again with --debug for the traceback)"
            click.echo(MASKING.mask(mask_url(line)), err=True)
            ctx.exit(1)


def _settings_of(state: dict[str, Any]) -> Settings | None:
    """The settings a command group loaded on its own (verify, users, contracts, review):
    the error line names the database they used, as every other command's does."""
    try:
        return settings_from_environment(state.get("env_file"))
    except SettingsError:
        return None


def _settings(ctx: click.Context) -> Settings:
    try:
        settings = settings_from_environment(ctx.obj["env_file"])
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        ctx.exit(2)
        raise  # unreachable; ctx.exit raises
    ctx.obj["settings"] = settings
    return settings


def _guard(action: Callable[[], Any]) -> Any:
    """Turn helpdesk trouble into one clear line and exit code 1 instead of a traceback."""
    from connectors.base import ConnectorError

    try:
        return action()
    except ConnectorError as exc:
        click.echo(describe_connector_error(exc), err=True)
        sys.exit(1)


def _reachable(settings: Settings) -> None:
    """Stop with one line when nothing listens at HELPDESK_URL, instead of retrying for
    seconds and then printing the HTTP library's view of a refused connection."""
    if settings.helpdesk_kind == "api":
        return
    reason = probe_tcp(settings.helpdesk_url)
    if reason is not None:
        click.echo(f"helpdesk unreachable: {reason} (HELPDESK_URL={mask_url(settings.helpdesk_url)})", err=True)
        sys.exit(1)


@click.group(cls=GuardedGroup)
@click.option("--env-file", type=click.Path(path_type=Path), default=None,
              help="Settings file (default .env; a file named here must exist).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors (implies -v).")
@click.pass_context
def main(ctx: click.Context, env_file: Path | None, verbose: bool, debug: bool) -> None:
    """ticketbill: turn booked helpdesk time into invoices."""
    level = logging.INFO if verbose or debug else logging.WARNING
    handler = logging.StreamHandler()
    # every line the sidecar logs (any library's too) has the helpdesk token masked
    handler.setFormatter(MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    gc_tuning.tune()
    ctx.ensure_object(dict)
    ctx.obj["env_file"] = env_file
    ctx.obj["debug"] = debug


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the data directory and bring the database schema up to date (also after an update)."""
    from addon.db import current_revisions, make_engine

    settings = _settings(ctx)
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    applied = migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        now = ", ".join(current_revisions(engine))
    finally:
        engine.dispose()
    database = mask_url(settings.database_url)
    if applied:
        click.echo(f"database {database}: applied {len(applied)} migration(s) ({', '.join(applied)}); now at {now}")
    else:
        click.echo(f"database {database}: schema up to date ({now})")
    click.echo(f"invoices are stored in {settings.invoice_dir}")


@main.command()
@click.pass_context
def register(ctx: click.Context) -> None:
    """Create the billing fields in the helpdesk (idempotent)."""
    settings = _settings(ctx)
    from connectors import get_connector

    _reachable(settings)
    connector = _guard(lambda: get_connector(settings))
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
    from connectors import get_connector

    if not once:
        run_forever(settings)
        return
    _reachable(settings)
    _guard(lambda: get_connector(settings).check())  # a refused token: one line now, not a failed run later
    result = sync_once(settings)
    for key, value in sorted(result.counts.items()):
        click.echo(f"{key:>20}: {value}")
    if result.error:
        click.echo(f"sync failed: {result.error}", err=True)
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True,
              help="Web only; the one scheduler runs elsewhere (`ticketbill sync`, e.g. the ticketbill-sync unit).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, no_scheduler: bool) -> None:
    """Serve invoice links, push API and health, and (unless --no-scheduler) run the sync on schedule.

    Keeps running while the database is down or the data directory is not writable;
    `/readyz` reports why it is not ready.
    """
    settings = _settings(ctx)
    from addon.sync.scheduler import serve as serve_app

    serve_app(settings, host, port, with_scheduler=not no_scheduler)


@main.command()
@click.option("--helpdesk", type=click.Choice(["zammad", "otrs"]), default="zammad", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("instance/demo"), show_default=True)
@click.option("--keep-running", is_flag=True, help="Keep the sandbox and the sidecar up afterwards.")
@click.option("--port", type=int, default=None,
              help="The sidecar's port for the invoice links (default 8400, or a free one if that is taken).")
@click.option("--serve", is_flag=True, help="Then serve the web UI on the demo data (prints a sign-in; Ctrl-C stops).")
def demo(helpdesk: str, data_dir: Path, keep_running: bool, port: int | None, serve: bool) -> None:
    """Run the whole flow against the built-in helpdesk sandbox and print the invoices."""
    from addon.demo import run_demo

    sys.exit(run_demo(helpdesk, data_dir.resolve(), keep_running or serve, sidecar_port=port))


@main.group()
def customers() -> None:
    """Customer billing data (address, VAT ID, rate)."""


@customers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--helpdesk", default=None, help="Whose organization ids the file uses (default HELPDESK_KIND; "
              "`api` for customers of pushed tickets).")
@click.pass_context
def customers_import(ctx: click.Context, path: Path, helpdesk: str | None) -> None:
    """Import customers from a JSON file (see addon/customers.py for the format)."""
    from addon.customers import CustomerImportError, import_customers

    settings = _settings(ctx)
    try:
        with _database(settings) as factory, transaction(factory) as session:
            result = import_customers(session, helpdesk or settings.helpdesk_kind, path,
                                      template_dir=settings.invoice_template_dir)
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
    with _database(settings) as factory, factory() as session:
        for c in session.execute(select(Customer).order_by(Customer.name)).scalars():
            state = "ok" if c.configured else "no billing address"
            # the company name once known (an OTRS CustomerID is only an id)
            name = c.legal_name or c.name
            click.echo(f"{c.helpdesk:8} {c.remote_id:>8}  {name:40} {c.hourly_rate or '-':>8}  {state}")


@contextmanager
def _database(settings: Settings) -> Iterator[Any]:
    """The migrated database of these settings (data directory created first)."""
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    with migrated(settings.database_url) as factory:
        yield factory


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _refuse(exc: Exception) -> None:
    click.echo(f"refused: {exc}", err=True)
    sys.exit(1)


@main.group()
def invoices() -> None:
    """Invoices: list, approve or discard drafts, cancel, mark paid, audit log."""


@invoices.command("list")
@click.option("--state", type=click.Choice(["draft", "issued", "sent", "paid", "cancelled"]), default=None)
@click.pass_context
def invoices_list(ctx: click.Context, state: str | None) -> None:
    """List drafts and issued documents, with state and e-mail delivery."""
    from addon.models import Invoice

    settings = _settings(ctx)
    with _database(settings) as factory, factory() as session:
        query = select(Invoice).order_by(Invoice.id)
        if state:
            query = query.where(Invoice.state == state)
        for inv in session.execute(query).scalars():
            label = inv.number or f"draft {inv.id}"
            when = inv.issued_at or inv.created_at
            day = f"{when:%Y-%m-%d}" if when else "-"
            delivery = inv.delivery_status or "-"
            if inv.delivery_error and inv.delivery_status != "sent":
                delivery += f" ({inv.delivery_error})"
            click.echo(
                f"{inv.id:>5} {label:16} {inv.type_code} {inv.state:9} {day} {inv.customer.name[:30]:30} "
                f"{inv.gross:>10}  mail {delivery}  {inv.pdf_path or ''}"
            )


def _render_and_deliver(settings: Settings, factory: Any, action: Callable[[Any], Any]) -> Any:
    """Run one lifecycle step in a transaction, then send pending e-mails (after commit)."""
    from addon.invoicing.lifecycle import LifecycleError
    from addon.sync.writeback import perform_deliveries

    try:
        with transaction(factory) as session:
            result = action(session)
            summary = (result.id, result.number, result.gross) if hasattr(result, "number") else result
    except (LifecycleError, ValueError) as exc:
        _refuse(exc)
    from addon.invoicing.audit import cli_actor

    counts = perform_deliveries(factory, settings, _now(), actor=cli_actor())
    if counts["mailed"] or counts["mail_failed"]:
        click.echo(f"e-mail: {counts['mailed']} sent, {counts['mail_failed']} failed")
    return summary


@invoices.command("approve")
@click.argument("draft_id", type=int)
@click.pass_context
def invoices_approve(ctx: click.Context, draft_id: int) -> None:
    """Issue a draft: the number is assigned now; the ticket is updated on the next sync."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.issue import pdf_renderer
    from addon.invoicing.lifecycle import approve_draft

    settings = _settings(ctx)
    render = pdf_renderer(settings)
    with _database(settings) as factory:
        _id, number, gross = _render_and_deliver(
            settings, factory, lambda s: approve_draft(s, settings, draft_id, render, _now(), cli_actor())
        )
    click.echo(f"draft {draft_id} issued as {number} ({gross} EUR)")


@invoices.command("edit")
@click.argument("draft_id", type=int)
@click.option("--line", "lines", type=(int, str), multiple=True, metavar="POS TEXT",
              help="New description of line POS (repeatable).")
@click.option("--note", "notes", multiple=True, help="A note printed on the invoice (repeatable; replaces the notes).")
@click.option("--clear-notes", is_flag=True, help="Remove all notes.")
@click.pass_context
def invoices_edit(ctx: click.Context, draft_id: int, lines: tuple[tuple[int, str], ...], notes: tuple[str, ...],
                  clear_notes: bool) -> None:
    """Change a draft's texts before approval (amounts come from bookings and contracts)."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.lifecycle import LifecycleError, edit_draft

    settings = _settings(ctx)
    new_notes = () if clear_notes else (notes or None)
    try:
        with _database(settings) as factory, transaction(factory) as session:
            edit_draft(session, draft_id, _now(), cli_actor(), dict(lines), new_notes)
    except LifecycleError as exc:
        _refuse(exc)
    click.echo(f"draft {draft_id} updated")


@invoices.command("discard")
@click.argument("draft_id", type=int)
@click.pass_context
def invoices_discard(ctx: click.Context, draft_id: int) -> None:
    """Delete a draft; its time entries are billed again on the next sync."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.lifecycle import LifecycleError, discard_draft

    settings = _settings(ctx)
    try:
        with _database(settings) as factory, transaction(factory) as session:
            freed = discard_draft(session, draft_id, _now(), cli_actor())
    except LifecycleError as exc:
        _refuse(exc)
    click.echo(f"draft {draft_id} discarded; {len(freed)} time entries are free again")


def _decision(then: str, customer: str | None, contract: str | None, reason: str | None) -> Any:
    from addon.invoicing.cancel import Decision
    from addon.invoicing.lifecycle import LifecycleError

    try:
        return Decision(then, customer, contract, reason)
    except LifecycleError as exc:
        raise click.UsageError(str(exc)) from None


def _decision_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--then, --customer, --contract: what happens to the work of a cancelled invoice."""
    command = click.option("--contract", default=None, help="With --then move: the contract (code) that bills it.")(
        command)
    command = click.option("--customer", default=None, help="With --then move: the customer (helpdesk id) who pays.")(
        command)
    return click.option(
        "--then", "then", required=True, type=click.Choice(["rebill", "hold", "move", "write-off"]),
        help="The work: bill it again, hold it (the ticket waits), bill it to another customer or contract, "
             "or write it off (needs --reason).")(command)


@invoices.command("cancel")
@click.argument("number")
@click.option("--reason", default=None, help="Printed on the cancellation invoice and noted on the ticket.")
@_decision_options
@click.pass_context
def invoices_cancel(ctx: click.Context, number: str, reason: str | None, then: str, customer: str | None,
                    contract: str | None) -> None:
    """Cancel an invoice with a cancellation invoice (381) and decide what happens to its work."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.cancel import cancel_invoice
    from addon.invoicing.issue import pdf_renderer

    decision = _decision(then, customer, contract, reason)
    settings = _settings(ctx)
    render = pdf_renderer(settings)
    with _database(settings) as factory:
        _id, st_number, gross = _render_and_deliver(
            settings, factory, lambda s: cancel_invoice(s, settings, number, reason, render, _now(), cli_actor(),
                                                        decision=decision)
        )
    outcome = {"rebill": "its time is billed again on the next sync", "hold": "its time is on hold "
               f"(`ticketbill invoices release {number} --then …`)", "move": "its time is billed to the new "
               "customer/contract on the next sync", "write-off": "its time is written off"}[then]
    click.echo(f"{number} cancelled by {st_number} ({gross} EUR); {outcome}")


@invoices.command("release")
@click.argument("number")
@click.option("--reason", default=None, help="Why (required for --then write-off); noted on the ticket.")
@_decision_options
@click.pass_context
def invoices_release(ctx: click.Context, number: str, reason: str | None, then: str, customer: str | None,
                     contract: str | None) -> None:
    """Decide about the work of cancelled invoice NUMBER that was put on hold."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.cancel import release_held
    from addon.invoicing.lifecycle import LifecycleError

    decision = _decision(then, customer, contract, reason)
    settings = _settings(ctx)
    try:
        with _database(settings) as factory, transaction(factory) as session:
            tickets = release_held(session, settings, number, decision, _now(), cli_actor())
            numbers = [t.number for t in tickets]
    except LifecycleError as exc:
        _refuse(exc)
    click.echo(f"{number}: work of ticket(s) {', '.join(numbers)} released ({then})")


@invoices.command("mark-paid")
@click.argument("number")
@click.pass_context
def invoices_mark_paid(ctx: click.Context, number: str) -> None:
    """Record that an invoice has been paid."""
    from addon.invoicing.audit import cli_actor
    from addon.invoicing.lifecycle import LifecycleError, mark_paid

    settings = _settings(ctx)
    try:
        with _database(settings) as factory, transaction(factory) as session:
            mark_paid(session, number, _now(), cli_actor())
    except LifecycleError as exc:
        _refuse(exc)
    click.echo(f"{number} marked paid")


@invoices.command("log")
@click.argument("number")
@click.pass_context
def invoices_log(ctx: click.Context, number: str) -> None:
    """Show the audit log of one invoice: who did what, when."""
    import json

    from addon.models import AuditLog, Invoice

    settings = _settings(ctx)
    with _database(settings) as factory, factory() as session:
        invoice = session.execute(select(Invoice).where(Invoice.number == number)).scalar_one_or_none()
        if invoice is None:
            _refuse(LookupError(f"there is no invoice {number}"))
        rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
        for row in rows:
            if row.invoice_id == invoice.id or number in row.details.get("numbers", ()):
                details = json.dumps(row.details, ensure_ascii=False, sort_keys=True)
                click.echo(f"{row.at:%Y-%m-%d %H:%M:%S} UTC  {row.actor:16} {row.action:12} {details}")


@main.group()
def export() -> None:
    """Exports of issued invoices for a period, from the stored snapshots."""


def _period(start: Any, end: Any) -> tuple[Any, Any]:
    if start.date() > end.date():
        raise click.BadParameter(f"--from {start:%Y-%m-%d} is after --to {end:%Y-%m-%d}")
    return start.date(), end.date()


@export.command("datev")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def export_datev(ctx: click.Context, start: Any, end: Any, out: Path) -> None:
    """DATEV EXTF Buchungsstapel (cp1252, CRLF) of the invoices issued in the period."""
    from addon.exports.period import ExportError, datev_export
    from addon.invoicing.audit import cli_actor

    settings = _settings(ctx)
    first, last = _period(start, end)
    with _database(settings) as factory, transaction(factory) as session:
        try:
            rendered, export = datev_export(session, settings, first, last, cli_actor(), _now(), {"file": str(out)})
        except ExportError as exc:
            message = str(exc)
            click.echo(message, err=True)
            sys.exit(2 if message.startswith("configuration error") else 1)
        except ValueError as exc:
            _refuse(exc)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(rendered.content)
    click.echo(f"{len(export.booked)} documents booked in {export.rows} rows → {out}")
    for number, why in export.not_booked:
        click.echo(f"  not booked: {number} ({why})")


@export.command("csv")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.pass_context
def export_csv(ctx: click.Context, start: Any, end: Any, out_dir: Path) -> None:
    """Two CSV files (invoices, invoice lines) of the documents issued in the period."""
    from addon.exports.period import csv_export
    from addon.invoicing.audit import cli_actor

    settings = _settings(ctx)
    first, last = _period(start, end)
    with _database(settings) as factory, transaction(factory) as session:
        files, numbers = csv_export(session, first, last, cli_actor(), _now(), {"dir": str(out_dir)})
        out_dir.mkdir(parents=True, exist_ok=True)
        for rendered in files:
            (out_dir / rendered.filename).write_bytes(rendered.content)
    for rendered in files:
        click.echo(f"{len(numbers)} documents → {out_dir / rendered.filename}")


@export.command("gdpdu")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def export_gdpdu(ctx: click.Context, start: Any, end: Any, out: Path) -> None:
    """GDPdU archive for the tax office: index.xml, tables and the documents of the period."""
    from addon.exports.period import ExportError, gdpdu_export
    from addon.invoicing.audit import cli_actor

    settings = _settings(ctx)
    first, last = _period(start, end)
    with _database(settings) as factory, transaction(factory) as session:
        try:
            rendered, numbers = gdpdu_export(session, settings, first, last, cli_actor(), _now(), {"file": str(out)})
        except ExportError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(rendered.content)
    click.echo(f"{len(numbers)} documents → {out} (index.xml per GDPdU Beschreibungsstandard)")


@main.command("backup")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The archive to write (tar.gz, mode 0600).")
@click.pass_context
def backup_command(ctx: click.Context, out: Path) -> None:
    """One consistent archive: the database and every invoice file, each with its SHA-256.

    Exit code 1 also when a stored invoice file no longer matches its row (the archive is
    written all the same).
    """
    from addon.backup import BackupError, backup

    settings = _settings(ctx)
    try:
        report = backup(settings, out)
    except BackupError as exc:
        click.echo(f"backup failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{report.path}: {sum(report.rows.values())} rows in {len(report.rows)} tables, "
               f"{report.files} invoice files ({report.invoices} issued documents)")
    click.echo(f"archive sha256 {report.sha256}")
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    if report.problems:
        sys.exit(1)


@main.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that has tables and invoice files already there "
              "(an SQLite file is kept beside as .before-restore-<time>).")
@click.pass_context
def restore_command(ctx: click.Context, archive: Path, force: bool) -> None:
    """Restore a `ticketbill backup` archive: hashes checked first, then files, database, migrations.

    Stop `serve`/`sync` first (e.g. systemctl stop ticketbill-web ticketbill-sync).
    """
    from addon.backup import BackupError, restore

    settings = _settings(ctx)
    try:
        report = restore(settings, archive, force=force)
    except BackupError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"restored {report.files} invoice files and {sum(report.rows.values())} rows in "
               f"{len(report.rows)} tables; {report.invoices_verified} issued documents match their stored hashes")
    if report.migrations:
        click.echo(f"migrated to the current schema: {', '.join(report.migrations)}")


@main.group()
def service() -> None:
    """systemd units for `serve --no-scheduler` and `sync` (used by `sudo ./install.sh --service`)."""


@service.command("units")
@click.option("--user", default="ticketbill", show_default=True, help="The unprivileged user the units run as.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Where the web unit listens (the reverse proxy's upstream).")
@click.option("--port", default=8400, show_default=True, type=int)
@click.pass_context
def service_units(ctx: click.Context, user: str, out_dir: Path, host: str, port: int) -> None:
    """Write ticketbill-web.service and ticketbill-sync.service for this checkout and settings file."""
    from addon.deploy import render_units

    settings = _settings(ctx)
    env_file = ctx.obj["env_file"] or Path(".env")
    units = render_units(settings, repo=Path(__file__).resolve().parents[1], env_file=env_file, user=user,
                         host=host, port=port)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in units.items():
        (out_dir / name).write_text(content, encoding="utf-8")
        click.echo(out_dir / name)


@service.command("paths")
@click.pass_context
def service_paths(ctx: click.Context) -> None:
    """The directories the services must be able to write, one per line (for chown)."""
    from addon.deploy import writable_paths

    for path in writable_paths(_settings(ctx)):
        click.echo(path)


def _register_contract_commands() -> None:
    """`contracts`, `invoice-period` and `contingents` live in addon/contracts/cli.py."""
    from addon.contracts.cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_contract_commands()


def _register_user_commands() -> None:
    """`users` (accounts of the web UI) lives in addon/users_cli.py."""
    from addon.users_cli import users

    main.add_command(users)


_register_user_commands()

def _register_billing_review_commands() -> None:
    """`verify` (the auditor's invariant check, addon/verify.py), `review` (review items on
    billed tickets, addon/sync/review.py) and `outbox` (the write-back backlog)."""
    from addon.sync.outbox_cli import outbox_command
    from addon.sync.review import review
    from addon.verify import verify_command

    main.add_command(verify_command)
    main.add_command(review)
    main.add_command(outbox_command)


_register_billing_review_commands()

if __name__ == "__main__":
    main()
