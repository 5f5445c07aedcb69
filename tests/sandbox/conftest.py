"""Fixtures for the Zammad sandbox tests: a fresh sandbox per test on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox

REFERENCE_DATE = date(2025, 7, 1)


@pytest.fixture
def sandbox() -> Iterator[ZammadSandbox]:
    with ZammadSandbox.running(seed_reference_date=REFERENCE_DATE, restart_seconds=0) as sb:
        yield sb


@pytest.fixture
def admin(sandbox: ZammadSandbox) -> Iterator[Client]:
    client = Client(sandbox, sandbox.admin_token)
    yield client
    client.session.close()


@pytest.fixture
def agent(sandbox: ZammadSandbox) -> Iterator[Client]:
    client = Client(sandbox, sandbox.agent_token)
    yield client
    client.session.close()


@pytest.fixture
def anonymous(sandbox: ZammadSandbox) -> Iterator[Client]:
    client = Client(sandbox, None)
    yield client
    client.session.close()
