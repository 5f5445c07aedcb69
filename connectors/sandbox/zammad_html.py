"""The part of Zammad's HtmlSanitizer a REST caller notices in an article body."""

from __future__ import annotations

import re

_LINK = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_LINK_ATTRS = re.compile(r"""\s(rel|target)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_HREF = re.compile(r"""\shref\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_TITLE = re.compile(r"""\stitle\s*=""", re.IGNORECASE)
_EVENT_ATTRS = re.compile(r"""\son\w+\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


def _url_key(value: str) -> str:
    text = value.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text)
    return text.rstrip("/")


def sanitize_html(body: str) -> str:
    """Zammad's HtmlSanitizer, as far as a caller notices: scripts and event handlers go;
    external links get ``rel="nofollow noreferrer noopener"`` and ``target="_blank"``, plus
    ``title="<href>"`` when the link text differs from the address; links without an address
    are unwrapped."""
    body = _SCRIPT.sub("", body)
    body = _EVENT_ATTRS.sub("", body)

    def rewrite(match: re.Match[str]) -> str:
        attrs, text = match.group(1), match.group(2)
        href_match = _HREF.search(attrs)
        href = next((g for g in href_match.groups()[1:] if g is not None), "") if href_match \
            else ""
        if not href.strip():
            return text
        if href.strip().lower().startswith(("http", "ftp", "//")):
            attrs = _LINK_ATTRS.sub("", attrs).rstrip()
            attrs += ' rel="nofollow noreferrer noopener" target="_blank"'
        if _url_key(href) != _url_key(_TAGS.sub("", text)) and not _TITLE.search(attrs):
            attrs += f' title="{href}"'
        return f"<a{attrs}>{text}</a>"

    return _LINK.sub(rewrite, body)
