"""`ticketbill users`: the first admin (and any account) from the shell, before the web UI has one."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select

from addon.db import migrated, transaction
from addon.settings import SettingsError, settings_from_environment
from addon.users import ROLES, UserError, create_user, update_user


def _factory(ctx: click.Context):  # type: ignore[no-untyped-def]
    env_file: Path | None = (ctx.find_root().obj or {}).get("env_file")
    try:
        settings = settings_from_environment(env_file)
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    settings.invoice_dir.mkdir(parents=True, exist_ok=True)
    return migrated(settings.database_url)


@click.group()
def users() -> None:
    """Accounts of the web UI (roles: admin, team_lead, accountant, viewer)."""


@users.command("add")
@click.argument("login")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default="", help="Display name (default: the login).")
@click.password_option(help="At least 10 characters (asked for when not given).")
@click.pass_context
def users_add(ctx: click.Context, login: str, role: str, name: str, password: str) -> None:
    """Create an account that signs in with a password."""
    try:
        with _factory(ctx) as factory, transaction(factory) as session:
            create_user(session, login, name, role, password, datetime.now(UTC))
    except UserError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"user {login.strip().lower()} created ({role})")


@users.command("password")
@click.argument("login")
@click.password_option()
@click.pass_context
def users_password(ctx: click.Context, login: str, password: str) -> None:
    """Set a new password (and reactivate the account)."""
    from addon.models import AppUser

    try:
        with _factory(ctx) as factory, transaction(factory) as session:
            user = session.execute(select(AppUser).where(AppUser.login == login.strip().lower())).scalar_one_or_none()
            if user is None:
                raise UserError("login", f"there is no user {login}")
            update_user(session, user, active=True, password=password)
    except UserError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"password of {login} set")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every account with its role and how it signs in."""
    from addon.models import AppUser

    with _factory(ctx) as factory, factory() as session:
        for user in session.execute(select(AppUser).order_by(AppUser.login)).scalars():
            state = "" if user.active else "  (deactivated)"
            click.echo(f"{user.login:40} {user.role:11} {user.source:9}{state}")
