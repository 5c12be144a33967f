"""Rich messages (Bot API 10.1): ``sendRichMessage`` and ``sendRichMessageDraft``.

An ``InputRichMessage`` carries exactly one of ``markdown``, ``html`` or ``blocks``. The
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
_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])\s")
_QUOTE = re.compile(r"^\s{0,3}((?:>\s?)+)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_KNOWN_BLOCKS: Final = frozenset(
    {"anchor", "animation", "audio", "blockquote", "buttons", "collage", "details", "divider"}
    | {"document", "expandable_blockquote", "footer", "heading", "list", "map", "paragraph"}
    | {"mathematical_expression", "photo", "pre", "pullquote", "slideshow", "table", "thinking"}
    | {"video", "voice_note"}
)
_HEADING = re.compile(r"^(#{1,6})\s+(.+)$")
_MATH_BLOCK = re.compile(r"^\$\$(.+)\$\$$", re.DOTALL)
_INLINE = re.compile(
    r"`(?P<code>[^`\n]+)`|\*\*(?P<bold>[^*\n]+)\*\*|~~(?P<strikethrough>[^~\n]+)~~"
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


def _nesting(block: str) -> int:
    """How deep lists and quotes nest in a block (two spaces of indent make a level)."""
    deepest = 0
    for line in block.split("\n"):
        quotes = _QUOTE.match(line)
        depth = quotes.group(1).count(">") if quotes else 0
        rest = line[quotes.end() :] if quotes else line
        item = _LIST_ITEM.match(rest)
        if item:
            depth += len(item.group(1).expandtabs(4)) // 2 + 1
        deepest = max(deepest, depth)
    return deepest


def _columns(block: str) -> int:
    """The widest row of a pipe table in the block (0 when it is not a table)."""
    lines = block.split("\n")
    if len(lines) < 2 or "|" not in lines[0] or not _TABLE_RULE.match(lines[1]):  # noqa: PLR2004
        return 0
    widest = 0
    for line in lines:
        row = line.strip().removeprefix("|").removesuffix("|")
        widest = max(widest, len(row.split("|")))
    return widest


def _markdown_blocks(markdown: str) -> list[dict[str, Any]]:
    """Check Markdown against the limits; its blocks as the stored message keeps them."""
    if utf16_len(markdown) > MAX_CHARS:
        raise bad_request("RICH_MESSAGE_TOO_LONG")
    blocks = split_blocks(markdown)
    if len(blocks) > MAX_BLOCKS:
        raise bad_request("RICH_MESSAGE_TOO_MANY_BLOCKS")
    stored: list[dict[str, Any]] = []
    for block in blocks:
        fence = _FENCE.match(block)
        if fence:
            lines = block.split("\n")
            closed = len(lines) > 1 and _FENCE.match(lines[-1]) is not None
            code = "\n".join(lines[1:-1] if closed else lines[1:])
            pre: dict[str, Any] = {"type": "pre", "text": code}
            if fence.group(2):
                pre["language"] = fence.group(2)
            stored.append(pre)
            continue
        if (math := _MATH_BLOCK.match(block.strip())) is not None:
            stored.append({"type": "mathematical_expression", "expression": math.group(1).strip()})
            continue
        if (heading := _HEADING.match(block)) is not None:
            size = len(heading.group(1))
            stored.append({"type": "heading", "text": inline(heading.group(2)), "size": size})
            continue
        if _nesting(block) > MAX_NESTING:
            raise bad_request("RICH_MESSAGE_NESTING_TOO_DEEP")
        if _columns(block) > MAX_TABLE_COLUMNS:
            raise bad_request("RICH_MESSAGE_TABLE_TOO_WIDE")
        stored.append({"type": "paragraph", "text": inline(block)})
    return stored


def inline(text: str) -> object:
    """Markdown's inline marks as RichText: a plain string, or a list of strings and marks."""
    parts: list[object] = []
    at = 0
    for match in _INLINE.finditer(text):
        if match.start() > at:
            parts.append(text[at : match.start()])
        kind = str(match.lastgroup)
        inner = match.group(kind)
        if kind == "math":
            parts.append({"type": "mathematical_expression", "expression": inner})
        else:
            parts.append({"type": kind.removesuffix("2"), "text": inner})
        at = match.end()
    if not parts:
        return text
    if at < len(text):
        parts.append(text[at:])
    return parts


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
        return _given_blocks(raw["blocks"], draft=draft)
    source = str(raw[given[0]])
    if given == ["html"]:
        source = re.sub(r"<[^>]*>", "", source)
    return _markdown_blocks(source)


def text_of(rich_message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A stored rich message as text with entities: blocks parted by blank lines, code as pre."""
    text = ""
    entities: list[dict[str, Any]] = []
    for block in rich_message.get("blocks") or []:
        kind = block.get("type")
        if not _plain(block):
            continue
        if text:
            text += "\n\n"
        start = utf16_len(text)
        if kind in {"pre", "mathematical_expression"}:
            body = _plain(block)
            entity = {"type": "pre", "offset": start, "length": utf16_len(body)}
            language = "latex" if kind == "mathematical_expression" else block.get("language")
            if language:
                entity["language"] = language
            entities.append(entity)
        else:
            body, end = _marked(block.get("text", ""), start, entities)
            if kind == "heading":
                entities.append({"type": "bold", "offset": start, "length": end - start})
        text += body
    return text, entities


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
