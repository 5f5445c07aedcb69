"""The short note syntax technicians use to book materials, travel and on-site visits.

Helpdesk-neutral and pure: connectors hand in the text of an internal note (Zammad article,
RT comment) and get neutral `RemoteExtra` records and `BookingProblem`s back.

    Material: 2 × SSD 1 TB à 87,40 € [Hardware]
    Material: Netzteil 650 W @ 79.90
    Fahrt: 38 km                 Travel: 2 × 38 km (hin und zurück)
    Vor-Ort: ja

Why strict: whatever is read here ends up on an invoice. A line that starts with a keyword and a
colon is a booking; if any part of it is unclear (no price, an amount that could be 1.234 or
1234, a foreign currency, text after the distance that holds more numbers) it becomes a
problem with the exact reason, and nothing is billed from it. Lines without a keyword are
ordinary note text and are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Literal

from connectors.base import BookingProblem, RemoteExtra

# Keyword (normalised: lower case, without spaces, hyphens, dots) → booking kind.
KEYWORDS: dict[str, Literal["material", "travel", "visit"]] = {
    "material": "material",
    "materials": "material",
    "materialien": "material",
    "fahrt": "travel",
    "anfahrt": "travel",
    "travel": "travel",
    "vorort": "visit",
    "onsite": "visit",
}
VISIT_DESCRIPTION = "Vor-Ort-Einsatz / on-site visit"
YES = {"ja", "j", "yes", "y", "x", "1", "true"}
NO = {"nein", "n", "no", "0", "false"}

_KEYWORD_LINE = re.compile(
    r"^\s*(?:[-*•]\s*)?(?P<keyword>[A-Za-zÄÖÜäöü][\w .-]{0,20}?)\s*:(?P<rest>.*)$"
)
_CATEGORY = re.compile(r"\s*\[(?P<category>[^\[\]]*)\]\s*$")
# The last "à/á/a/je/each" (a word) or "@" before the price; the description keeps the rest.
_PRICE = re.compile(
    r"^(?P<head>.*\S)(?:\s+(?:à|á|a|je|each)\s*|\s*@\s*)"
    r"(?P<price>(?:€|eur|euro)?\s*-?\d\S*(?:\s+\S+){0,2})$",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"^(?P<qty>\d[\d.,]*)(?:\s*×\s*|\s*[xX*]\s+|\s+(?:stk\.?|stück|pcs\.?|pc\.?)\s+)(?P<rest>.+)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d[\d.,]*")
_DISTANCE = re.compile(
    r"^(?:(?P<trips>\d+)\s*(?:×|[xX*])\s*)?(?P<km>\d[\d.,]*)\s*"
    r"(?P<unit>km|kilometer|kilometre|mi|miles?|meilen)\b\.?"
    r"(?P<tail>.*)$",
    re.IGNORECASE,
)
_FOREIGN = re.compile(r"\$|£|\b(?:usd|chf|gbp|dollar)\b", re.IGNORECASE)
_EURO = re.compile(
    r"^(?:€|eur\b|euro\b)\s*(?P<a>.*)$|^(?P<b>.*?)\s*(?:€|eur|euro)\.?$", re.IGNORECASE
)


class BookingSyntaxError(ValueError):
    """A booking line that cannot be read; the message is the reason shown to the agent."""


@dataclass(frozen=True)
class ParsedLine:
    """What one booking line says, before it is tied to a ticket and a note."""

    kind: Literal["material", "travel", "visit"]
    description: str
    quantity: Decimal
    unit_cost: Decimal | None = None
    category: str | None = None


def parse_amount(text: str, what: str = "amount") -> Decimal:
    """A German or English decimal: `87,40`, `87.40`, `1.234,56`, `1,234.56`, `87,-`.

    Rejects what could be read two ways (`1.234` is 1234 in German and 1.234 in English)
    instead of guessing.
    """
    raw = text.strip()
    value = re.sub(r"[.,]-{1,2}$", "", raw)  # "87,-" is 87 (German price notation)
    if re.fullmatch(r"\d+", value):
        return Decimal(value)
    if re.fullmatch(r"[1-9]\d{0,2}[.,]\d{3}", value):
        digits = value.replace(".", "").replace(",", "")
        raise BookingSyntaxError(
            f"{what} {raw!r} is ambiguous (thousands or decimals?): write {digits},00 if you "
            f"mean {digits}, else give two decimals"
        )
    if re.fullmatch(r"\d+[.,]\d+", value):
        return Decimal(value.replace(",", "."))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", value):
        return Decimal(value.replace(".", "").replace(",", "."))
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", value):
        return Decimal(value.replace(",", ""))
    raise BookingSyntaxError(f"{what} {raw!r} is not a number")


def _parse_price(text: str) -> Decimal:
    price = text.strip()
    if re.match(r"^(?:€|eur\w*)?\s*-", price, re.IGNORECASE):
        raise BookingSyntaxError(
            f"price {price!r} is negative; correct a booking by deleting its note"
        )
    if _FOREIGN.search(price):
        raise BookingSyntaxError(f"price {price!r} is not in EUR; book materials in EUR")
    price = re.sub(
        r"\s*(?:/\s*(?:stk\.?|stück|st\.?|pc|pcs|piece))$", "", price, flags=re.IGNORECASE
    )
    if re.search(r"\bbrutto\b|\bgross\b|\binkl", price, re.IGNORECASE):
        raise BookingSyntaxError(f"price {price!r} is gross; book the net price (without VAT)")
    price = re.sub(r"\s+(?:netto|net)$", "", price, flags=re.IGNORECASE)
    euro = _EURO.match(price)
    if euro:
        price = (euro.group("a") if euro.group("a") is not None else euro.group("b")).strip()
    return parse_amount(price, "price")


def _parse_material(rest: str) -> ParsedLine:
    text = rest.strip()
    if not text:
        raise BookingSyntaxError(
            "material line is empty: write e.g. 'Material: 2 × SSD 1 TB à 87,40'"
        )
    category = None
    found = _CATEGORY.search(text)
    if found:
        category = found.group("category").strip()
        if not category:
            raise BookingSyntaxError(
                "empty category '[]': name it, e.g. '[Hardware]', or leave it out"
            )
        text = text[: found.start()].strip()
    priced = _PRICE.match(text)
    if not priced:
        if _FOREIGN.search(text):
            raise BookingSyntaxError(f"price in {text!r} is not in EUR; book materials in EUR")
        raise BookingSyntaxError("no unit price: write the net price per piece, e.g. '… à 87,40'")
    head, unit_cost = priced.group("head").strip(), _parse_price(priced.group("price"))
    counted = _QUANTITY.match(head)
    if counted:
        quantity = parse_amount(counted.group("qty"), "quantity")
        description = counted.group("rest").strip()
    elif re.fullmatch(r"\d[\d.,]*\s*[×xX*]?", head):
        raise BookingSyntaxError(
            "material without a description: say what it is, e.g. '2 × SSD 1 TB'"
        )
    elif head[:1].isdigit():
        raise BookingSyntaxError(
            f"quantity unclear in {head!r}: write the count with '×' or 'x', e.g. '3 × Patchkabel'"
        )
    else:
        quantity, description = Decimal(1), head
    if quantity <= 0:
        raise BookingSyntaxError(
            f"quantity {counted.group('qty') if counted else quantity} must be positive"
        )
    if not re.search(r"[^\W\d_]", description):
        raise BookingSyntaxError(
            "material without a description: say what it is, e.g. '2 × SSD 1 TB'"
        )
    return ParsedLine("material", description, quantity, unit_cost, category)


def _parse_travel(keyword: str, rest: str) -> ParsedLine:
    text = rest.strip()
    distance = _DISTANCE.match(text)
    if not distance:
        if _NUMBER.fullmatch(text):
            raise BookingSyntaxError(f"distance {text!r} has no unit: write e.g. '{text} km'")
        raise BookingSyntaxError("travel needs a distance in km, e.g. 'Fahrt: 38 km'")
    if distance.group("unit").lower() != "km" and not distance.group("unit").lower().startswith(
        "kilomet"
    ):
        raise BookingSyntaxError(f"distance in {distance.group('unit')!r}: book travel in km")
    km = parse_amount(distance.group("km"), "distance")
    trips = int(distance.group("trips") or 1)
    if km <= 0 or trips <= 0:
        raise BookingSyntaxError("distance must be positive")
    tail = distance.group("tail").strip()
    unit_cost = None
    priced = re.match(r"^(?:à|á|a|@|je)\s*(?P<price>.+?)\s*(?:/\s*km)?$", tail, re.IGNORECASE)
    if priced:
        unit_cost = _parse_price(priced.group("price"))
        tail = ""
    remark = tail.strip(" ()–-,;").strip()
    if remark and _NUMBER.search(remark):
        raise BookingSyntaxError(
            f"text after the distance holds more numbers ({remark!r}): book one line per trip, "
            "or the total, e.g. 'Fahrt: 2 × 38 km'"
        )
    shown = f"{trips} × {distance.group('km')} km" if trips > 1 else f"{distance.group('km')} km"
    description = f"{keyword} {shown}" + (f" ({remark})" if remark else "")
    return ParsedLine("travel", description, km * trips, unit_cost)


def _parse_visit(rest: str) -> ParsedLine | None:
    answer = rest.strip().rstrip(".!").strip().lower()
    if answer in YES:
        return ParsedLine("visit", VISIT_DESCRIPTION, Decimal(1))
    if answer in NO:
        return None
    raise BookingSyntaxError(f"on-site answer {rest.strip()!r} is not 'ja' or 'nein' (yes/no)")


def parse_line(line: str) -> ParsedLine | None:
    """One line: None for ordinary text (or 'Vor-Ort: nein'), else what it books.

    Raises `BookingSyntaxError` with the reason when a booking line cannot be read.
    """
    found = _KEYWORD_LINE.match(line)
    if not found:
        return None
    keyword = found.group("keyword").strip()
    kind = KEYWORDS.get(re.sub(r"[\s.\-_]", "", keyword).casefold())
    if kind is None:
        return None
    rest = found.group("rest")
    if kind == "material":
        return _parse_material(rest)
    if kind == "travel":
        return _parse_travel(keyword, rest)
    return _parse_visit(rest)


def parse_note(
    text: str, *, ticket_remote_id: str, source_id: str, booked_at: datetime, agent: str
) -> tuple[list[RemoteExtra], list[BookingProblem]]:
    """Every booking line of one note (plain text), with ids `<source_id>:<line number>`."""
    extras: list[RemoteExtra] = []
    problems: list[BookingProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            parsed = parse_line(line)
        except BookingSyntaxError as exc:
            problems.append(BookingProblem(ticket_remote_id, source_id, line.strip(), str(exc)))
            continue
        if parsed is None:
            continue
        extras.append(
            RemoteExtra(
                remote_id=f"{source_id}:{number}",
                ticket_remote_id=ticket_remote_id,
                kind=parsed.kind,
                description=parsed.description,
                quantity=parsed.quantity,
                unit_cost=parsed.unit_cost,
                category=parsed.category,
                booked_at=booked_at,
                agent=agent,
            )
        )
    return extras, problems


class _TextExtractor(HTMLParser):
    """Block elements and `<br>` end a line; everything else is text."""

    # Why not a library: html2text & co. render Markdown (`**Material:**`), which would hide
    # the keyword; all that is needed here is "where does a line end".

    BLOCKS = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "ul",
            "ol",
            "table",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS and tag != "br":
            self._break()

    def _break(self) -> None:
        """One line break between blocks (`</div><div>` is one new line, not an empty one)."""
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data.replace("\n", " "))


def note_text(body: str, content_type: str | None) -> str:
    """A note's text with one booking per line: HTML notes (Zammad's editor) become lines."""
    if content_type and "html" in content_type.lower():
        extractor = _TextExtractor()
        extractor.feed(body)
        extractor.close()
        text = "".join(extractor.parts)
    else:
        text = body
    lines = [line.replace("\xa0", " ").rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")
