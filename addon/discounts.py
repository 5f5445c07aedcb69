"""Discounts ("Rabatte") as configuration: validated for the customer and contract imports and
mapped onto the billing core's `Discount`.

The import format, per customer (`customers import`) or per contract (`contracts import`):

    "discounts": [{"label": "Stammkundenrabatt", "percent": "10"},
                  {"label": "Projektnachlass", "amount": "50.00", "on": ["time"], "as": "allowance"}]

`percent` (0 < p ≤ 100) or `amount` (per document, positive); `on` limits it to time, material,
travel or fee lines (default: all of them); `as` prints it as its own invoice line ("line",
default) or as a document-level allowance below the line total ("allowance", EN 16931 BG-20).
A customer's discounts apply to all its contracts, after the contract's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from addon import billing
from addon.billing.model import DISCOUNT_SCOPES

KEYS = {"label", "percent", "amount", "on", "as"}
PRESENTATIONS = ("line", "allowance")


class DiscountError(ValueError):
    """A discount entry that cannot be used; the message names where and why."""


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DiscountError(f"{where}: {value!r} is not an amount such as \"10\" or \"50.00\" (use a string)")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise DiscountError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number <= 0 or number != number.quantize(Decimal("0.01")):
        raise DiscountError(f"{where}: {value!r} must be positive with at most 2 decimals")
    return number


def validate_discounts(value: Any, where: str) -> list[dict[str, Any]]:
    """The discounts of one customer or contract in their stored form (strings, sorted keys)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DiscountError(f"{where}: expected a list of discounts")
    result = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise DiscountError(f"{at}: expected an object")
        unknown = set(item) - KEYS
        if unknown:
            raise DiscountError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
        label = item.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 100:
            raise DiscountError(f"{at}.label: missing (the text printed on the invoice, at most 100 characters)")
        if ("percent" in item) == ("amount" in item):
            raise DiscountError(f"{at}: give either percent or amount")
        entry: dict[str, Any] = {"label": label.strip()}
        if "percent" in item:
            percent = _number(item["percent"], f"{at}.percent")
            if percent > 100:
                raise DiscountError(f"{at}.percent: {item['percent']!r} is more than 100")
            entry["percent"] = str(percent)
        else:
            entry["amount"] = str(_number(item["amount"], f"{at}.amount").quantize(Decimal("0.01")))
        scopes = item.get("on", sorted(DISCOUNT_SCOPES))
        if not isinstance(scopes, list) or not scopes or any(s not in DISCOUNT_SCOPES for s in scopes):
            raise DiscountError(f"{at}.on: expected a list of {', '.join(sorted(DISCOUNT_SCOPES))}")
        entry["on"] = sorted(set(scopes))
        presentation = item.get("as", "line")
        if presentation not in PRESENTATIONS:
            raise DiscountError(f"{at}.as: {presentation!r} is not one of {', '.join(PRESENTATIONS)}")
        entry["as"] = presentation
        result.append(entry)
    return result


def engine_discounts(*stored: Iterable[dict[str, Any]] | str | None) -> tuple[billing.Discount, ...]:
    """The core's discounts from stored lists (or their JSON text), in the order given."""
    discounts: list[billing.Discount] = []
    for items in stored:
        if items is None:
            continue
        for item in json.loads(items) if isinstance(items, str) else items:
            discounts.append(billing.Discount(
                label=item["label"],
                percent=Decimal(item["percent"]) if "percent" in item else None,
                amount=Decimal(item["amount"]) if "amount" in item else None,
                applies_to=frozenset(item["on"]),
                presentation=item["as"],
            ))
    return tuple(discounts)
