"""The contingent report a team lead reads: "7:45 h of 10:00 h used this month".

The numbers come from the engine (the same run a monthly invoice would make, never issued
here) and are written to the `contingent_ledger` table on the way, so the ledger always shows
the month so far, not only what the last invoice saw. Open tickets are billed on close, but
their time already uses the contingent: the figures count it and say how much of the use is
on open tickets ("4:30 h of 5:00 h used this month, 2:45 h of it on open tickets").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from addon.billing.periods import period_of_instant
from addon.contracts.state import hours, open_share, record_ledger
from addon.invoicing.rating import open_snapshots, rate_customer
from addon.models import Contract, Customer
from addon.settings import Settings


def contingent_report(session: Session, settings: Settings, now: datetime, remote_id: str | None = None,
                      period: str | None = None) -> list[str]:
    """One block per retainer contract: the month's usage, then each bucket's balance."""
    query = select(Customer).join(Contract, Contract.customer_id == Customer.id).where(
        Contract.kind == "retainer").distinct().order_by(Customer.name)
    if remote_id is not None:
        query = query.where(Customer.remote_id == remote_id)
    lines: list[str] = []
    for customer in session.execute(query).scalars().all():
        current = period_of_instant(now, customer.timezone or settings.timezone)
        month = period or current
        rating = rate_customer(session, settings, customer, trigger="monthly", period=month)
        if rating.problems:
            lines.append(f"{customer.name}: {'; '.join(rating.problems)}")
        with_open = open_snapshots(session, settings, customer, month)
        for ledger in rating.ledgers:
            retainer = ledger.setup.engine.retainer
            assert ledger.setup.row is not None and retainer is not None
            record_ledger(session, ledger.setup.row, retainer, ledger.snapshots, now)
            snap = next((s for s in ledger.snapshots if s.period == month), None)
            if snap is None:
                lines.append(f"{ledger.setup.key} ({customer.name}): no contingent in {month} "
                             f"(the retainer starts {retainer.start_period})")
                continue
            opened = with_open.get((ledger.setup.key, month))
            used, on_open = open_share(snap, opened)
            shown = opened if opened is not None else snap  # buckets, grants and overage with open work
            granted = sum(shown.consumed.values()) + sum(shown.remaining.values())
            when = "this month" if month == current else f"in {month}"
            lines.append(f"{ledger.setup.key} ({customer.name}): {hours(used)} h of {hours(granted)} h used {when}"
                         + (f", {hours(on_open)} h of it on open tickets" if on_open else "")
                         + (f", {hours(shown.overage)} h overage" if shown.overage else ""))
            for bucket in sorted(shown.consumed):
                left = shown.remaining.get(bucket, 0)
                lines.append(f"  {bucket:20} {hours(shown.consumed[bucket]):>7} h used, {hours(left):>7} h left")
            if shown.rollover_out:
                lines.append(f"  rolls over into the next month: {hours(shown.rollover_out)} h")
    return lines
