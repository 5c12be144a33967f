"""A message's words as the model reads them: its text, its caption, or its rich message.

A rich message (Bot API 10.1; Veil's own answers where ``VEIL_RICH_MESSAGES`` is on) comes in
an update as ``rich_message {blocks}`` with no ``text``: a reply to one read only ``text`` or
``caption``, so a question replying to Veil's rich answer went to the model without it. Its
blocks read as plain text here, in order, a blank line between blocks: a table a row a line,
its cells parted by `` | ``, then its caption; a list an item a line, after its label; a
details block its summary, then its blocks; media their caption; a quote's or a caption's credit
after it. A thinking block (drafts only) is no text.

Nor is the thinking Veil folds before an answer, behind ``common.thought.MARK``: an expandable
quote of the text that opens with the mark, a details block whose summary does, in Veil's own
answers (anyone else's such quote is their words). A reply to
that answer asks about the answer; the thinking is only shown, and it went to the model quoted
as the answer's first words. An answer is the model's own Markdown, which may hold a details
block or an expandable quote marked alike: only the one Veil put there is its thinking
(``_thought_at``, ``_fold``). Opening the answer, one line break before the rest, the model's
quote had the shape and place of Veil's fold: the renderer now writes the mark in the model's
quotes as ``common.thought.QUOTED`` (a no-break space after the emoji), so no quote of the
model's opens with ``MARK``, and a rich answer's quotes and details blocks alike
(``bot.rich.marked``); those of answers sent before still read by shape and place. Read back,
the model's quotes hold the mark as it wrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aiogram.types import MessageOriginUser

from common.thought import MARK, QUOTED, swapped

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aiogram.types import Message, MessageEntity

    from common.texts import Catalogs

_CELLS = " | "
_CUT = "…"  # where the thinking folded was cut (its summary's end, its body's start)
_NEWLINE = "\n".encode("utf-16-le")
_MARK = MARK.encode("utf-16-le")
# Blocks that show media (a collage or slideshow holds such blocks, a map is a picture).
_MEDIA = frozenset({"photo", "video", "animation", "audio", "document", "voice_note", "map"})
# Blocks the renderer writes the model's mark in as ``QUOTED`` (``bot.rich.marked``).
_QUOTES = frozenset({"blockquote", "expandable_blockquote", "pullquote", "details"})
# Entities Telegram finds in any text itself: not Veil's formatting.
_FOUND = frozenset({"mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"})
# A piece of RichText keeps its words under one of these (a custom emoji: its alternative).
_WORDS = ("text", "expression", "alternative_text")


def words_of(message: Message, bot_id: int, catalogs: Catalogs) -> str | None:
    """The text, caption or rich message of ``message`` as text; None when it has none.

    ``catalogs``: the bot's, whose question header an inline or guest answer opens with.

    The thinking is left out of Veil's own answers alone (``veils``: sent by bot ``bot_id``,
    through it, or forwarded from it): anyone may write an expandable quote that opens with the
    mark, and what it folds away from readers (a link under "is this safe?") is theirs to read.
    """
    own = veils(message, bot_id)
    if message.text is not None:
        return _unfolded(message.text, message.entities or (), catalogs) if own else message.text
    if message.caption is not None:
        return message.caption
    if message.rich_message is None:
        return None
    blocks = list(message.rich_message.blocks)
    if own and (at := _thought_at(blocks)) is not None:
        del blocks[at]
    return _blocks(blocks, own=own) or None


def veils(message: Message, bot_id: int) -> bool:
    """Whether ``message`` is Veil's: sent by it, through it, or forwarded from it.

    Through it: ``via_bot``, an inline answer someone posted. Forwarded: its origin, which
    Telegram sets, is Veil.
    """
    origin = message.forward_origin
    author = origin.sender_user if isinstance(origin, MessageOriginUser) else None
    return any(
        user is not None and user.id == bot_id
        for user in (message.from_user, message.via_bot, author)
    )


def _thought_at(blocks: list[Any]) -> int | None:
    """Where in a rich answer of Veil's the thinking it folded is; None where it has none.

    Veil puts it (``bot.rich.thought_details``) before the answer, after nothing but the
    question's paragraphs (an inline or guest answer's header): the first block that is no
    paragraph, if it is the thinking. The model's Markdown may open with a details block marked
    alike, or hold one further on: those are its words, to be read.
    """
    for index, block in enumerate(blocks):
        if getattr(block, "type", None) != "paragraph":
            return index if _folded_thought(block) else None
    return None


def _folded_thought(block: object) -> bool:
    """Whether ``block`` is the thinking Veil folds before an answer (``bot.rich``).

    A details block whose summary is the mark and the thinking's first words, which its body
    opens with (unless it keeps only the thinking's end, opening with ``…``): a details block
    of the model's own, marked alike ("💭 Spoiler"), does not read so.
    """
    if getattr(block, "type", None) != "details":
        return False
    summary = _rich(getattr(block, "summary", None))
    if not summary.startswith(MARK):  # the model's "💭\u00a0Spoiler" (``bot.rich.marked``)
        return False
    summary = " ".join(summary.split())
    start = summary.removeprefix(MARK.strip()).strip().removesuffix(_CUT)
    body = " ".join(_blocks(getattr(block, "blocks", None) or []).split())
    return body.startswith((_CUT, start)) if start else body.startswith(_CUT) or not body


def rich_media_only(message: Message) -> bool:
    """Whether ``message`` is a rich message of media with no words (no caption, no text).

    A photo, a video, a collage of them: nothing in it the model could read. A caption of
    blanks alone is none (as a message's own caption is, ``handlers.replies``).
    """
    rich = message.rich_message
    return rich is not None and not _blocks(rich.blocks).strip() and _holds_media(rich.blocks)


def _holds_media(blocks: Iterable[object]) -> bool:
    """Whether a media block is among ``blocks``, or inside one of them."""
    for block in blocks:
        if getattr(block, "type", None) in _MEDIA:
            return True
        inner = getattr(block, "blocks", None) or []
        items = getattr(block, "items", None) or []
        inner = [*inner, *(b for item in items for b in getattr(item, "blocks", None) or [])]
        if _holds_media(inner):
            return True
    return False


def _unfolded(text: str, entities: Iterable[MessageEntity], catalogs: Catalogs) -> str:
    """``text`` without the thinking Veil folded in it (``_fold``), and the line break after it.

    The model's quotes read with the mark as it wrote them: ``QUOTED`` back to ``MARK`` over
    the spans the renderer changed (``common.thought.swapped``), once the fold is found (after,
    the model's quote opening an answer would look like it). Offsets are UTF-16 units.
    """
    entities = list(entities)
    fold = _fold(text.encode("utf-16-le"), entities, catalogs)
    text = swapped(text, entities, QUOTED, MARK)
    if fold is None:
        return text
    units = text.encode("utf-16-le")
    begin, end = fold
    end += len(_NEWLINE) if units[end : end + len(_NEWLINE)] == _NEWLINE else 0
    return (units[:begin] + units[end:]).decode("utf-16-le", errors="replace")


def _fold(
    units: bytes, entities: list[MessageEntity], catalogs: Catalogs
) -> tuple[int, int] | None:
    """Where (in bytes of ``units``) the thinking Veil folded before its answer is; None if none.

    Veil puts it (``bot.thinking.quote``) first, after nothing but the question's header (an
    inline or guest answer's, ``_headed``): the first entity Telegram did not find itself (a
    link, a mention), an expandable quote opening with the mark, holding no formatting (the
    thinking is plain text), and ending the text or the line before the answer. The model's
    answer may hold an expandable quote marked alike (a long ``> 💭 …`` in its Markdown): after
    words of the answer ("See below."), after other formatting, holding some, or a blank line
    apart from what follows, it is the model's words, to be read.
    """
    styled = sorted(
        (e for e in entities if e.type not in _FOUND), key=lambda e: (e.offset, -e.length)
    )
    if not styled:
        return None
    first, *rest = styled
    begin, end = 2 * first.offset, 2 * (first.offset + first.length)
    if first.type != "expandable_blockquote" or units[begin : begin + len(_MARK)] != _MARK:
        return None
    if not _headed(units[:begin].decode("utf-16-le", errors="replace"), catalogs):
        return None  # the answer's words before it: the model's quote
    if any(e.offset < first.offset + first.length for e in rest):
        return None  # formatting inside: the model's quote
    after = units[end : end + 2 * len(_NEWLINE)]
    if after and (after[: len(_NEWLINE)] != _NEWLINE or after == 2 * _NEWLINE):
        return None  # a blank line after it (or none): the model's quote before its next block
    return begin, end


def _headed(before: str, catalogs: Catalogs) -> bool:
    """Whether ``before``, the text before a fold, is nothing or Veil's question header alone.

    The header as an inline or guest answer opens (``inline_header``, in any catalog's
    language: Veil writes it in the asker's): its opening, the question, its end. The question
    holds no blank line there: the model's answer under a header ("❓ why?", a blank line,
    "See below.", a blank line, its quote) does.
    """
    for opening, end in _headers(catalogs):
        if before.startswith(opening) and before.endswith(end):
            question = before[len(opening) : len(before) - len(end)]
            if len(before) >= len(opening) + len(end) and "\n\n" not in question:
                return True
    return not before


def _headers(catalogs: Catalogs) -> frozenset[tuple[str, str]]:
    """Veil's question header in each of ``catalogs``' languages: before the question, after."""
    shapes = set()
    for language in catalogs.languages:
        opening, _, end = catalogs.lookup(language, "inline_header").partition("{question}")
        shapes.add((opening, end))
    return frozenset(shapes)


def _blocks(blocks: Iterable[object], *, own: bool = False, quoted: bool = False) -> str:
    """Blocks as text, a blank line between two (those with no words left out).

    ``own``: Veil's answer, whose quotes and details blocks hold the mark as ``QUOTED``
    (``bot.rich.marked``), read back as the model wrote it (``MARK``); ``quoted``: these
    blocks are inside one.
    """
    return "\n\n".join(text for block in blocks if (text := _block(block, own=own, quoted=quoted)))


def _block(block: object, *, own: bool = False, quoted: bool = False) -> str:
    """One block as text (``own``, ``quoted``: as ``_blocks``)."""
    kind = getattr(block, "type", None)
    if kind == "thinking":
        return ""
    quoted = quoted or kind in _QUOTES
    marked = own and quoted and kind != "pre"  # code is sent and read byte for byte

    def words(text: object) -> str:
        plain = _rich(text)
        return plain.replace(QUOTED, MARK) if marked else plain

    def within(blocks: object) -> str:
        return _blocks(cast("list[object]", blocks or []), own=own, quoted=quoted)

    if kind == "table":
        rows = getattr(block, "cells", None) or []
        table = "\n".join(
            _CELLS.join(words(getattr(cell, "text", None)) for cell in row) for row in rows
        )
        under = words(getattr(block, "caption", None))  # a table's caption: RichText itself
        return "\n\n".join(part for part in (table, under) if part)
    if kind == "list":
        items = getattr(block, "items", None) or []
        return "\n".join(
            f"{getattr(item, 'label', '')} {within(getattr(item, 'blocks', None))}".strip()
            for item in items
        )
    parts = [words(getattr(block, "summary", None))]  # a details block's
    parts += [words(getattr(block, name, None)) for name in _WORDS]
    parts.append(within(getattr(block, "blocks", None)))  # quotes, details, collages
    parts.append(words(getattr(block, "credit", None)))  # quotes'
    caption = getattr(block, "caption", None)  # media
    if caption is not None:
        parts.append(words(getattr(caption, "text", None)))
        parts.append(words(getattr(caption, "credit", None)))
    return "\n\n".join(part for part in parts if part)


def _rich(text: object) -> str:
    """RichText as plain text: a string, a styled piece (its words), or a list of them."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(map(_rich, text))
    for name in _WORDS:
        words = getattr(text, name, None)
        if words is not None:
            return _rich(words)
    return ""


def asked_text(message: Message, bot_id: int, catalogs: Catalogs) -> str:
    """The text ``message`` asks: its own, or Veil's answer it forwards, read without the thinking.

    A forward of Veil's answer (``veils``) is the user's question quoting Veil: the thinking
    Veil folded before it went to the model as the question's first words. It is read as a
    reply to Veil's answer is (``words_of``); anyone else's quote opening with the mark is
    theirs, and read. A forward of Veil's notice, whole, is no answer, nor one of its thinking
    alone (a message of its own before a long answer: nothing, read so): ``on_text`` asks
    nothing.
    """
    text = message.text or ""
    if not veils(message, bot_id):
        return text
    return words_of(message, bot_id, catalogs) or ""
