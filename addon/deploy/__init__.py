"""systemd units for a ticketbill deployment, rendered from the templates beside this file.

Two units, not one: `ticketbill-web` (`serve --no-scheduler`) and `ticketbill-sync` (`sync`,
the one scheduler). Why: restarting the web process (a proxy or TLS change, a stuck request)
never interrupts a billing run, the scheduler can take its time to stop cleanly without
holding the invoice links down, and each has its own journal (`journalctl -u ticketbill-web`,
`-u ticketbill-sync`). They meet in the database: the scheduler's heartbeat row tells the web
process's `/readyz` that billing runs, and a close pushed to the web process reaches the
scheduler through the same row.

Both run as the unprivileged system user that `install.sh --service` creates, may write only
the data directory (and an SQLite file's directory), and log to the journal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from string import Template

from addon.settings import Settings

TEMPLATES = Path(__file__).resolve().parent
UNITS = ("ticketbill-web.service", "ticketbill-sync.service")


def writable_paths(settings: Settings) -> list[Path]:
    """What the services must be able to write: DATA_DIR, and an SQLite database's directory
    when it lies outside it (SQLite writes its -wal and -shm files beside the database)."""
    paths = [settings.data_dir]
    if settings.database_url.startswith("sqlite:///"):
        database = Path(settings.database_url.removeprefix("sqlite:///")).resolve().parent
        if database != settings.data_dir and settings.data_dir not in database.parents:
            paths.append(database)
    return paths


def render_units(settings: Settings, *, repo: Path, env_file: Path, user: str, host: str, port: int) -> dict[str, str]:
    """Unit file name → content, for this checkout, settings file, service user and address."""
    writable = [str(p) for p in writable_paths(settings)]
    values = {
        "repo": str(repo.resolve()),
        "ticketbill": str(Path(sys.prefix) / "bin" / "ticketbill"),
        "env_file": str(env_file.resolve()),
        "user": user,
        "host": host,
        "port": str(port),
    }
    for value in (*values.values(), *writable):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is empty or contains white space, which a unit file line cannot carry")
    values["writable"] = " ".join(writable)
    return {name: Template((TEMPLATES / name).read_text(encoding="utf-8")).substitute(values) for name in UNITS}
