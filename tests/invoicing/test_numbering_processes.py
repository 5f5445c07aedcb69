"""Two sidecar processes issuing at once get consecutive unique numbers without gaps.

Real OS processes, each with its own engine and connections, as two sidecars on one PostgreSQL
would run (and on SQLite, where BEGIN IMMEDIATE queues the writers). Some transactions roll
back after taking a number, as a failed render would: the number must come back.
"""

from __future__ import annotations

import multiprocessing
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select

from addon.db import make_engine, make_session_factory, transaction
from addon.invoicing.numbering import next_number
from addon.models import NumberSeries

PATTERN = "RE-{YYYY}-{seq:05}"
ROUNDS = 12


class SimulatedFailure(Exception):
    pass


def issuer(database_url: str, worker: int, start: Any, results: Any) -> None:
    """Take numbers in separate transactions; every third one is rolled back."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    taken: list[str] = []
    start.wait()
    try:
        for i in range(ROUNDS):
            try:
                with transaction(factory) as session:
                    number = next_number(session, "invoice", PATTERN, date(2026, 6, 1))
                    if (worker + i) % 3 == 0:
                        raise SimulatedFailure(number)
                    taken.append(number)
            except SimulatedFailure:
                pass
        results.put((worker, taken, None))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((worker, taken, repr(exc)))
    finally:
        engine.dispose()


def test_two_issuer_processes_get_gapless_numbers(engine: Engine, database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    engine.dispose()  # the parent holds no connection while the issuers run
    workers = [context.Process(target=issuer, args=(database_url, w, start, results)) for w in range(2)]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert [error for _worker, _taken, error in outcomes] == [None, None]
    taken = [number for _worker, numbers, _error in outcomes for number in numbers]
    assert all(numbers for _worker, numbers, _error in outcomes)  # both really issued
    assert len(taken) == len(set(taken)) == 2 * ROUNDS - 8
    assert sorted(taken) == [f"RE-2026-{n:05d}" for n in range(1, len(taken) + 1)]
    with make_session_factory(engine)() as session:
        counter = session.execute(select(func.max(NumberSeries.next_value))).scalar_one()
        assert counter == len(taken) + 1
