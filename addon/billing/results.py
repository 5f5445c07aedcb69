"""Output values: lines, totals, problems, exclusions, and the state the shell persists.

`BillingState` is the memory across runs (issued documents with what each billed, cancellations,
contingent ledger). It is plain data: the shell stores it and passes it back on the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from .model import Period

LineKind = Literal[
    "time", "overage", "surcharge_share", "no_charge", "fee", "material", "travel_visit", "travel_km", "discount"
]
UnitCode = Literal["HUR", "C62", "KMT"]


@dataclass(frozen=True)
class Problem:
    """A review flag: data, never an exception.

    `severity="hold"` means the entries named are kept off this document (they stay unbilled and
    come back on the next run once fixed); `"warning"` means they were billed but need a look.
    """

    code: str
    reason: str
    severity: Literal["hold", "warning"] = "hold"
    entry_ids: tuple[str, ...] = ()
    ticket: str | None = None
    minutes: int | None = None


@dataclass(frozen=True)
class Exclusion:
    """An entry this run handled that is on no line, and why (`internal`, `netted to zero`, ...)."""

    entry_id: str
    reason: str


@dataclass(frozen=True)
class EntryRef:
    """An entry on a line: its raw minutes (as booked) and the minutes billed on this line."""

    entry_id: str
    raw_minutes: int
    billed_minutes: int


@dataclass(frozen=True)
class Line:
    """One invoice line. Text is left to the shell: `label` is a data label (fee label, material
    description, activity code), `explanation` says why the line costs what it costs."""

    kind: LineKind
    ticket: str | None
    activity: str | None
    label: str
    quantity: Decimal
    unit: UnitCode
    unit_price: Decimal
    net: Decimal
    vat_rate: Decimal
    service_period: Period
    service_start: date
    service_end: date
    entries: tuple[EntryRef, ...] = ()
    agents: tuple[str, ...] = ()
    correction: bool = False
    explanation: Mapping[str, object] = field(default_factory=dict)

    def negated(self) -> Line:
        """The same line with quantity and net negated and the unit price unchanged (Storno)."""
        return replace(
            self,
            quantity=-self.quantity,
            net=-self.net,
            entries=tuple(EntryRef(r.entry_id, r.raw_minutes, -r.billed_minutes) for r in self.entries),
        )


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT rate's base and amount (BR-CO-17: amount = half-up of base × rate)."""

    rate: Decimal
    base: Decimal
    vat: Decimal


@dataclass(frozen=True)
class Totals:
    """Document totals: net = Σ line nets, vat = Σ per-rate VAT, gross = net + vat."""

    net: Decimal
    vat: Decimal
    gross: Decimal
    by_rate: tuple[VatBreakdown, ...]

    def negated(self) -> Totals:
        """Totals of a cancellation."""
        return Totals(
            -self.net, -self.vat, -self.gross,
            tuple(VatBreakdown(b.rate, -b.base, -b.vat) for b in self.by_rate),
        )


@dataclass(frozen=True)
class Allocation:
    """What one document billed of one entry: minutes at one unit price and coverage.

    Coverage is `"tm"` (plain time and material), `"overage"`, or a bucket name (`"allowance"`,
    `"rollover:2026-03"`, `"block:B1"`) for contingent-covered minutes. The sum over valid documents
    is what is already net-billed; a new run bills only the difference.
    """

    entry_id: str
    ticket: str
    activity: str
    period: Period
    unit_price: Decimal
    coverage: str
    surcharge: str
    minutes: int


@dataclass(frozen=True)
class ContingentSnapshot:
    """The contingent ledger of one retainer period (minutes). `remaining` is before lapsing."""

    period: Period
    consumed: Mapping[str, int]
    remaining: Mapping[str, int]
    overage: int
    rollover_out: int


@dataclass(frozen=True)
class Document:
    """An issued invoice or cancellation as remembered in the state (immutable once issued)."""

    document_id: str
    kind: Literal["invoice", "cancellation"]
    period: Period | None
    lines: tuple[Line, ...]
    totals: Totals
    allocations: tuple[Allocation, ...] = ()
    fee_periods: tuple[Period, ...] = ()
    extra_ids: tuple[str, ...] = ()
    visits: tuple[str, ...] = ()  # "ticket|YYYY-MM-DD"
    excluded: tuple[Exclusion, ...] = ()
    cancels: str | None = None
    cancelled_by: str | None = None

    @property
    def valid(self) -> bool:
        """An invoice that has not been cancelled."""
        return self.kind == "invoice" and self.cancelled_by is None


@dataclass(frozen=True)
class BillingState:
    """Memory across runs: every issued document, and the latest contingent ledger."""

    documents: tuple[Document, ...] = ()
    contingents: tuple[ContingentSnapshot, ...] = ()

    def valid_invoices(self) -> tuple[Document, ...]:
        """Invoices whose content counts as billed (issued and not cancelled)."""
        return tuple(d for d in self.documents if d.valid)

    def document(self, document_id: str) -> Document | None:
        """Look a document up by id."""
        return next((d for d in self.documents if d.document_id == document_id), None)


@dataclass(frozen=True)
class BillingResult:
    """The outcome of one run. `state` is the new state *if this document is issued*; a draft
    is simply not persisted. `contingents` lists the ledger of each retainer period up to the
    invoiced one."""

    document_id: str
    kind: Literal["invoice", "cancellation"]
    lines: tuple[Line, ...]
    totals: Totals
    problems: tuple[Problem, ...]
    excluded: tuple[Exclusion, ...]
    contingents: tuple[ContingentSnapshot, ...]
    state: BillingState

    def contingent(self, period: Period) -> ContingentSnapshot | None:
        """The ledger of one period, if the contract is a retainer."""
        return next((c for c in self.contingents if c.period == period), None)
