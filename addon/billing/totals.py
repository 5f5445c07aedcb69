"""Step 10 (money): document totals per EN 16931 BR-CO-10 / BR-CO-17.

Example: lines 950.00 + 86.25 + 86.25 at 19 % -> net 1122.50, VAT round_half_up(213.275) =
213.28, gross 1335.78. VAT is computed once per rate on the sum of line nets, never per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .money import ZERO, vat_amount
from .results import Line, Totals, VatBreakdown


def compute_totals(lines: Iterable[Line]) -> Totals:
    """Net = Σ line nets; per rate VAT = half-up of the rate's base; gross = net + VAT."""
    bases: dict[Decimal, Decimal] = {}
    for line in lines:
        bases[line.vat_rate] = bases.get(line.vat_rate, ZERO) + line.net
    breakdown = tuple(VatBreakdown(rate, base, vat_amount(base, rate)) for rate, base in sorted(bases.items()))
    net = sum((b.base for b in breakdown), ZERO)
    vat = sum((b.vat for b in breakdown), ZERO)
    return Totals(net, vat, net + vat, breakdown)
