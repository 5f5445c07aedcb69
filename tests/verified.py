"""Helper (no tests): assert that `ticketbill verify` finds nothing after a flow."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from addon.settings import Settings
from addon.verify import VerifyReport, verify


def assert_verified(factory: sessionmaker[Session], settings: Settings) -> VerifyReport:
    """Run the auditor's check; fail with every finding printed when one exists."""
    report = verify(factory, settings)
    assert report.ok, "\n".join(report.lines())
    return report
