"""Review items: what billing saw on an already billed ticket and must not decide alone.

Created by the sync (`addon.sync.writeback.queue_review`, one internal note each); the team
lead lists and resolves them here (CLI `ticketbill review`; the web UI calls the same
functions). Resolving changes nothing in billing: an issued invoice stays as it is, and the
item only records that a person looked and decided (cancel and re-bill, write off, or accept).
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from addon.models import ReviewItem


class ReviewError(ValueError):
    """The review item does not exist or is resolved already."""


def open_reviews(session: Session, include_resolved: bool = False) -> list[ReviewItem]:
    """Review items, oldest first; by default only those nobody resolved yet."""
    query = select(ReviewItem).order_by(ReviewItem.id)
    if not include_resolved:
        query = query.where(ReviewItem.resolved_at.is_(None))
    return list(session.execute(query).scalars())


def resolve_review(session: Session, item_id: int, actor: str, now: datetime) -> ReviewItem:
    """Mark one review item resolved by `actor`."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise ReviewError(f"there is no review item {item_id}")
    if item.resolved_at is not None:
        raise ReviewError(f"review item {item_id} was resolved by {item.resolved_by} on {item.resolved_at:%Y-%m-%d}")
    item.resolved_at, item.resolved_by = now, actor
    session.flush()
    return item


@click.group("review")
def review() -> None:
    """Review items on billed tickets (changed bookings, reopened tickets, changed categories)."""


def _factory(ctx: click.Context) -> AbstractContextManager[sessionmaker[Session]]:
    """The migrated database of the command's settings (shared with the contract commands)."""
    from addon.contracts import cli

    return cli._factory(cli._settings(ctx))


@review.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Also the resolved ones.")
@click.pass_context
def review_list(ctx: click.Context, include_resolved: bool) -> None:
    """One line per review item: id, ticket, what happened."""
    with _factory(ctx) as factory, factory() as session:
        items = open_reviews(session, include_resolved)
        for item in items:
            state = f"resolved by {item.resolved_by}" if item.resolved_at else "open"
            click.echo(f"{item.id:>5} #{item.ticket.number:10} {item.created_at:%Y-%m-%d} {state:12} {item.message}")
        if not items:
            click.echo("no open review items")


@review.command("resolve")
@click.argument("item_id", type=int)
@click.pass_context
def review_resolve(ctx: click.Context, item_id: int) -> None:
    """Record that you looked at a review item and decided (it changes no invoice)."""
    from addon.db import transaction
    from addon.invoicing.audit import cli_actor

    try:
        with _factory(ctx) as factory, transaction(factory) as session:
            resolve_review(session, item_id, cli_actor(), datetime.now(UTC))
    except ReviewError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"review item {item_id} resolved")
