"""Database engine, sessions and migrations.

Migrations are Alembic's (top-level `migrations/`); `upgrade()` runs them programmatically so
`install.sh`, `ticketbill init` and the tests share one path and a schema change can never
reach one backend but not the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(database_url: str) -> Engine:
    """Create an engine.

    SQLite gets foreign keys, WAL (readers never wait for the writer), a busy timeout and
    `BEGIN IMMEDIATE`: a transaction takes the write lock when it starts, so two issuers
    queue instead of deadlocking when both upgrade a read lock (what `FOR UPDATE` does on
    PostgreSQL).
    """
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # a server that drops packets must not hang a command or a readiness probe for minutes
    return create_engine(database_url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    heads = script.get_revisions("heads")
    pending: list[str] = []
    for head in heads:
        for revision in script.iterate_revisions(head.revision, "base"):
            if revision.revision in current:
                break
            pending.append(revision.revision)
    return list(dict.fromkeys(pending))  # two heads share their ancestors


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations to the database at `database_url`, close the connection and
    return the revisions applied (oldest first; empty when the schema was current)."""
    engine = make_engine(database_url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()


def current_revisions(engine: Engine) -> list[str]:
    """The revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as connection:
        return sorted(MigrationContext.configure(connection).get_current_heads())


@contextmanager
def migrated(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on the migrated database; the engine is disposed afterwards, so a
    command never leaves connections behind."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def upgrade(engine: Engine) -> list[str]:
    """Apply every pending migration (a no-op on a current schema); return what was applied,
    oldest first, so `ticketbill init` can say what an upgrade changed."""
    pending = pending_migrations(engine)
    if pending:
        command.upgrade(_alembic_config(engine), "heads")
    return pending[::-1]
