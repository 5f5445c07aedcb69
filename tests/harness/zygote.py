"""A launcher that forks real `ticketbill` CLI processes without paying the imports each time.

Why: the kill storm starts ~100 runs; a fresh interpreter spends ~2 s importing Flask,
SQLAlchemy and ReportLab before the run begins, which would make the storm slow and the kill
points cluster at start-up. This process imports once, then for each JSON line on stdin
(`["--env-file", ..., "sync", "--once"]`) forks a child that runs `addon.cli.main` exactly as
the console script does — its own process, its own database connections, killable with
SIGKILL. It answers `pid <pid>` per launch and `exit <pid> <code>` when a child ends (a
negative code names the signal). A child's own output goes to `<log dir>/<pid>.log`.

It opens no connection and starts no thread that could hold a lock across `fork`, except
the reaper, which only waits in `waitpid`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import addon.cli  # the import cost is paid here, once
import addon.invoicing.render_pdf
import addon.sync.scheduler
import connectors.zammad  # noqa: F401 (with the two above: what a run imports)

_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.01)
            continue
        say(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def child(args: list[str], log_dir: Path) -> None:
    log = os.open(log_dir / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    code = 0
    try:
        addon.cli.main(args, prog_name="ticketbill")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the child reports any crash as exit 1, like the console script
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    log_dir = Path(sys.argv[1])
    log_dir.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=reap, daemon=True).start()
    say("ready")
    for line in sys.stdin:
        args = json.loads(line)
        with _out:  # never fork while the reaper holds the output lock
            pid = os.fork()
        if pid == 0:
            child(args, log_dir)
        say(f"pid {pid}")


if __name__ == "__main__":
    main()
