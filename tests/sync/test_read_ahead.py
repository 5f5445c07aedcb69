"""The poll reads the next batch's bookings while it stores the current one (issue 15): storing
and fetching overlap instead of taking turns, and a failing search page still lets the batches
before it be stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sync_fixtures import Sidecar, closed_ticket

from addon.sync import jobs
from addon.sync.jobs import Fetched, read_ahead
from connectors.base import ConnectorError

REMOTE = 1


def test_the_next_batch_is_fetched_while_this_one_is_stored(sidecar: Sidecar, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two: storing the first batch's last ticket waits until a fetch of the second
    batch has begun. Taking turns (fetch, store, fetch, ...) would make it wait in vain."""
    sb = sidecar.sandbox
    sidecar.import_customers(tmp_path, [1])
    tickets = [closed_ticket(sb, f"Drucker {n}", 1, [(30, 3, REMOTE)]) for n in range(4)]
    sb.advance(60)
    monkeypatch.setattr(jobs, "FETCH_BATCH", 2)
    second_batch = {str(t) for t in tickets[2:]}
    fetch_began = threading.Event()
    waited_in_vain: list[str] = []
    fetch, store = jobs.fetch_bookings, jobs.store_polled

    def fetching(connector: Any, remote_id: str) -> Fetched:
        if remote_id in second_batch:
            fetch_began.set()
        return fetch(connector, remote_id)

    def storing(session: Any, helpdesk: str, remote: Any, *args: Any) -> Any:
        if remote.remote_id == str(tickets[1]) and not fetch_began.wait(timeout=10):
            waited_in_vain.append(remote.remote_id)
        return store(session, helpdesk, remote, *args)

    monkeypatch.setattr(jobs, "fetch_bookings", fetching)
    monkeypatch.setattr(jobs, "store_polled", storing)

    run = sidecar.run()

    assert run.ok, run.error
    assert waited_in_vain == [], "the second batch was fetched only after the first was stored"
    assert run.counts["invoiced"] == 4


def _done(value: str) -> dict[str, Future[Fetched]]:
    future: Future[Fetched] = Future()
    future.set_result(Fetched())
    return {value: future}


def test_a_failing_search_page_still_hands_out_the_batches_before_it() -> None:
    submitted: list[str] = []

    def pages() -> Iterator[list[Any]]:
        yield ["first"]
        yield ["second"]
        raise ConnectorError("search page 3: 502")

    def submit(batch: list[Any]) -> dict[str, Future[Fetched]]:
        submitted.append(batch[0])
        return _done(batch[0])

    handed: list[str] = []
    with pytest.raises(ConnectorError, match="502"):
        for batch, futures in read_ahead(pages(), submit):
            handed.append(batch[0])
            assert list(futures) == [batch[0]]
    assert handed == ["first", "second"]
    assert submitted == ["first", "second"]


def test_read_ahead_submits_one_batch_ahead_only() -> None:
    submitted: list[int] = []

    def submit(batch: list[Any]) -> dict[str, Future[Fetched]]:
        submitted.append(batch[0])
        return {}

    for batch, _futures in read_ahead(([n] for n in range(4)), submit):
        assert submitted[-1] == min(batch[0] + 1, 3), "the next batch is in flight, not more"
    assert submitted == [0, 1, 2, 3]
