"""Kill storm: real `ticketbill sync --once` processes killed with SIGKILL at random points.

Every round books new work in the Zammad sandbox and starts a run; the run is killed after a
random delay (anywhere from start-up over polling, billing and PDF rendering to the
write-back) or, every third round, right after the sandbox executed its write-back PUT and
before the run could commit that it was done. Then the storm stops, a clean run follows (after
`ticketbill outbox --retry-now`: rows in doubt would otherwise wait for their settle time), and
`ticketbill verify` must pass, every minute must be on exactly one invoice, no note twice.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from harness_kit import Deployment, Zygote, assert_money_and_notes, book_closed, sandbox, wait_until, zygote

from connectors.sandbox.zammad import ZammadSandbox

__all__ = ["sandbox", "zygote"]  # fixtures
KILLS = 50  # per backend


def test_kill_storm(sandbox: ZammadSandbox, zygote: Zygote, database_url: str, tmp_path: Path) -> None:
    deployment = Deployment(sandbox, database_url, tmp_path)
    dice = random.Random(1212)
    kills = {"random": 0, "after_write": 0}
    finished = 0
    round_ = 0
    try:
        while sum(kills.values()) < KILLS:
            round_ += 1
            assert round_ < KILLS * 3, f"only {kills} kills in {round_} rounds"
            book_closed(sandbox, f"Sturm {round_}", 1 + round_ % 2, [dice.choice((15, 30, 45, 50))])
            pid = zygote.launch(deployment.cli("sync", "--once"))
            if round_ % 3 == 0:  # between the helpdesk's write and the run's commit
                sandbox.after_next(lambda pid=pid: os.kill(pid, signal.SIGKILL), path="/tickets/", method="PUT")
                wait_until(lambda pid=pid: zygote.ended(pid), 20)
                sandbox.clear_faults()
            else:
                wait_until(lambda pid=pid: zygote.ended(pid), dice.uniform(0.0, 1.2))
                if not zygote.ended(pid):
                    os.kill(pid, signal.SIGKILL)
            code = zygote.wait(pid)
            if code == -signal.SIGKILL:
                kills["after_write" if round_ % 3 == 0 else "random"] += 1
            else:
                finished += 1
        code, output = zygote.run(deployment.cli("outbox", "--retry-now"))
        code, output = zygote.run(deployment.cli("sync", "--once"))
        assert code == 0, output
        counted = assert_money_and_notes(deployment, zygote)
    finally:
        deployment.close()
    print(f"kill storm ({database_url.split(':')[0].split('+')[0]}): {sum(kills.values())} SIGKILLs {kills}, "
          f"{finished} runs finished, {round_} rounds; {counted}")
    assert kills["after_write"] >= KILLS // 4

