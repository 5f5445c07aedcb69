"""Dataclasses as plain JSON-ready values, fast.

`dataclasses.asdict` deep-copies every leaf, which made serialising one monthly invoice's
snapshot, draft and billing documents cost about 80 ms each (issue 15's profile: 14 s for 60
invoices). The values here are immutable (frozen dataclasses of Decimal, date, str, tuples), so
nothing needs copying: `plain` builds the same structure `asdict` would, and `json.dumps` of it
gives the same text (tuples, named tuples included, become lists either way).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

#: values JSON takes as they are (or through `default=str`): returned without a look inside
_LEAVES = frozenset({str, int, float, bool, type(None), Decimal, date, datetime})
#: field names per dataclass type (dataclasses.fields is slow to ask per value)
_FIELDS: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """`dataclasses.asdict` for values that need no copy: dataclass → dict, sequences → lists."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    names = _FIELDS.get(kind)
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value
