"""The rating core makes no reference cycles: the premise of `addon.gc_tuning.paused`, which
the sidecar wraps around every `bill()` call. A cycle would not leak (the collector frees it
once it runs again), but a pass over a large customer would then hold its garbage until the end.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from billing_scenarios import SCENARIO_DIR, apply_run, load, start


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_replaying_a_scenario_leaves_no_cycles(path: Path) -> None:
    doc = load(path)
    gc.collect()
    gc.disable()
    try:
        replay = start(doc)
        results = [apply_run(replay, index, run) for index, run in enumerate(doc["runs"])]
        assert any(r is not None and r.lines for r in results)
        del replay, results
        assert gc.collect() == 0
    finally:
        gc.enable()
