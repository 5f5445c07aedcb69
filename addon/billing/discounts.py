"""Step 10 (discounts, "Rabatte"): a contract's discounts as lines of their own, before the money.

A discount is a percentage of, or a fixed amount off, the net of the lines it applies to (by line
kind: time, material, travel, fee). It becomes one negative line per VAT rate with its own
explanation (label, percent or amount, base, the kinds it covers); the discounted lines keep
theirs untouched. Whether the shell prints it as an invoice line or as a document-level
allowance (EN 16931 BG-20) is `presentation`; the arithmetic is the same, so the VAT base of
the rate is always Σ lines − discounts (BR-CO-13) and VAT follows from it (BR-CO-17).

Discounts are computed per document from the lines on it, never carried between documents:
a correction line on a later invoice gets the discount of that invoice's contract, and a
cancellation negates the discount line with the rest.

Example: time 500.00 + material 104.88 at 19 %, "Stammkundenrabatt" 10 % on time ->
a line −1 × 50.00 = −50.00 (base 500.00); the document net is 554.88.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .model import Discount
from .money import ZERO, round_currency
from .results import Line

HUNDRED = Decimal(100)


def discount_lines(lines: Iterable[Line], discounts: Iterable[Discount]) -> tuple[Line, ...]:
    """One negative line per discount and VAT rate, over the lines of the discount's kinds.

    A fixed amount is capped at the base (a discount never turns an invoice into a credit)
    and split over the VAT rates in proportion to their bases, the rounding rest on the
    largest. Nothing to discount (no such lines, or a base of zero or less): no line.

    >>> from datetime import date
    >>> time = Line("time", "T1", "Remote", "Remote", Decimal("5.0000"), "HUR", Decimal("100.00"),
    ...             Decimal("500.00"), Decimal("19"), "2026-11", date(2026, 11, 3), date(2026, 11, 9))
    >>> [(d.quantity, d.unit_price, d.net) for d in discount_lines([time], [Discount("Rabatt", Decimal("10"))])]
    [(Decimal('-1'), Decimal('50.00'), Decimal('-50.00'))]
    """
    lines = tuple(lines)
    result: list[Line] = []
    for discount in discounts:
        covered = [line for line in lines if line.kind in discount.kinds()]
        bases: dict[Decimal, Decimal] = {}
        for line in covered:
            bases[line.vat_rate] = bases.get(line.vat_rate, ZERO) + line.net
        total = sum(bases.values(), ZERO)
        if total <= 0:
            continue
        if discount.percent is not None:
            amounts = {rate: round_currency(base * discount.percent / HUNDRED) for rate, base in bases.items()}
        else:
            amounts = _split(min(discount.amount or ZERO, total), bases, total)
        for rate, amount in sorted(amounts.items()):
            if amount <= 0:
                continue
            of_rate = [line for line in covered if line.vat_rate == rate]
            result.append(Line(
                kind="discount", ticket=None, activity=None, label=discount.label,
                quantity=Decimal(-1), unit="C62", unit_price=amount, net=-amount, vat_rate=rate,
                service_period=max(line.service_period for line in of_rate),
                service_start=min(line.service_start for line in of_rate),
                service_end=max(line.service_end for line in of_rate),
                explanation={
                    "discount": discount.label,
                    "percent": None if discount.percent is None else str(discount.percent),
                    "amount": None if discount.amount is None else str(discount.amount),
                    "base": str(bases[rate]),
                    "applies_to": sorted(discount.applies_to),
                    "lines_discounted": len(of_rate),
                    "presentation": discount.presentation,
                },
            ))
    return tuple(result)


def _split(amount: Decimal, bases: dict[Decimal, Decimal], total: Decimal) -> dict[Decimal, Decimal]:
    """`amount` over the rates in proportion to their bases; the cent rest goes to the largest."""
    shares = {rate: round_currency(amount * base / total) for rate, base in bases.items() if base > 0}
    largest = max(shares, key=lambda rate: bases[rate])
    shares[largest] += amount - sum(shares.values(), ZERO)
    return shares
