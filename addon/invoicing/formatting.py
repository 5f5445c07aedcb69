"""Locale-aware formatting of what a printed invoice shows: money, quantities, dates, durations.

Every figure on the PDF goes through one `Formats` object built for the invoice's language, so
German and English documents differ only here and in the label texts, never in the template logic.
babel does the locale work (separators, currency symbol position, month names).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from stdnum import iban as stdnum_iban

#: Invoice language -> babel locale. en_GB writes "5 Nov 2026", which no reader misreads.
LOCALES: dict[str, str] = {"de": "de_DE", "en": "en_GB"}

#: UN/ECE rec. 20 unit codes -> printed unit label per language.
UNIT_LABELS: dict[str, dict[str, str]] = {
    "de": {"HUR": "Std.", "C62": "Stk.", "KMT": "km", "MIN": "Min.", "DAY": "Tag(e)"},
    "en": {"HUR": "h", "C62": "pcs", "KMT": "km", "MIN": "min", "DAY": "day(s)"},
}

#: Units whose quantity always shows two decimals (1,50 Std.); others drop trailing zeros.
TWO_DECIMAL_UNITS = frozenset({"HUR", "KMT"})


def language_of(tag: str) -> str:
    """The supported invoice language for a tag such as "de", "de-DE" or "en_GB".

    Raises ValueError for anything else: a document in a language nobody chose is worse than none.
    """
    language = tag.replace("_", "-").split("-")[0].lower()
    if language not in LOCALES:
        supported = ", ".join(sorted(LOCALES))
        raise ValueError(f"invoice language {tag!r} is not supported (supported: {supported})")
    return language


@dataclass(frozen=True)
class Formats:
    """Formatters for one language and currency, used as Jinja filters by the PDF templates."""

    language: str
    currency: str

    @property
    def locale(self) -> str:
        return LOCALES[self.language]

    def money(self, amount: Decimal) -> str:
        """A currency amount with the currency's minor units: "1.234,56 €" / "€1,234.56"."""
        return format_currency(amount, self.currency, locale=self.locale)

    def unit_price(self, amount: Decimal) -> str:
        """Like `money`, but keeps sub-cent digits (0,345 €/km) instead of silently rounding."""
        return format_currency(
            amount, self.currency, locale=self.locale, decimal_quantization=False
        )

    def quantity(self, value: Decimal, unit: str) -> str:
        """The quantity number alone: hours and km with 2 decimals, pieces without trailing zeros."""
        pattern = "#,##0.00" if unit in TWO_DECIMAL_UNITS else "#,##0.###"
        return format_decimal(value, pattern, locale=self.locale)

    def unit(self, code: str) -> str:
        """The printed unit label; an unknown code is shown as the code itself."""
        return UNIT_LABELS[self.language].get(code, code)

    def percent(self, rate: Decimal) -> str:
        """A VAT rate given in percent (19 -> "19 %" in German, "19%" in English)."""
        number = format_decimal(rate, "#,##0.##", locale=self.locale)
        return f"{number}\u00a0%" if self.language == "de" else f"{number}%"

    def date(self, value: date) -> str:
        """A calendar date: "05.11.2026" / "5 Nov 2026"."""
        return format_date(value, "medium", locale=self.locale)

    def period(self, start: date, end: date) -> str:
        """A service period; a single day is printed once."""
        if start == end:
            return self.date(start)
        return f"{self.date(start)} – {self.date(end)}"

    def short_period(self, start: date, end: date) -> str:
        """A line's service dates without repeating what both ends share: "19.–21.10.2026",
        "28.10.–02.11.2026" / "19–21 Oct 2026", "28 Oct – 2 Nov 2026"."""
        if start == end:
            return self.date(start)
        if self.language == "de":
            if (start.year, start.month) == (end.year, end.month):
                return f"{start:%d}.–{self.date(end)}"
            if start.year == end.year:
                return f"{start:%d.%m.}–{self.date(end)}"
            return f"{self.date(start)}–{self.date(end)}"
        if (start.year, start.month) == (end.year, end.month):
            return f"{start.day}–{self.date(end)}"
        if start.year == end.year:
            return f"{format_date(start, 'd MMM', locale=self.locale)} – {self.date(end)}"
        return f"{self.date(start)} – {self.date(end)}"

    def month(self, period: str) -> str:
        """A billing month "2026-11" in words: "November 2026" (both languages)."""
        return format_date(date.fromisoformat(f"{period}-01"), "LLLL yyyy", locale=self.locale)

    def duration(self, minutes: Decimal) -> str:
        """Minutes as h:mm (95 -> "1:35"), rounded half up to the whole minute."""
        whole = int(Decimal(minutes).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        sign = "-" if whole < 0 else ""
        hours, rest = divmod(abs(whole), 60)
        return f"{sign}{hours}:{rest:02d}"

    def iban(self, value: str) -> str:
        """An IBAN in groups of four, as printed on paper ("DE89 3704 0044 ...")."""
        return stdnum_iban.format(value)

    def country(self, code: str) -> str:
        """The country's name in the invoice language ("AT" -> "Österreich" / "Austria")."""
        return Locale.parse(self.locale).territories.get(code.upper(), code)
