"""Invoice numbers: consecutive, unique, no gaps — also with concurrent issuers and rollbacks."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import Engine

from addon.db import make_session_factory, transaction
from addon.invoicing.numbering import format_number, next_number

PATTERN = "RE-{YYYY}-{seq:05}"


def test_format_number() -> None:
    assert format_number(PATTERN, date(2026, 1, 31), 7) == "RE-2026-00007"
    assert format_number("{YY}{MM}-{seq}", date(2026, 3, 1), 12) == "2603-12"


def test_numbers_restart_per_year_when_the_pattern_has_one(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        first = next_number(session, "invoice", PATTERN, date(2026, 12, 31))
        second = next_number(session, "invoice", PATTERN, date(2026, 12, 31))
        third = next_number(session, "invoice", PATTERN, date(2027, 1, 1))
    assert (first, second, third) == ("RE-2026-00001", "RE-2026-00002", "RE-2027-00001")
    with transaction(factory) as session:
        assert next_number(session, "invoice", "X{seq:03}", date(2026, 1, 1)) == "X001"
        assert next_number(session, "invoice", "X{seq:03}", date(2027, 1, 1)) == "X002"


def test_rollback_gives_the_number_back(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with pytest.raises(RuntimeError), transaction(factory) as session:
        next_number(session, "invoice", PATTERN, date(2026, 5, 1))
        raise RuntimeError("rendering failed")
    with transaction(factory) as session:
        assert next_number(session, "invoice", PATTERN, date(2026, 5, 1)) == "RE-2026-00001"


def test_concurrent_issuers_get_consecutive_unique_numbers(engine: Engine) -> None:
    factory = make_session_factory(engine)
    taken: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def issue(worker: int) -> None:
        try:
            for i in range(5):
                try:
                    with transaction(factory) as session:
                        number = next_number(session, "invoice", PATTERN, date(2026, 6, 1))
                        if (worker + i) % 4 == 0:
                            raise LookupError("simulated failure after taking a number")
                        with lock:
                            taken.append(number)
                except LookupError:
                    pass
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(taken) == len(set(taken))
    assert sorted(taken) == [f"RE-2026-{n:05d}" for n in range(1, len(taken) + 1)]
    assert len(taken) == 15
