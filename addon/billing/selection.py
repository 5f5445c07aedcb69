"""Contract selection: which of a customer's contracts bills an entry.

A customer may have several contracts, each claiming tickets by explicit assignment, by ticket
group or by tag, valid between two dates. An entry goes to the contract that claims its ticket
on the entry's local start day (so a contract change applies to entries from its start date).
The most specific claim wins: explicit ticket > group > tag. Two contracts claiming one ticket at
the same level, or no contract at all, is a review flag and the entry is held, never guessed.

Example: "flat" claims group "Support" from 2026-01-01 to 2026-06-30, "tm" claims group "Support"
from 2026-07-01: a June entry goes to "flat", a July entry to "tm". If "special" also claims tag
"vip" and the ticket has group Support and tag vip, the group claim wins (group > tag).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from .classify import resolve_interval
from .model import TimeEntry
from .periods import local_date
from .results import Exclusion, Problem

_LEVELS = ("ticket", "group", "tag")


@dataclass(frozen=True)
class TicketInfo:
    """What selection needs to know about a ticket."""

    id: str
    group: str | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContractClaim:
    """Which tickets a contract bills, and when (both dates inclusive; None is open-ended)."""

    contract_id: str
    tickets: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    valid_from: date | None = None
    valid_until: date | None = None

    def level(self, ticket: TicketInfo) -> int | None:
        """0 explicit, 1 group, 2 tag; None when the claim does not cover the ticket."""
        if ticket.id in self.tickets:
            return 0
        if ticket.group is not None and ticket.group in self.groups:
            return 1
        if self.tags & ticket.tags:
            return 2
        return None

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until)


@dataclass(frozen=True)
class Routing:
    """Entries per contract id, plus entries held with the reason why."""

    by_contract: Mapping[str, tuple[TimeEntry, ...]] = field(default_factory=dict)
    held: tuple[Exclusion, ...] = ()
    problems: tuple[Problem, ...] = ()


def route_entries(entries: Iterable[TimeEntry], tickets: Mapping[str, TicketInfo],
                  claims: Iterable[ContractClaim], timezone: str = "Europe/Berlin") -> Routing:
    """Assign every entry to exactly one contract or hold it with a flag."""
    claims = tuple(claims)
    routed: dict[str, list[TimeEntry]] = {}
    held: list[Exclusion] = []
    problems: list[Problem] = []
    for entry in entries:
        resolved = resolve_interval(entry)
        if isinstance(resolved, Problem):
            problems.append(resolved)
            held.append(Exclusion(entry.id, resolved.code))
            continue
        day = local_date(resolved[0], timezone)
        ticket = tickets.get(entry.ticket, TicketInfo(entry.ticket))
        matches = [(lvl, c) for c in claims if c.valid_on(day) and (lvl := c.level(ticket)) is not None]
        best = min((lvl for lvl, _ in matches), default=None)
        winners = sorted({c.contract_id for lvl, c in matches if lvl == best})
        if not winners:
            problems.append(Problem("no contract", f"no contract claims ticket {entry.ticket} on {day}",
                                    entry_ids=(entry.id,), ticket=entry.ticket))
            held.append(Exclusion(entry.id, "no contract"))
        elif len(winners) > 1:
            problems.append(Problem(
                "two contracts claim one ticket",
                f"contracts {', '.join(winners)} all claim ticket {entry.ticket} by {_LEVELS[best]} on {day}",
                entry_ids=(entry.id,), ticket=entry.ticket))
            held.append(Exclusion(entry.id, "two contracts claim one ticket"))
        else:
            routed.setdefault(winners[0], []).append(entry)
    return Routing({k: tuple(v) for k, v in sorted(routed.items())}, tuple(held), tuple(problems))
