"""Telegram's text formatting, as the Bot API server applies it to the text a bot sends.

``format_text`` checks explicit ``entities``, trims the text as Telegram does and returns Bot
API ``MessageEntity`` dicts with offsets in UTF-16 code units, with the ``/commands`` Telegram
detects by itself added.

No parse mode is implemented: the bot sends entities, never HTML or MarkdownV2 (``bot.formatting``
turns Markdown into entities), so a request with a ``parse_mode`` is refused the way Telegram
refuses one it does not know (400 ``Bad Request: unsupported parse_mode``) and nothing is sent.
As Telegram does (tdlib's ``fix_formatted_text``), an entity that starts or ends inside a
surrogate pair is refused, and so is a message text of nothing but blanks and invisible
characters (``shows_nothing``). Stricter than Telegram, on purpose: explicit ``entities`` that
fall outside the text or have no length are refused (Telegram silently drops or clips them,
hiding a bug in the bot). As
Telegram does, only the first ``MAX_ENTITIES`` entities of a message are applied; the rest are
ignored (the message is sent, its later formatting lost).
Not modelled: automatic url/mention/hashtag entities in outgoing text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FormatError",
    "bot_command_entities",
    "entity_text",
    "format_text",
    "mention_entities",
    "shows_nothing",
    "user_entities",
    "utf16_len",
]


class FormatError(Exception):
    """Text Telegram refuses; the message is the description that follows "Bad Request: "."""


@dataclass(frozen=True)
class Entity:
    """An entity while checking: its Bot API type, UTF-16 offset and length, and its argument."""

    kind: str
    offset: int
    length: int
    argument: str = ""


_TRIM = " \t\r\n\v\f"
_LOW_HALF = range(0xDC, 0xE0)  # the high byte of a low surrogate, in UTF-16-LE
MAX_ENTITIES = 100  # applied of one message's entities, in order of their offsets
# tdlib's get_type_priority, used to order entities that start and end together.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_KNOWN_TYPES = frozenset(_PRIORITY) | {
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "date_time",
}
_REQUIRED_FIELD = {
    "text_link": ("url",),
    "text_mention": ("user",),
    "custom_emoji": ("custom_emoji_id",),
    "date_time": ("unix_time",),
}
_ARGUMENT_FIELD = {
    "text_link": "url",
    "pre": "language",
    "custom_emoji": "custom_emoji_id",
    "date_time": "unix_time",
}
_BOT_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z][A-Za-z0-9_]{4,31}(?![\w@])")


# What tdlib's is_empty_string (td/telegram/misc.cpp) reads as nothing: blanks, the space
# characters its strip_empty_characters turns into spaces, the invisible ones it skips, and
# what its clean_input_string removes or blanks (control characters, U+2028 to U+202E).
_NOTHING = re.compile(
    "[\x00-\x20\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f\u2800\u3000"
    "\ufeff\ufffc\U000e0000-\U000e007f]*"
)


def shows_nothing(text: str) -> bool:
    """Whether Telegram refuses ``text`` as a message's text: "message text is empty".

    Telegram holds a text of nothing but blanks and invisible characters (a zero-width
    space, a no-break space, the braille blank, a byte-order mark) empty, as tdlib's
    ``fix_formatted_text`` does with ``is_empty_string``.
    """
    return _NOTHING.fullmatch(text) is not None


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def checked_link(url: str) -> str | None:
    """Telegram's link normalisation: a scheme and a path are added; None for a bad link."""
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    scheme = url.partition(":")[0].lower()
    if scheme in {"tg", "ton", "tonsite"}:
        return _telegram_link(scheme, url[len(scheme) + 1 :])
    return _web_link(url)


def _telegram_link(scheme: str, rest: str) -> str | None:
    """A tg:, ton: or tonsite: link as tdlib's ``LinkManager::check_link`` takes it.

    A host of ASCII letters, digits, ``-`` and ``_`` (and dots, for tonsite:), with no
    protocol, user, port or IPv6 address ("Wrong tg URL", "Unallowed characters in URL
    host"): ``tg://resolve?domain=x`` is one, ``tg:example.com`` and ``tg://`` are not.
    """
    rest = rest.removeprefix("//")
    authority = re.match(r"[^/?#]*", rest)
    assert authority is not None  # noqa: S101 -- the pattern matches any text
    host = authority[0].lower()
    allowed = r"[a-z0-9_.\-]+" if scheme == "tonsite" else r"[a-z0-9_\-]+"
    if host == "." or re.fullmatch(allowed, host) is None:
        return None
    query = rest[authority.end() :]
    if query.startswith("/?"):
        query = query[1:]
    return f"{scheme}://{host}{query or '/'}"


# What tdlib's parse_url (td/utils/HttpUrl.cpp) lets through in a host: RFC 3986's unreserved
# and sub-delims characters, percent escapes and any non-ASCII character.
_HOST_PART = re.compile(r"(?:[A-Za-z0-9.\-_!$,~*'();&+=]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")
_USERINFO_PART = re.compile(r"(?:[A-Za-z0-9.\-_!$,~*'();&+=:]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")


def _web_link(url: str) -> str | None:
    """A web address as tdlib's ``parse_url`` and ``LinkManager::check_link`` take it.

    Only http and https (none: http); a port of 1 to 65535; a host of allowed characters, with
    a dot in it unless it is an IPv6 address (``http://localhost`` is "Wrong HTTP URL").
    """
    scheme, rest = "http", url
    head = re.match(r"[^:/?#@\[\]]*", url)
    if head is not None and url[head.end() :].startswith("://"):
        scheme, rest = head[0].lower(), url[head.end() + 3 :]
        if scheme not in {"http", "https"}:
            return None  # "Unsupported URL protocol"
    authority = re.match(r"[^/?#]*", rest)
    assert authority is not None  # noqa: S101 -- the pattern matches any text
    query = rest[authority.end() :]
    userinfo_host, port = authority[0], ""
    colon = max(userinfo_host.rfind(mark) for mark in ":]@")
    if colon > 0 and userinfo_host[colon] == ":":
        userinfo_host, port = userinfo_host[:colon], userinfo_host[colon + 1 :]
        if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:  # noqa: PLR2004
            return None  # "Wrong port number specified in the URL"
    userinfo, _, host = userinfo_host.rpartition("@")
    host = host.lower()
    ipv6 = host.startswith("[") and host.endswith("]")
    if ipv6:
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    elif host in {"", "."} or "." not in host:
        return None  # "URL host is empty", "Host is invalid", "Wrong HTTP URL"
    elif not _HOST_PART.fullmatch(host) or not _USERINFO_PART.fullmatch(userinfo):
        return None  # "Disallowed character in URL host"
    login = f"{userinfo}@" if userinfo else ""
    port = f":{int(port)}" if port else ""
    path = query if query.startswith("/") else f"/{query}"
    return f"{scheme}://{login}{host}{port}{path}"


def _check_entity(item: object, size: int) -> Entity:
    if not isinstance(item, dict):
        raise FormatError("can't parse MessageEntity: expected an Object")
    kind = item.get("type")
    if kind is None:
        raise FormatError("can't parse MessageEntity: Can't find field \"type\"")
    if kind not in _KNOWN_TYPES:
        raise FormatError("can't parse MessageEntity: Unsupported type specified")
    for field in ("offset", "length", *_REQUIRED_FIELD.get(kind, ())):
        if item.get(field) in (None, ""):
            raise FormatError(f"can't parse MessageEntity: Can't find field \"{field}\"")
    offset, length = item["offset"], item["length"]
    if not isinstance(offset, int) or not isinstance(length, int):
        raise FormatError('can\'t parse MessageEntity: Field "offset" must be a number')
    if offset < 0 or length <= 0 or offset + length > size:
        raise FormatError(
            f"can't parse entities: entity {kind} at UTF-16 offset {offset} with length "
            f"{length} is outside the text of {size} UTF-16 code units"
        )
    return Entity(kind, offset, length, _entity_argument(kind, item))


def _entity_argument(kind: str, item: dict[str, Any]) -> str:
    if kind == "text_mention":
        user = item["user"]
        return str(user.get("id", "")) if isinstance(user, dict) else ""
    argument = str(item.get(_ARGUMENT_FIELD.get(kind, ""), "") or "")
    if kind != "text_link":
        return argument
    checked_url = checked_link(argument)
    if checked_url is None:
        raise FormatError("can't parse entities: Entity URL is invalid")
    return checked_url


def _check_entities(text: str, raw: object) -> list[Entity]:
    """Validate explicit ``entities``; offsets must lie inside ``text`` (UTF-16)."""
    if not isinstance(raw, list):
        raise FormatError("can't parse entities JSON object")
    size = utf16_len(text)
    checked = [_check_entity(item, size) for item in raw]
    if not text.isascii():
        _check_whole_characters(text, checked)
    return checked


def _check_whole_characters(text: str, entities: list[Entity]) -> None:
    """Refuse an entity that starts or ends between the two halves of a surrogate pair.

    As tdlib's ``fix_formatted_text`` (td/telegram/MessageEntity.cpp) does: "Entity begins in
    a middle of a UTF-16 symbol", or "ends in a middle".
    """
    units = text.encode("utf-16-le")
    halves = {
        at // 2 for at in range(0, len(units), 2) if units[at + 1] in _LOW_HALF
    }  # the offsets of low surrogates: inside a pair
    for entity in entities:
        if entity.offset in halves:
            raise FormatError(
                "can't parse entities: Entity begins in a middle of a UTF-16 symbol at UTF-16 "
                f"offset {entity.offset}"
            )
        if entity.offset + entity.length in halves:
            raise FormatError(
                f"can't parse entities: Entity beginning at UTF-16 offset {entity.offset} ends "
                "in a middle of a UTF-16 symbol"
            )


def _api_entity(entity: Entity, users: dict[int, dict[str, Any]]) -> dict[str, Any]:
    kind = entity.kind
    result: dict[str, Any] = {"type": kind, "offset": entity.offset, "length": entity.length}
    if kind == "text_link":
        result["url"] = entity.argument
    elif kind == "text_mention":
        user_id = int(entity.argument or 0)
        result["user"] = users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
    elif kind == "custom_emoji":
        result["custom_emoji_id"] = entity.argument
    elif kind == "pre" and entity.argument:
        result["language"] = entity.argument
    elif kind == "date_time":
        result["unix_time"] = int(entity.argument or 0)
    return result


def _trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Strip leading and trailing whitespace as Telegram does, clipping entities to what is left."""
    kept = text.strip(_TRIM)
    if kept == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip(_TRIM))])
    size = utf16_len(kept)
    clipped: list[Entity] = []
    for entity in entities:
        start = max(entity.offset - shift, 0)
        end = min(entity.offset + entity.length - shift, size)
        if end > start:
            clipped.append(Entity(entity.kind, start, end - start, entity.argument))
    return kept, clipped


def format_text(
    text: str,
    *,
    parse_mode: str | None,
    entities: object,
    users: dict[int, dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    """Check ``entities`` and trim, giving the text and entities Telegram stores.

    Raises FormatError for bad entities and for any ``parse_mode`` (none is implemented).
    """
    if parse_mode:
        raise FormatError("unsupported parse_mode")
    parsed = [] if entities is None else _check_entities(text, entities)
    parsed = sorted(parsed, key=lambda entity: entity.offset)[:MAX_ENTITIES]
    plain, parsed = _trim(text, parsed)
    parsed += _detected_commands(plain, parsed)

    def order(entity: dict[str, Any]) -> tuple[int, int, int]:
        return entity["offset"], -entity["length"], _PRIORITY.get(entity["type"], 50)

    return plain, sorted((_api_entity(entity, users) for entity in parsed), key=order)


def _detected_commands(text: str, entities: list[Entity]) -> list[Entity]:
    """``/commands`` Telegram detects in a message by itself, where no other entity lies."""
    taken = [(e.offset, e.offset + e.length) for e in entities]
    found = (Entity("bot_command", e["offset"], e["length"]) for e in bot_command_entities(text))
    return [
        command
        for command in found
        if not any(
            start < command.offset + command.length and command.offset < end for start, end in taken
        )
    ]


def bot_command_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` entities a Telegram client attaches to a user's text."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _BOT_COMMAND.finditer(text)
    ]


def mention_entities(text: str) -> list[dict[str, Any]]:
    """The ``mention`` entities a Telegram client attaches to ``@username``s in a user's text."""
    return [
        {"type": "mention", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _MENTION.finditer(text)
    ]


def user_entities(text: str) -> list[dict[str, Any]]:
    """What a client attaches to a user's text: ``/commands`` and ``@mentions``, in order."""
    found = bot_command_entities(text) + mention_entities(text)
    return sorted(found, key=lambda entity: int(entity["offset"]))


def entity_text(text: str, entity: dict[str, Any]) -> str:
    """The part of ``text`` an entity covers (its offset and length count UTF-16 units)."""
    units = text.encode("utf-16-le")
    start, end = 2 * int(entity["offset"]), 2 * (int(entity["offset"]) + int(entity["length"]))
    return units[start:end].decode("utf-16-le", errors="replace")
