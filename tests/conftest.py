"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL is the machine's server on 127.0.0.1:5432 (trust auth, database `test`), started by
`.ci/run`. Each test gets its own schema, so tests never see each other's rows. In CI
(`CI=true`) a missing PostgreSQL fails the tests; locally they are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from addon.db import make_engine, upgrade

PG_URL = os.environ.get("TICKETBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def server_missing(what: str) -> None:
    """Fail in CI, skip locally: integration servers are started by `.ci/run`."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not reachable, but CI must run this test", pytrace=False)
    pytest.skip(f"{what} is not reachable (start it or run .ci/run)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ticketbill.sqlite'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        server_missing(f"PostgreSQL at {PG_URL} ({str(exc).splitlines()[0]})")
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
