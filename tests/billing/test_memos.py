"""Memos inside one run give what computing afresh gives: same value *and* same Decimal text."""

from __future__ import annotations

from decimal import Decimal

import pytest

from addon.billing import Contract, Retainer
from addon.billing.contingents import OVERAGE, TIME_AND_MATERIAL
from addon.billing.lines import _Prices
from addon.billing.money import surcharge_share, surcharged_rate

D = Decimal
RATES = (D("95.00"), D("95.0"), D("99.99"), D("0"), D("-0"), D("0.00"), D("-12.5"), None)
PERCENTS = (D("0"), D("25"), D("25.00"), D("33"), D("-100"), D("-0"))


def expected(coverage: str, pct: Decimal, rate: Decimal | None, overage: Decimal | None) -> Decimal | None:
    """The pricing rule spelt out: T&M, overage (own rate if any), covered share."""
    if coverage == TIME_AND_MATERIAL:
        return None if rate is None else surcharged_rate(rate, pct)
    if coverage == OVERAGE:
        base = overage if overage is not None else rate
        return None if base is None else surcharged_rate(base, pct)
    if pct == 0:
        return D("0.00")
    return None if rate is None else surcharge_share(rate, pct)


@pytest.mark.parametrize("overage", [None, D("115.00"), D("-0")])
def test_memoised_prices_equal_fresh_ones(overage: Decimal | None) -> None:
    retainer = Retainer("2026-01", D("1"), "Flat", 60, overage_rate=overage)
    prices = _Prices(Contract(retainer=retainer))
    for _ in range(2):  # the second round is answered from the memo
        for coverage in (TIME_AND_MATERIAL, OVERAGE, "allowance", "rollover:2026-01"):
            for pct in PERCENTS:
                for rate in RATES:
                    got = prices.price(coverage, pct, rate)
                    want = expected(coverage, pct, rate, overage)
                    assert (str(got), got) == (str(want), want), (coverage, pct, rate)


def test_rate_lookup_once_per_key_equals_a_lookup_per_entry() -> None:
    from datetime import UTC, datetime, timedelta

    from addon.billing import Agent, RateRule, TimeEntry
    from addon.billing.classify import classify
    from addon.billing.netting import net_corrections
    from addon.billing.rates import find_rate, rate_entries
    from addon.billing.rounding import round_entries
    from addon.billing.surcharges import split_at_surcharges

    rules = (RateRule(D("95.00")), RateRule(D("120.00"), activity="onsite"), RateRule(D("105"), role="senior"),
             RateRule(D("140"), agent="carl"), RateRule(D("80"), "global", activity="phone"))
    contract = Contract(rates=rules)
    agents = {"anna": Agent("anna", "junior"), "ben": Agent("ben", "senior"), "carl": Agent("carl")}
    start = datetime(2026, 5, 4, 8, tzinfo=UTC)
    entries = [TimeEntry(f"e{i}", "T1", agent, activity, start=start + timedelta(hours=i), minutes=30,
                         rate_override=override)
               for i, (agent, activity, override) in enumerate(
                   (a, act, o) for a in agents for act in ("remote", "onsite", "phone")
                   for o in (None, None, D("77.7"), D("77.70")))]
    split = split_at_surcharges(round_entries(net_corrections(classify(entries, contract, agents).billable).entries,
                                              contract.rounding).entries, contract)
    rated = rate_entries(split, contract)
    assert len(rated) == len(entries)
    for item in rated:
        p = item.split.rounded.netted.prepared
        fresh = find_rate(rules, p.activity, p.agent, p.role, p.entry.rate_override)
        assert item.rate == fresh and str(item.rate.rate) == str(fresh.rate)  # type: ignore[union-attr]
