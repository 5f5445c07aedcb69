"""Zammad's selector operators (``Selector::Sql``) for ``tickets/search`` conditions.

Why separate: the operator table is the part of the search a billing poll depends on most
(``is``, ``after (absolute)``, ``is set`` ...), and it is easiest to check against Zammad's
list when it stands alone. Values compare as strings (ids arrive as ``["4"]``), absolute
dates as ``>=``/``<=``, relative ones against the sandbox clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from connectors.sandbox.zammad_values import ApiError, parse_time


def evaluate(operator: str, actual: Any, value: Any, now: datetime) -> bool:
    """One selector operator as ``Selector::Sql`` renders it."""
    values = value if isinstance(value, list) else [value]
    wanted = {_norm(v) for v in values}
    actual_items = actual if isinstance(actual, list) else [actual]
    if operator in ("is", "is any of"):
        if value is None:
            return actual in (None, "", [])
        return any(_norm(a) in wanted for a in actual_items)
    if operator in ("is not", "is none of"):
        if value is None:
            return actual not in (None, "", [])
        return actual is None or not any(_norm(a) in wanted for a in actual_items)
    if operator == "is set":
        return actual not in (None, "", [])
    if operator == "not set":
        return actual in (None, "", [])
    text = "" if actual is None else str(actual).lower()
    needles = [str(v).lower() for v in values if v is not None]
    if operator == "contains":
        return any(n in text for n in needles)
    if operator == "contains not":
        return not any(n in text for n in needles)
    if operator == "starts with one of":
        return any(text.startswith(n) for n in needles)
    if operator == "ends with one of":
        return any(text.endswith(n) for n in needles)
    moment = parse_time(actual) if operator in DATE_OPERATORS else None
    if operator in DATE_OPERATORS and moment is None:
        return False
    if operator == "after (absolute)":
        return moment >= _boundary(value)
    if operator == "before (absolute)":
        return moment <= _boundary(value)
    if operator == "today":
        return moment.date() == now.date()
    if operator in RELATIVE_OPERATORS:
        span = _span(value)
        low, high = RELATIVE_OPERATORS[operator](now, span)
        return (low is None or moment >= low) and (high is None or moment <= high)
    raise ApiError(422, f"Invalid condition, operator '{operator}' is invalid")


RELATIVE_OPERATORS: dict[str, Callable[[datetime, timedelta],
                                       tuple[datetime | None, datetime | None]]] = {
    "within last (relative)": lambda now, span: (now - span, now),
    "within next (relative)": lambda now, span: (now, now + span),
    "before (relative)": lambda now, span: (None, now - span),
    "after (relative)": lambda now, span: (now + span, None),
    "till (relative)": lambda now, span: (None, now + span),
    "from (relative)": lambda now, span: (now - span, None),
}
DATE_OPERATORS = {"after (absolute)", "before (absolute)", "today", *RELATIVE_OPERATORS}
UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000,
         "year": 31536000}


def _boundary(value: Any) -> datetime:
    single = value[0] if isinstance(value, list) and value else value
    moment = parse_time(single)
    if moment is None:
        raise ApiError(422, "Invalid condition, value is missing")
    return moment


def _span(value: Any) -> timedelta:
    if not isinstance(value, dict):
        raise ApiError(422, "Invalid condition, relative value needs value and range")
    seconds = UNITS.get(str(value.get("range")))
    if seconds is None:
        raise ApiError(422, f"Unknown range {value.get('range')}")
    return timedelta(seconds=int(value.get("value", 0)) * seconds)


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
