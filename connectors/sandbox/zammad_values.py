"""Zammad's error answer and the Rails-style casts the sandbox applies to request values.

Why one small module: the state, the selector evaluation and the HTTP layer all raise the same
``{"error", "error_human"}`` answers and parse timestamps, decimals and booleans the way
Rails does, so these live below all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class ApiError(Exception):
    """An answer Zammad gives as ``{"error", "error_human"}`` with an HTTP status.

    `masked` marks unexpected server errors: non-admins see Zammad's "Error ID" text instead.
    """

    def __init__(self, status: int, message: str, *, masked: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.masked = masked


def not_found(model: str, record_id: Any) -> ApiError:
    """Rails' RecordNotFound text, which Zammad passes through."""
    return ApiError(404, f"Couldn't find {model} with 'id'={record_id}")


def parse_time(value: Any) -> datetime | None:
    """Parse a Zammad timestamp or a selector value (ISO date or datetime, any offset)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(422, f"Invalid date '{value}'") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_decimal(value: Any, field: str) -> Decimal:
    """A decimal(6,2) value as Zammad stores it (posted numbers or strings)."""
    if value is None or value == "":
        raise ApiError(422, f"{field.replace('_', ' ').capitalize()} can't be blank")
    try:
        number = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ApiError(422, f"Invalid value for param '{field}': {value!r}") from exc
    if abs(number) > Decimal("9999.99"):
        raise ApiError(422, "PG::NumericValueOutOfRange: ERROR:  numeric field overflow")
    return number


def to_bool(value: Any) -> bool:
    """Rails' boolean cast for query/body parameters."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on", "t")
