"""The audit log (GoBD): who did what to which invoice, when, with the details that matter.

Written in the same transaction as the action itself, so the log can neither claim an action
that was rolled back nor miss one that was committed. The table is append-only (ORM guard and
database triggers).
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from addon.models import AuditLog, Invoice


def cli_actor() -> str:
    """The operating-system user running a command, e.g. `cli:anna`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli:unknown"


def record(
    session: Session,
    action: str,
    actor: str,
    now: datetime,
    invoice: Invoice | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one audit entry for `action` (issue, approve, discard, cancel, send, send_failed,
    export, mark_paid)."""
    entry = AuditLog(
        at=now, actor=actor, action=action, invoice_id=invoice.id if invoice else None, details=details or {}
    )
    session.add(entry)
    return entry
