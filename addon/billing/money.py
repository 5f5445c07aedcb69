"""All rounding of money, quantities and time lives here, each mode named.

Why one module: EN 16931 (BR-CO-10/17) fixes where and how money is rounded; scattering
`quantize` calls over the pipeline is how invoices end up a cent off. Time rounding (minutes to an
increment) is a different thing from currency rounding and is kept in its own functions.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

CENT = Decimal("0.01")
QUANTITY_STEP = Decimal("0.0001")
ZERO = Decimal("0.00")
SIXTY = Decimal(60)
HUNDRED = Decimal(100)

TimeRoundingMode = Literal["up", "down", "nearest"]


def round_currency(amount: Decimal) -> Decimal:
    """Half-up to cents (away from zero for negatives), as the EN 16931 examples do.

    >>> round_currency(Decimal("213.275"))
    Decimal('213.28')
    >>> round_currency(Decimal("-0.005"))
    Decimal('-0.01')
    """
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def round_quantity(quantity: Decimal) -> Decimal:
    """Half-up to 4 decimals: the precision of a line quantity (`0.1667` h for 10 min)."""
    return quantity.quantize(QUANTITY_STEP, rounding=ROUND_HALF_UP)


def minutes_to_hours(minutes: int) -> Decimal:
    """Hours shown on a line, exact to 4 decimals: 10 -> 0.1667, -15 -> -0.2500."""
    return round_quantity(Decimal(minutes) / SIXTY)


def unit_price(amount: Decimal) -> Decimal:
    """A price per unit kept exact to at most 4 decimals (surcharged rates like 112.5 stay exact).

    Shown with 2 decimals when that loses nothing: 180 -> 180.00, 104.1666.. -> 104.1667.
    """
    four = amount.quantize(QUANTITY_STEP, rounding=ROUND_HALF_UP)
    two = four.quantize(CENT)
    return two if two == four else four


def surcharged_rate(rate: Decimal, percent: Decimal) -> Decimal:
    """`rate × (1 + pct/100)`: 120.00 at +50 % -> 180.00."""
    return unit_price(rate * (HUNDRED + percent) / HUNDRED)


def surcharge_share(rate: Decimal, percent: Decimal) -> Decimal:
    """Only the surcharge part, `rate × pct/100`, for contingent-covered minutes in a window."""
    return unit_price(rate * percent / HUNDRED)


def marked_up_price(cost: Decimal, markup: Decimal) -> Decimal:
    """Material unit price, rounded to cents *before* it is multiplied: 3.99 at 0.35 -> 5.39."""
    return round_currency(cost * (1 + markup))


def time_net(minutes: int, price_per_hour: Decimal) -> Decimal:
    """Line net of a time line: round_half_up(minutes × rate / 60, 2); 50 min at 125 -> 104.17."""
    return round_currency(Decimal(minutes) * price_per_hour / SIXTY)


def quantity_net(quantity: Decimal, price: Decimal) -> Decimal:
    """Line net of a piece or km line: 12.5 × 1.55 = 19.375 -> 19.38."""
    return round_currency(quantity * price)


def vat_amount(base: Decimal, percent: Decimal) -> Decimal:
    """VAT of one rate's base (BR-CO-17): 1122.50 at 19 % = 213.275 -> 213.28."""
    return round_currency(base * percent / HUNDRED)


def round_minutes(raw: int, increment: int, mode: TimeRoundingMode) -> int:
    """Round whole minutes to a multiple of `increment`; `nearest` rounds an exact half up.

    >>> round_minutes(82, 15, "up"), round_minutes(130, 15, "down"), round_minutes(25, 10, "nearest")
    (90, 120, 30)
    """
    if increment <= 1:
        return raw
    whole, rest = divmod(raw, increment)
    if rest == 0:
        return raw
    if mode == "up":
        return (whole + 1) * increment
    if mode == "down":
        return whole * increment
    return (whole + 1) * increment if rest * 2 >= increment else whole * increment
