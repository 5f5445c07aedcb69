"""Two runners on one PostgreSQL: each round starts two `ticketbill sync --once` processes at
the same moment, with new work booked; the run lock lets one bill while the other skips (or
waits for the next round). Nothing may be billed twice, no two runs may overlap in time, and
`ticketbill verify` passes at the end."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import pytest
from harness_kit import Deployment, Zygote, assert_money_and_notes, book_closed, sandbox, zygote
from sqlalchemy import select

from addon.models import SyncRun
from connectors.sandbox.zammad import ZammadSandbox

__all__ = ["sandbox", "zygote"]  # fixtures
ROUNDS = 12


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_runners_on_one_postgresql(sandbox: ZammadSandbox, zygote: Zygote, database_url: str,
                                       tmp_path: Path) -> None:
    deployment = Deployment(sandbox, database_url, tmp_path)
    dice = random.Random(1213)
    skipped = 0
    try:
        for round_ in range(ROUNDS):
            for n in range(dice.randint(1, 3)):
                book_closed(sandbox, f"Runde {round_}.{n}", 1 + n % 2, [dice.choice((15, 30, 60))])
            pids = [zygote.launch(deployment.cli("sync", "--once")) for _ in range(2)]
            outcomes = [zygote.run_output(pid) for pid in pids]
            assert any(code == 0 for code, _ in outcomes), outcomes
            for code, output in outcomes:
                if code != 0:
                    assert "another sync run is in progress" in output, output
                    skipped += 1
        code, output = zygote.run(deployment.cli("sync", "--once"))  # picks up what a skip left
        assert code == 0, output
        counted = assert_money_and_notes(deployment, zygote)
        with deployment.factory() as session:
            spans = session.execute(select(SyncRun.started_at, SyncRun.finished_at, SyncRun.status)
                                    .order_by(SyncRun.started_at)).all()
    finally:
        deployment.close()
    assert all(status == "succeeded" for _, _, status in spans)
    for (_, end, _), (start, _, _) in pairwise(spans):
        assert end is not None and end <= start, "two runs overlapped"
    print(f"two runners: {ROUNDS} rounds, {2 * ROUNDS} runs started, {skipped} skipped by the lock, "
          f"{len(spans)} ran; {counted}")
