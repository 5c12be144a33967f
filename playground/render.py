"""Bot API text with entities, rendered to safe HTML for the playground's page.

Every character of the text is escaped; tags come only from the entity types below, and links
only with an http, https or tg scheme. Offsets and lengths are in UTF-16 code units, as the Bot
API counts them. Entities nest (Telegram allows no partial overlap); one that would cross an
open one is closed and reopened around it, so the output is always well formed.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

__all__ = ["render_entities"]

_SIMPLE = {
    "bold": ("<b>", "</b>"),
    "italic": ("<i>", "</i>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"),
    "spoiler": ('<span class="spoiler">', "</span>"),
    "code": ("<code>", "</code>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ('<blockquote class="expandable">', "</blockquote>"),
    "mention": ('<span class="mention">', "</span>"),
    "hashtag": ('<span class="hashtag">', "</span>"),
    "cashtag": ('<span class="hashtag">', "</span>"),
    "bot_command": ('<span class="command">', "</span>"),
    "email": ('<span class="email">', "</span>"),
    "phone_number": ('<span class="phone">', "</span>"),
    "text_mention": ('<span class="mention">', "</span>"),
}
_LINK_SCHEMES = frozenset({"http", "https", "tg"})


def _safe_url(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in _LINK_SCHEMES else None


def _tags(entity: dict[str, Any], covered: str) -> tuple[str, str]:
    """The opening and closing tag of one entity; empty strings for a type shown plain."""
    kind = entity.get("type")
    if kind in _SIMPLE:
        return _SIMPLE[str(kind)]
    if kind == "pre":
        language = str(entity.get("language") or "")
        if not language:
            return "<pre><code>", "</code></pre>"
        label = html.escape(language)
        return (
            f'<pre data-language="{label}"><code class="language-{label}">',
            "</code></pre>",
        )
    url = _safe_url(entity.get("url") if kind == "text_link" else covered)
    if kind in {"text_link", "url"} and url is not None:
        escaped = html.escape(url, quote=True)
        return f'<a href="{escaped}" target="_blank" rel="noopener noreferrer">', "</a>"
    return "", ""


def _utf16_offsets(text: str) -> list[int]:
    """For each UTF-16 position 0..n, the index of the character starting there (or the next)."""
    offsets: list[int] = []
    for index, char in enumerate(text):
        offsets.append(index)
        if ord(char) > 0xFFFF:  # noqa: PLR2004 - the last code point of the BMP
            offsets.append(index + 1)
    offsets.append(len(text))
    return offsets


def render_entities(text: str, entities: list[dict[str, Any]] | None = None) -> str:
    """``text`` as HTML with its Bot API ``entities`` as tags; everything else escaped."""
    to_char = _utf16_offsets(text)
    limit = len(to_char) - 1
    spans: list[tuple[int, int, str, str]] = []
    for entity in entities or []:
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or length <= 0:
            continue
        start, end = to_char[min(max(offset, 0), limit)], to_char[min(offset + length, limit)]
        opening, closing = _tags(entity, text[start:end])
        if opening and start < end:
            spans.append((start, end, opening, closing))
    spans.sort(key=lambda span: (span[0], -span[1]))
    out: list[str] = []
    stack: list[tuple[int, int, str, str]] = []
    position = 0
    for span in spans:
        start = span[0]
        position = _close_until(text, out, stack, position, start)
        out.append(html.escape(text[position:start]))
        position = start
        crossed = [open_ for open_ in stack if open_[1] < span[1]]
        for open_ in reversed(crossed):  # an entity that would cross: close it around
            out.append(open_[3])
            stack.remove(open_)
        out.append(span[2])
        stack.append(span)
        for open_ in crossed:
            trimmed = (start, open_[1], open_[2], open_[3])
            out.append(open_[2])
            stack.append(trimmed)
    position = _close_until(text, out, stack, position, len(text))
    out.append(html.escape(text[position:]))
    out.extend(open_[3] for open_ in reversed(stack))
    return "".join(out)


def _close_until(
    text: str, out: list[str], stack: list[tuple[int, int, str, str]], position: int, until: int
) -> int:
    """Write text and close every open entity that ends at or before ``until``."""
    while stack and stack[-1][1] <= until:
        end = stack[-1][1]
        out.append(html.escape(text[position:end]))
        position = max(position, end)
        out.append(stack.pop()[3])
    return position
