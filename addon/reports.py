"""Read models for the overview, the ticket page and the JSON API: aggregate SQL, no billing.

Every figure is one grouped query over indexed columns (migration i16_ui), so the overview
stays fast with hundreds of thousands of entries: unbilled work is read from the tickets not
yet fully billed (billing status unbilled / needs attention / cancelled) instead of scanning
every entry; months are local-time buckets computed as UTC bounds in Python and turned into
one CASE expression, which both SQLite and PostgreSQL evaluate alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from addon.models import (
    BilledEntry,
    ContingentLedger,
    Contract,
    Customer,
    Invoice,
    Ticket,
    TimeEntry,
)

OPEN_WORK_STATUSES = ("unbilled", "needs_attention", "cancelled")
AGE_BUCKETS = (7, 30, 90)  # days: ≤7, 8–30, 31–90, older
NEAR_LIMIT = Decimal("0.8")
ZERO = Decimal(0)


def month_starts(now: datetime, timezone: str, months: int) -> list[tuple[str, datetime]]:
    """The last `months` local months as ("YYYY-MM", first instant in UTC), oldest first,
    ending with the current month; a final bound for the next month's start is appended."""
    local = now.astimezone(ZoneInfo(timezone))
    year, month = local.year, local.month
    keys = []
    for _ in range(months + 1):
        keys.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    keys.reverse()
    keys = keys[1:]  # `months` months ending with the current one
    nxt = (keys[-1][0] + (keys[-1][1] == 12), keys[-1][1] % 12 + 1)
    zone = ZoneInfo(timezone)
    return [(f"{y}-{m:02d}", datetime(y, m, 1, tzinfo=zone).astimezone(UTC)) for y, m in [*keys, nxt]]


def _bucket(column: Any, bounds: list[tuple[str, datetime]]) -> ColumnElement[Any]:
    """A CASE giving the month key of `column` among `bounds` (None outside)."""
    whens = [(and_(column >= start, column < bounds[i + 1][1]), literal(key))
             for i, (key, start) in enumerate(bounds[:-1])]
    return case(*whens, else_=None)


@dataclass
class CustomerWork:
    """Unbilled, billable minutes of one customer by age (closed tickets) plus open tickets."""

    customer_id: int | None
    name: str
    open_minutes: Decimal = ZERO
    by_age: list[Decimal] = field(default_factory=lambda: [ZERO] * (len(AGE_BUCKETS) + 1))
    tickets: int = 0

    @property
    def total(self) -> Decimal:
        return self.open_minutes + sum(self.by_age, ZERO)


def unbilled_work(session: Session, now: datetime) -> list[CustomerWork]:
    """Work booked but not on any invoice or draft, by customer and age, largest first."""
    billed = exists().where(BilledEntry.entry_id == TimeEntry.id)
    limits = [now - timedelta(days=d) for d in AGE_BUCKETS]
    closed = Ticket.closed_at.is_not(None)
    columns = [func.sum(case((Ticket.closed_at.is_(None), TimeEntry.minutes), else_=0))]
    lower = [*limits, None]
    upper = [None, *limits]
    for low, high in zip(lower, upper, strict=True):
        condition = closed
        if low is not None:
            condition = and_(condition, TimeEntry.booked_at >= low)
        if high is not None:
            condition = and_(condition, TimeEntry.booked_at < high)
        columns.append(func.sum(case((condition, TimeEntry.minutes), else_=0)))
    rows = session.execute(
        select(Ticket.customer_id, func.count(func.distinct(Ticket.id)), *columns)
        .join(TimeEntry, TimeEntry.ticket_id == Ticket.id)
        .where(Ticket.billing_status.in_(OPEN_WORK_STATUSES), TimeEntry.removed_at.is_(None),
               TimeEntry.not_billed_reason.is_(None), ~billed)
        .group_by(Ticket.customer_id)
    ).all()
    names = _customer_names(session, [r[0] for r in rows if r[0] is not None])
    result = []
    for customer_id, tickets, open_minutes, *ages in rows:
        work = CustomerWork(customer_id, names.get(customer_id, "—"), Decimal(open_minutes or 0),
                            [Decimal(a or 0) for a in ages], tickets)
        if work.total:
            result.append(work)
    return sorted(result, key=lambda w: w.total, reverse=True)


def _customer_names(session: Session, ids: list[int]) -> dict[int | None, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids))).all())


def attention(session: Session, limit: int = 50) -> tuple[int, list[Ticket]]:
    """Tickets that need attention (count, the newest `limit`) with their reasons."""
    count = session.execute(select(func.count()).select_from(Ticket)
                            .where(Ticket.billing_status == "needs_attention")).scalar_one()
    rows = session.execute(select(Ticket).where(Ticket.billing_status == "needs_attention")
                           .order_by(Ticket.closed_at.desc(), Ticket.id.desc()).limit(limit)).scalars().all()
    return count, list(rows)


def fix_for(ticket: Ticket) -> tuple[str, str]:
    """Where a ticket that needs attention is fixed: (kind, target) — the customer's billing data,
    the booking in the helpdesk, or the ticket page (drift, a failed billing) to re-check it."""
    reason = ticket.attention_reason or ""
    if ticket.customer_id is None:
        return "helpdesk", ticket.web_url or ""
    if "billing address" in reason or "no hourly rate" in reason:
        return "customer", str(ticket.customer_id)
    if ticket.booking_problems:
        return "helpdesk", ticket.web_url or ""
    return "ticket", str(ticket.id)


@dataclass(frozen=True)
class DraftSummary:
    count: int
    gross: Decimal
    oldest: datetime | None
    rows: list[Invoice]


def drafts_waiting(session: Session, limit: int = 8) -> DraftSummary:
    count, gross, oldest = session.execute(
        select(func.count(), func.coalesce(func.sum(Invoice.gross), 0), func.min(Invoice.created_at))
        .where(Invoice.state == "draft", Invoice.type_code == "380")).one()
    rows = session.execute(select(Invoice).where(Invoice.state == "draft", Invoice.type_code == "380")
                           .order_by(Invoice.created_at, Invoice.id).limit(limit)).scalars().all()
    return DraftSummary(count, Decimal(gross), oldest, list(rows))


def revenue_between(session: Session, start: datetime, end: datetime) -> tuple[Decimal, int]:
    """Net revenue of documents issued in [start, end): invoices minus cancellations."""
    net, count = session.execute(
        select(func.coalesce(func.sum(Invoice.net), 0), func.count())
        .where(Invoice.issued_at >= start, Invoice.issued_at < end)).one()
    return Decimal(net), count


#: Month totals of issued documents, by database, keyed by (latest issue instant, newest id,
#: number of drafts). Exact, not a guess: issued documents never change (GoBD; drafts have no
#: issue date), so the totals change only when a document is issued — a new one raises the
#: newest id, an approved draft lowers the draft count — and both move the key. The key is
#: three index look-ups instead of a scan of a year of invoices.
_REVENUE_CACHE: dict[tuple[str, str], tuple[tuple[Any, ...], list[tuple[str, int, Decimal]]]] = {}


def _revenue_rows(session: Session, bounds: list[tuple[str, datetime]],
                  zone: str) -> list[tuple[str, int, Decimal]]:
    stamp = (session.execute(select(func.max(Invoice.issued_at))).scalar_one(),
             session.execute(select(func.max(Invoice.id))).scalar_one(),
             session.execute(select(func.count()).select_from(Invoice).where(Invoice.state == "draft")).scalar_one())
    where = (str(session.get_bind().url), zone)
    key = (stamp, bounds[0][0], bounds[-1][0])
    cached = _REVENUE_CACHE.get(where)
    if cached is not None and cached[0] == key:
        return cached[1]
    bucket = _bucket(Invoice.issued_at, bounds).label("month")
    rows = [(month, customer_id, Decimal(net)) for month, customer_id, net in session.execute(
        select(bucket, Invoice.customer_id, func.sum(Invoice.net))
        .where(Invoice.issued_at >= bounds[0][1], Invoice.issued_at < bounds[-1][1])
        .group_by(bucket, Invoice.customer_id)).all() if month is not None]
    _REVENUE_CACHE[where] = (key, rows)
    return rows


def revenue_by_month(session: Session, now: datetime, timezone: str, months: int = 12,
                     top: int = 5) -> dict[str, Any]:
    """Net revenue per local month, split into the `top` customers of the range and the rest."""
    bounds = month_starts(now, timezone, months)
    rows = _revenue_rows(session, bounds, timezone)
    keys = [k for k, _s in bounds[:-1]]
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for _m, customer_id, net in rows:
        totals[customer_id] += net
    leaders = [c for c, _t in sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]]
    names = _customer_names(session, leaders)
    series: dict[str, list[float]] = {names.get(c, "—"): [0.0] * len(keys) for c in leaders}
    others = [0.0] * len(keys)
    for month, customer_id, net in rows:
        target = series[names.get(customer_id, "—")] if customer_id in leaders else others
        target[keys.index(month)] += float(net)
    if any(others):
        series["others"] = others
    return {"months": keys, "series": series}


@dataclass(frozen=True)
class ContingentRow:
    code: str
    customer: str
    granted: int
    consumed: int
    overage: int

    @property
    def share(self) -> Decimal:
        return Decimal(self.consumed) / Decimal(self.granted) if self.granted else Decimal(1 if self.consumed else 0)

    @property
    def level(self) -> str:
        if self.overage or self.share >= 1:
            return "over"
        return "near" if self.share >= NEAR_LIMIT else "ok"


def contingents(session: Session, period: str) -> list[ContingentRow]:
    """Every retainer's use in `period` from the ledger each billing run rewrites, fullest first."""
    rows = session.execute(
        select(Contract.code, Customer.name, func.sum(ContingentLedger.granted), func.sum(ContingentLedger.consumed),
               func.sum(ContingentLedger.overage))
        .join(Contract, Contract.id == ContingentLedger.contract_id).join(Customer, Customer.id == Contract.customer_id)
        .where(ContingentLedger.period == period).group_by(Contract.code, Customer.name)).all()
    result = [ContingentRow(code, name, int(g or 0), int(c or 0), int(o or 0)) for code, name, g, c, o in rows]
    return sorted(result, key=lambda r: r.share, reverse=True)


def contingent_history(session: Session, periods: list[str], top: int = 5) -> dict[str, Any]:
    """Remaining hours at the end of each period (the burn-down across months) of the `top`
    retainers with the least left in the latest period."""
    rows = session.execute(
        select(Contract.code, ContingentLedger.period, func.sum(ContingentLedger.granted),
               func.sum(ContingentLedger.consumed))
        .join(Contract, Contract.id == ContingentLedger.contract_id)
        .where(ContingentLedger.period.in_(periods)).group_by(Contract.code, ContingentLedger.period)).all()
    series: dict[str, list[float | None]] = {}
    for code, period, granted, consumed in rows:
        series.setdefault(code, [None] * len(periods))[periods.index(period)] = round(
            (int(granted or 0) - int(consumed or 0)) / 60, 2)
    tightest = sorted(series, key=lambda code: (series[code][-1] is None, series[code][-1] or 0))[:top]
    return {"periods": periods, "series": {code: series[code] for code in sorted(tightest)}}


def agent_hours(session: Session, since: datetime) -> dict[str, Any]:
    """Booked and billed hours per agent for entries booked since `since` (billed: on an invoice
    or on a draft waiting for approval; a cancellation releases its entries). Agents are shown by
    their login's local part, read from the covering booking-day index."""
    # one index-only look-up per entry (ix_billed_entry_minutes covers it); a join would hash
    # the whole billed_entry table on PostgreSQL
    billed = (select(BilledEntry.billed_minutes).where(BilledEntry.entry_id == TimeEntry.id)
              .correlate(TimeEntry).scalar_subquery())
    rows = session.execute(
        select(TimeEntry.agent, func.sum(TimeEntry.minutes), func.sum(billed))
        .where(TimeEntry.booked_at >= since, TimeEntry.removed_at.is_(None))
        .group_by(TimeEntry.agent)).all()
    rows = sorted(rows, key=lambda r: Decimal(r[1] or 0), reverse=True)[:12]
    return {"agents": [str(r[0]).split("@")[0] for r in rows],
            "booked": [round(float(r[1] or 0) / 60, 2) for r in rows],
            "billed": [round(float(r[2] or 0) / 60, 2) for r in rows]}


def writeoffs_by_month(session: Session, now: datetime, timezone: str, months: int = 12) -> dict[str, Any]:
    """Hours booked but not billed for a reason (internal, warranty, not covered, …) per month."""
    bounds = month_starts(now, timezone, months)
    bucket = _bucket(TimeEntry.booked_at, bounds).label("month")
    rows = session.execute(
        select(bucket, func.sum(TimeEntry.minutes))
        .where(TimeEntry.booked_at >= bounds[0][1], TimeEntry.booked_at < bounds[-1][1],
               TimeEntry.not_billed_reason.is_not(None), TimeEntry.removed_at.is_(None))
        .group_by(bucket)).all()
    keys = [k for k, _s in bounds[:-1]]
    values = [0.0] * len(keys)
    for month, minutes in rows:
        if month is not None:
            values[keys.index(month)] = round(float(minutes or 0) / 60, 2)
    return {"months": keys, "hours": values}


def closed_without_time(session: Session, limit: int = 10) -> tuple[int, list[Ticket]]:
    """Closed tickets that had no booked time (status not billable for that reason)."""
    where = and_(Ticket.billing_status == "not_billable", Ticket.attention_reason == "closed without booked time")
    count = session.execute(select(func.count()).select_from(Ticket).where(where)).scalar_one()
    rows = session.execute(select(Ticket).where(where).order_by(Ticket.closed_at.desc(), Ticket.id.desc())
                           .limit(limit)).scalars().all()
    return count, list(rows)


def current_period(now: datetime, timezone: str) -> str:
    local = now.astimezone(ZoneInfo(timezone))
    return f"{local.year}-{local.month:02d}"


def month_bounds(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    bounds = month_starts(now, timezone, 1)
    return bounds[0][1], bounds[1][1]


def day_in(timezone: str, moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()
