"""Pieces Telegram's text parsers share: the UTF-8 source, entity records, link checks.

``html_mode`` and ``markdown_mode`` port tdlib's parsers (td/telegram/MessageEntity.cpp)
on top of these: they walk the UTF-8 bytes (errors give byte offsets, as Telegram's do) and count
UTF-16 code units for entity offsets. Entity kinds here are tdlib's type names (``Bold``,
``PreCode``...), which MarkdownV2 errors quote; ``text`` maps them to Bot API types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "SPACE",
    "Entity",
    "FormatError",
    "Open",
    "SourceText",
    "checked_link",
    "emoji_id",
    "link_entity",
    "utf8_units",
]

SPACE = frozenset(b" \t\r\n\v\f\0")  # td::is_space; 0 is the end-of-text sentinel
_USER_LINK = re.compile(r"tg://user\?id=(\d{1,18})", re.IGNORECASE)
_EMOJI_LINK = re.compile(r"tg://emoji\?id=(\d{1,19})", re.IGNORECASE)


class FormatError(Exception):
    """Text Telegram refuses; the message is the description that follows "Bad Request: "."""


_TOP_TWO_BITS = 0xC0
_CONTINUATION = 0x80  # a UTF-8 continuation byte: 10xxxxxx
_FOUR_BYTE_LEAD = 0xF0  # the lead byte of a 4-byte sequence: 11110xxx


@dataclass
class Entity:
    """An entity while parsing: a tdlib type name, UTF-16 offset and length, and its argument."""

    kind: str  # tdlib type name
    offset: int
    length: int
    argument: str = ""


@dataclass
class Open:
    """An entity whose closing markup the parser has not met yet."""

    kind: str  # the HTML tag name, or the tdlib type name for Markdown
    argument: str
    utf16: int  # where the entity starts in the output, in UTF-16 code units
    out_pos: int  # where it starts in the output, in bytes
    byte_offset: int = 0  # where its markup starts in the input (Markdown errors)


def utf8_units(byte: int) -> int:
    """UTF-16 units a UTF-8 byte adds: one per lead byte, two for a 4-byte sequence."""
    if byte & _TOP_TWO_BITS == _CONTINUATION:
        return 0
    return 2 if byte >= _FOUR_BYTE_LEAD else 1


class SourceText:
    """The UTF-8 input with tdlib's NUL sentinel past its end."""

    def __init__(self, source: str) -> None:
        self.data = source.encode()
        self.size = len(self.data)

    def __getitem__(self, index: int) -> int:
        return self.data[index] if index < self.size else 0


def checked_link(url: str) -> str | None:
    """Telegram's link normalisation: a scheme and a path are added; None for a bad link."""
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url if "://" in url or url.lower().startswith("tg:") else f"http://{url}")
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in {"tg", "ton", "tonsite"}:
        return url
    if scheme not in {"http", "https", "ftp"} or not parts.hostname:
        return None
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, parts.fragment))


def emoji_id(url: str) -> str:
    """The custom emoji id of a ``tg://emoji?id=`` link; FormatError for anything else."""
    match = _EMOJI_LINK.fullmatch(url)
    if match is None or int(match.group(1)) == 0:
        raise FormatError("Invalid custom emoji identifier specified")
    return match.group(1)


def link_entity(url: str, offset: int, length: int) -> Entity | None:
    """A user mention for a ``tg://user?id=`` link, else a text link; None for a bad URL."""
    if match := _USER_LINK.fullmatch(url):
        return Entity("MentionName", offset, length, match.group(1))
    checked = checked_link(url)
    return None if checked is None else Entity("TextUrl", offset, length, checked)
