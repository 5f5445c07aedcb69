"""Database models (SQLAlchemy 2.x, typed). The shell's memory; no billing logic here.

Keys follow the architecture notes: every source record is keyed by (helpdesk, remote id);
an entry is linked to at most one invoice line of a valid invoice (unique constraint, not a
check in code); issued invoices are a frozen JSON snapshot plus hashed PDF bytes.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

MONEY = Numeric(14, 2)
MINUTES = Numeric(10, 2)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; ticketbill stores aware UTC datetimes only")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """A paying customer, matched to the helpdesk's organization by (helpdesk, remote id).

    Billing data (address, VAT ID, rate) is the sidecar's own configuration: a customer row
    may exist from sync alone (`configured` False) and then makes its tickets need attention.
    """

    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("helpdesk", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    remote_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str | None] = mapped_column(String(200))
    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    vat_id: Mapped[str | None] = mapped_column(String(20))
    customer_number: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(200))
    hourly_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(2))
    #: Invoices wait as drafts for `ticketbill invoices approve` instead of being issued at once.
    approval_required: Mapped[bool] = mapped_column(default=False)
    #: DATEV personal (debtor) account; empty: the DATEV_DEFAULT_DEBTOR setting.
    debtor_account: Mapped[str | None] = mapped_column(String(9))
    #: Public-sector buyer: the e-mail also carries the XRechnung XML (needs buyer_reference).
    xrechnung: Mapped[bool] = mapped_column(default=False)
    #: BT-10 buyer reference (Leitweg-ID for public buyers).
    buyer_reference: Mapped[str | None] = mapped_column(String(100))
    #: Invoice layout: a template name (invoice/<name>.html; None = "standard") and a
    #: letterhead image replacing INVOICE_LOGO for this customer (migration i13).
    invoice_template: Mapped[str | None] = mapped_column(String(50))
    letterhead: Mapped[str | None] = mapped_column(String(500))
    #: Discounts for every contract of the customer: the import's list as JSON text (Text, not
    #: JSON: PostgreSQL cannot compare json, and customers are selected DISTINCT).
    discounts: Mapped[str | None] = mapped_column(Text)

    #: Billing-data keys set by the JSON import, comma-separated; helpdesk data never
    #: overwrites them (text, not JSON: customer rows are selected DISTINCT) (i14).
    imported_fields: Mapped[str | None] = mapped_column(String(500))
    #: Helpdesk billing data that failed validation; while set, nothing is billed (i14).
    helpdesk_problems: Mapped[str | None] = mapped_column(Text)

    @property
    def configured(self) -> bool:
        return not self.helpdesk_problems and all(
            (self.legal_name or self.name, self.street, self.postcode, self.city, self.country))


class GlobalRate(Base):
    """The default hourly rate for customers without their own (one row per activity or '')."""

    __tablename__ = "global_rate"

    activity: Mapped[str] = mapped_column(String(100), primary_key=True)
    hourly_rate: Mapped[Decimal] = mapped_column(MONEY)


class ActivityType(Base):
    """An activity type as the helpdesk names it; `internal` ones are never billed."""

    __tablename__ = "activity_type"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    internal: Mapped[bool] = mapped_column(default=False)


class Ticket(Base):
    """A helpdesk ticket as last seen by the sync."""

    __tablename__ = "ticket"
    __table_args__ = (UniqueConstraint("helpdesk", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    remote_id: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    state: Mapped[str] = mapped_column(String(50))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    remote_updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    web_url: Mapped[str | None] = mapped_column(String(500))
    group: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The billing category agents set (billable, internal, warranty, goodwill, covered); None: billable.
    category: Mapped[str | None] = mapped_column(String(20))
    #: Booking lines the connector could not read ("line — reason", one per line), replaced on
    #: every poll; while set, the ticket needs attention and nothing of it is billed.
    booking_problems: Mapped[str | None] = mapped_column(Text)
    billing_status: Mapped[str] = mapped_column(String(30), default="unbilled")
    attention_reason: Mapped[str | None] = mapped_column(Text)
    status_version: Mapped[int] = mapped_column(Integer, default=0)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The ticket waits for a decision after a cancellation (why, which invoice); nothing of it is
    #: billed until `ticketbill invoices release NUMBER --then …` decides (issue 11).
    billing_hold: Mapped[str | None] = mapped_column(Text)
    #: Who pays for the ticket's work when it is not the helpdesk's organization (a cancellation
    #: decided "move"): the id of a customer row. No foreign key on purpose: a plain added column
    #: keeps the migration a simple ALTER on SQLite; `ticketbill verify` checks it.
    billing_customer_id: Mapped[int | None] = mapped_column(Integer)
    #: The contract (code) that bills the ticket's unbilled work, whatever the claims say.
    billing_contract: Mapped[str | None] = mapped_column(String(50))
    #: Merged into another ticket: the survivor's helpdesk id, whose invoice bills the time that
    #: stays here (Zammad); "" when the helpdesk moved the time to the survivor (OTRS, RT).
    merged_into: Mapped[str | None] = mapped_column(String(100))

    #: Why the helpdesk refuses this ticket's bookings to the API user (a missing right); the
    #: ticket needs attention and is read again every run until it clears (i14).
    access_problem: Mapped[str | None] = mapped_column(Text)
    #: The `updated_at` the helpdesk answered to the sidecar's last write-back (i15): a poll that
    #: lists the ticket with exactly this version sees our own write and reads nothing again.
    written_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    customer: Mapped[Customer | None] = relationship()
    entries: Mapped[list[TimeEntry]] = relationship(back_populates="ticket", order_by="TimeEntry.booked_at")


class TimeEntry(Base):
    """One time booking. Never rewritten in place once billed: see `content_hash`."""

    __tablename__ = "time_entry"
    __table_args__ = (UniqueConstraint("helpdesk", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    remote_id: Mapped[str] = mapped_column(String(100))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    agent: Mapped[str] = mapped_column(String(200))
    agent_name: Mapped[str | None] = mapped_column(String(200))
    activity: Mapped[str | None] = mapped_column(String(100))
    minutes: Mapped[Decimal] = mapped_column(MINUTES)
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    start: Mapped[datetime | None] = mapped_column(UtcDateTime())
    content_hash: Mapped[str] = mapped_column(String(64))
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    not_billed_reason: Mapped[str | None] = mapped_column(String(200))
    drift: Mapped[str | None] = mapped_column(Text)
    #: Written off after a cancellation, with the reason: never billed again (issue 11).
    written_off: Mapped[str | None] = mapped_column(String(200))

    ticket: Mapped[Ticket] = relationship(back_populates="entries")


class BookedExtra(Base):
    """A material, travel distance or on-site visit an agent booked on a ticket.

    Keyed like time entries by (helpdesk, remote id) with a content hash: once billed it is never
    rewritten in place; a change or deletion in the helpdesk sets `drift` instead.
    """

    __tablename__ = "booked_extra"
    __table_args__ = (UniqueConstraint("helpdesk", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    remote_id: Mapped[str] = mapped_column(String(100))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    kind: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    unit_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    category: Mapped[str | None] = mapped_column(String(100))
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    agent: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    drift: Mapped[str | None] = mapped_column(Text)
    #: Written off after a cancellation, with the reason: never billed again (issue 11).
    written_off: Mapped[str | None] = mapped_column(String(200))


class SyncCursor(Base):
    """How far the poll has read one stream of one helpdesk; only ever moves forward."""

    __tablename__ = "sync_cursor"

    helpdesk: Mapped[str] = mapped_column(String(20), primary_key=True)
    stream: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[datetime] = mapped_column(UtcDateTime())


class SyncRun(Base):
    """One sync/billing run: when, what it did, how it ended."""

    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="running")
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class PushEvent(Base):
    """A close announced by a helpdesk (push API); unique per delivery so retries do nothing."""

    __tablename__ = "push_event"
    __table_args__ = (UniqueConstraint("source", "event_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(30))
    event_key: Mapped[str] = mapped_column(String(64))
    ticket_remote_id: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class NumberSeries(Base):
    """A gapless counter per series and year, taken FOR UPDATE in the issuing transaction."""

    __tablename__ = "number_series"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer, default=1)


class Invoice(Base):
    """A draft or an issued document (invoice 380, cancellation 381).

    Drafts have no number, snapshot or files yet. Once issued, the snapshot JSON and the PDF and
    XML bytes never change (ORM guard in `addon.invoicing.immutability`, database triggers in
    migration 0002); only the lifecycle columns (state, cancelled_by_id, delivery) move on.
    """

    __tablename__ = "invoice"
    __table_args__ = (UniqueConstraint("series", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(50))
    number: Mapped[str | None] = mapped_column(String(36))
    type_code: Mapped[str] = mapped_column(String(3), default="380")
    state: Mapped[str] = mapped_column(String(20), default="issued")
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    net: Mapped[Decimal] = mapped_column(MONEY)
    vat: Mapped[Decimal] = mapped_column(MONEY)
    gross: Mapped[Decimal] = mapped_column(MONEY)
    snapshot: Mapped[str | None] = mapped_column(Text)
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    access_key: Mapped[str] = mapped_column(String(43), unique=True)
    # The billing engine's memory of this document (allocations, fee periods, ...) per contract,
    # JSON; written in the issuing transaction only. `billing_period` marks a monthly invoice.
    billing_documents: Mapped[str | None] = mapped_column(Text)
    billing_period: Mapped[str | None] = mapped_column(String(7))
    xml_path: Mapped[str | None] = mapped_column(String(500))
    xml_sha256: Mapped[str | None] = mapped_column(String(64))
    #: A draft's rated content (lines with their entries, VAT groups, annex) until approval.
    draft_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The cancellation (381) that cancelled this invoice; on a 381, the invoice it cancels.
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"))
    cancels_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: E-mail delivery: None (not configured), pending, sent or failed (with the error).
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    delivery_error: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(back_populates="invoice", order_by="InvoiceLine.position")


class InvoiceLine(Base):
    """A line of an issued invoice with its explanation (rate rule, rounding, entries)."""

    __tablename__ = "invoice_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    unit: Mapped[str] = mapped_column(String(3))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    net: Mapped[Decimal] = mapped_column(MONEY)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class BilledEntry(Base):
    """Which entry is billed on which valid invoice. `entry_id` is unique: never billed twice."""

    __tablename__ = "billed_entry"

    entry_id: Mapped[int] = mapped_column(ForeignKey("time_entry.id"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    line_id: Mapped[int] = mapped_column(ForeignKey("invoice_line.id"))
    raw_minutes: Mapped[Decimal] = mapped_column(MINUTES)
    billed_minutes: Mapped[Decimal] = mapped_column(MINUTES)


class BilledExtra(Base):
    """Which extra is billed on which invoice line. `extra_id` is unique: never billed twice;
    a link to a cancelled invoice is released (deleted) when the extra is billed again."""

    __tablename__ = "billed_extra"

    extra_id: Mapped[int] = mapped_column(ForeignKey("booked_extra.id"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"))
    line_id: Mapped[int] = mapped_column(ForeignKey("invoice_line.id", ondelete="CASCADE"))


class Outbox(Base):
    """An external effect of issuing (ticket write-back, e-mail), done after commit, once."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("kind", "ticket_id", "marker"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"))
    marker: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: when a pending row is tried next (backoff); None: at once
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: an attempt began whose outcome is unknown: the next one reads back before it writes
    in_doubt: Mapped[bool] = mapped_column(default=False, server_default=false())


class BillingHistory(Base):
    """Append-only trail of every entry's billing: billed on an invoice, released by a
    cancellation (negative minutes). `billed_entry` says where an entry is billed *now*; this
    table says everywhere it ever was, so the sum of `billed_minutes` per entry is what it is
    net-billed across all documents."""

    __tablename__ = "billing_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("time_entry.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_line.id"))
    event: Mapped[str] = mapped_column(String(20))
    raw_minutes: Mapped[Decimal] = mapped_column(MINUTES)
    billed_minutes: Mapped[Decimal] = mapped_column(MINUTES)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditLog(Base):
    """Who did what to which invoice, when (GoBD): issue, approve, cancel, send, export, ..."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(30))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Contract(Base):
    """A customer's billing contract (configuration; see addon/contracts.py for the JSON form).

    Knobs the engine reads are columns; lists and maps (covered activities, markups, minimum per
    activity) are JSON. A contract with no assignment rows claims all tickets of its customer.
    """

    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(20), default="per_ticket")
    timezone: Mapped[str | None] = mapped_column(String(64))
    holiday_region: Mapped[str | None] = mapped_column(String(10))
    rounding_scope: Mapped[str] = mapped_column(String(10), default="entry")
    rounding_mode: Mapped[str] = mapped_column(String(10), default="up")
    rounding_increment: Mapped[int] = mapped_column(Integer, default=15)
    rounding_minimum: Mapped[int] = mapped_column(Integer, default=0)
    minimum_by_activity: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    surcharge_policy: Mapped[str] = mapped_column(String(10), default="highest")
    retainer_start: Mapped[str | None] = mapped_column(String(7))
    fee: Mapped[Decimal | None] = mapped_column(MONEY)
    fee_label: Mapped[str | None] = mapped_column(String(200))
    included_minutes: Mapped[int | None] = mapped_column(Integer)
    covered_activities: Mapped[list[str] | None] = mapped_column(JSON)
    overage_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    rollover_max_minutes: Mapped[int | None] = mapped_column(Integer)
    rollover_periods: Mapped[int | None] = mapped_column(Integer)
    travel_flat: Mapped[Decimal | None] = mapped_column(MONEY)
    travel_activities: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Price per km for travel booked in km (a note's own price wins).
    travel_km_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    material_markup: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Discounts of this contract (import format, see addon/discounts.py; migration i13).
    discounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    #: The highest time entry id when the contract was imported: time ticketbill already held
    #: keeps the terms it had (a contract reaches the past only when applied explicitly).
    #: None (contracts from before issue 11): the contract claims all time, as it always did.
    known_entry_mark: Mapped[int | None] = mapped_column(Integer)
    #: Known time on or after this local day is billed under this contract after all: the
    #: admin applied it explicitly (`contracts import --apply-from`, after `contracts preview`).
    applies_from: Mapped[date | None] = mapped_column(Date)

    customer: Mapped[Customer] = relationship()
    assignments: Mapped[list[ContractAssignment]] = relationship(
        cascade="all, delete-orphan", order_by="ContractAssignment.id")
    surcharges: Mapped[list[SurchargeWindow]] = relationship(
        cascade="all, delete-orphan", order_by="SurchargeWindow.id")
    prepaid_blocks: Mapped[list[PrepaidBlockRow]] = relationship(
        cascade="all, delete-orphan", order_by="PrepaidBlockRow.id")


class ContractAssignment(Base):
    """Which tickets a contract bills: `kind` ticket (number), group or tag, and the value."""

    __tablename__ = "contract_assignment"
    __table_args__ = (UniqueConstraint("contract_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"))
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(200))


class SurchargeWindow(Base):
    """A local-time surcharge window of a contract ("HH:MM" times, end exclusive)."""

    __tablename__ = "surcharge_window"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    percent: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    start: Mapped[str | None] = mapped_column(String(5))
    end: Mapped[str | None] = mapped_column(String(5))


class PrepaidBlockRow(Base):
    """A prepaid hour block of a retainer contract, usable until `valid_until` (inclusive)."""

    __tablename__ = "prepaid_block"
    __table_args__ = (UniqueConstraint("contract_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"))
    code: Mapped[str] = mapped_column(String(50))
    minutes: Mapped[int] = mapped_column(Integer)
    valid_until: Mapped[date] = mapped_column(Date)
    price: Mapped[Decimal | None] = mapped_column(MONEY)


class RateRuleRow(Base):
    """One rate rule: scope contract (contract_id), customer (customer_id) or global; criteria
    activity, agent or role (agent and role exclusive); none of them is the table's default."""

    __tablename__ = "rate_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    activity: Mapped[str | None] = mapped_column(String(100))
    agent: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(50))
    rate: Mapped[Decimal] = mapped_column(MONEY)


class AgentRole(Base):
    """An agent as time entries name them (login/e-mail), with the role that selects role rates."""

    __tablename__ = "agent"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str | None] = mapped_column(String(50))


class ContingentLedger(Base):
    """Retainer ledger per contract, period and bucket (minutes); recomputed by each billing run."""

    __tablename__ = "contingent_ledger"

    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(60), primary_key=True)
    granted: Mapped[int] = mapped_column(Integer, default=0)
    consumed: Mapped[int] = mapped_column(Integer, default=0)
    rolled_over: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    overage: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SchedulerHeartbeat(Base):
    """The scheduler's sign of life, rewritten every few seconds (`addon.health`).

    Why a row and not a file: the web process that answers `/readyz` may run in another unit
    or on another host than the one scheduler; the database is what both share. The web
    process also leaves `sync_requested_at` here when a close is pushed, and the scheduler
    starts the next run on its next beat.
    """

    __tablename__ = "scheduler_heartbeat"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    beat_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sync_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# --- the web UI (issue 16): users, API tokens, payments, deferred entries -------------------


class AppUser(Base):
    """A person who signs in to the sidecar's pages: a local account (argon2 password hash) or
    one created on first sign-in with the helpdesk account (`source` helpdesk, no password here;
    the role is re-derived from the helpdesk's roles/groups at every sign-in)."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    #: admin | team_lead | accountant | viewer (addon.users.ROLES)
    role: Mapped[str] = mapped_column(String(20))
    #: local | helpdesk
    source: Mapped[str] = mapped_column(String(20), default="local")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    #: the UI language the user chose (de | en); None: the browser's
    language: Mapped[str | None] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ApiToken(Base):
    """A bearer token for the JSON API, acting with its user's role. Only the SHA-256 of the
    token is stored (the token itself is shown once), so a database dump cannot be replayed."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[AppUser] = relationship()


class Payment(Base):
    """A payment received for an issued invoice: date and amount (part payments add up).

    Kept apart from the invoice row, which is frozen once issued; the invoice turns `paid` when
    the payments reach its gross amount (`addon.invoicing.payments`)."""

    __tablename__ = "payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(200))


class DeferredEntry(Base):
    """A time entry a team lead moved off a draft onto a later invoice: it is not billed before
    `until` (the local day from which the next run may bill it again)."""

    __tablename__ = "deferred_entry"

    entry_id: Mapped[int] = mapped_column(ForeignKey("time_entry.id"), primary_key=True)
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


#: Indexes the pages read by (issue 16). The overview aggregates over the tickets not yet fully
#: billed (status + customer, covering), issued documents by issue day (covering: day, customer,
#: net), recent entries by booking day (partial: present entries only) and write-offs (partial:
#: entries with a reason); a ticket's entries and an invoice's links are looked up by parent.
UI_INDEXES = (
    Index("ix_ticket_billing_status", Ticket.billing_status, Ticket.closed_at),
    Index("ix_ticket_customer_id", Ticket.customer_id, Ticket.billing_status),
    Index("ix_time_entry_ticket_id", TimeEntry.ticket_id),
    Index("ix_time_entry_booked_at", TimeEntry.booked_at, TimeEntry.agent, TimeEntry.minutes,
          sqlite_where=TimeEntry.removed_at.is_(None), postgresql_where=TimeEntry.removed_at.is_(None)),
    Index("ix_time_entry_written_off", TimeEntry.booked_at, TimeEntry.minutes,
          sqlite_where=TimeEntry.not_billed_reason.is_not(None),
          postgresql_where=TimeEntry.not_billed_reason.is_not(None)),
    Index("ix_billed_entry_invoice_id", BilledEntry.invoice_id),
    Index("ix_billed_entry_minutes", BilledEntry.entry_id, BilledEntry.billed_minutes),  # index-only per entry
    Index("ix_invoice_issued_at", Invoice.issued_at, Invoice.customer_id, Invoice.net),
    Index("ix_invoice_state", Invoice.state),
    Index("ix_invoice_customer_id", Invoice.customer_id),
)

#: Lookups the sync makes per ticket (i15): a ticket's booked extras, its outbox rows (queueing
#: looks for the marker, the write-back for what is pending).
SYNC_INDEXES = (
    Index("ix_booked_extra_ticket_id", BookedExtra.ticket_id),
    Index("ix_outbox_ticket_id", Outbox.ticket_id, Outbox.kind, Outbox.marker),
    Index("ix_outbox_status", Outbox.status, Outbox.kind),
    # the tickets a customer pays for (rating a month: `tickets_paid_by`, two indexable
    # terms) and the tickets merged into one (rating a ticket)
    Index("ix_ticket_billing_customer_id", Ticket.billing_customer_id),
    Index("ix_ticket_merged_into", Ticket.merged_into),
)

class ReviewItem(Base):
    """Something about an already billed ticket a person must look at (issue 11).

    Billing never changes an issued invoice and never lets an invoiced ticket's status
    regress; what it cannot decide alone — a billed entry changed in the helpdesk, a category
    changed to warranty after the invoice, a reopened ticket, new time held on it — becomes one
    review item with one internal note. `key` (kind + digest of the message) keeps it unique per
    ticket, so a condition seen on every sync is noted once; `resolved_at` is set by the team
    lead (`ticketbill review resolve ID`).
    """

    __tablename__ = "review_item"
    __table_args__ = (UniqueConstraint("ticket_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    kind: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(200))

    ticket: Mapped[Ticket] = relationship()


class BillingChange(Base):
    """One committed transaction that changed something billing reads (i15).

    `addon.change_log` adds a row to every transaction that writes a billing input (tickets,
    entries, extras, contracts, customers, invoices, …, but not runs, cursors, the outbox or
    the audit log), so `(count, max id)` of this table changes whenever the inputs of a
    monthly billing pass may have. `writer` names the pass that wrote it, if one did.
    """

    __tablename__ = "billing_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    writer: Mapped[str | None] = mapped_column(String(64))


class BillingPassMark(Base):
    """What a complete billing pass saw (i15): the change log's fingerprint, the period, the
    settings, the schema. An equal fingerprint at the next run means the pass would decide the
    same again, so it is skipped (an idle poll rates nothing)."""

    __tablename__ = "billing_pass_mark"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(500))

# every session that can write these tables logs its billing changes (addon.change_log); imported
# last, since the log's listener needs the classes above
from addon import change_log as _change_log  # noqa: E402,F401
