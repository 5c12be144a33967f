"""Telegram's HTML parse mode: a port of tdlib's ``parse_html``.

Same tags and attributes, same error wording with byte offsets. Like Telegram, a bare ``&`` or
``>`` is kept as a literal character; a bare ``<`` starts a tag and fails as one.
"""

from __future__ import annotations

from playground.markup import (
    SPACE,
    Entity,
    FormatError,
    Open,
    SourceText,
    link_entity,
    utf8_units,
)

__all__ = ["parse_html"]

_LT, _GT, _AMP, _SLASH, _EQ = b"<", b">", b"&", b"/", b"="
_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins"}
    | {"tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote"}
)
_HTML_NAMED = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_SURROGATES = range(0xD800, 0xE000)
_MAX_CODE_POINT = 0x10FFFF
_MAX_ENTITY_LENGTH = 10  # tdlib gives up on a numeric entity this long
_BMP_LAST = 0xFFFF  # code points above it take two UTF-16 units


def _char(code: int) -> bytes:
    if code in _SURROGATES:
        raise FormatError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    return chr(code).encode()


def _decode_html_entity(text: SourceText, pos: int) -> tuple[int, int] | None:
    """Decode the character reference at ``pos``: (code point, position after it), or None."""
    end = pos + 1
    code = 0
    if text[pos + 1] == ord("#"):
        end += 1
        if text[pos + 2] == ord("x"):
            end += 1
            while text[end] and chr(text[end]) in "0123456789abcdefABCDEF":
                code = code * 16 + int(chr(text[end]), 16)
                end += 1
        else:
            while ord("0") <= text[end] <= ord("9"):
                code = code * 10 + text[end] - ord("0")
                end += 1
        if code == 0 or code >= _MAX_CODE_POINT or end - pos >= _MAX_ENTITY_LENGTH:
            return None
    else:
        while chr(text[end]).isascii() and chr(text[end]).isalpha():
            end += 1
        named = _HTML_NAMED.get(text.data[pos + 1 : end])
        if named is None:
            return None
        code = named
    if text[end] == ord(";"):
        end += 1
    return code, end


def _skip_spaces(text: SourceText, i: int) -> int:
    while text[i] and text[i] in SPACE:
        i += 1
    return i


def _skip_word(text: SourceText, i: int) -> int:
    while text[i] not in SPACE and text[i] != ord(_GT):
        i += 1
    return i


def _html_attributes(text: SourceText, i: int, tag: str, begin: int) -> tuple[str, int]:
    """Read a start tag's attributes from ``i``; return the tag's argument and the '>' position."""
    argument = ""
    while True:
        i = _skip_spaces(text, i)
        if text[i] == ord(_GT):
            return argument, i
        name_begin = i
        while text[i] not in SPACE and chr(text[i]) not in "=>/\"'":
            i += 1
        name = text.data[name_begin:i]
        if not name:
            raise FormatError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        i = _skip_spaces(text, i)
        if text[i] != ord(_EQ):
            if not text[i]:
                raise FormatError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            argument = "1" if (tag, name) == ("blockquote", b"expandable") else argument
            continue
        i = _skip_spaces(text, i + 1)
        if not text[i]:
            raise FormatError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        value, i = _html_attribute_value(text, i)
        if not text[i]:
            raise FormatError(f"Unclosed start tag at byte offset {begin}")
        argument = _html_argument(tag, name, value, argument)


def _is_name_token(c: int) -> bool:
    return bool(c) and ((chr(c).isascii() and chr(c).isalnum()) or chr(c) in ".-")


def _html_attribute_value(text: SourceText, i: int) -> tuple[str, int]:
    if chr(text[i]) not in "'\"":
        token_begin = i
        while _is_name_token(text[i]):
            i += 1
        if text[i] not in SPACE and text[i] != ord(_GT):
            raise FormatError(f"Unexpected end of name token at byte offset {token_begin}")
        return text.data[token_begin:i].lower().decode(errors="replace"), i
    end_char = text[i]
    i += 1
    value = bytearray()
    while text[i] != end_char and text[i]:
        if text[i] == ord(_AMP) and (decoded := _decode_html_entity(text, i)) is not None:
            code, i = decoded
            value += _char(code)
            continue
        value.append(text[i])
        i += 1
    if text[i] == end_char:
        i += 1
    return value.decode(errors="replace"), i


def _html_argument(tag: str, name: bytes, value: str, argument: str) -> str:
    if tag == "a" and name == b"href":
        return value
    if tag == "code" and name == b"class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == b"class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "tg-emoji" and name == b"emoji-id":
        return value
    if tag == "blockquote" and name == b"expandable":
        return "1"
    return argument


_HTML_SIMPLE = {"i": "Italic", "em": "Italic", "b": "Bold", "strong": "Bold"} | {
    "s": "Strikethrough",
    "strike": "Strikethrough",
    "del": "Strikethrough",
    "u": "Underline",
    "ins": "Underline",
    "tg-spoiler": "Spoiler",
    "span": "Spoiler",
}


def _close_html_tag(top: Open, utf16: int, out: bytearray, entities: list[Entity]) -> None:
    offset, length, tag = top.utf16, utf16 - top.utf16, top.kind
    last = entities[-1] if entities else None
    same_span = last is not None and last.offset == offset and last.length == length
    if tag in _HTML_SIMPLE:
        entities.append(Entity(_HTML_SIMPLE[tag], offset, length))
    elif tag == "tg-emoji":
        if not top.argument.isdigit() or int(top.argument) == 0:
            raise FormatError("Invalid custom emoji identifier specified")
        entities.append(Entity("CustomEmoji", offset, length, top.argument))
    elif tag == "a":
        url = top.argument or out[top.out_pos :].decode(errors="replace")
        if (entity := link_entity(url, offset, length)) is not None:
            entities.append(entity)
    elif tag == "pre" and last is not None and same_span and last.kind == "Code" and last.argument:
        last.kind = "PreCode"
    elif tag == "code" and last is not None and same_span and last.kind == "Pre" and top.argument:
        last.kind, last.argument = "PreCode", top.argument
    elif tag in {"pre", "code"}:
        entities.append(Entity(tag.title(), offset, length, top.argument))
    else:  # blockquote
        kind = "ExpandableBlockQuote" if top.argument else "BlockQuote"
        entities.append(Entity(kind, offset, length))


class _Html:
    """tdlib's parse_html, one state object instead of one long function."""

    def __init__(self, source: str) -> None:
        self.text = SourceText(source)
        self.out = bytearray()
        self.utf16 = 0
        self.entities: list[Entity] = []
        self.nested: list[Open] = []

    def parse(self) -> tuple[str, list[Entity]]:
        text, i = self.text, 0
        while i < text.size:
            c = text[i]
            if c == ord(_AMP) and (decoded := _decode_html_entity(text, i)) is not None:
                code, i = decoded
                self.out += _char(code)
                self.utf16 += 2 if code > _BMP_LAST else 1
            elif c != ord(_LT):
                self.utf16 += utf8_units(c)
                self.out.append(c)
                i += 1
            elif text[i + 1] != ord(_SLASH):
                i = self._start_tag(i) + 1
            else:
                i = self._end_tag(i) + 1
        if self.nested:
            tag = self.nested[-1].kind
            raise FormatError(f'Can\'t find end tag corresponding to start tag "{tag}"')
        for entity in self.entities:
            if entity.kind == "Code":
                entity.argument = ""
        return self.out.decode(), self.entities

    def _start_tag(self, begin: int) -> int:
        text = self.text
        i = _skip_word(text, begin + 1)
        if not text[i]:
            raise FormatError(f"Unclosed start tag at byte offset {begin}")
        tag = text.data[begin + 1 : i].lower().decode(errors="replace")
        if tag not in _HTML_TAGS:
            raise FormatError(f'Unsupported start tag "{tag}" at byte offset {begin}')
        argument, i = _html_attributes(text, i, tag, begin)
        if tag == "span" and argument != "spoiler":
            raise FormatError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.nested.append(Open(tag, argument, self.utf16, len(self.out)))
        return i

    def _end_tag(self, begin: int) -> int:
        text = self.text
        if not self.nested:
            raise FormatError(f"Unexpected end tag at byte offset {begin}")
        i = _skip_word(text, begin + 1)
        end_tag = text.data[begin + 2 : i].lower().decode(errors="replace")
        i = _skip_spaces(text, i)
        if text[i] != ord(_GT):
            raise FormatError(f"Unclosed end tag at byte offset {begin}")
        top = self.nested.pop()
        if end_tag and end_tag != top.kind:
            raise FormatError(
                f'Unmatched end tag at byte offset {begin}, expected "</{top.kind}>", '
                f'found "</{end_tag}>"'
            )
        if self.utf16 > top.utf16:
            _close_html_tag(top, self.utf16, self.out, self.entities)
        return i


def parse_html(source: str) -> tuple[str, list[Entity]]:
    """Parse Telegram HTML into plain text and entities, or raise FormatError as tdlib does."""
    return _Html(source).parse()
