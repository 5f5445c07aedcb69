"""Contract sanity checks: a misconfigured knob is a review flag, never a silent default.

Example: a rate rule naming both an agent and a role, a night window without times, or an
increment of 0 minutes each give a `bad contract` warning; the run goes on with what is valid.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import Contract
from .periods import is_period
from .results import Problem
from .surcharges import known_region


def valid_timezone(name: str) -> bool:
    """Whether an IANA zone name is known (without it no local rule can be evaluated)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def contract_problems(contract: Contract) -> tuple[Problem, ...]:
    """Warnings about knobs that cannot be applied as written."""
    found: list[str] = []
    if not valid_timezone(contract.timezone):
        found.append(f"unknown time zone {contract.timezone!r}")
    if contract.holiday_region is not None and not known_region(contract.holiday_region):
        found.append(f"unknown holiday region {contract.holiday_region!r}: no holiday surcharges apply")
    for rule in contract.rates:
        if rule.agent is not None and rule.role is not None:
            found.append(f"rate rule {rule.rate} names both agent {rule.agent!r} and role {rule.role!r}; ignored")
        if rule.rate < 0:
            found.append(f"negative rate {rule.rate}")
    for window in contract.surcharges:
        if window.kind == "night" and (window.start is None or window.end is None):
            found.append(f"night window {window.name!r} needs both times; ignored")
        if window.kind == "holiday" and contract.holiday_region is None:
            found.append(f"holiday window {window.name!r} without a holiday region never applies")
    rounding = contract.rounding
    if rounding.increment < 1 or rounding.minimum < 0 or any(m < 0 for m in rounding.minimum_by_activity.values()):
        found.append("rounding increment must be >= 1 and minimums >= 0")
    retainer = contract.retainer
    if retainer is not None and not is_period(retainer.start_period):
        found.append(f"retainer start {retainer.start_period!r} is not YYYY-MM")
    return tuple(Problem("bad contract", text, severity="warning") for text in found)
