"""Rich messages (Bot API 10.1): the model's Markdown as Telegram's rich Markdown, in parts.

An answer goes out with ``sendRichMessage`` as ``InputRichMessage(markdown=...)``: Telegram
parses the Markdown itself (headings, lists, tables, code with language, block quotes, math),
so the model's text is sent as it came. One rich message holds at most ``MAX_CHARS`` characters
and ``MAX_BLOCKS`` blocks, nested ones counted (``block_weight``: a line of a list or a table
counts as one); a longer answer is split at block boundaries (blank lines outside code fences,
``split_blocks``). A single block longer than a message is cut at line, sentence
or word boundaries, a code block reopened with its fence in each part. Nesting deeper than
``MAX_NESTING`` or tables wider than ``MAX_TABLE_COLUMNS`` are Telegram's to refuse: the sink
then falls back to entities (``bot.formatting``), then to plain text.

Text that is not the model's Markdown (a question above an inline answer, a note under it, a
reasoning model's thinking) goes in escaped (``escape``), so it reads as typed. The thinking
goes into a rich message as a collapsed details block (``thought_details``: GitHub's
``<details>``/``<summary>``, which rich Markdown takes as Telegram's details block), the start
of the thinking as its summary.

The numbers are the limits reported for Bot API 10.1 (the installed aiogram's docstrings do
not state them); they live here and nowhere else in the bot.
"""

from __future__ import annotations

import re
from typing import Final

from bot.formatting import literal_stars, plain_parts, utf16_len
from common.thought import MARK, QUOTED
from common.visible import glyphs_within, shows_nothing

MAX_CHARS: Final = 32_768  # UTF-16 units of one rich message's Markdown
MAX_BLOCKS: Final = 500
MAX_NESTING: Final = 16  # levels of lists and quotes
MAX_TABLE_COLUMNS: Final = 20

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_GAP: Final = "\n\n"
_PARTIAL_FENCE = re.compile(r"\n\s{0,3}`{1,2}$")
_FENCE_ROOM: Final = 32  # a draft keeps room to close the fence of a code block being written
_ESCAPED = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark
_QUOTE_MARKS = re.compile(r"^(?:\s{0,3}>)+ ?")  # a block quote's line opening, nested too
_DETAILS_OPEN = re.compile(r"<details\b[^>]*>", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"</details\s*>", re.IGNORECASE)
_TICKS = re.compile(r"`+")
SUMMARY_CHARS: Final = 48  # of the thinking, in its details block's summary
# The most lines of the thinking its details block keeps (its end), so that a thinking of many
# short paragraphs leaves the answer most of a message's blocks.
THOUGHT_LINES: Final = 100


def split_blocks(markdown: str) -> list[str]:
    """The Markdown's top-level blocks: parted by blank lines outside code fences."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if fence:
            current.append(line)
            if _closes(line, fence):
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


def _cut_block(block: str, limit: int) -> list[str]:
    """A block longer than ``limit`` as pieces that fit; a code block keeps its fence.

    A fence whose opening line is itself most of a message (a model's one-line "code") has no
    room to be reopened in each piece: it is cut as text.
    """
    fence = _FENCE.match(block)
    if not fence:
        return plain_parts(block, limit)
    lines = block.split("\n")
    opening = lines[0]
    closing = fence.group(1)
    closed = len(lines) > 1 and _closes(lines[-1], closing)
    code = "\n".join(lines[1:-1] if closed else lines[1:])
    room = limit - utf16_len(opening) - utf16_len(closing) - 2
    if room < limit // 2:  # the fence's own line fills most of a message: cut it as text
        return plain_parts(block, limit)
    return [f"{opening}\n{piece}\n{closing}" for piece in plain_parts(code, room)]


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a code block opened by ``fence``: the same mark, as long or more.

    A fence of the other mark (``~~~`` in a block opened by backticks) or a shorter one is a
    line of code.
    """
    found = _FENCE.match(line)
    return found is not None and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence)


def block_weight(block: str) -> int:
    """How many of Telegram's blocks one Markdown block may count as, at most.

    Telegram's block limit is said to count nested blocks too (each list item, each table row),
    so a block weighs one per line, and a code block one: an over-count only splits earlier.
    """
    if _FENCE.match(block):
        return 1
    return max(1, sum(1 for line in block.split("\n") if line.strip()))


def weight(markdown: str) -> int:
    """How many of Telegram's blocks ``markdown`` may count as, at most (``block_weight``)."""
    return sum(block_weight(block) for block in split_blocks(markdown))


def rich_parts(markdown: str, limit: int = MAX_CHARS, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """The answer as rich messages' Markdown: whole blocks packed up to the limits.

    Emphasis inside a word is sent escaped (``literal_stars``): ``2*3*4`` shows as written.
    An answer of invisible characters alone (``shows_nothing``) gives no parts: the entity
    rendering shows it.
    """
    if shows_nothing(markdown):
        return []
    parts: list[str] = []
    current: list[str] = []
    size = weight = 0
    for whole in split_blocks(marked(literal_stars(markdown.strip()))):
        pieces = [whole] if utf16_len(whole) <= limit else _cut_block(whole, limit)
        for block in pieces:
            units, blocks = utf16_len(block), block_weight(block)
            grown = size + (utf16_len(_GAP) if current else 0) + units
            if current and (grown > limit or weight + blocks > max_blocks):
                parts.append(_GAP.join(current))
                current, size, weight = [], 0, 0
                grown = units
            current.append(block)
            size, weight = grown, weight + blocks
    if current:
        parts.append(_GAP.join(current))
    return parts


def marked(markdown: str) -> str:
    """``markdown`` with the thinking mark in its quotes and details blocks written ``QUOTED``.

    As the entity renderer writes the mark in the model's quotes (``bot.formatting.render``):
    a no-break space after the emoji, which looks the same and is as long, so no quote or
    details block of the model's opens with ``MARK`` as the thinking Veil folds does
    (``thought_details``). Not in code (fenced, or inline in backticks), which is sent and read
    byte for byte.

    Parsed here line by line, not from pyromark's events as ``bot.formatting`` parses: Telegram
    (and the playground after it) opens a details block at a ``<details>`` line and reads
    Markdown in it up to ``</details>``, where CommonMark, and so pyromark, reads an HTML block
    that runs to the next blank line, its lines raw: a ``<details>`` line, a fence, "💭 code",
    the fence and ``</details>``, no blank line between, are one HTML block to pyromark, with
    no code in it, whose 💭 its events would mark (Telegram shows that 💭 in a code block).
    """
    if MARK not in markdown:
        return markdown
    lines = markdown.split("\n")
    fence = ""  # the fence of the code block the line is in, if any
    fenced_in_quote = False
    details = 0  # details blocks open around the line
    for number, line in enumerate(lines):
        opening = _QUOTE_MARKS.match(line)
        quoted = opening is not None
        body = line[opening.end() :] if opening else line
        if fence and fenced_in_quote and not quoted:
            fence = ""  # a quote's end ends a code block opened inside it
        if fence:
            if _closes(body, fence):
                fence = ""
            continue
        if found := _FENCE.match(body):
            fence, fenced_in_quote = found.group(1), quoted
            continue
        spans = _code_spans(line)
        prose = "".join(piece for piece, code in spans if not code)  # `<details>` is no tag
        if quoted or details or _DETAILS_OPEN.search(prose):
            lines[number] = "".join(
                piece if code else piece.replace(MARK, QUOTED) for piece, code in spans
            )
        details = max(0, details + len(_DETAILS_OPEN.findall(prose)))
        details = max(0, details - len(_DETAILS_CLOSE.findall(prose)))
    return "\n".join(lines)


def _code_spans(line: str) -> list[tuple[str, bool]]:
    """``line`` in pieces, each with whether it is a code span (a backtick run to its match).

    A tag written in code (``<details>`` shown in backticks, as an answer on HTML does) opens
    no block: counted, it marked every line after it as in a details block never closed.
    """
    pieces: list[tuple[str, bool]] = []
    done = at = 0
    while (run := _TICKS.search(line, at)) is not None:
        closing = re.compile(rf"(?<!`){run.group()}(?!`)").search(line, run.end())
        if closing is None:
            at = run.end()  # backticks never closed: text
            continue
        pieces.append((line[done : run.start()], False))
        pieces.append((line[run.start() : closing.end()], True))
        done = at = closing.end()
    pieces.append((line[done:], False))
    return pieces


def draft_markdown(markdown: str, limit: int = MAX_CHARS, max_blocks: int = MAX_BLOCKS) -> str:
    """What a rich draft shows of a partial answer: the last part it would be sent in.

    A code block still being written is closed with its fence, and a fence still being typed
    (one or two backticks on the last line) is left out, so the draft is whole Markdown.
    """
    parts = rich_parts(_PARTIAL_FENCE.sub("", markdown), limit - _FENCE_ROOM, max_blocks)
    if not parts:
        return ""
    last = parts[-1]
    blocks = split_blocks(last)
    fence = _FENCE.match(blocks[-1]) if blocks else None
    if fence is not None:
        lines = blocks[-1].split("\n")
        closing = "\n" + fence.group(1)
        open_ = len(lines) == 1 or not _closes(lines[-1], fence.group(1))
        if open_ and utf16_len(last) + utf16_len(closing) <= limit:  # a fence of 40 backticks
            last += closing
    return last


def escape(text: str) -> str:
    """``text`` as rich Markdown that shows it as typed: every ASCII punctuation escaped.

    Lines are stripped (an indent would make a code block); blank lines still part paragraphs.
    """
    return "\n".join(_ESCAPED.sub(r"\\\1", line.strip()) for line in text.strip().split("\n"))


def thought_details(thought: str, mark: str) -> str:
    """The thinking as a collapsed details block: ``mark`` and its first words as the summary.

    The first words are cut between glyphs (``common.visible``), never inside an emoji.

    Of a thinking longer than ``THOUGHT_LINES`` lines, the block keeps the last ones.
    """
    words = " ".join(thought.split())
    if len(words) > SUMMARY_CHARS:
        words = glyphs_within(words, SUMMARY_CHARS - 1).rstrip() + "…"
    summary = escape(mark + words).replace("\n", " ")
    lines = escape(thought).split("\n")
    kept = [number for number, line in enumerate(lines) if line][-THOUGHT_LINES:]
    body = "\n".join(lines[kept[0] :]) if kept else ""
    if kept and any(lines[: kept[0]]):
        body = "…" + body
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"
