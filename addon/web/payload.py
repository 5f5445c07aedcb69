"""Checking what a sender pushes before anything reaches the database.

Why one module: the push API and Zammad's webhook take JSON from outside, and every value that
is stored must fit the column it goes into on *both* databases. PostgreSQL refuses NUL bytes
and strings longer than `VARCHAR(n)`, both refuse lone surrogates (they cannot be encoded), a
timestamp near year 1 or 9999 overflows when converted to UTC, and JSON nested deeply enough
exhausts Python's recursion. Each of these was a 500; here each becomes a `PayloadError`
naming the field (a 422). Column lengths are read from the models, so a migration that
widens a column widens what is accepted.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.orm import InstrumentedAttribute

#: Deeper than any sender's document (Zammad's webhook payload nests about 6 levels).
MAX_DEPTH = 32
#: Bookings before 2000 or from 2100 on are typos or probes, not work to bill.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,]+(?:Z|[+-][0-9]{2}:?[0-9]{2}(?::?[0-9]{2})?)",
                          re.ASCII | re.IGNORECASE)


class PayloadError(ValueError):
    """A malformed value from outside; `field` names it as the sender wrote it (`time_entries[0].minutes`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def parse_json(raw: bytes) -> Any:
    """The body as JSON: strict UTF-8, no NaN/Infinity, at most `MAX_DEPTH` levels deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body", "is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise PayloadError("body", f"is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise PayloadError("body", f"is not JSON ({str(exc).splitlines()[0][:100]})") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise PayloadError("body", f"is nested deeper than {MAX_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so a deep document cannot exhaust the stack while being measured."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def column_length(column: InstrumentedAttribute[Any] | Column[Any]) -> int | None:
    """The `VARCHAR(n)` length of a model column (None: unbounded text)."""
    expression = column.expression if isinstance(column, InstrumentedAttribute) else column
    return getattr(expression.type, "length", None)


def storable(field: str, value: str, column: InstrumentedAttribute[Any] | Column[Any]) -> str:
    """`value` if both databases can store it in `column`, else a `PayloadError` for `field`."""
    if _UNSTORABLE.search(value):
        raise PayloadError(field, "contains a NUL byte or a lone surrogate")
    limit = column_length(column)
    if limit is not None and len(value) > limit:
        raise PayloadError(field, f"is longer than {limit} characters")
    return value


def identifier(field: str, value: Any, column: InstrumentedAttribute[Any] | Column[Any]) -> str:
    """An id as the sender gave it: a non-empty string or an integer (never a bool, list or object)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(field, "must be a string or an integer")
    text = str(value).strip()
    if not text:
        raise PayloadError(field, "missing")
    return storable(field, text, column)


def instant(field: str, raw: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, between `EARLIEST` and `LATEST`, in UTC."""
    if not _ISO_INSTANT.fullmatch(raw):
        raise PayloadError(field, f"{raw[:40]!r} is not an ISO 8601 timestamp with a UTC offset")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PayloadError(field, f"{raw!r} is not a valid timestamp") from None
    if not EARLIEST <= moment < LATEST:
        raise PayloadError(field, f"{raw!r} is not between {EARLIEST:%Y} and {LATEST:%Y}")
    return moment
