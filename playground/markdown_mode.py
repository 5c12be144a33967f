"""Telegram's MarkdownV2 and legacy Markdown parse modes: ports of tdlib's parsers.

Same reserved characters, same error wording ("Character '.' is reserved and must be escaped
with the preceding backslash", "Can't find end of Bold entity at byte offset 0"), blockquotes
and expandable blockquotes included.
"""

from __future__ import annotations

from playground.markup import (
    SPACE,
    Entity,
    FormatError,
    Open,
    SourceText,
    emoji_id,
    link_entity,
    utf8_units,
)

__all__ = ["parse_markdown", "parse_markdown_v2"]

_LAST_ASCII = 126


def _reserved(c: int) -> FormatError:
    return FormatError(
        f"Character '{chr(c)}' is reserved and must be escaped with the preceding '\\'"
    )


def _escapable(c: int) -> bool:
    """Tdlib's ``text[i] > 0 && text[i] <= 126``: a backslash escapes any ASCII character."""
    return 0 < c <= _LAST_ASCII


def _md_url(text: SourceText, i: int, what: str) -> tuple[str, int]:
    """Read a Markdown link target starting at ``i``; return it and the position of ')'."""
    url_begin = i
    url = bytearray()
    while i < text.size and text[i] != ord(")"):
        if text[i] == ord("\\") and _escapable(text[i + 1]):
            url.append(text[i + 1])
            i += 2
            continue
        url.append(text[i])
        i += 1
    if text[i] != ord(")"):
        raise FormatError(f"Can't find end of {what} at byte offset {url_begin}")
    return url.decode(errors="replace"), i


def _pre_header(text: SourceText, i: int) -> tuple[str, int]:
    """After an opening triple backquote: the language and where the code itself starts."""
    language = ""
    language_end = i
    while text[language_end] not in SPACE and text[language_end] != ord("`"):
        language_end += 1
    if i != language_end and language_end < text.size and text[language_end] != ord("`"):
        language, i = text.data[i:language_end].decode(errors="replace"), language_end
    if text[i] and chr(text[i]) in "\r\n":  # one new line after the language is skipped
        pair = text[i + 1] and chr(text[i + 1]) in "\r\n" and text[i] != text[i + 1]
        i += 2 if pair else 1
    return language, i


def _md_entity_ends(c: int, text: SourceText, i: int, kind: str) -> bool:
    nxt, nxt2 = text[i + 1], text[i + 2]
    ends = {
        "Bold": c == ord("*"),
        "Italic": c == ord("_") and nxt != ord("_"),
        "Code": c == ord("`"),
        "Pre": c == ord("`") and nxt == ord("`") and nxt2 == ord("`"),
        "TextUrl": c == ord("]"),
        "Underline": c == ord("_") and nxt == ord("_"),
        "Strikethrough": c == ord("~"),
        "Spoiler": c == ord("|") and nxt == ord("|"),
        "CustomEmoji": c == ord("]"),
    }
    return ends.get("Pre" if kind == "PreCode" else kind, False)


# Opening markup, longest first, as tdlib's switch tells them apart.
_MD_OPENERS = (
    (b"__", "Underline"),
    (b"||", "Spoiler"),
    (b"![", "CustomEmoji"),
    (b"_", "Italic"),
    (b"*", "Bold"),
    (b"~", "Strikethrough"),
    (b"[", "TextUrl"),
    (b"`", "Code"),
)


class _MarkdownV2:
    """tdlib's parse_markdown_v2, one state object instead of one long function."""

    def __init__(self, source: str) -> None:
        self.text = SourceText(source)
        self.out = bytearray()
        self.utf16 = 0
        self.entities: list[Entity] = []
        self.nested: list[Open] = []
        self.have_blockquote = False
        self.can_start_blockquote = True

    def parse(self) -> tuple[str, list[Entity]]:
        text, i = self.text, 0
        while i < text.size:
            c = text[i]
            if c == ord("\\") and _escapable(text[i + 1]):
                self.utf16 += 1
                self.out.append(text[i + 1])
                if text[i + 1] != ord("\r"):
                    self.can_start_blockquote = text[i + 1] == ord("\n")
                i += 2
                continue
            in_code = self.nested and self.nested[-1].kind in {"Code", "Pre", "PreCode"}
            if c not in (b"`" if in_code else b"_*[]()~`>#+-=|{}.!\n"):
                if utf8_units(c) and c != ord("\r"):
                    self.can_start_blockquote = False
                self.utf16 += utf8_units(c)
                self.out.append(c)
                i += 1
                continue
            ends = bool(self.nested) and (
                (self.have_blockquote and c == ord("\n") and text[i + 1] != ord(">"))
                or _md_entity_ends(c, text, i, self.nested[-1].kind)
            )
            i = self._end(c, i) if ends else self._begin(c, i)
        return self._finish()

    def _open(self, kind: str, byte_offset: int, argument: str = "") -> None:
        self.nested.append(Open(kind, argument, self.utf16, len(self.out), byte_offset))

    def _begin(self, c: int, i: int) -> int:
        data = self.text.data
        if data.startswith(b"```", i):
            language, start = _pre_header(self.text, i + 3)
            self._open("PreCode" if language else "Pre", i, language)
            return start
        for markup, kind in _MD_OPENERS:
            if data.startswith(markup, i):
                self._open(kind, i)
                return i + len(markup)
        if c == ord("\n"):
            self.utf16 += 1
            self.out.append(c)
            self.can_start_blockquote = True
        elif c == ord(">") and self.can_start_blockquote:
            if not self.have_blockquote:
                self._open("BlockQuote", i)
                self.have_blockquote = True
        else:
            raise _reserved(c)
        return i + 1

    def _unfinished(self, top: Open) -> FormatError:
        return FormatError(f"Can't find end of {top.kind} entity at byte offset {top.byte_offset}")

    def _expandable_end(self, i: int) -> Open:
        """A new line ends the blockquote; only a ``||`` right before it may be open."""
        top = self.nested[-1]
        just_before = top.byte_offset == i - 2 or (
            top.byte_offset == i - 3 and self.out[-1:] == b"\r"
        )
        if top.kind != "Spoiler" or not just_before:
            raise self._unfinished(top)
        self.nested.pop()
        if self.nested[-1].kind != "BlockQuote":
            raise self._unfinished(self.nested[-1])
        return self.nested[-1]

    def _end(self, c: int, i: int) -> int:
        top = self.nested[-1]
        kind, argument, skip = top.kind, top.argument, self.utf16 == top.utf16
        if c == ord("\n") and kind != "BlockQuote":
            top, kind = self._expandable_end(i), "ExpandableBlockQuote"
        if kind in {"Underline", "Spoiler"}:
            i += 1
        elif kind in {"Pre", "PreCode"}:
            i += 2
        elif kind == "TextUrl":
            url = self.out[top.out_pos :].decode(errors="replace")
            if self.text[i + 1] == ord("("):
                url, i = _md_url(self.text, i + 2, "a URL")
            link = link_entity(url, 0, 0)
            skip = skip or link is None
            kind, argument = (link.kind, link.argument) if link else (kind, argument)
        elif kind == "CustomEmoji":
            if self.text[i + 1] != ord("("):
                raise FormatError("Custom emoji entity must contain a tg://emoji URL")
            url, i = _md_url(self.text, i + 2, "a custom emoji URL")
            argument = emoji_id(url)
        elif kind in {"BlockQuote", "ExpandableBlockQuote"}:
            self.have_blockquote, self.can_start_blockquote, skip = False, True, False
            self.out.append(c)
            self.utf16 += 1
        if not skip:
            self.entities.append(Entity(kind, top.utf16, self.utf16 - top.utf16, argument))
        self.nested.pop()
        return i + 1

    def _finish(self) -> tuple[str, list[Entity]]:
        if self.have_blockquote:
            kind = "BlockQuote"
            top = self.nested[-1]
            if top.kind == "Spoiler" and top.byte_offset == self.text.size - 2:
                self.nested.pop()
                kind = "ExpandableBlockQuote"
            top = self.nested[-1]
            if top.kind == "BlockQuote":
                if self.utf16 != top.utf16:
                    self.entities.append(Entity(kind, top.utf16, self.utf16 - top.utf16))
                self.nested.pop()
        if self.nested:
            raise self._unfinished(self.nested[-1])
        return self.out.decode(), self.entities


def parse_markdown_v2(source: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into plain text and entities, or raise FormatError as tdlib does."""
    return _MarkdownV2(source).parse()


def _md1_entity(
    text: SourceText, c: int, span: tuple[int, int, int], language: str
) -> tuple[Entity | None, int]:
    """The entity (length still 0) a legacy Markdown span makes, and where its markup ends."""
    begin, start, i = span  # markup start (bytes), entity start (UTF-16), closing markup (bytes)
    if c == ord("["):
        url = text.data[begin + 1 : i].decode(errors="replace")
        if text[i + 1] == ord("("):
            close = text.data.find(b")", i + 2)
            close = text.size if close < 0 else close
            url, i = text.data[i + 2 : close].decode(errors="replace"), close
        return link_entity(url, start, 0), i
    if c == ord("`") and text.data.startswith(b"```", begin):
        return Entity("PreCode" if language else "Pre", start, 0, language), i + 2
    return Entity({"_": "Italic", "*": "Bold"}.get(chr(c), "Code"), start, 0), i


def parse_markdown(source: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown (v1) into plain text and entities, or raise FormatError."""
    text = SourceText(source)
    out = bytearray()
    utf16 = 0
    entities: list[Entity] = []
    i = 0
    while i < text.size:
        c = text[i]
        if c == ord("\\") and text[i + 1] and chr(text[i + 1]) in "_*`[":
            out.append(text[i + 1])
            utf16 += 1
            i += 2
            continue
        if chr(c) not in "_*`[":
            utf16 += utf8_units(c)
            out.append(c)
            i += 1
            continue
        begin, end_char, language = i, ord("]") if c == ord("[") else c, ""
        is_pre = text.data.startswith(b"```", i)
        i += 1
        if is_pre:
            language, i = _pre_header(text, i + 2)
        start = utf16
        while i < text.size and (
            text[i] != end_char or (is_pre and not text.data.startswith(b"```", i))
        ):
            utf16 += utf8_units(text[i])
            out.append(text[i])
            i += 1
        if i == text.size:
            raise FormatError(f"Can't find end of the entity starting at byte offset {begin}")
        if utf16 == start:
            i += 3 if is_pre else 1
            continue
        entity, i = _md1_entity(text, c, (begin, start, i), language)
        if entity is not None:
            entity.length = utf16 - start
            entities.append(entity)
        i += 1
    return out.decode(), entities
