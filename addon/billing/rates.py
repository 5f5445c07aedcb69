"""Step 6 (rate): the most specific rate wins.

Tables in order: entry override > contract > customer > global; the first table with any matching
rule wins, then inside it activity+agent > activity+role > activity > agent > role > default.

Example (s09): contract rules default 95, role senior 105, activity onsite 120; Ben (senior) on
onsite -> 120 ("contract: activity"), on remote -> 105 ("contract: role").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from .model import Contract, RateRule
from .surcharges import SplitEntry

TABLES = ("contract", "customer", "global")


class RateChoice(NamedTuple):
    """The hourly rate before surcharges and the rule that gave it (for the explanation)."""

    rate: Decimal
    rule: str


class RatedEntry(NamedTuple):
    split: SplitEntry
    rate: RateChoice | None

    @property
    def id(self) -> str:
        return self.split.id


def specificity(rule: RateRule) -> tuple[int, str] | None:
    """Rank of a rule inside its table (higher is more specific) and its name; None if invalid."""
    if rule.agent is not None and rule.role is not None:
        return None
    if rule.activity is not None:
        if rule.agent is not None:
            return 6, "activity+agent"
        if rule.role is not None:
            return 5, "activity+role"
        return 4, "activity"
    if rule.agent is not None:
        return 3, "agent"
    if rule.role is not None:
        return 2, "role"
    return 1, "default"


def _matches(rule: RateRule, activity: str, agent: str, role: str | None) -> bool:
    return ((rule.activity is None or rule.activity == activity)
            and (rule.agent is None or rule.agent == agent)
            and (rule.role is None or rule.role == role))


def find_rate(rules: Iterable[RateRule], activity: str, agent: str, role: str | None,
              override: Decimal | None = None) -> RateChoice | None:
    """The rate for one (activity, agent, role), or None when no table has a matching rule.

    >>> rules = [RateRule(Decimal("95")), RateRule(Decimal("120"), activity="onsite")]
    >>> find_rate(rules, "onsite", "ben", "senior")
    RateChoice(rate=Decimal('120'), rule='contract: activity')
    """
    if override is not None:
        return RateChoice(override, "entry override")
    rules = tuple(rules)
    for table in TABLES:
        best: tuple[int, str, RateRule] | None = None
        for rule in rules:
            rank = specificity(rule)
            if rule.scope != table or rank is None or not _matches(rule, activity, agent, role):
                continue
            if best is None or rank[0] > best[0]:
                best = (rank[0], rank[1], rule)
        if best is not None:
            return RateChoice(best[2].rate, f"{table}: {best[1]}")
    return None


def rate_entries(entries: Iterable[SplitEntry], contract: Contract) -> tuple[RatedEntry, ...]:
    """Attach the rate to every entry. A missing rate is not yet a problem: minutes fully covered
    by a retainer outside windows need no price; pricing raises `no rate` when one is needed.

    The tables are searched once per (activity, agent, role) of the run; entries sharing it share
    the choice. An entry's own override is taken as it is (never looked up in the memo: 77.7 and
    77.70 are equal keys but print differently)."""
    out: list[RatedEntry] = []
    rules = tuple(contract.rates)
    chosen: dict[tuple[str, str, str | None], RateChoice | None] = {}
    for item in entries:
        p = item.rounded.netted.prepared
        entry = p.entry
        if entry.rate_override is not None:
            out.append(RatedEntry(item, RateChoice(entry.rate_override, "entry override")))
            continue
        key = (entry.activity, entry.agent, p.role)
        if key in chosen:
            choice = chosen[key]
        else:
            choice = chosen[key] = find_rate(rules, *key)
        out.append(RatedEntry(item, choice))
    return tuple(out)
