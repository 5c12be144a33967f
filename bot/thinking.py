"""A reasoning model's thinking as Telegram shows it: a quote before the answer.

While no answer text has come, a private chat's draft shows the tail of the thinking in a
block quote (``draft_thought``); the final message may open with the thinking folded into an
expandable block quote (``with_thought``), which the reader opens with a tap. The thinking is
plain text (it is the model talking to itself, often half-formed Markdown) and, when too long,
keeps its end, where the model concluded. ``VEIL_SHOW_REASONING`` decides whether either is
shown; the thinking is never stored.
"""

from __future__ import annotations

from typing import Final

from bot.formatting import MAX_ENTITIES, TELEGRAM_LIMIT, Entity, Rendered, utf16_len
from common.thought import MARK  # opens the thinking quote, in every language
from common.visible import next_glyph

ELLIPSIS: Final = "…"
# The most of the thinking a final message keeps folded (UTF-16 units), so the answer itself
# keeps most of the message; a longer thinking keeps its end.
MAX_FOLDED: Final = 2048
# Less room than this in the answer's first message: the thinking goes in a message of its own.
MIN_FOLDED: Final = 256
DRAFT_THOUGHT: Final = 1024  # how much of the thinking's tail a draft shows


def tail(text: str, limit: int) -> str:
    """The end of ``text`` in at most ``limit`` UTF-16 units, ``…`` first when cut.

    It starts at a whole glyph (``common.visible``): from inside one, a draft showed a skin
    tone alone, or the wrong flag (🇰🇿🇷🇺 read from its second code point is 🇿🇷).
    """
    text = text.strip()
    if utf16_len(text) <= limit:
        return text
    room = limit - utf16_len(ELLIPSIS)
    start = len(text)
    used = 0
    while start > 0:
        units = utf16_len(text[start - 1])
        if used + units > room:
            break
        used += units
        start -= 1
    return ELLIPSIS + text[next_glyph(text, start) :].lstrip()


def quote(reasoning: str, limit: int, *, expandable: bool) -> Rendered:
    """The thinking as one block quote of at most ``limit`` units (its tail when too long)."""
    text = MARK + tail(reasoning, limit - utf16_len(MARK))
    kind = "expandable_blockquote" if expandable else "blockquote"
    return Rendered(text, (Entity(kind, 0, utf16_len(text)),))


def draft_thought(reasoning: str) -> Rendered:
    """What a draft shows while the model thinks and no answer text has come."""
    return quote(reasoning, DRAFT_THOUGHT, expandable=False)


def with_thought(reasoning: str, parts: list[Rendered]) -> list[Rendered]:
    """The final answer's messages with the thinking folded before the first.

    The thinking joins the first message when at least ``MIN_FOLDED`` units and one of
    Telegram's ``MAX_ENTITIES`` are left there; otherwise it is a message of its own before the
    answer. Blank thinking changes nothing.
    """
    if not reasoning.strip():
        return parts
    if not parts:
        return [quote(reasoning, MAX_FOLDED, expandable=True)]
    first = parts[0]
    room = TELEGRAM_LIMIT - utf16_len(first.text) - 1
    if room < MIN_FOLDED or len(first.entities) >= MAX_ENTITIES:
        return [quote(reasoning, MAX_FOLDED, expandable=True), *parts]
    folded = quote(reasoning, min(room, MAX_FOLDED), expandable=True)
    return [prepend(folded, first), *parts[1:]]


def prepend(folded: Rendered, first: Rendered) -> Rendered:
    """The folded thinking and, on the next line, ``first`` (its entities moved along)."""
    shift = utf16_len(folded.text) + 1
    moved = tuple(
        Entity(e.type, e.offset + shift, e.length, e.url, e.language) for e in first.entities
    )
    return Rendered(folded.text + "\n" + first.text, folded.entities + moved)
