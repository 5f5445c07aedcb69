"""Dataclasses as plain JSON-ready values, fast.

`dataclasses.asdict` deep-copies every leaf, which made serialising one monthly invoice's
snapshot, draft and billing documents cost about 80 ms each (issue 15's profile: 14 s for 60
invoices). The values here are immutable (frozen dataclasses of Decimal, date, str, tuples), so
nothing needs copying: `plain` builds the same structure `asdict` would, and `json.dumps` of it
gives the same text (tuples, named tuples included, become lists either way).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any


def plain(value: Any) -> Any:
    """`dataclasses.asdict` for values that need no copy: dataclass → dict, sequences → lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value
