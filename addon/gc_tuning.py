"""Garbage-collector settings for the processes that bill: the CLI (`ticketbill sync`,
`serve` with its scheduler) and the render workers.

CPython starts a young-generation collection every 700 net allocations of container objects,
and a billing run allocates millions (ORM rows and their states, engine records, the
explanation of every rated line), while most of what it keeps lives for the whole run: each
collection walks survivors again, and the full ones walk everything the run holds. Measured on
the rating core at 30,000 entries (bench/perf.py `rating_entries_per_second`), a third of the
time went to the collector. `tune` makes young collections rare and freezes what start-up
created (modules, compiled templates and schemas), so no collection walks it again. Memory is
still freed by reference counting as before; only reference cycles wait somewhat longer.

`paused` goes one step further around the rating core (`addon.billing.bill`): the core builds
immutable records only, so it makes no reference cycles (tests/billing/test_no_cycles.py
checks that over every golden scenario), and a collection during it can free nothing; it only
walks the records being built. With the young threshold above, a customer with 30,000
entries still saw its older generations walked while its lines were built (1.27 s against
1.11 s without the collector, bench_billing).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: container allocations between young collections (CPython's default: 700); the older
#: generations keep CPython's ratios (10, 10), so a long-running `serve` still collects its
#: old cycles as often, relative to the young collections, as it would by default (raising
#: them too measured no faster: 19,100-19,300 vs 20,600-23,400 entries/s at 30,000)
THRESHOLDS = (50_000, 10, 10)


def tune() -> None:
    """Apply `THRESHOLDS` and move every object alive now into the permanent generation."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def paused() -> Iterator[None]:
    """No collection while the block runs, for work that makes no reference cycles; the
    collector is back as it was afterwards (also on an exception), and the allocations counted
    meanwhile start the next young collection as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
