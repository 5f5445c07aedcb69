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
"""

from __future__ import annotations

import gc

#: container allocations between young collections (CPython's default: 700); the older
#: generations keep CPython's ratios (10, 10), so a long-running `serve` still collects its
#: old cycles as often, relative to the young collections, as it would by default (raising
#: them too measured no faster: 19,100-19,300 vs 20,600-23,400 entries/s at 30,000)
THRESHOLDS = (50_000, 10, 10)


def tune() -> None:
    """Apply `THRESHOLDS` and move every object alive now into the permanent generation."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
