"""Jinja filters: money, hours and dates in the reader's language (1.234,56 € / €1,234.56)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import Flask
from flask_babel import format_currency, format_date, format_datetime, format_decimal, get_locale


def money(value: Decimal | int | None, currency: str = "EUR") -> str:
    return "–" if value is None else format_currency(value, currency)


def number(value: Decimal | int | float | None, places: int = 2) -> str:
    if value is None:
        return "–"
    return format_decimal(value, format="#,##0." + "0" * places if places else "#,##0")


def hours(minutes: Decimal | int | None) -> str:
    """Minutes as h:mm ("7:45"), the way team leads read contingents; negative keeps its sign."""
    if minutes is None:
        return "–"
    total = round(Decimal(minutes))
    sign = "−" if total < 0 else ""
    whole, rest = divmod(abs(total), 60)
    return f"{sign}{whole:,}:{rest:02d}".replace(",", "." if str(get_locale()) == "de" else ",")


def day(value: date | datetime | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return format_datetime(value, "dd.MM.yyyy" if str(get_locale()) == "de" else "yyyy-MM-dd")
    return format_date(value, "dd.MM.yyyy" if str(get_locale()) == "de" else "yyyy-MM-dd")


def moment(value: datetime | None) -> str:
    if value is None:
        return "–"
    return format_datetime(value, "dd.MM.yyyy HH:mm" if str(get_locale()) == "de" else "yyyy-MM-dd HH:mm")


def register(app: Flask) -> None:
    app.jinja_env.filters.update(money=money, number=number, hours=hours, day=day, moment=moment)
