"""A conversation's title: what the model is asked, and how its reply becomes a short name.

The title is asked for in a request of its own after the first answer was delivered, rather
than in the answer's request: the answer's text stays exactly what the model meant to say (no
title line to strip from a stream the user already watched), a title that fails cannot harm
the answer, and the extra request is tiny (``TITLE_TOKENS`` at most, the exchange cut to
``EXCERPT_CHARS`` a side, less where the model's window cannot hold that with the title: the
request is fitted by its ceiling, ``services.tokens``) and billed from its own signed receipt
like any other.
"""

from __future__ import annotations

import re
import unicodedata

from common.visible import glyph_boundary, glyphs_within
from services.tokens import prompt_tokens

TITLE_TOKENS = 24  # the most answer tokens a title request asks for
TITLE_CHARS = 40  # the longest title kept (a Telegram topic's name may have 128)
EXCERPT_CHARS = 600  # how much of the question and of the answer the model is shown

TITLE_PROMPT = (
    "Name the conversation below in at most five words, in the language of its question. "
    "Reply with the name alone: no quotes, no full stop, nothing else."
)

_SPACES = re.compile(r"\s+")
_LABEL = re.compile(r"^(title|name|название|тақырып)\s*:\s*", re.IGNORECASE)
_JOINERS = frozenset("\u200c\u200d")  # zero-width (non-)joiners: emoji and some scripts need them
_TAG_CHARACTERS = range(0xE0020, 0xE0080)  # a subdivision flag's letters and its end
_TAGGED = frozenset({0x1F3F4, *_TAG_CHARACTERS})  # the waving black flag they follow, or a tag
_TRIM = " \t\"'`«»“”„*#_.:;-\u2013\u2014"  # spaces, quotes, marks, hyphen, en and em dash


def title_messages(
    question: str, answer: str, most: int | None = None
) -> list[dict[str, str]] | None:
    """The title request's messages: one user turn with the instruction and the exchange.

    Each side cut to ``EXCERPT_CHARS``, and both to fewer where the request would take more
    than ``most`` prompt tokens by its ceiling (a small window); None where not even the
    instruction and a character of each side fit.
    """

    def messages(length: int) -> list[dict[str, str]]:
        asked, answered = question[:length], answer[:length]
        excerpt = f"{TITLE_PROMPT}\n\nQuestion: {asked}\n\nAnswer: {answered}"
        return [{"role": "user", "content": excerpt}]

    def fits(length: int) -> bool:
        return most is None or prompt_tokens(messages(length)) <= most

    if fits(EXCERPT_CHARS):
        return messages(EXCERPT_CHARS)
    low, high = 0, EXCERPT_CHARS  # messages(low) fits (or low is 0); messages(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return messages(low) if low else None


def clean_title(reply: str) -> str | None:
    """The model's reply as a title: its first line, unquoted, at most ``TITLE_CHARS``.

    A longer one is cut at a word boundary with an ellipsis, never inside a glyph (an emoji of
    several code points, a letter with its marks: ``common.visible``); nothing usable gives
    None. Control characters become spaces and invisible format characters (zero-width spaces,
    direction marks and overrides, which would turn the text around the title in a reply) are
    dropped, but for those of an emoji (joiners, a subdivision flag's tags).
    """
    line = next((line for line in _visible(reply).splitlines() if _trimmed(line)), "")
    title = _trimmed(_SPACES.sub(" ", _LABEL.sub("", _trimmed(line))))
    if not title:
        return None
    if len(title) <= TITLE_CHARS:
        return title
    cut = glyphs_within(title, TITLE_CHARS - 1)
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    cut = _trimmed(cut)
    return cut + "…" if cut else None  # one glyph of 40 code points: no title shows it whole


def _trimmed(text: str) -> str:
    """``text`` without spaces, quotes and marks (``_TRIM``) at its ends, glyphs kept whole.

    The ``#`` of the keycap #️⃣ (``#``, a variation selector, the keycap mark) is no mark.
    """
    start, end = 0, len(text)
    while start < end and text[start] in _TRIM and glyph_boundary(text, start + 1):
        start += 1
    while end > start and text[end - 1] in _TRIM and glyph_boundary(text, end - 1):
        end -= 1
    return text[start:end]


def _visible(text: str) -> str:
    """``text`` with control characters as spaces (line breaks kept) and format ones gone.

    Joiners stay, and tag characters after a waving black flag (its subdivision: 🏴󠁧󠁢󠁳󠁣󠁴󠁿).
    """
    kept: list[str] = []
    for char in text:
        kind = unicodedata.category(char)
        if kind == "Cc" and char not in "\n\r":
            kept.append(" ")
        elif kind not in {"Cf", "Cs"} or char in _JOINERS or _tags(kept, char):
            kept.append(char)
    return "".join(kept)


def _tags(kept: list[str], char: str) -> bool:
    """Whether ``char`` is a tag character going on a flag's tag sequence ``kept`` ends with."""
    return ord(char) in _TAG_CHARACTERS and bool(kept) and ord(kept[-1]) in _TAGGED
