"""Rich messages (Bot API 10.1): ``sendRichMessage`` and ``sendRichMessageDraft``.

An ``InputRichMessage`` carries exactly one of ``markdown``, ``html`` or ``blocks``, which
must show something outside a draft (blank Markdown is refused as empty text is). The
emulator checks Telegram's limits (``MAX_CHARS`` of source, ``MAX_BLOCKS`` blocks,
``MAX_NESTING`` levels of lists and quotes, ``MAX_TABLE_COLUMNS`` columns) and refuses with
400 what Telegram refuses; a thinking block is allowed in drafts only. A sent rich message is
stored as a Message with ``rich_message {blocks}``: each block of the Markdown (blank lines
outside code fences part them) becomes a paragraph holding its source, a fenced block a ``pre``
block with its language, a heading a ``heading``, a ``$$…$$`` block a mathematical expression;
other blocks (lists, tables, quotes) stay paragraphs of their source, their inline marks (bold,
italic, code, strikethrough, ``$…$`` math) parsed into RichText. The page shows it as text with
entities (``text_of``): marks as their entities, code and math preformatted, headings bold.

``TelegramState.rich_messages = False`` plays a Bot API server without rich messages: both
methods answer 400, so a bot's fallback can be tested.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from playground.text import utf16_len
from playground.wire import bad_request, check_reply_markup

if TYPE_CHECKING:
    from playground.state import Method, TelegramState

__all__ = ["MAX_BLOCKS", "MAX_CHARS", "MAX_NESTING", "MAX_TABLE_COLUMNS", "methods", "text_of"]

MAX_CHARS: Final = 32_768  # UTF-16 units of a rich message's source
MAX_BLOCKS: Final = 500
MAX_NESTING: Final = 16
MAX_TABLE_COLUMNS: Final = 20
UNSUPPORTED: Final = "rich messages are not supported"
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])(?:\s+(.*))?$")
_TASK = re.compile(r"^\[([ xX])\]\s+")
_DIVIDER = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_DETAILS_OPEN = re.compile(r"^\s*<details( open)?>\s*$", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"^\s*</details>\s*$", re.IGNORECASE)
_SUMMARY = re.compile(r"^\s*<summary>(.*)</summary>\s*$", re.IGNORECASE)
_QUOTE = re.compile(r"^\s{0,3}((?:>\s?)+)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_KNOWN_BLOCKS: Final = frozenset(
    {"anchor", "animation", "audio", "blockquote", "buttons", "collage", "details", "divider"}
    | {"document", "expandable_blockquote", "footer", "heading", "list", "map", "paragraph"}
    | {"mathematical_expression", "photo", "pre", "pullquote", "slideshow", "table", "thinking"}
    | {"video", "voice_note"}
)
_HEADING = re.compile(r"^(#{1,6})\s+(.+)$")
_INLINE = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"
    r"|(?<![\w/\\])(?P<command>/[A-Za-z0-9_]{1,32}(?:@\w+)?)(?![\w/])"
    r"|`(?P<code>[^`\n]+)`|\*\*(?P<bold>[^*\n]+)\*\*|~~(?P<strikethrough>[^~\n]+)~~"
    r"|(?<![\w*])\*(?P<italic>[^*\n]+)\*(?![\w*])|(?<![\w_])_(?P<italic2>[^_\n]+)_(?![\w_])"
    r"|(?<![\w$])\$(?P<math>[^$\n]+)\$(?![\w$])"
)
# How the page shows RichText kinds: as the Bot API entity of the same look.
_ENTITY_OF: Final = {
    "bold": "bold",
    "italic": "italic",
    "underline": "underline",
    "strikethrough": "strikethrough",
    "spoiler": "spoiler",
    "code": "code",
    "mathematical_expression": "code",
    "bot_command": "bot_command",
}


def split_blocks(markdown: str) -> list[str]:
    """The Markdown's blocks: parted by blank lines outside code fences."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if fence:
            current.append(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
            continue
        if match:
            fence = match.group(1)
            current.append(line)
        elif line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _cells(line: str) -> list[str]:
    row = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)]


def _align(rule: str) -> str:
    rule = rule.strip()
    if rule.startswith(":") and rule.endswith(":"):
        return "center"
    return "right" if rule.endswith(":") else "left"


def _starts_block(lines: list[str], at: int) -> bool:
    """Whether the line at ``at`` opens a block other than a paragraph (so ends one)."""
    line = lines[at]
    return bool(
        _FENCE.match(line)
        or _HEADING.match(line)
        or _QUOTE.match(line)
        or _LIST_ITEM.match(line)
        or _DETAILS_OPEN.match(line)
        or line.strip().startswith("$$")
        or _DIVIDER.match(line)
        or _table_at(lines, at)
    )


def _table_at(lines: list[str], at: int) -> bool:
    return "|" in lines[at] and at + 1 < len(lines) and bool(_TABLE_RULE.match(lines[at + 1]))


class _Parser:
    """Rich Markdown as the blocks a Message carries (a small CommonMark/GFM subset)."""

    def __init__(self, lines: list[str], depth: int) -> None:
        if depth > MAX_NESTING:
            raise bad_request("RICH_MESSAGE_NESTING_TOO_DEEP")
        self.lines = lines
        self.depth = depth
        self.at = 0
        self.blocks: list[dict[str, Any]] = []

    def parse(self) -> list[dict[str, Any]]:  # noqa: C901 -- one branch per kind of block
        lines = self.lines
        while self.at < len(lines):
            line = lines[self.at]
            if not line.strip():
                self.at += 1
            elif fence := _FENCE.match(line):
                self._pre(fence)
            elif line.strip().startswith("$$"):
                self._math()
            elif heading := _HEADING.match(line):
                size = len(heading.group(1))
                self.blocks.append(
                    {"type": "heading", "text": inline(heading.group(2)), "size": size}
                )
                self.at += 1
            elif _DETAILS_OPEN.match(line):
                self._details()
            elif _DIVIDER.match(line):
                self.blocks.append({"type": "divider"})
                self.at += 1
            elif _table_at(lines, self.at):
                self._table()
            elif _QUOTE.match(line):
                self._quote()
            elif _LIST_ITEM.match(line):
                self._list()
            else:
                self._paragraph()
        return self.blocks

    def _inner(self, lines: list[str]) -> list[dict[str, Any]]:
        return _Parser(lines, self.depth + 1).parse()

    def _pre(self, fence: re.Match[str]) -> None:
        mark = fence.group(1)
        end = self.at + 1
        while end < len(self.lines):
            closing = _FENCE.match(self.lines[end])
            if closing and closing.group(1)[0] == mark[0] and len(closing.group(1)) >= len(mark):
                break
            end += 1
        pre: dict[str, Any] = {"type": "pre", "text": "\n".join(self.lines[self.at + 1 : end])}
        if fence.group(2):
            pre["language"] = fence.group(2)
        self.blocks.append(pre)
        self.at = end + 1

    def _math(self) -> None:
        first = self.lines[self.at].strip()[2:]
        if first.rstrip().endswith("$$"):
            expression = first.rstrip()[:-2]
            self.at += 1
        else:
            end = self.at + 1
            while end < len(self.lines) and not self.lines[end].rstrip().endswith("$$"):
                end += 1
            body = [first, *self.lines[self.at + 1 : end]]
            if end < len(self.lines):
                body.append(self.lines[end].rstrip()[:-2])
            expression = "\n".join(body)
            self.at = end + 1
        self.blocks.append({"type": "mathematical_expression", "expression": expression.strip()})

    def _details(self) -> None:
        opening = _DETAILS_OPEN.match(self.lines[self.at])
        end, level = self.at + 1, 1
        while end < len(self.lines):
            if _DETAILS_OPEN.match(self.lines[end]):
                level += 1
            elif _DETAILS_CLOSE.match(self.lines[end]):
                level -= 1
                if level == 0:
                    break
            end += 1
        body = self.lines[self.at + 1 : end]
        summary = ""
        for index, line in enumerate(body):
            if line.strip():
                if (found := _SUMMARY.match(line)) is not None:
                    summary = found.group(1).strip()
                    body = body[index + 1 :]
                break
        details: dict[str, Any] = {
            "type": "details",
            "summary": inline(summary or "Details"),
            "blocks": self._inner(body),
        }
        if opening is not None and opening.group(1):
            details["is_open"] = True
        self.blocks.append(details)
        self.at = end + 1

    def _table(self) -> None:
        rows = [_cells(self.lines[self.at])]
        aligns = [_align(rule) for rule in _cells(self.lines[self.at + 1])]
        end = self.at + 2
        while end < len(self.lines) and self.lines[end].strip() and "|" in self.lines[end]:
            rows.append(_cells(self.lines[end]))
            end += 1
        if max(len(row) for row in rows) > MAX_TABLE_COLUMNS:
            raise bad_request("RICH_MESSAGE_TABLE_TOO_WIDE")
        cells = [
            [
                {
                    "text": inline(cell),
                    "align": aligns[column] if column < len(aligns) else "left",
                    "valign": "top",
                }
                | ({"is_header": True} if number == 0 else {})
                for column, cell in enumerate(row)
            ]
            for number, row in enumerate(rows)
        ]
        self.blocks.append({"type": "table", "cells": cells, "is_bordered": True})
        self.at = end

    def _quote(self) -> None:
        body: list[str] = []
        while self.at < len(self.lines) and (found := _QUOTE.match(self.lines[self.at])):
            line = self.lines[self.at]
            rest = line[found.start(1) + 1 :]
            body.append(rest.removeprefix(" "))
            self.at += 1
        self.blocks.append({"type": "blockquote", "blocks": self._inner(body)})

    def _list(self) -> None:
        first = _LIST_ITEM.match(self.lines[self.at])
        assert first is not None  # noqa: S101 -- parse() saw the item
        indent = _indent(first.group(1))
        ordered = first.group(2)[0].isdigit()
        items: list[dict[str, Any]] = []
        while self.at < len(self.lines):
            item = _LIST_ITEM.match(self.lines[self.at])
            if item is None or _indent(item.group(1)) != indent:
                break
            if item.group(2)[0].isdigit() != ordered:
                break
            items.append(self._item(item, indent))
        self.blocks.append({"type": "list", "items": items})

    def _item(self, item: re.Match[str], indent: int) -> dict[str, Any]:
        content = item.start(3) if item.group(3) else item.end(2) + 1
        body = [item.group(3) or ""]
        self.at += 1
        while self.at < len(self.lines):
            line = self.lines[self.at]
            if not line.strip():
                ahead = self.at
                while ahead < len(self.lines) and not self.lines[ahead].strip():
                    ahead += 1
                if ahead < len(self.lines) and _indent(self.lines[ahead]) > indent:
                    body.extend([""] * (ahead - self.at))
                    self.at = ahead
                    continue
                break
            if _indent(line) > indent:
                body.append(line[min(content, _indent(line)) :])
            elif _starts_block(self.lines, self.at):
                break
            else:
                body.append(line.strip())  # a lazy continuation of the item's paragraph
            self.at += 1
        marker = item.group(2)
        shown: dict[str, Any] = {"label": marker if marker[0].isdigit() else "•"}
        if (task := _TASK.match(body[0])) is not None:
            shown |= {"has_checkbox": True, "is_checked": task.group(1) != " "}
            body[0] = body[0][task.end() :]
        if marker[0].isdigit():
            shown["value"] = int(marker[:-1])
        shown["blocks"] = self._inner(body)
        return shown

    def _paragraph(self) -> None:
        lines = [self.lines[self.at].strip()]
        self.at += 1
        while (
            self.at < len(self.lines)
            and self.lines[self.at].strip()
            and not _starts_block(self.lines, self.at)
        ):
            lines.append(self.lines[self.at].strip())
            self.at += 1
        self.blocks.append({"type": "paragraph", "text": inline("\n".join(lines))})


def _markdown_blocks(markdown: str) -> list[dict[str, Any]]:
    """Check Markdown against the limits; its blocks as the stored message keeps them."""
    if utf16_len(markdown) > MAX_CHARS:
        raise bad_request("RICH_MESSAGE_TOO_LONG")
    if len(split_blocks(markdown)) > MAX_BLOCKS:
        raise bad_request("RICH_MESSAGE_TOO_MANY_BLOCKS")
    return _Parser(markdown.split("\n"), 0).parse()


def inline(text: str) -> object:
    """Markdown's inline marks as RichText: a plain string, or a list of strings and marks.

    A backslash before a punctuation mark keeps the mark as text; ``/commands`` are detected
    as Telegram detects them (bot_command).
    """
    parts: list[object] = []
    at = 0
    for match in _INLINE.finditer(text):
        if match.start() > at:
            parts.append(text[at : match.start()])
        kind = str(match.lastgroup)
        inner = match.group(kind)
        if kind == "escaped":
            parts.append(inner)
        elif kind == "math":
            parts.append({"type": "mathematical_expression", "expression": inner})
        elif kind == "command":
            parts.append({"type": "bot_command", "text": inner, "bot_command": inner})
        else:
            parts.append({"type": kind.removesuffix("2"), "text": inner})
        at = match.end()
    if not parts:
        return text
    if at < len(text):
        parts.append(text[at:])
    merged: list[object] = []
    for part in parts:  # the text around an escape is one string again
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged[0] if len(merged) == 1 and isinstance(merged[0], str) else merged


def _plain(rich_text: object) -> str:
    """The characters of a RichText: a string, a list of RichTexts or an object with text."""
    if isinstance(rich_text, str):
        return rich_text
    if isinstance(rich_text, list):
        return "".join(_plain(part) for part in rich_text)
    if isinstance(rich_text, dict):
        if "expression" in rich_text:
            return str(rich_text["expression"])
        return _plain(rich_text.get("text", ""))
    return ""


def _marked(rich_text: object, start: int, entities: list[dict[str, Any]]) -> tuple[str, int]:
    """A RichText's characters from UTF-16 offset ``start``; its marks added to ``entities``."""
    if isinstance(rich_text, list):
        text = ""
        for part in rich_text:
            piece, start = _marked(part, start, entities)
            text += piece
        return text, start
    if not isinstance(rich_text, dict):
        text = _plain(rich_text)
        return text, start + utf16_len(text)
    inner = rich_text.get("text", "")
    if "expression" in rich_text:
        inner = str(rich_text["expression"])
    text, end = _marked(inner, start, entities)
    kind = _ENTITY_OF.get(str(rich_text.get("type")))
    if kind is not None and end > start:
        entities.append({"type": kind, "offset": start, "length": end - start})
    return text, end


def _given_blocks(blocks: object, *, draft: bool) -> list[dict[str, Any]]:
    """Check a ``blocks`` list: known types, a thinking block only in a draft, the limits."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise bad_request("can't parse rich message blocks")
    if len(blocks) > MAX_BLOCKS:
        raise bad_request("RICH_MESSAGE_TOO_MANY_BLOCKS")
    total = 0
    for block in blocks:
        kind = block.get("type")
        if kind not in _KNOWN_BLOCKS:
            raise bad_request(f"unsupported rich block type {kind!r}")
        if kind == "thinking" and not draft:
            raise bad_request("thinking blocks are allowed only in drafts")
        total += utf16_len(_plain(block.get("text", "")))
    if total > MAX_CHARS:
        raise bad_request("RICH_MESSAGE_TOO_LONG")
    return [dict(block) for block in blocks]


def parse_rich(raw: object, *, draft: bool) -> list[dict[str, Any]]:
    """An InputRichMessage checked as Telegram checks it; the blocks a Message would carry."""
    if not isinstance(raw, dict):
        raise bad_request("can't parse rich message JSON object")
    given = [key for key in ("markdown", "html", "blocks") if raw.get(key) not in (None, "")]
    if len(given) != 1:
        if not given and draft:
            return []
        raise bad_request("exactly one of markdown, html and blocks must be specified")
    if given == ["blocks"]:
        blocks = _given_blocks(raw["blocks"], draft=draft)
    else:
        source = str(raw[given[0]])
        if given == ["html"]:
            source = re.sub(r"<[^>]*>", "", source)
        blocks = _markdown_blocks(source)
    if not blocks and not draft:
        raise bad_request("message text is empty")  # blank Markdown shows nothing
    return blocks


class _Writer:
    """Text with Bot API entities, written block by block (UTF-16 offsets)."""

    def __init__(self) -> None:
        self.text = ""
        self.entities: list[dict[str, Any]] = []

    @property
    def units(self) -> int:
        return utf16_len(self.text)

    def write(self, text: str) -> None:
        self.text += text

    def rich(self, rich_text: object) -> None:
        self.text += _marked(rich_text, self.units, self.entities)[0]

    def mark(self, kind: str, start: int, **extra: object) -> None:
        if self.units > start:
            self.entities.append({"type": kind, "offset": start, "length": self.units - start})
            self.entities[-1].update(extra)

    def blocks(self, blocks: list[dict[str, Any]], indent: str = "", gap: str = "\n\n") -> None:
        """Blocks parted by ``gap`` (a list item's blocks by line breaks)."""
        first = True
        for block in blocks:
            if not _plain_block(block):
                continue
            if not first:
                self.write(gap + indent)
            first = False
            self.block(block, indent)

    def block(self, block: dict[str, Any], indent: str) -> None:  # noqa: C901, PLR0912 -- one per kind
        kind = block.get("type")
        start = self.units
        if kind in {"pre", "mathematical_expression"}:
            self.write(_plain(block).replace("\n", "\n" + indent))
            language = "latex" if kind == "mathematical_expression" else block.get("language")
            self.mark("pre", start, **({"language": language} if language else {}))
        elif kind == "heading":
            self.rich(block.get("text", ""))
            self.mark("bold", start)
        elif kind == "list":
            for number, item in enumerate(block.get("items") or []):
                if number:
                    self.write("\n" + indent)
                label = "-" if item.get("label") == "•" else str(item.get("label", "-"))
                if item.get("has_checkbox"):
                    label += " [x]" if item.get("is_checked") else " [ ]"
                self.write(label + " ")
                self.blocks(item.get("blocks") or [], indent + "  ", "\n")
        elif kind == "table":
            for number, row in enumerate(block.get("cells") or []):
                if number:
                    self.write("\n" + indent)
                self.write("| ")
                for column, cell in enumerate(row):
                    if column:
                        self.write(" | ")
                    self.rich(cell.get("text") or "")
                self.write(" |")
                if number == 0:
                    self.write("\n" + indent + "|" + "---|" * len(row))
        elif kind == "blockquote":
            self.blocks(block.get("blocks") or [], indent)
            self.mark("blockquote", start)
        elif kind == "details":
            self.rich(block.get("summary") or "")
            self.mark("bold", start)
            self.write("\n" + indent)
            self.blocks(block.get("blocks") or [], indent)
        elif kind == "divider":
            self.write("———")
        else:
            self.rich(block.get("text", ""))


def _plain_block(block: dict[str, Any]) -> bool:
    """Whether a block shows anything as text."""
    if block.get("type") in {"list", "table", "details", "blockquote", "divider"}:
        return True
    return bool(_plain(block))


def text_of(rich_message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A stored rich message as text with entities, for where the page shows text only.

    Blocks are parted by blank lines; code and math are ``pre``, headings and a details
    block's summary bold; list items and table rows are lines (``- item``, ``| a | b |``),
    nested items indented by two spaces.
    """
    writer = _Writer()
    writer.blocks(list(rich_message.get("blocks") or []))
    return writer.text, writer.entities


def methods(state: TelegramState) -> dict[str, Method]:
    """The rich-message methods on ``state``, by their canonical names."""

    def send_rich_message(p: dict[str, Any]) -> dict[str, Any]:
        if not state.rich_messages:
            raise bad_request(UNSUPPORTED)
        chat = state.chat(p)
        blocks = parse_rich(p.get("rich_message"), draft=False)
        markup = check_reply_markup(p.get("reply_markup"), inline_only=False)
        content = {"rich_message": {"blocks": blocks}, "reply_markup": markup}
        return state.deliver(chat, p, "sendRichMessage", **content)

    def send_rich_message_draft(p: dict[str, Any]) -> bool:
        if not state.rich_messages:
            raise bad_request(UNSUPPORTED)
        chat = state.chat(p)
        draft_id = p.get("draft_id")
        if not isinstance(draft_id, int):
            raise bad_request('parameter "draft_id" is required')
        if draft_id == 0:
            raise bad_request("draft_id must be non-zero")
        if chat["type"] != "private":
            raise bad_request("TEXTDRAFT_PEER_INVALID")
        state.topics.thread(chat, p)
        parse_rich(p.get("rich_message"), draft=True)
        return True

    return {
        "sendRichMessage": send_rich_message,
        "sendRichMessageDraft": send_rich_message_draft,
    }
