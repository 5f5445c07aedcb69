"""Input values of the rating core: contract knobs, agents, time entries, extras.

All frozen: the engine never changes what the helpdesk reported (raw minutes stay beside billed
ones). Datetimes must be timezone-aware instants; dates are days in the contract's time zone.
Periods are plain strings "YYYY-MM" so that the shell can store them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Literal

Period = str  # "YYYY-MM", a calendar month in the contract's time zone
RateScope = Literal["contract", "customer", "global"]
SurchargeKind = Literal["night", "saturday", "sunday", "holiday"]


@dataclass(frozen=True)
class Agent:
    """A helpdesk agent; `role` (junior, senior, ...) selects role rates."""

    id: str
    role: str | None = None


@dataclass(frozen=True)
class TimeEntry:
    """One time booking as the helpdesk reports it.

    The interval is `start`+`end`, `start`+`minutes`, or `booked_at`+`minutes` (Zammad/OTRS know no
    start: start = booked_at − minutes on instants, the entry is *derived*). Negative `minutes`
    with a `start` is a correction booking.
    """

    id: str
    ticket: str
    agent: str
    activity: str
    start: datetime | None = None
    end: datetime | None = None
    minutes: int | None = None
    booked_at: datetime | None = None
    internal: bool = False
    no_charge: bool = False
    rate_override: Decimal | None = None


@dataclass(frozen=True)
class RateRule:
    """One row of a rate table. Naming both `agent` and `role` is invalid (reported as a problem)."""

    rate: Decimal
    scope: RateScope = "contract"
    activity: str | None = None
    agent: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Rounding:
    """Rounding knobs of a contract. `scope="ticket"` rounds the sum per (ticket, activity, period)."""

    scope: Literal["entry", "ticket"] = "entry"
    mode: Literal["up", "down", "nearest"] = "up"
    increment: int = 1
    minimum: int = 0
    minimum_by_activity: Mapping[str, int] = field(default_factory=dict)

    def minimum_for(self, activity: str) -> int:
        """The minimum of one activity, else the contract's general minimum."""
        return self.minimum_by_activity.get(activity, self.minimum)


@dataclass(frozen=True)
class Surcharge:
    """A local-time window with a percentage. `start`/`end` (end exclusive) may wrap midnight.

    Day kinds (saturday, sunday, holiday) cover the whole day unless times are given; `night`
    needs both times.
    """

    name: str
    kind: SurchargeKind
    percent: Decimal
    start: time | None = None
    end: time | None = None


@dataclass(frozen=True)
class Rollover:
    """Unused allowance of a period, capped at `max_minutes`, usable in the next `periods` periods."""

    max_minutes: int
    periods: int


@dataclass(frozen=True)
class PrepaidBlock:
    """A block of minutes sold separately, usable from the contract start until `valid_until`."""

    id: str
    minutes: int
    valid_until: date
    price: Decimal | None = None


@dataclass(frozen=True)
class Retainer:
    """A monthly retainer: fee per period, an allowance, optional rollover and prepaid blocks."""

    start_period: Period
    fee: Decimal
    fee_label: str
    included_minutes: int
    covered_activities: frozenset[str] | None = None  # None: all activities
    overage_rate: Decimal | None = None
    rollover: Rollover | None = None
    prepaid_blocks: tuple[PrepaidBlock, ...] = ()

    def covers(self, activity: str) -> bool:
        """Whether minutes of this activity consume buckets."""
        return self.covered_activities is None or activity in self.covered_activities


@dataclass(frozen=True)
class TravelFlat:
    """A flat fee per on-site visit: one (ticket, local day) with billable time of `activities`."""

    flat_per_visit: Decimal
    activities: frozenset[str]


#: What a discount can apply to, in the contract's words, and the line kinds that means.
DISCOUNT_SCOPES: Mapping[str, frozenset[str]] = {
    "time": frozenset({"time", "overage", "surcharge_share"}),
    "material": frozenset({"material"}),
    "travel": frozenset({"travel_visit", "travel_km"}),
    "fee": frozenset({"fee"}),
}


@dataclass(frozen=True)
class Discount:
    """A discount ("Rabatt"): a percentage (`percent`) or a fixed amount (`amount`, per
    document) off the lines of the kinds named in `applies_to` (keys of DISCOUNT_SCOPES).
    Exactly one of percent and amount. `presentation` says how the shell prints it: as an
    invoice line or as a document-level allowance (EN 16931 BG-20); the arithmetic is equal."""

    label: str
    percent: Decimal | None = None
    amount: Decimal | None = None
    applies_to: frozenset[str] = frozenset(DISCOUNT_SCOPES)
    presentation: Literal["line", "allowance"] = "line"

    def kinds(self) -> frozenset[str]:
        """The line kinds this discount reduces."""
        return frozenset(kind for scope in self.applies_to for kind in DISCOUNT_SCOPES[scope])


@dataclass(frozen=True)
class Contract:
    """Everything that decides a price. All knobs belong to the contract, never to a global setting.

    `internal_activities` are activity types that are always internal (never on a customer
    document). `known_activities`, when given, makes any other activity a review flag.
    """

    id: str = "default"
    timezone: str = "Europe/Berlin"
    holiday_region: str | None = None  # "DE-HE": country DE, subdivision HE
    vat_rate: Decimal = Decimal("19")
    rounding: Rounding = field(default_factory=Rounding)
    rates: tuple[RateRule, ...] = ()
    surcharges: tuple[Surcharge, ...] = ()
    surcharge_policy: Literal["highest", "additive"] = "highest"
    retainer: Retainer | None = None
    travel: TravelFlat | None = None
    material_markup: Mapping[str, Decimal] = field(default_factory=dict)
    internal_activities: frozenset[str] = frozenset()
    known_activities: frozenset[str] | None = None
    #: Discounts of the contract (and its customer), applied per document (step discounts).
    discounts: tuple[Discount, ...] = ()


@dataclass(frozen=True)
class Extra:
    """A material or a distance-priced travel item. `cost` is per piece or per km."""

    id: str
    kind: Literal["material", "travel"]
    ticket: str
    date: date
    description: str
    quantity: Decimal
    cost: Decimal
    category: str | None = None
    markup: Decimal | None = None  # overrides the category markup; travel defaults to 0
