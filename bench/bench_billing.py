"""Measure the billing engine: entries rated per second and peak memory, for N entries.

Usage: .venv/bin/python bench/bench_billing.py [--entries 10000 50000] [--repeat 3]

The contract is a realistic retainer: 20 h included with rollover and a prepaid block, overage
rate, night/Saturday/Sunday/holiday surcharges (DE-BY), rounding up to 15 min with a 15 min
minimum, rates per activity, role and agent, a travel flat fee, internal and no-charge time and
some negative corrections. Entries are spread over 12 months, 40 agents and N/8 tickets, with
start+end intervals (DST changes included). One `bill()` call rates everything up to the last
month (the monthly run that sees a customer's whole history), with the collector paused as
the sidecar pauses it (addon/gc_tuning.py; `--default-gc`: CPython's settings throughout).
Printed: wall time per run (best of `repeat`), entries per second, lines produced, and peak
memory: Python allocations during one run (tracemalloc, a separate pass because tracing slows
it down) and the process's max RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import tracemalloc
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from addon import gc_tuning
from addon.billing import (
    Agent,
    BillingRequest,
    Contract,
    PrepaidBlock,
    RateRule,
    Retainer,
    Rollover,
    Rounding,
    Surcharge,
    TimeEntry,
    TravelFlat,
    bill,
)

ACTIVITIES = ("Remote", "Vor-Ort", "Notfall", "Fahrt", "Intern")
ROLES = ("junior", "senior", None)


def contract() -> Contract:
    return Contract(
        id="bench", timezone="Europe/Berlin", holiday_region="DE-BY", vat_rate=Decimal("19"),
        rounding=Rounding(scope="entry", mode="up", increment=15, minimum=15, minimum_by_activity={"Vor-Ort": 30}),
        rates=(
            RateRule(Decimal("95.00"), "contract", activity="Remote"),
            RateRule(Decimal("120.00"), "contract", activity="Vor-Ort"),
            RateRule(Decimal("150.00"), "contract", activity="Notfall"),
            RateRule(Decimal("135.00"), "contract", activity="Vor-Ort", role="senior"),
            RateRule(Decimal("140.00"), "contract", agent="agent07"),
            RateRule(Decimal("85.00"), "customer"),
            RateRule(Decimal("90.00"), "global"),
        ),
        surcharges=(
            Surcharge("Nacht", "night", Decimal("25"), start=datetime(2000, 1, 1, 20).time(),
                      end=datetime(2000, 1, 1, 6).time()),
            Surcharge("Samstag", "saturday", Decimal("25")),
            Surcharge("Sonntag", "sunday", Decimal("50")),
            Surcharge("Feiertag", "holiday", Decimal("100")),
        ),
        retainer=Retainer(
            start_period="2026-01", fee=Decimal("950.00"), fee_label="Service-Flat", included_minutes=1200,
            covered_activities=frozenset({"Remote", "Notfall"}), overage_rate=Decimal("115.00"),
            rollover=Rollover(max_minutes=240, periods=2),
            prepaid_blocks=(PrepaidBlock("B1", 3000, date(2026, 9, 30), Decimal("4500.00")),),
        ),
        travel=TravelFlat(Decimal("35.00"), frozenset({"Vor-Ort"})),
        internal_activities=frozenset({"Intern"}),
    )


def entries(count: int, seed: int = 7) -> tuple[tuple[TimeEntry, ...], dict[str, Agent]]:
    """`count` entries over 2026 with realistic durations; ~3 % no-charge, ~2 % corrections."""
    rng = random.Random(seed)
    agents = {f"agent{i:02d}": Agent(f"agent{i:02d}", ROLES[i % 3]) for i in range(40)}
    names = sorted(agents)
    tickets = max(1, count // 8)
    year = datetime(2026, 1, 1, tzinfo=UTC)
    result = []
    for i in range(count):
        start = year + timedelta(minutes=rng.randrange(0, 365 * 24 * 60 - 600))
        minutes = rng.choice((5, 10, 15, 20, 30, 45, 50, 60, 90, 120, 240))
        ticket = f"T{rng.randrange(tickets):06d}"
        agent = names[(i * 7 + rng.randrange(3)) % len(names)]
        activity = rng.choices(ACTIVITIES, weights=(60, 20, 5, 5, 10))[0]
        roll = rng.random()
        if roll < 0.02:
            result.append(TimeEntry(f"e{i:07d}", ticket, agent, activity, start=start, minutes=-rng.choice((5, 10))))
            continue
        result.append(TimeEntry(f"e{i:07d}", ticket, agent, activity, start=start,
                                end=start + timedelta(minutes=minutes), no_charge=roll > 0.97))
    return tuple(result), agents


def run_once(request: BillingRequest, pause: bool) -> tuple[float, int]:
    """One `bill()` as the sidecar calls it: with the collector paused (addon/gc_tuning.py),
    unless `--default-gc`."""
    started = time.perf_counter()
    with gc_tuning.paused() if pause else nullcontext():
        result = bill(request)
    return time.perf_counter() - started, len(result.lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's collector settings (the sidecar tunes them: addon/gc_tuning.py)")
    args = parser.parse_args()
    if not args.default_gc:
        gc_tuning.tune()
    print(f"{'entries':>8} {'best s':>8} {'entries/s':>10} {'lines':>7} {'py peak MiB':>12}")
    for count in args.entries:
        items, agents = entries(count)
        request = BillingRequest(contract=contract(), agents=agents, entries=items, period="2026-12")
        timings = []
        for _ in range(args.repeat):
            seconds, lines = run_once(request, not args.default_gc)
            timings.append(seconds)
        tracemalloc.start()
        run_once(request, not args.default_gc)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        best = min(timings)
        print(f"{count:>8} {best:>8.2f} {count / best:>10,.0f} {lines:>7} {peak / 2**20:>12.1f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
